"""Runs the same train steps on the backend of this process (KERAS_BACKEND) and saves the
result, for `tests/test_backends.py` to compare TensorFlow's and JAX's steps.

    KERAS_BACKEND=tensorflow python tests/backend_step_check.py OUT_DIR
    KERAS_BACKEND=jax python tests/backend_step_check.py OUT_DIR --init=OUT_DIR/init.npz

The models: a `tiny` supernet (4 attributes, 16x16 images, no dropout), the same supernet in
the grouped formulation (``grouped_conv``, the same initial weights), the static tree
network of the full tree, GALM's child (3 attributes, 32x32, three architectures, no
dropout), and the per-block supernet again in mixed precision (float16 compute, loss
scaling; the same initial weights). Without --init the fresh weights are saved to
OUT_DIR/init.npz; with it they are loaded (in `model.variables` order, names and shapes
checked). The steps, on fixed random batches: each supernet 2 steps on routing A, 1 on
routing B, then 1 with the layers below fc1 frozen (`train_only_from`); tree network and
GALM's child 2 steps. Saved to OUT_DIR/<backend>.npz: every model variable and momentum
after the steps, the losses and (JAX) the trace count.
"""

import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gnas_keras.space.architecture import Architecture  # noqa: E402
from gnas_keras.space.cost import full_tree  # noqa: E402
from gnas_keras.space.search_space import get_space  # noqa: E402
from gnas_keras.space.tree import random_routing  # noqa: E402
from gnas_keras.models.supernet import build_supernet  # noqa: E402
from gnas_keras.models.tree_net import build_tree_network  # noqa: E402
from gnas_keras.methods import galm, galm_space  # noqa: E402
from gnas_keras.models.galm_net import build_child  # noqa: E402

N, SHAPE, BATCH = 4, (16, 16, 3), 8


def variables_of(model):
    """Model variables, then the momentum of each trainable variable."""
    return list(model.variables) + [model.momentum_of(v) for v in model.trainable_variables]


def stepper(model):
    """``step(images, labels) -> loss`` on this process's backend."""
    if keras.backend.backend() == "jax":
        from gnas_keras.models.jax_backend import TrainStep
        return TrainStep(model)
    import tensorflow as tf
    model.make_train_function()

    def step(images, labels):
        model.reset_metrics()  # the logged loss is then this step's, not a running mean
        iterator = iter(tf.data.Dataset.from_tensors((images, labels)))
        return model.train_function_now()(iterator)["loss"]
    return step


def main(out_dir, init=None):
    space = get_space("tiny")
    rng = np.random.default_rng(0)
    routing_a, routing_b = (random_routing(space, N, rng) for _ in range(2))
    keras.utils.set_random_seed(0)
    supernet = build_supernet(space, N, SHAPE, routing=routing_a)
    grouped = build_supernet(space, N, SHAPE, routing=routing_a, grouped_conv=True)
    mixed = build_supernet(space, N, SHAPE, routing=routing_a, mixed_precision=True)
    for copy in (grouped, mixed):
        for v, w in zip(copy.variables, supernet.variables):
            v.assign(w.numpy())
    tree = build_tree_network(Architecture.from_space(space, full_tree(space, N)), SHAPE)
    galm_space_ = galm.make_space("synthetic")
    child = build_child(galm_space_, 3, (32, 32, 3), learning_rate=0.1, momentum=0.9,
                        weight_decay=1e-4, dropout=0.0, bn_momentum=0.9, bn_epsilon=1e-3)
    child.set_choices([galm_space.decode(galm_space_, i)
                       for i in (0, galm_space_.num_choices - 1, 1234)])
    models = {"supernet": supernet, "grouped": grouped, "mixed": mixed, "tree": tree,
              "galm": child}
    if init is None:
        np.savez(os.path.join(out_dir, "init.npz"), **{
            f"{name}/{i}/{v.path}": np.asarray(v.numpy())
            for name, m in models.items() for i, v in enumerate(m.variables)})
    else:
        saved = np.load(init)
        for name, m in models.items():
            name = "supernet" if name in ("grouped", "mixed") else name
            keys = [k for k in saved.files if k.startswith(name + "/")]
            keys.sort(key=lambda k: int(k.split("/")[1]))
            assert len(keys) == len(m.variables), (name, len(keys), len(m.variables))
            for k, v in zip(keys, m.variables):
                # model names may differ (supernet_1 ...); the layer/weight part must not
                assert k.split("/", 3)[3] == v.path.split("/", 1)[1], (k, v.path)
                if "seed_generator" not in v.path:  # each backend's own random stream
                    v.assign(saved[k])
    batches = [(rng.uniform(0, 255, (BATCH, *SHAPE)).astype("float32"),
                rng.integers(-1, 2, (BATCH, N)).astype("int32")) for _ in range(4)]
    galm_batches = [(rng.uniform(0, 255, (BATCH, 32, 32, 3)).astype("float32"),
                     rng.integers(-1, 2, (BATCH, 3)).astype("int32")) for _ in range(2)]
    losses, traces = {}, {}
    for name, model in models.items():
        step = stepper(model)
        losses[name] = []
        runs = {"tree": batches[:2], "galm": galm_batches}.get(name, batches)
        for i, (images, labels) in enumerate(runs):
            if i == 2:
                model.set_routing(routing_b)
            if i == 3:
                model.train_only_from([l.name for l in space.layers].index("fc1"))
            losses[name].append(float(np.asarray(step(images, labels)).reshape(-1)[0]))
        traces[name] = getattr(step, "traces", -1)
    result = {f"{name}/{i}": np.asarray(v.numpy())
              for name, m in models.items() for i, v in enumerate(variables_of(m))}
    result.update({f"losses/{name}": np.array(v) for name, v in losses.items()})
    result.update({f"traces/{name}": np.array(v) for name, v in traces.items()})
    np.savez(os.path.join(out_dir, keras.backend.backend() + ".npz"), **result)
    print("losses", losses, "traces", traces)


if __name__ == "__main__":
    init = next((a.split("=", 1)[1] for a in sys.argv[2:] if a.startswith("--init=")), None)
    main(sys.argv[1], init)
