r"""Exported SavedModel inference at batch 32 vs the static Keras model and onnxruntime.

    PYTHONPATH=. .venv/bin/python -m benchmarks.inference     # shallow_thin, 192x168, N=40
    (--litert needs benchmarks/requirements.txt: ai-edge-litert)

Variants, all on the same full tree (every block live) and the same batch of 32 images:
- ``savedmodel``: `gnas_keras.export.saved_model.export_saved_model` (BN folded, one layer per block),
  reloaded with ``tf.saved_model.load`` and called through its ``serving_default``
  signature, as TF Serving would.
- ``savedmodel fused``: the same with ``fused=True`` (`gnas_keras.models.fused`: sibling blocks as
  one convolution, per-attribute fc layers as one batched matmul), and (with --onnx /
  --litert) its onnxruntime and LiteRT conversions (``onnxruntime fused``, ``litert fused``).
- ``static keras``: `Supernet.to_tree_network`, the plain Keras model (`TreeNetwork`) of the
  same tree with BatchNormalization layers, called in a ``tf.function`` (training=False).
- ``onnxruntime``: the SavedModel's signature converted by tf2onnx (opset 17), run by
  onnxruntime's CPU provider.
- ``litert`` (with --litert): the SavedModel converted by ``tf.lite.TFLiteConverter`` and run
  by the ai-edge-litert interpreter.
Targets: savedmodel / static keras <= 1.05; savedmodel / onnxruntime <= 1.0 (no slower).
Also printed: the op count of each graph (the Keras model traced once, ops of the per-block
and the fused graph) and fused / per-block latency ratios.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import measure, timing  # noqa: E402  (timing defines the model flags)
from gnas_keras.space.architecture import Architecture  # noqa: E402
from gnas_keras.space.cost import full_tree  # noqa: E402
from gnas_keras.export.saved_model import export_saved_model, inference_model, write_litert  # noqa: E402
from gnas_keras.models.fused import fused_inference_model  # noqa: E402
from gnas_keras.models.supernet import build_supernet  # noqa: E402
from gnas_keras.space.search_space import get_space  # noqa: E402

flags.DEFINE_integer("batch_size", 32, "Inference batch size (the paper's Table 2: 32).")
flags.DEFINE_integer("calls", 3, "Batches per timed sample.")
flags.DEFINE_integer("repeats", 15, "Interleaved samples per variant.")
flags.DEFINE_bool("onnx", True, "Compare with onnxruntime on the tf2onnx conversion.")
flags.DEFINE_bool("litert", False, "Also compare with LiteRT (ai-edge-litert).")
FLAGS = flags.FLAGS

TARGET_STATIC, TARGET_ONNX = 1.05, 1.0


def to_onnx(signature, spec: tf.TensorSpec):
    """An onnxruntime session of a SavedModel signature, converted by tf2onnx."""
    import onnxruntime as ort
    import tf2onnx
    proto, _ = tf2onnx.convert.from_function(
        tf.function(lambda image: signature(image=image)), input_signature=[spec], opset=17)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session, [o.name for o in session.get_outputs()]


def to_litert(saved_model_dir: str):
    """A LiteRT signature runner of the SavedModel's serving signature (it resizes its input
    to the batch it is called with)."""
    from ai_edge_litert.interpreter import Interpreter
    path = write_litert(saved_model_dir, os.path.join(tempfile.mkdtemp(), "model.tflite"))
    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    return interpreter.get_signature_runner("serving_default")


def graph_ops(model, spec: tf.TensorSpec) -> int:
    """Ops in the graph of one traced inference call of the Keras `model`."""
    fn = tf.function(lambda image: model(image, training=False))
    return len(fn.get_concrete_function(spec).graph.get_operations())


def main(argv):
    del argv
    space, n = get_space(FLAGS.space), FLAGS.num_attributes
    shape = (FLAGS.crop_height, FLAGS.crop_width, 3)
    names = [f"attr{i:02d}" for i in range(n)]
    import keras
    routing = full_tree(space, n)
    architecture = Architecture.from_space(space, routing)
    keras.utils.set_random_seed(0)
    supernet = build_supernet(space, n, shape, routing=routing)
    # Non-trivial BN statistics, so that folding has something to fold.
    rng = np.random.default_rng(0)
    for layer in supernet.routed_layers:
        if hasattr(layer, "moving_mean"):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    images = rng.uniform(0, 255, (FLAGS.batch_size, *shape)).astype("float32")
    x = tf.constant(images)

    static = supernet.to_tree_network(architecture)
    static_fn = tf.function(lambda image: static(image, training=False))
    workdir = tempfile.mkdtemp(prefix="gnas-bench-")
    spec = tf.TensorSpec([None, *shape], tf.float32, name="image")
    print(f"graph ops per inference call: per-block {graph_ops(inference_model(static, names), spec)}"
          f", fused {graph_ops(fused_inference_model(static, names), spec)}")
    path = export_saved_model(supernet, architecture, names, workdir, "bench")
    fused_path = export_saved_model(supernet, architecture, names, workdir, "bench_fused",
                                    fused=True)
    loaded = tf.saved_model.load(path)  # keep it: the signature only references its variables
    signature = loaded.signatures["serving_default"]
    loaded_fused = tf.saved_model.load(fused_path)
    fused_signature = loaded_fused.signatures["serving_default"]
    reference = signature(image=x)
    expected = np.stack([reference[a].numpy() for a in names], axis=1)
    logits = static_fn(x).numpy()
    probs = np.exp(logits[..., 1]) / np.exp(logits).sum(-1)
    print(f"max |savedmodel - static keras| probability: {np.abs(probs - expected).max():.2e}")
    got = fused_signature(image=x)
    print(f"max |savedmodel fused - savedmodel| probability: "
          f"{max(np.abs(got[a].numpy() - reference[a].numpy()).max() for a in names):.2e}")

    def batches(fn):
        def run():
            for _ in range(FLAGS.calls):
                out = fn()
            return out
        return run

    variants = {
        "savedmodel": batches(lambda: signature(image=x)[names[-1]].numpy()),
        "savedmodel fused": batches(lambda: fused_signature(image=x)[names[-1]].numpy()),
        "static keras": batches(lambda: static_fn(x).numpy()),
    }
    graphs = {"": (signature, path), " fused": (fused_signature, fused_path)}
    if FLAGS.onnx:
        for suffix, (sig, _) in graphs.items():
            session, outputs = to_onnx(sig, spec)
            feed = {session.get_inputs()[0].name: images}
            got = dict(zip(outputs, session.run(None, feed)))
            print(f"max |onnxruntime{suffix} - savedmodel| probability: "
                  f"{max(np.abs(got[a] - reference[a].numpy()).max() for a in names):.2e}")
            variants["onnxruntime" + suffix] = batches(
                lambda session=session, outputs=outputs, feed=feed:
                session.run(outputs[-1:], feed))
    if FLAGS.litert:
        for suffix, (_, saved) in graphs.items():
            runner = to_litert(saved)
            got = runner(image=images)
            print(f"max |litert{suffix} - savedmodel| probability: "
                  f"{max(np.abs(got[a] - reference[a].numpy()).max() for a in names):.2e}")
            variants["litert" + suffix] = batches(lambda runner=runner: runner(image=images))

    print(f"machine: {measure.machine()}")
    print(f"{FLAGS.space}, {n} attributes, {FLAGS.crop_height}x{FLAGS.crop_width}, batch "
          f"{FLAGS.batch_size}, {FLAGS.calls} batches per sample")
    samples = measure.interleaved(variants, FLAGS.repeats)
    medians = measure.report("inference, per batch", samples, unit=1e3 / FLAGS.calls,
                            unit_name="ms/batch")
    per_image = medians["savedmodel"] / FLAGS.calls / FLAGS.batch_size * 1e3
    print(f"savedmodel: {per_image:.2f} ms/image (paper, GTX 1080Ti: 0.33 ms/image)")
    ratio = medians["savedmodel"] / medians["static keras"]
    print(f"RATIO savedmodel / static keras = {ratio:.3f} (target <= {TARGET_STATIC}: "
          f"{'met' if ratio <= TARGET_STATIC else 'MISSED'})")
    for other in ("onnxruntime", "litert"):
        if other in medians:
            ratio = medians["savedmodel"] / medians[other]
            print(f"RATIO savedmodel / {other} = {ratio:.3f} (target <= {TARGET_ONNX}: "
                  f"{'met' if ratio <= TARGET_ONNX else 'MISSED'})")
    for name in ("savedmodel", "onnxruntime", "litert"):
        if name in medians:
            print(f"RATIO {name} fused / {name} = "
                  f"{medians[name + ' fused'] / medians[name]:.3f}")


if __name__ == "__main__":
    app.run(main)
