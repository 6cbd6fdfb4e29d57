r"""Supernet train step on a fixed routing vs a plain static Keras model of the same tree.

    PYTHONPATH=. .venv/bin/python -m benchmarks.train_step          # shallow_thin, 192x168
    PYTHONPATH=. .venv/bin/python -m benchmarks.train_step --space=tiny --height=32 --width=32

A: `Supernet.train_function` (what GNAS runs: routed layers, masked loss + L2 on the active
weights, row-sparse Nesterov SGD, metrics). B: `Supernet.to_tree_network(architecture)` (a `TreeNetwork`: standard Conv2D / BatchNormalization / Dense layers of only the live blocks)
trained by a plain ``tf.function`` step with the same loss, the same L2 and Keras' Nesterov
SGD. Both read the same batch from a repeated in-memory dataset; the routing is the full tree
(every block live), so both compute the same blocks. Target: A / B <= 1.15.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402  (defines the model flags)
from gnas_keras.architecture import Architecture  # noqa: E402
from gnas_keras.space import get_space  # noqa: E402
from gnas_keras.models.base import masked_cross_entropy  # noqa: E402
from gnas_keras.models.supernet import build_supernet  # noqa: E402
from gnas_keras.tree import independent_routing  # noqa: E402

flags.DEFINE_integer("batch_size", 64, "Training batch size.")
flags.DEFINE_integer("steps", 2, "Train steps per timed sample.")
flags.DEFINE_integer("repeats", 7, "Interleaved samples per variant.")
FLAGS = flags.FLAGS

WEIGHT_DECAY = 1e-4
TARGET = 1.15


def static_train_step(model: keras.Model, iterator, learning_rate: float = 0.1):
    """A plain compiled train step for `model`: the supernet's loss and L2, Keras SGD."""
    optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step():
        images, labels = next(iterator)
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = masked_cross_entropy(labels, logits) + 0.5 * WEIGHT_DECAY * tf.add_n(
                [tf.reduce_sum(tf.square(v)) for v in model.trainable_variables])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def random_batch(batch_size: int, shape, num_attributes: int) -> tf.data.Dataset:
    """One fixed batch, repeated: images [B, H, W, 3] in [0, 255], labels [B, N] in
    {-1, 0, 1}."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, *shape)).astype("float32")
    labels = rng.integers(-1, 2, (batch_size, num_attributes)).astype("int32")
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def supernet_on_full_tree(space_name: str, num_attributes: int, shape):
    """A compiled supernet (the paper's SGD settings) routed to the full tree, and the tree."""
    space = get_space(space_name)
    routing = independent_routing(space, num_attributes)
    keras.utils.set_random_seed(0)
    supernet = build_supernet(space, num_attributes, shape, weight_decay=WEIGHT_DECAY,
                              routing=routing)
    supernet.make_train_function()
    return supernet, routing


def main(argv):
    del argv
    n, shape = FLAGS.num_attributes, (FLAGS.height, FLAGS.width, 3)
    data = random_batch(FLAGS.batch_size, shape, n)
    supernet, routing = supernet_on_full_tree(FLAGS.space, n, shape)
    super_iter = iter(data)
    static = supernet.to_tree_network(Architecture.from_space(supernet.space, routing))
    static_step = static_train_step(static, iter(data))

    def run_supernet():
        for _ in range(FLAGS.steps):
            logs = supernet.train_function(super_iter)
        float(logs["loss"])

    def run_static():
        for _ in range(FLAGS.steps):
            loss = static_step()
        float(loss)

    print(f"machine: {timing.machine()}")
    print(f"{FLAGS.space}, {n} attributes, {FLAGS.height}x{FLAGS.width}, batch "
          f"{FLAGS.batch_size}, {FLAGS.steps} steps per sample")
    samples = timing.interleaved({"supernet train step": run_supernet,
                                  "static train step": run_static}, FLAGS.repeats)
    medians = timing.report("train step, per sample", samples,
                            unit=1e3 / FLAGS.steps, unit_name="ms/step")
    ratio = medians["supernet train step"] / medians["static train step"]
    print(f"RATIO supernet / static = {ratio:.3f} (target <= {TARGET}: "
          f"{'met' if ratio <= TARGET else 'MISSED'})")


if __name__ == "__main__":
    app.run(main)
