"""Export one architecture as a pruned, BN-folded SavedModel for TensorFlow Serving.

`export_saved_model(model, architecture, ...)` takes the weights from any
`gnas_keras.models.base.AttributeModel` (a supernet: the edges of the architecture's tree;
a tree network: its blocks), builds `inference_model`: a plain functional Keras model of
only the live blocks, every BN folded into its convolution ("BNs are removed in inference
phase", GNAS paper), or with ``fused=True`` (a run's default, ``--export_fused``) the same
function with sibling blocks fused (`gnas_keras.models.fused`), and writes ``<export_dir>/<name>/<version>/`` (TF Serving layout)
through a temporary directory and a rename, with two signatures::

    serving_default
      image: float32 [batch, H, W, 3], RGB pixels in [0, 255] (not [0, 1]: the model
        normalises inside), already resized and centre-cropped to H x W
      -> {attribute name: float32 [batch] probability that the attribute is present}

    serving_bytes  (with `preprocessing`)
      image_bytes: string [batch], each an encoded JPEG, PNG, GIF, BMP or WebP image of any
        size up to ``max_pixels`` (height x width, `MAX_PIXELS` = 4096 x 4096 by default, a run's
        ``--export_max_pixels``; a larger one is an InvalidArgumentError before decoding)
      -> {attribute name: float32 [batch] probability,
          "<attribute name>_present": bool [batch], probability > the attribute's threshold}

The bytes signature decodes, resizes to the working size and centre-crops in the graph,
exactly as evaluation does (`pipelines.input`). Both check their input in the graph: a wrong
shape or rank, or a NaN / Inf pixel, is an ``InvalidArgumentError`` naming the expected shape
(TF Serving answers it with an error, it does not crash); pixels outside [0, 255] and
[0, 1]-scaled images cannot be told from real ones and are the client's responsibility.

Beside ``saved_model.pb``: ``tree.json`` (`Architecture.to_json`) and ``export.json`` (the
attribute names, the decision thresholds and how they were chosen, the preprocessing, and the
id of the run that made the export, so a resumed run finds its own version).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shutil
import tempfile
from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from gnas_keras.space.architecture import Architecture
from gnas_keras.config import RunConfig
from gnas_keras.models.fused import fused_inference_model
from gnas_keras.io import write_bytes_atomic
from gnas_keras.models.base import AttributeModel
from gnas_keras.models.tree_net import TreeNetwork, build_graph, stack_logits


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)


def inference_model(tree: TreeNetwork, attribute_names: Optional[Sequence[str]] = None
                    ) -> keras.Model:
    """`tree` with BN folded: per conv block ``Conv2D`` with kernel * gamma / sqrt(var + eps)
    and bias beta - mean * gamma / sqrt(var + eps). Output: {attribute name: probability
    [batch]} when `attribute_names` is given, else logits [batch, N, 2] like `tree`."""
    architecture, assignments = tree.architecture, []

    def make_block(l, j, name, spec, x):
        weights = tree.folded_block_weights(l, j)
        if spec.op == "conv":
            conv = keras.layers.Conv2D(spec.width, spec.kernel, padding="same", name=name)
            assignments.append((conv, weights))
            return keras.layers.ReLU(name=f"{name}_relu")(conv(x))
        dense = keras.layers.Dense(spec.width, activation="relu" if spec.activation else None,
                                   name=name)
        assignments.append((dense, weights))
        return dense(x)

    image = keras.Input(shape=tree.image_shape, name="image")
    heads = build_graph(architecture, image, make_block)
    if attribute_names is None:
        outputs = stack_logits(heads)
    else:
        if len(attribute_names) != len(heads):
            raise ValueError(f"{len(attribute_names)} attribute names for {len(heads)} "
                             "attributes")
        outputs = {attr: keras.layers.Lambda(lambda z: tf.nn.softmax(z)[:, 1],
                                             name=f"prob_{i}_{_safe(attr)}")(heads[i])
                   for i, attr in enumerate(attribute_names)}
    model = keras.Model(image, outputs, name="tree")
    for layer, weights in assignments:
        layer.set_weights(weights)
    return model


EXPORT_INFO = "export.json"
PRESENT_SUFFIX = "_present"


def check_images(image: tf.Tensor, image_shape) -> tf.Tensor:
    """`image` checked in the graph against [batch, *image_shape] and for finite values.

    A signature's declared shape is not enforced when a SavedModel is served (TF Serving,
    or a reloaded signature called from Python): without this a wrong size returns garbage
    and a wrong rank can abort the server. Raises InvalidArgumentError at run time."""
    image = tf.ensure_shape(image, [None, *image_shape])
    tf.debugging.assert_all_finite(
        image, f"image: pixels must be finite numbers in [0, 255], shape [batch, "
               f"{', '.join(map(str, image_shape))}]")
    return image


def at_least_one_image(model, image: tf.Tensor) -> Dict[str, tf.Tensor]:
    """`model(image)` that also answers an empty batch [0, H, W, 3] with empty outputs [0].

    TensorFlow's CPU kernels reject a convolution over zero images after the first layer
    ("input depth must be evenly divisible by filter depth"), so an empty batch runs as one
    zero image whose outputs are cut away; any other batch runs unchanged."""
    batch = tf.shape(image)[0]
    filler = tf.zeros(tf.concat([[1 - tf.minimum(batch, 1)], tf.shape(image)[1:]], 0),
                      image.dtype)
    outputs = model(tf.concat([image, filler], 0), training=False)
    return {k: v[:batch] for k, v in outputs.items()}


# The largest image ``serving_bytes`` decodes by default, in pixels (height x width): 4096 x
# 4096 (`RunConfig.export_max_pixels`), above a phone camera's 12 MP. Decoding costs about 15
# bytes a pixel (the RGB bytes and their float32 copy for the resize): 16.8 MP is about 250 MB,
# a 10000 x 10000 PNG more than 1 GB although the file is a few hundred KB.
MAX_PIXELS = RunConfig.export_max_pixels
# Images of one ``serving_bytes`` request decoded at the same time: a request's peak decode
# memory is about DECODE_PARALLEL x max_pixels x 15 bytes (1 GB at the default limit).
DECODE_PARALLEL = 4


def _header_number(data: tf.Tensor, start: int, size: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer of `size` bytes at `start` of string `data` (int64 scalar)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, size), tf.uint8), tf.int64)
    weights = [256 ** (size - 1 - i) if big_endian else 256 ** i for i in range(size)]
    return tf.reduce_sum(raw * tf.constant(weights, tf.int64))


def encoded_pixels(data: tf.Tensor) -> tf.Tensor:
    """Height x width of encoded image `data` (string scalar) read from its header, without
    decoding: JPEG (`tf.image.extract_jpeg_shape`), PNG (IHDR), GIF (logical screen), BMP
    (DIB header), WebP (VP8, VP8L or VP8X header). int64 scalar; -1 for any other format
    (`tf.io.decode_image` also reads JPEG XL, whose size this does not read)."""
    padded = tf.strings.join([data, tf.constant(b"\0" * 32)])  # short input: no read past
    magic = tf.strings.substr(padded, 0, 4)
    webp = tf.logical_and(tf.equal(magic, b"RIFF"),
                          tf.equal(tf.strings.substr(padded, 8, 4), b"WEBP"))
    chunk = tf.strings.substr(padded, 12, 4)

    def number(start, size, big_endian=False):
        return _header_number(padded, start, size, big_endian)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0] * shape[1]

    def bmp():  # a negative height (top-down rows) is stored as its two's complement
        height = number(22, 4)
        return number(18, 4) * tf.where(height >= 2 ** 31, 2 ** 32 - height, height)

    def webp_lossless():  # 14 bits width - 1, 14 bits height - 1
        bits = number(21, 4)
        return (tf.bitwise.bitwise_and(bits, 0x3FFF) + 1) * (
            tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 14), 0x3FFF) + 1)

    return tf.case([
        (tf.equal(tf.strings.substr(magic, 0, 2), b"\xff\xd8"), jpeg),
        (tf.equal(magic, b"\x89PNG"), lambda: number(16, 4, True) * number(20, 4, True)),
        (tf.equal(magic, b"GIF8"), lambda: number(6, 2) * number(8, 2)),
        (tf.equal(tf.strings.substr(magic, 0, 2), b"BM"), bmp),
        (tf.logical_and(webp, tf.equal(chunk, b"VP8 ")), lambda: tf.bitwise.bitwise_and(
            number(26, 2), 0x3FFF) * tf.bitwise.bitwise_and(number(28, 2), 0x3FFF)),
        (tf.logical_and(webp, tf.equal(chunk, b"VP8L")), webp_lossless),
        (tf.logical_and(webp, tf.equal(chunk, b"VP8X")),
         lambda: (number(24, 3) + 1) * (number(27, 3) + 1))],
        default=lambda: tf.constant(-1, tf.int64))


def decode_images(image_bytes: tf.Tensor, height: int, width: int, crop_height: int,
                  crop_width: int, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
    """string [batch] encoded images -> float32 [batch, crop_height, crop_width, 3] pixels in
    [0, 255]: decoded to RGB, resized (bilinear) to height x width, centre-cropped; the same
    ops as `pipelines.input` applies to evaluation images. An image of more than `max_pixels`
    pixels (from its header, `encoded_pixels`) is an InvalidArgumentError before it is
    decoded; `DECODE_PARALLEL` images are decoded at a time."""
    image_bytes = tf.ensure_shape(image_bytes, [None])
    top, left = (height - crop_height) // 2, (width - crop_width) // 2

    def one(data):
        pixels = encoded_pixels(data)
        known = tf.debugging.assert_non_negative(
            pixels, message="image_bytes: an image is not an encoded JPEG, PNG, GIF, BMP or "
                            "WebP image")
        small = tf.debugging.assert_less_equal(
            pixels, tf.constant(max_pixels, tf.int64),
            message=f"image_bytes: an image has more than {max_pixels} pixels (height x "
                    "width), the limit of this export (export.json max_pixels)")
        with tf.control_dependencies([known, small]):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [height, width])
        return image[top:top + crop_height, left:left + crop_width, :]

    return tf.map_fn(one, image_bytes, parallel_iterations=DECODE_PARALLEL,
                     fn_output_signature=tf.TensorSpec([crop_height, crop_width, 3],
                                                       tf.float32))


# A model's directory name under the export base: letters, digits and ``_ . - +`` (``+`` joins
# combined datasets' names), not starting with a dot. It comes from ``--export_name`` or from
# the dataset's metadata.json, so it is never trusted to be a plain name.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}\Z")


def model_name(export_name: str, dataset: str, method: str, metadata: str = "") -> str:
    """The model's name under the export base: `export_name`, or ``<dataset>_<method>``.

    Raises:
      ValueError: naming ``export_name`` or the dataset's `metadata` file when the name could
        leave the export base (``../``, ``/``, a leading dot) or is not a plain name.
    """
    name = export_name or f"{dataset}_{method}"
    if MODEL_NAME.match(name):
        return name
    rule = ("a model name is letters, digits, '_', '.', '-' and '+', starting with a letter "
            "or digit, at most 200 characters")
    if export_name:
        raise ValueError(f"export_name: {export_name!r} cannot name an export ({rule})")
    raise ValueError(f"{metadata or 'metadata.json'}: dataset name {dataset!r} cannot name "
                     f"an export ({rule}); pass --export_name")


def model_directory(export_dir: str, name: str) -> str:
    """``<export_dir>/<name>``, checked to resolve inside `export_dir` (a link there that
    points elsewhere is refused: the export and its clean-up stay under the base)."""
    name = model_name(name, "", "")
    base = os.path.realpath(export_dir)
    path = os.path.join(export_dir, name)
    if os.path.dirname(os.path.realpath(path)) != base:
        raise ValueError(f"export_dir: {path} resolves to {os.path.realpath(path)}, outside "
                         f"{export_dir}; remove the link or choose another --export_name")
    return path


def check_output_names(names: Sequence[str], source: str = "attribute_names") -> None:
    """Raises ValueError, naming `source`, when an attribute's name is another's decision
    output ``<name>_present`` (``smile`` and ``smile_present``): the bytes signature could not
    return both."""
    clash = set(names) & {n + PRESENT_SUFFIX for n in names}
    if clash:
        name = sorted(clash)[0]
        raise ValueError(f"{source}: attribute {name!r} clashes with the decision output of "
                         f"attribute {name[:-len(PRESENT_SUFFIX)]!r} in the export; rename "
                         "one of them")


def run_model_directory(config, meta) -> str:
    """`model_directory` of a run (`gnas_keras.config.RunConfig` `config` on the dataset of
    `pipelines.records.Metadata` `meta`), after checking that its attribute names can be
    exported: checked before the run starts, so a bad name fails before any training, and
    used by its export step."""
    dirs = config.data_dirs
    metadata = (os.path.join(dirs[0], "metadata.json") if len(dirs) == 1
                else f"a metadata.json of {config.data_dir}")
    check_output_names(meta.attribute_names, f"{metadata} attribute_names")
    return model_directory(config.export_dir,
                           model_name(config.export_name, meta.name, config.method, metadata))


_TMP_PREFIX = ".export.tmp-"


def _remove_stale_temporaries(model_dir: str) -> None:
    """Removes ``.export.tmp-<pid>-*`` folders left by an export whose process is gone (it
    was killed); another process's live one, and anything else, stays."""
    from gnas_keras.workdir import _alive

    for entry in os.listdir(model_dir):
        match = re.match(re.escape(_TMP_PREFIX) + r"(\d+)-", entry)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(os.path.join(model_dir, entry), ignore_errors=True)


def find_owned_version(model_dir: str, owner: str) -> Optional[str]:
    """The version directory under `model_dir` whose ``export.json`` names run `owner`."""
    if not owner or not os.path.isdir(model_dir):
        return None
    for v in sorted((v for v in os.listdir(model_dir) if v.isdigit()), key=int):
        try:
            with open(os.path.join(model_dir, v, EXPORT_INFO)) as f:
                if json.load(f).get("run_id") == owner:
                    return os.path.join(model_dir, v)
        except (OSError, ValueError, AttributeError):
            continue
    return None


def next_version(model_dir: str) -> int:
    """One more than the highest numeric version under `model_dir` (1 if none)."""
    versions = [int(v) for v in os.listdir(model_dir) if v.isdigit()] \
        if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def serving_archive(folded: keras.Model, image_shape, names: Sequence[str],
                    thresholds: Sequence[float], preprocessing=None,
                    max_pixels: int = MAX_PIXELS) -> "keras.export.ExportArchive":
    """The signatures of an export (see the module docstring) around `folded` (an
    `inference_model` or `fused_inference_model` with attribute names): ``serving_default``,
    and ``serving_bytes`` when `preprocessing` is given."""
    archive = keras.export.ExportArchive()
    archive.track(folded)
    spec = tf.TensorSpec([None, *image_shape], tf.float32, name="image")
    archive.add_endpoint(
        name="serving_default",
        fn=lambda image: at_least_one_image(folded, check_images(image, image_shape)),
        input_signature=[spec])
    if preprocessing is None:
        return archive
    p = preprocessing
    if (p.crop_height, p.crop_width) != tuple(image_shape[:2]):
        raise ValueError(f"preprocessing crop {p.crop_height}x{p.crop_width} differs "
                         f"from the model input {image_shape}")
    limits = tf.constant(thresholds, tf.float32)

    def from_bytes(image_bytes):
        image = decode_images(image_bytes, p.height, p.width, p.crop_height, p.crop_width,
                              max_pixels)
        probabilities = at_least_one_image(folded, check_images(image, image_shape))
        out = dict(probabilities)
        for i, n in enumerate(names):
            out[n + PRESENT_SUFFIX] = probabilities[n] > limits[i]
        return out

    archive.add_endpoint(
        name="serving_bytes", fn=from_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    return archive


def export_saved_model(model: AttributeModel, architecture: Architecture,
                       attribute_names: Sequence[str], export_dir: str, name: str,
                       version: Optional[int] = None, *, owner: str = "",
                       preprocessing=None, thresholds: Optional[Sequence[float]] = None,
                       info: Optional[Dict] = None,
                       files: Optional[Dict[str, bytes]] = None, fused: bool = False,
                       max_pixels: int = MAX_PIXELS) -> str:
    """Prunes `model` to `architecture`, folds BN, and writes a SavedModel; returns its
    versioned directory.

    Args:
      version: the version to write (an existing one is an error); None = `next_version`,
        and if another process takes that number first, the next free one (two runs
        exporting into one directory never collide).
      owner: the run id recorded in ``export.json`` (see `find_owned_version`).
      preprocessing: a `pipelines.input.Preprocessing`; adds the ``serving_bytes`` signature.
      thresholds: per attribute, probability above which ``serving_bytes`` says present
        (default 0.5, the training loop's decision).
      info: more entries for ``export.json`` (how the thresholds were chosen, ...).
      files: more files for the export directory, name -> content (the model card and
        its tree picture), written before the directory becomes visible.
      fused: write `gnas_keras.models.fused.fused_inference_model` (siblings as one kernel, the
        per-attribute fc layers as one batched matmul) instead of one layer per block; the
        same function, recorded in ``export.json`` as ``"graph"``.
      max_pixels: the largest image (height x width) ``serving_bytes`` decodes; a larger
        one is an InvalidArgumentError naming the limit (`MAX_PIXELS`; ``export.json``
        records it).
    """
    names = list(attribute_names)
    build = fused_inference_model if fused else inference_model
    folded = build(model.to_tree_network(architecture), names)
    thresholds = [0.5] * len(names) if thresholds is None else [float(t) for t in thresholds]
    if len(thresholds) != len(names):
        raise ValueError(f"{len(thresholds)} thresholds for {len(names)} attributes")
    check_output_names(names)
    model_dir = model_directory(export_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    _remove_stale_temporaries(model_dir)
    if version is not None and os.path.exists(os.path.join(model_dir, str(version))):
        raise FileExistsError(f"{os.path.join(model_dir, str(version))}: export version "
                              "already exists")
    image_shape = tuple(model.image_shape)
    archive = serving_archive(folded, image_shape, names, thresholds, preprocessing,
                              max_pixels)
    tmp = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=model_dir)
    try:
        path = os.path.join(tmp, "model")
        archive.write_out(path, verbose=False)
        with open(os.path.join(path, "tree.json"), "w") as f:
            f.write(architecture.to_json(names))
        described = {
            "run_id": owner, "attribute_names": names,
            "graph": "fused" if fused else "per_block",
            "thresholds": dict(zip(names, thresholds)),
            "input": {"image": f"float32 [batch, {', '.join(map(str, image_shape))}], RGB "
                               "pixels in [0, 255]"},
            **(info or {})}
        if preprocessing is not None:
            described["preprocessing"] = dataclasses.asdict(preprocessing)
            described["input"]["image_bytes"] = (f"string [batch], encoded JPEG/PNG/GIF/BMP/"
                                                  f"WebP, at most {max_pixels} pixels each")
            described["max_pixels"] = int(max_pixels)
        with open(os.path.join(path, EXPORT_INFO), "w") as f:
            json.dump(described, f, indent=2)
        for file_name, content in (files or {}).items():
            with open(os.path.join(path, os.path.basename(file_name)), "wb") as f:
                f.write(content)
        while True:
            number = version or next_version(model_dir)
            final = os.path.join(model_dir, str(number))
            try:
                os.rename(path, final)  # fails if `final` exists and is not empty
                break
            except OSError as err:
                if version is not None or err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --- LiteRT (TensorFlow Lite) for CPU serving ----------------------------------------------------
LITERT_FILE = "model.tflite"


def write_litert(saved_model_dir: str, path: str = "") -> str:
    """Converts an export's ``serving_default`` signature (float pixels [batch, H, W, 3] in
    [0, 255] -> one probability [batch] per attribute, the names as outputs) to a LiteRT
    flatbuffer with TensorFlow's own converter, written atomically to `path` (default
    ``<saved_model_dir>/model.tflite``, beside the SavedModel, which TF Serving ignores).
    The batch dimension stays dynamic. Returns the path."""
    load_export(saved_model_dir)  # damage is one line, not the converter's traceback
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=["serving_default"])
    path = path or os.path.join(saved_model_dir, LITERT_FILE)
    write_bytes_atomic(path, converter.convert())
    return path


def load_export(saved_model_dir: str):
    """`tf.saved_model.load` of an export, with a damaged or incomplete one (no or a truncated
    ``saved_model.pb``, missing or cut variables, no ``serving_default``) as one ValueError
    naming the directory instead of whichever error the damage happens to cause."""
    pb = os.path.join(saved_model_dir, "saved_model.pb")
    if not tf.io.gfile.exists(pb):
        raise FileNotFoundError(f"{saved_model_dir}: no saved_model.pb (not an export, or an "
                                "incomplete copy of one)")
    from google.protobuf.message import DecodeError
    try:
        loaded = tf.saved_model.load(saved_model_dir)
        loaded.signatures["serving_default"]
    except (OSError, ValueError, IndexError, KeyError, DecodeError, tf.errors.OpError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = re.sub(r"b?'[^']*saved_model\.pb'", "saved_model.pb", reason).rstrip(".")
        raise ValueError(f"{saved_model_dir}: damaged export, it does not load ({reason[:200]}); "
                         "export it again") from None
    return loaded


def image_size(saved_model_dir: str):
    """(height, width) of the ``serving_default`` signature's ``image`` input."""
    signature = load_export(saved_model_dir).signatures["serving_default"]
    shape = signature.structured_input_signature[1]["image"].shape
    return int(shape[1]), int(shape[2])


def serving_probabilities(saved_model_dir: str, images: np.ndarray) -> Dict[str, np.ndarray]:
    """The export's ``serving_default`` probabilities {attribute: [batch]} on `images`
    (float32 [batch, H, W, 3] in [0, 255]): the reference the converted files must match."""
    loaded = load_export(saved_model_dir)  # kept: the signature uses its variables
    outputs = loaded.signatures["serving_default"](image=tf.constant(images, tf.float32))
    return {k: v.numpy() for k, v in outputs.items()}


def _max_abs_difference(expected: Dict[str, np.ndarray], got: Dict[str, np.ndarray]) -> float:
    return float(max(np.max(np.abs(expected[k] - got[k])) for k in expected))


def litert_max_abs_difference(expected: Dict[str, np.ndarray], litert_path: str,
                              images: np.ndarray) -> float:
    """The largest absolute difference, over `images` and every attribute, between
    `expected` (`serving_probabilities`) and the LiteRT file's probabilities (run by
    `tf.lite.Interpreter`)."""
    import warnings
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": it still runs
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=litert_path)
    runner = interpreter.get_signature_runner("serving_default")
    return _max_abs_difference(expected, runner(image=np.asarray(images, np.float32)))


# --- ONNX for CPU serving (onnxruntime) -----------------------------------------------------------
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17


def write_onnx(saved_model_dir: str, path: str = "") -> str:
    """Converts an export's ``serving_default`` signature to ONNX (tf2onnx, opset
    `ONNX_OPSET`; input ``image`` float32 [batch, H, W, 3] in [0, 255], one output per
    attribute named after it), written atomically to `path` (default
    ``<saved_model_dir>/model.onnx``). Returns the path.

    Raises:
      ModuleNotFoundError: tf2onnx is not installed (requirements.txt pins it).
    """
    import tf2onnx

    loaded = load_export(saved_model_dir)  # kept: the signature uses its variables
    signature = loaded.signatures["serving_default"]
    spec = signature.structured_input_signature[1]["image"]
    proto, _ = tf2onnx.convert.from_function(
        tf.function(lambda image: signature(image=image)),
        input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name="image")],
        opset=ONNX_OPSET)
    path = path or os.path.join(saved_model_dir, ONNX_FILE)
    write_bytes_atomic(path, proto.SerializeToString())
    return path


def onnx_max_abs_difference(expected: Dict[str, np.ndarray], onnx_path: str,
                            images: np.ndarray) -> float:
    """As `litert_max_abs_difference`, for the ONNX file run by onnxruntime's CPU provider."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = session.run(names, {"image": np.asarray(images, np.float32)})
    return _max_abs_difference(expected, dict(zip(names, got)))
