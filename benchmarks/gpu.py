r"""Throughput on this machine's accelerator (or CPU) for the four presets, and the projected
cost of the paper's CelebA search. Run through ``benchmarks/gpu.sh``, or:

    PYTHONPATH=. python -m benchmarks.gpu                                  # float32
    PYTHONPATH=. python -m benchmarks.gpu --mixed_precision --grouped_conv  # GPU settings
    PYTHONPATH=. python -m benchmarks.gpu --presets=tiny --crop_height=32 --crop_width=32 --steps=3

Per preset (full tree, N attributes, HxW, one in-memory batch repeated), images/s of
- the supernet train step (`Supernet.train_function`, what the search runs),
- the static tree's train step (`TreeNetwork`, what fine-tuning a tree runs; with
  --jit_compile XLA-compiled),
- the exported SavedModel's ``serving_default`` (BN folded) at --serve_batch;
then the projection: the paper's CelebA search is 150 rounds x (evaluations per round of
the preset at N = 40: 20 for the shallow spaces) candidates x 2,000 train steps of batch 64
(Huang et al. 2018: 2 days on one GTX 1080Ti); projected = that many supernet steps x the
measured step time (reward evaluation and input pipeline not counted).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402
import time  # noqa: E402

from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import timing  # noqa: E402  (defines the model flags)
from gnas_keras.space.architecture import Architecture  # noqa: E402
from gnas_keras.space.cost import full_tree  # noqa: E402
from gnas_keras.export.saved_model import export_saved_model  # noqa: E402
from gnas_keras.models.supernet import build_supernet  # noqa: E402
from gnas_keras.models.tree_net import build_tree_network  # noqa: E402
from gnas_keras.space.search_space import get_space  # noqa: E402

flags.DEFINE_list("presets", ["shallow_thin", "shallow_wide", "deep_thin", "deep_wide"],
                  "Search-space presets to measure.")
flags.DEFINE_integer("batch_size", 64, "Training batch size (paper: 64).")
flags.DEFINE_integer("serve_batch", 32, "SavedModel batch (paper's Table 2: 32).")
flags.DEFINE_integer("steps", 20, "Timed calls per variant (after 3 warm-up calls).")
flags.DEFINE_bool("mixed_precision", False, "Train steps in mixed precision.")
flags.DEFINE_bool("grouped_conv", False, "Supernet with grouped conv layers.")
flags.DEFINE_bool("jit_compile", False, "XLA for the static tree's train step.")
FLAGS = flags.FLAGS

PAPER_ROUNDS, PAPER_STEPS, PAPER_BATCH, PAPER_SECONDS = 150, 2000, 64, 2 * 86400


def seconds_per_call(fn, calls: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def train_call(model, data):
    model.make_train_function()
    iterator = iter(data)

    def call():
        logs = model.train_function(iterator)
        np.asarray(logs["loss"])  # waits for the step
    return call


def measure(preset: str, n: int, shape) -> dict:
    import keras
    space = get_space(preset)
    routing = full_tree(space, n)
    architecture = Architecture.from_space(space, routing)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (FLAGS.batch_size, *shape)).astype("float32")
    labels = rng.integers(-1, 2, (FLAGS.batch_size, n)).astype("int32")
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    keras.utils.set_random_seed(0)
    supernet = build_supernet(space, n, shape, routing=routing,
                              mixed_precision=FLAGS.mixed_precision,
                              grouped_conv=FLAGS.grouped_conv)
    tree = build_tree_network(architecture, shape, mixed_precision=FLAGS.mixed_precision,
                              jit_compile=FLAGS.jit_compile)
    result = {"supernet": seconds_per_call(train_call(supernet, data), FLAGS.steps),
              "tree": seconds_per_call(train_call(tree, data), FLAGS.steps)}
    names = [f"a{i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = export_saved_model(supernet, architecture, names, tmp, "m")
        loaded = tf.saved_model.load(path)
        serve = loaded.signatures["serving_default"]
        x = tf.constant(images[:FLAGS.serve_batch])
        result["savedmodel"] = seconds_per_call(lambda: serve(image=x)[names[-1]].numpy(),
                                                FLAGS.steps)
    result["candidates"] = space.evaluations_per_round(40)
    return result


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # the SavedModel writer's INFO lines
    n, shape = FLAGS.num_attributes, (FLAGS.crop_height, FLAGS.crop_width, 3)
    gpus = tf.config.list_physical_devices("GPU")
    device = ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name)
                       for g in gpus) or "no GPU (CPU only)"
    print(f"device: {device}")
    print(f"machine: {timing.machine()}")
    print(f"{n} attributes, {FLAGS.crop_height}x{FLAGS.crop_width}, train batch {FLAGS.batch_size}, "
          f"serve batch {FLAGS.serve_batch}, mixed_precision={FLAGS.mixed_precision}, "
          f"grouped_conv={FLAGS.grouped_conv}, jit_compile(tree)={FLAGS.jit_compile}")
    print(f"{'preset':14s} {'supernet img/s':>15s} {'tree img/s':>11s} {'savedmodel img/s':>17s}"
          f" {'CelebA search (projected)':>26s} {'vs paper 2 GPU-days':>20s}")
    for preset in FLAGS.presets:
        r = measure(preset, n, shape)
        steps = PAPER_ROUNDS * r["candidates"] * PAPER_STEPS
        projected = steps * r["supernet"] * PAPER_BATCH / FLAGS.batch_size
        print(f"{preset:14s} {FLAGS.batch_size / r['supernet']:15.1f} "
              f"{FLAGS.batch_size / r['tree']:11.1f} "
              f"{FLAGS.serve_batch / r['savedmodel']:17.1f} "
              f"{projected / 86400:20.2f} days {projected / PAPER_SECONDS:19.2f}x", flush=True)
    print(f"(projection: {PAPER_ROUNDS} rounds x candidates per round at N=40 x {PAPER_STEPS} "
          f"supernet steps of batch {PAPER_BATCH}; rewards and input pipeline not counted)")


if __name__ == "__main__":
    app.run(main)
