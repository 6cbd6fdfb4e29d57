"""Run by test_supernet.py in its own process: two logical CPUs, MirroredStrategy, one
train step and one eval step; routing must be identical on both replicas."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from gnas_keras.space import get_space  # noqa: E402
from gnas_keras.supernet import build_supernet  # noqa: E402
from gnas_keras.training import Loop  # noqa: E402
from gnas_keras.tree import random_routing  # noqa: E402

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
space, n = get_space("tiny"), 6
with strategy.scope():
    model = build_supernet(space, n, (32, 32, 3), seed=0)
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (64, 32, 32, 3)).astype("float32")
y = rng.integers(-1, 2, (64, n)).astype("int32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()
loop = Loop(model, ds)
routing = random_routing(space, n, rng)
model.set_routing(routing)
before = [v.numpy().copy() for v in model.routed_layers[3].kernel.value.values]
train = loop.train(2)
evaluation = loop.evaluate(loop.iterator(ds), 1)
assert np.isfinite(train.loss) and np.isfinite(evaluation.loss), (train, evaluation)
for layer, parents in zip(model.routed_layers, routing.parents):
    per_replica = [v.numpy().tolist() for v in layer.parents.value.values]
    assert per_replica == [list(parents)] * 2, per_replica
kernels = [v.numpy() for v in model.routed_layers[3].kernel.value.values]
assert np.array_equal(kernels[0], kernels[1]), "replicas diverged"
assert not np.array_equal(before[0], kernels[0]), "no training happened"
model.set_routing(random_routing(space, n, rng))  # assignment from cross-replica context
per_replica = [v.numpy().tolist() for v in model.routed_layers[3].parents.value.values]
assert per_replica[0] == per_replica[1] == list(model.routing.parents[3])
print(f"replicas {strategy.num_replicas_in_sync} routing identical")
