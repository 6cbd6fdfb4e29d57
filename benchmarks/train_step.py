r"""Supernet train step, per-block vs grouped, against a static Keras model of the same tree.

    PYTHONPATH=. .venv/bin/python -m benchmarks.train_step          # shallow_thin, 192x168
    PYTHONPATH=. .venv/bin/python -m benchmarks.train_step --space=tiny --crop_height=32 --crop_width=32

Variants, measured in one process, interleaved (A B C A B C ...), on the full tree (every
block live, `gnas_keras.space.cost.full_tree`) and one repeated in-memory batch:
- ``supernet per-block``: `Supernet` (routed layers, one conv / BN / pool per block, masked
  loss + L2 on the active weights, row-sparse Nesterov SGD, metrics): what GNAS runs.
- ``supernet grouped``: the same with ``grouped_conv=True`` (`RoutedConv._call_grouped`: a
  conv layer's blocks as one grouped convolution, one BN and one pool).
- ``supernet from fc1``: the per-block supernet training only the layer above the grouping
  layer and those above it (`Supernet.train_only_from`, as a GNAS+ candidate with
  ``--candidate_training=above`` trains): its step's backward pass stops at that layer
  (`Supernet.train_function_now`).
- ``static tree``: `TreeNetwork` of the same tree (standard Conv2D / BatchNormalization /
  Dense layers, only the live blocks), its own compiled train step (same loss and L2).
- ``jax per-block``, ``jax grouped``, ``jax tree`` (unless --nojax): the same three models
  built on Keras' JAX backend in a worker process (`benchmarks.gpu --worker`), trained by
  `gnas_keras.models.jax_backend.TrainStep` (the same arithmetic, jit-compiled, stateless),
  timed call by call in the same interleaved rounds as the TensorFlow variants.
Printed per TensorFlow variant: ops in the traced train-step graph (all nodes, and
convolutions), ms/step, images/s, and the fraction of the machine's measured float32 matmul
rate the step reaches (FLOPs per step = 3 x 2 x the tree's MACs per image x batch: forward +
two backward products); then TensorFlow and JAX side by side (ms/step and JAX / TF), and per
backend the formulation to use on this device (``FORMULATION``: the faster of per-block and
grouped; `build_supernet`'s default is per-block). Target for the supernet: per-block /
static <= 1.15.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import measure, timing  # noqa: E402  (timing defines the model flags)
from gnas_keras.space.architecture import Architecture, cost  # noqa: E402
from gnas_keras.space.cost import full_tree  # noqa: E402
from gnas_keras.models.base import compile_model  # noqa: E402
from gnas_keras.models.supernet import build_supernet  # noqa: E402
from gnas_keras.space.search_space import get_space  # noqa: E402

flags.DEFINE_integer("batch_size", 64, "Training batch size.")
flags.DEFINE_integer("steps", 2, "Train steps per timed sample.")
flags.DEFINE_integer("repeats", 7, "Interleaved samples per variant.")
flags.DEFINE_bool("static", True, "Also time the static Keras tree.")
flags.DEFINE_bool("mixed_precision", False, "All variants in mixed precision (GPU).")
flags.DEFINE_bool("jax", True, "Also time the JAX backend's steps (a worker process).")
FLAGS = flags.FLAGS

WEIGHT_DECAY = 1e-4
TARGET = 1.15


def random_batch(batch_size: int, shape, num_attributes: int) -> tf.data.Dataset:
    """One fixed batch, repeated: images [B, H, W, 3] in [0, 255], labels [B, N] in
    {-1, 0, 1}."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, *shape)).astype("float32")
    labels = rng.integers(-1, 2, (batch_size, num_attributes)).astype("int32")
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matmul on this machine (median of `repeats`)."""
    a = tf.random.normal([n, n])
    mm = tf.function(lambda a: tf.matmul(a, a))
    mm(a).numpy()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        mm(a).numpy()
        samples.append(time.perf_counter() - start)
    return 2 * n ** 3 / measure.median(samples)


def graph_ops(model, data) -> tuple:
    """(all ops, convolution ops) in the graph of one traced train step of `model`."""
    images, labels = next(iter(data))
    fn = tf.function(lambda x, y: model.train_step((x, y)))
    graph = fn.get_concrete_function(images, labels).graph
    types = [op.type for op in graph.get_operations()]
    return len(types), sum("Conv2D" in t for t in types)


def models(space_name: str, num_attributes: int, shape, mixed_precision: bool):
    """name -> compiled model: the per-block and grouped supernets on the full tree (the
    same initial weights), and the static tree network with the supernet's weights."""
    import keras
    space = get_space(space_name)
    routing = full_tree(space, num_attributes)
    built = {}
    for name, grouped in (("supernet per-block", False), ("supernet grouped", True)):
        keras.utils.set_random_seed(0)
        built[name] = build_supernet(space, num_attributes, shape, weight_decay=WEIGHT_DECAY,
                                     routing=routing, mixed_precision=mixed_precision,
                                     grouped_conv=grouped)
    keras.utils.set_random_seed(0)
    above = build_supernet(space, num_attributes, shape, weight_decay=WEIGHT_DECAY,
                           routing=routing, mixed_precision=mixed_precision)
    above.train_only_from(space.grouping_layer + 1)
    built["supernet from fc1"] = above
    architecture = Architecture.from_space(space, routing)
    if FLAGS.static:
        from gnas_keras.models.base import precision
        with precision(mixed_precision):
            tree = built["supernet per-block"].to_tree_network(architecture)
            built["static tree"] = compile_model(tree, 0.1)
    return built, architecture


def main(argv):
    del argv
    n, shape, batch = FLAGS.num_attributes, (FLAGS.crop_height, FLAGS.crop_width, 3), FLAGS.batch_size
    data = random_batch(batch, shape, n)
    built, architecture = models(FLAGS.space, n, shape, FLAGS.mixed_precision)
    ops, variants = {}, {}
    for name, model in built.items():
        model.make_train_function()
        iterator, step = iter(data), model.train_function_now()
        ops[name] = graph_ops(model, data)  # as `step` traces it (train_function_now's cut)

        def run(step=step, iterator=iterator):
            for _ in range(FLAGS.steps):
                logs = step(iterator)
            float(np.asarray(logs["loss"]).reshape(-1)[0])

        variants[name] = run

    worker = None
    if FLAGS.jax:
        worker = measure.Worker("benchmarks.gpu", [
            f"--presets={FLAGS.space}", "--variants=per-block,grouped,tree",
            f"--precisions={'mixed' if FLAGS.mixed_precision else 'float32'}",
            f"--num_attributes={n}", f"--height={FLAGS.crop_height}",
            f"--width={FLAGS.crop_width}", f"--batch_size={batch}", f"--steps={FLAGS.steps}"])
        for name in worker.variants:
            variants[f"jax {name}"] = lambda name=name: worker.seconds(name)
    print(f"machine: {measure.machine()}")
    if worker:
        print(f"JAX worker: {worker.machine}; device {worker.device}")
    print(f"{FLAGS.space}, {n} attributes, {FLAGS.crop_height}x{FLAGS.crop_width}, batch {batch}, "
          f"{FLAGS.steps} steps per sample"
          + (", mixed precision" if FLAGS.mixed_precision else ""))
    rate = matmul_rate()
    # Each timed call starts after 0.2 s of quiet when the JAX worker runs: the call right
    # after the other process's ran slower (tiny, one run each: TensorFlow's per-block /
    # static 0.991 alone, 1.182 next to the worker, 1.033 with the pause; benchmarks/README).
    settle = {name: (lambda: time.sleep(0.2)) for name in variants} if worker else None
    samples = measure.interleaved(variants, FLAGS.repeats, before=settle)
    medians = measure.report("train step, per sample", samples, unit=1e3 / FLAGS.steps,
                            unit_name="ms/step")
    flops = 3 * 2 * cost(architecture, FLAGS.crop_height, FLAGS.crop_width).macs_per_image * batch
    print(f"matmul rate (2048^2 float32): {rate / 1e9:.1f} GFLOP/s; train step "
          f"{flops / 1e9:.1f} GFLOP")
    for name, seconds in medians.items():
        if name not in ops:
            continue
        step = seconds / FLAGS.steps
        print(f"  {name:20s} ops {ops[name][0]:6d} (conv {ops[name][1]:4d})  "
              f"{batch / step:8.1f} images/s  {flops / step / 1e9:7.1f} GFLOP/s = "
              f"{flops / step / rate:5.1%} of matmul")
    base = medians["supernet per-block"]
    print(f"RATIO grouped / per-block = {medians['supernet grouped'] / base:.3f}")
    print(f"RATIO from fc1 / per-block = {medians['supernet from fc1'] / base:.3f} (a GNAS+ "
          f"candidate's step against a full one)")
    if "static tree" in medians:
        ratio = base / medians["static tree"]
        print(f"RATIO supernet per-block / static = {ratio:.3f} (target <= {TARGET}: "
              f"{'met' if ratio <= TARGET else 'MISSED'})")
        print(f"RATIO supernet grouped / static = "
              f"{medians['supernet grouped'] / medians['static tree']:.3f}")
    formulations = {"tensorflow": (medians["supernet per-block"], medians["supernet grouped"])}
    if worker:
        worker.close()
        side_by_side(medians)
        formulations["jax"] = (medians["jax per-block"], medians["jax grouped"])
    for backend, (per_block, grouped) in formulations.items():
        print(f"FORMULATION {backend} on this CPU: "
              f"{'grouped' if grouped < per_block else 'per-block'} "
              f"(grouped / per-block = {grouped / per_block:.3f})")


def side_by_side(medians) -> None:
    """TensorFlow's and JAX's ms/step of the same three models, from the same rounds."""
    print("== TensorFlow and JAX side by side (ms/step, medians of the same interleaved run)")
    print(f"  {'model':20s} {'TensorFlow':>11s} {'JAX':>9s} {'JAX / TF':>9s}")
    for tf_name, jax_name in (("supernet per-block", "jax per-block"),
                              ("supernet grouped", "jax grouped"), ("static tree", "jax tree")):
        if tf_name in medians and jax_name in medians:
            a, b = (medians[k] * 1e3 / FLAGS.steps for k in (tf_name, jax_name))
            print(f"  {tf_name:20s} {a:11.2f} {b:9.2f} {b / a:9.3f}")
    if "jax tree" in medians:
        ratio = medians["jax per-block"] / medians["jax tree"]
        print(f"RATIO jax supernet per-block / static = {ratio:.3f} (target <= {TARGET}: "
              f"{'met' if ratio <= TARGET else 'MISSED'})")


if __name__ == "__main__":
    app.run(main)
