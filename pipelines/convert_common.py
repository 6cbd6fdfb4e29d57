"""Code shared by the dataset converters (`pipelines.celeba`, `pipelines.lfwa`, ...).

A converter parses its annotation files into a list of `Item`s (split, key, attributes and
where the image is), then hands them to `write_dataset`, which reads and checks every image,
writes the records through `records.DatasetWriter` (temp dir, renamed at the end) and returns
the `records.Metadata` it wrote.

Bad input raises `ConversionError` naming file and line. `Skips` decides whether an error of
one item stops the conversion (default) or is skipped and counted (``--skip_bad``).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import os
import sys
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image

from gnas_keras.reporting.progress import Progress
from gnas_keras_pipelines import records
from gnas_keras_pipelines import text
from gnas_keras_pipelines.convert_errors import ConversionError

# Crops are stored as JPEG of this quality.
JPEG_QUALITY = 95

# Default number of train shards; smaller splits get proportionally fewer (at least one).
DEFAULT_NUM_SHARDS = 8


# ----------------------------------------------------------------------------- finding files

def find_path(source_dir: str, candidates: Sequence[str], is_dir: bool = False) -> str:
    """The first of `candidates` (paths relative to `source_dir`) that exists.

    Converters list the layouts they accept (flat, ``Anno/...``, Kaggle nesting) as candidates,
    so the search is explicit and cheap. Raises a `ConversionError` naming the first candidate.
    """
    for rel in candidates:
        path = os.path.join(source_dir, rel)
        if (os.path.isdir(path) if is_dir else os.path.isfile(path)):
            return path
    what = "folder" if is_dir else "file"
    also = f" (also looked for {', '.join(candidates[1:])})" if len(candidates) > 1 else ""
    raise ConversionError(os.path.join(source_dir, candidates[0]), None,
                          f"missing {what}{also}", kind="missing_file")


def require_dir(source_dir: str) -> str:
    if not os.path.isdir(source_dir):
        raise ConversionError(source_dir, None, "source_dir does not exist or is not a folder",
                              kind="missing_file")
    return os.path.abspath(source_dir)


# ----------------------------------------------------------------------------- skip policy

class Skips:
    """Counts skipped source items per reason; raises instead unless `skip_bad` is set.

    `handle(err)` is for bad input (skipped only with ``--skip_bad``); `count(reason)` is for
    items a converter always leaves out by design (zero-area boxes, distractor identities).
    """

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.counts: Dict[str, int] = collections.Counter()

    def handle(self, err: ConversionError) -> None:
        if not self.skip_bad:
            raise err
        self.counts[err.kind] += 1
        # Only the first few, so a badly broken source does not flood the terminal.
        if self.counts[err.kind] <= 5:
            Progress.write(f"skipping: {err}")

    def count(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n

    def as_dict(self) -> Dict[str, int]:
        return dict(sorted(self.counts.items()))


# ----------------------------------------------------------------------------- text files

def read_rows(path: str, sep: Optional[str] = None) -> Iterator[Tuple[int, List[str]]]:
    """``(line_number, fields)`` for every non-blank line; see `pipelines.text.read_rows`
    (byte-order marks, CRLF and trailing spaces are accepted everywhere)."""
    return text.read_rows(path, sep)


def read_names(path: str) -> List[Tuple[int, str]]:
    """``(line_number, name)`` per non-blank line; a name is the whole stripped line."""
    return [(number, text.clean(line)) for number, line in text.read_lines(path)
            if line.strip()]


def parse_labels(values: Sequence, path: str, where, allowed: Dict[float, int]) -> List[int]:
    """Maps raw label values to the record encoding through `allowed`.

    Args:
      values: strings from a text line or numbers from a .mat file.
      allowed: raw value -> stored value, e.g. ``{1: 1, -1: 0}`` for CelebA.
    Raises:
      ConversionError: kind ``malformed_line`` for a non-number, ``bad_label`` for a number
        outside `allowed`.
    """
    out = []
    for i, value in enumerate(values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConversionError(path, where, f"value {i + 1} ({value!r}) is not a number",
                                  kind="malformed_line") from None
        if number not in allowed:  # NaN is never in `allowed`
            shown = repr(value) if isinstance(value, str) else _fmt(number)
            raise ConversionError(
                path, where, f"value {i + 1} is {shown}, expected one of "
                f"{', '.join(_fmt(k) for k in sorted(allowed))}", kind="bad_label")
        out.append(allowed[number])
    return out


def _fmt(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else str(x)


def check_count(path: str, where, what: str, expected: int, got: int) -> None:
    if expected != got:
        raise ConversionError(path, where, f"expected {expected} {what}, got {got}",
                              kind="wrong_count")


# ----------------------------------------------------------------------------- images

@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """Bytes to store (JPEG or PNG) and the image size in pixels."""

    data: bytes
    height: int
    width: int
    reencoded: bool = False


# Formats TensorFlow's `decode_image` reads (the input pipeline and the export's bytes
# signature), by their leading bytes. WebP's "RIFF" is followed by a size, then "WEBP".
_TF_FORMATS = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
               (b"GIF89a", "GIF"), (b"BM", "BMP"))


def tf_format(data: bytes) -> Optional[str]:
    """``JPEG``, ``PNG``, ``GIF``, ``BMP`` or ``WEBP`` when TensorFlow decodes `data`'s
    format, else None (TIFF, ...)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _TF_FORMATS if data.startswith(magic)), None)


def decode_pixels(data: bytes, path: str, where=None) -> np.ndarray:
    """The RGB pixels of encoded image `data`, uint8 [height, width, 3], as training and
    serving see them.

    Formats TensorFlow reads (`tf_format`) are decoded by `records.decode_image`, the decoder
    of the input pipeline and of the export's bytes signature, and must decode completely: a
    JPEG missing its last bytes (which PIL accepts) fails here, not mid-search. Other formats
    (TIFF, ...) are decoded by PIL, which serving never meets: the converter stores them
    re-encoded. 16-bit images keep their range (the high byte, as TensorFlow reduces a
    16-bit PNG), never clipped at 255; alpha is dropped, as TensorFlow drops it.

    Raises:
      ConversionError: kind ``bad_image``, naming `path`.
    """
    if tf_format(data):
        try:
            return records.decode_image(data).numpy()
        except tf.errors.OpError as err:
            raise ConversionError(path, where, f"unreadable or truncated image "
                                  f"({records.op_error_reason(err)})", kind="bad_image") from None
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return _rgb8(image)
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ...
        raise ConversionError(path, where, f"unreadable or truncated image ({err})",
                              kind="bad_image") from None


def _rgb8(image: Image.Image) -> np.ndarray:
    """PIL `image` as uint8 RGB; 16- and 32-bit integer grey is scaled (>> 8), not clipped as
    PIL's ``convert("RGB")`` clips it."""
    if image.mode.startswith("I"):
        grey = np.asarray(image).astype(np.int64)
        grey = (np.clip(grey, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    # JPEG with 4:4:4 chroma: crops are small and colour edges matter more than a few bytes.
    options = {"quality": JPEG_QUALITY, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(pixels, "RGB").save(out, format=fmt, **options)
    return out.getvalue()


def check_image(data: bytes, path: str, where=None) -> EncodedImage:
    """Decodes `data` completely (`decode_pixels`) and returns the bytes to store.

    JPEG and PNG (any mode: 16-bit, palette, alpha, CMYK, progressive) are kept byte for
    byte, so training decodes exactly what serving decodes from the same file. GIF, BMP and
    WebP are stored as a PNG of the pixels TensorFlow decodes from them (lossless: the same
    pixels again); other formats as a PNG of PIL's pixels.
    """
    pixels = decode_pixels(data, path, where)
    height, width = pixels.shape[:2]
    if tf_format(data) in ("JPEG", "PNG"):
        return EncodedImage(data, height, width)
    return EncodedImage(_encode(pixels, "PNG"), height, width, reencoded=True)


def read_file_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConversionError(path, None, "missing image", kind="missing_image") from None
    except OSError as err:
        raise ConversionError(path, None, f"cannot read image ({err.strerror})",
                              kind="bad_image") from None


def crop_image(pixels: np.ndarray, box: Tuple[int, int, int, int], path: str) -> EncodedImage:
    """Crops ``box = (left, top, right, bottom)`` (0-based pixels, right/bottom exclusive)
    out of `pixels` (`decode_pixels`), clipped to the image, and encodes it as JPEG."""
    height, width = pixels.shape[:2]
    left, top = max(0, box[0]), max(0, box[1])
    right, bottom = min(width, box[2]), min(height, box[3])
    if right <= left or bottom <= top:
        raise ConversionError(path, None, f"box {box} lies outside the {width}x{height} "
                              "image", kind="box_outside_image")
    crop = np.ascontiguousarray(pixels[top:bottom, left:right])
    return EncodedImage(_encode(crop, "JPEG"), bottom - top, right - left)


# ----------------------------------------------------------------------------- items

@dataclasses.dataclass(frozen=True)
class Item:
    """One record to write.

    Attributes:
      split: ``train``, ``validation`` or ``test``.
      key: where it came from, relative to the source (stored as the record's ``key``).
      attributes: N values in {-1, 0, 1}.
      path: image file to read, or
      data: the encoded image bytes themselves (tfds sources).
      box: optional crop ``(left, top, right, bottom)`` in 0-based pixels, right/bottom
        exclusive.
      where: location for error messages about this item (an annotation file and line).
    """

    split: str
    key: str
    attributes: Tuple[int, ...]
    path: str = ""
    data: Optional[bytes] = None
    box: Optional[Tuple[int, int, int, int]] = None
    where: Optional[Tuple[str, object]] = None


class _Loader:
    """Reads items' images; keeps the last decoded image, since aPY lists boxes of one image
    on consecutive lines."""

    def __init__(self):
        self._cached: Tuple[str, Optional[np.ndarray]] = ("", None)

    def load(self, item: Item) -> EncodedImage:
        if item.box is None:
            data = item.data if item.data is not None else read_file_bytes(item.path)
            return check_image(data, item.path or item.key)
        if self._cached[0] != item.path:
            self._cached = ("", None)
            image = decode_pixels(read_file_bytes(item.path), item.path)
            self._cached = (item.path, image)
        return crop_image(self._cached[1], item.box, item.path)


# ----------------------------------------------------------------------------- splitting

def seeded_split(keys: Iterable, fractions: Dict[str, float], seed: int,
                 rest: str = "train") -> Dict[object, str]:
    """Assigns each of `keys` to a split, reproducibly.

    The keys are sorted, shuffled with ``numpy.random.default_rng(seed)``, and the first
    ``round(fraction * n)`` go to each split of `fractions` in the order given; the remainder
    goes to `rest`. The result depends only on the set of keys, the fractions and the seed.
    """
    ordered = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in order]
    out, start = {}, 0
    for split, fraction in fractions.items():
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"{split} fraction must be in [0, 1), got {fraction}")
        n = int(round(fraction * len(shuffled)))
        for key in shuffled[start:start + n]:
            out[key] = split
        start += n
    if start > len(shuffled):
        raise ValueError(f"fractions {fractions} add up to more than 1")
    for key in shuffled[start:]:
        out[key] = rest
    return out


def shard_counts(sizes: Dict[str, int], num_shards: int) -> Dict[str, int]:
    """`num_shards` for the largest split, proportionally fewer (>= 1) for the others."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    largest = max(max(sizes.values()), 1)
    return {split: max(1, min(num_shards, math.ceil(num_shards * n / largest)))
            for split, n in sizes.items()}


# ----------------------------------------------------------------------------- writing

def write_dataset(*, name: str, source_dir: str, output_dir: str,
                  attribute_names: Sequence[str], items: Iterable[Item],
                  sizes: Dict[str, int], skips: Skips, num_shards: int = DEFAULT_NUM_SHARDS,
                  overwrite: bool = False, extra: Optional[Dict[str, object]] = None,
                  protected: Sequence[str] = ()) -> records.Metadata:
    """Reads and checks every item's image and writes the converted dataset atomically.

    Args:
      sizes: planned records per split (before skipped images); sets the shard counts and the
        progress total. Every split in ``records.SPLITS`` gets shards, even if empty.
      items: in the order they should be written (this makes the output deterministic).
      protected: folders besides `source_dir` that `output_dir` must not replace (see
        `pipelines.output_dir`).
    Returns:
      The metadata written; ``image_height/width`` is the most common stored image size.
    """
    sizes = {split: sizes.get(split, 0) for split in records.SPLITS}
    progress = Progress(f"[{name}] images", sum(sizes.values()))
    image_sizes: collections.Counter = collections.Counter()
    reencoded = 0
    loader = _Loader()
    with records.DatasetWriter(output_dir, shard_counts(sizes, num_shards),
                               overwrite=overwrite, protected=[source_dir, *protected]) as writer:
        for done, item in enumerate(items, start=1):
            try:
                image = loader.load(item)
            except ConversionError as err:
                if item.where is not None and err.path != item.where[0]:
                    # Say which annotation line asked for the image, too.
                    err = ConversionError(err.path, err.where, f"{err.reason} (listed at "
                                          f"{item.where[0]}:{item.where[1]})", kind=err.kind)
                skips.handle(err)
                progress.update(done)
                continue
            writer.add(item.split, image.data, item.attributes, item.key)
            image_sizes[(image.height, image.width)] += 1
            reencoded += image.reencoded
            progress.update(done)
        progress.close()
        if not image_sizes:
            raise ConversionError(source_dir, None, "no images were converted",
                                  kind="empty")
        # Most common size; ties go to the larger size so the choice is deterministic.
        (height, width), _ = max(image_sizes.items(), key=lambda kv: (kv[1], kv[0]))
        extra = dict(extra or {})
        extra["num_shards"] = num_shards
        if reencoded:
            extra["reencoded_images"] = reencoded
        metadata = records.Metadata(
            name=name, source=os.path.abspath(source_dir),
            attribute_names=list(attribute_names), split_sizes={},
            image_height=height, image_width=width, skipped=skips.as_dict(), extra=extra)
        writer.finish(metadata)
    print(f"[{name}] wrote {metadata.split_sizes} to {os.path.abspath(output_dir)}"
          + (f"; skipped {metadata.skipped}" if metadata.skipped else ""), file=sys.stderr)
    return metadata
