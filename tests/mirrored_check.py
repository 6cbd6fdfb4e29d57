"""Run by test_supernet.py in its own process: two logical CPUs, MirroredStrategy, one
train step and one eval step; routing must be identical on both replicas. With a method name
as argument instead: a whole run (`gnas_keras.run`, --strategy=mirrored) on a small synthetic
set: search, fine-tune, test, export (from-scratch comparisons train the same tree network
class as the fine-tune, so the run leaves them out: each costs a model build under the
strategy)."""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from gnas_keras.models.supernet import build_supernet  # noqa: E402
from gnas_keras.space.search_space import get_space  # noqa: E402
from gnas_keras.training.loop import Loop  # noqa: E402
from gnas_keras.space.tree import random_routing  # noqa: E402



def supernet_check():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    space, n = get_space("tiny"), 6
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_supernet(space, n, (32, 32, 3))
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


def run_check(method: str):
    """One whole run with --strategy=mirrored. In a process of its own: two strategies in
    one process share collective instance keys and abort each other's collectives."""
    from gnas_keras.config import CandidateConfig, RunConfig
    from gnas_keras.methods.gnas import GnasConfig
    from gnas_keras.run import run
    from gnas_keras_pipelines import synthetic

    with tempfile.TemporaryDirectory() as tmp:
        synthetic.generate(os.path.join(tmp, "data"), seed=0,
                           sizes={"train": 128, "validation": 64, "test": 64}, num_shards=2)
        lines = []
        report = run(RunConfig(
            data_dir=os.path.join(tmp, "data"), workdir=os.path.join(tmp, "run"),
            export_dir=os.path.join(tmp, "export"), export_name="m", strategy="mirrored",
            method=method, batch_size=16, eval_batch_size=32, finetune_steps=2,
            candidates=CandidateConfig(train_steps=1, val_batches=1),
            methods={"gnas": GnasConfig(max_rounds=1, patience=1)}), out=lines.append)
        assert "2 replica(s)" in lines[0], lines[0]
        assert os.path.isdir(os.path.join(tmp, "export", "m", "1")), report["export"]
        assert np.isfinite(report["mean_test_error"])
    print(f"mirrored run of {method}: test error {report['mean_test_error']:.4f}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        run_check(sys.argv[1])
    else:
        supernet_check()
