"""The one TFRecord schema every dataset is converted to, and its atomic writer.

A converted dataset is a directory::

    <output_dir>/
      metadata.json                       # see `Metadata`
      train-00000-of-00004.tfrecord ...   # one shard set per split
      validation-00000-of-00001.tfrecord
      test-00000-of-00001.tfrecord

Each record is a `tf.train.Example` with

- ``image``: encoded image bytes (JPEG or PNG), any size; the input function resizes.
- ``attributes``: int64 list of length N: 1 = yes, 0 = no, -1 = unknown.
- ``key``: bytes, where the example came from (a relative file name), for debugging.

`DatasetWriter` writes everything into a temporary sibling directory and renames it to
``output_dir`` only when `close()` succeeds, so a reader never sees a partial dataset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Union

import tensorflow as tf

from gnas_keras_pipelines import output_dir as output_dirs
from gnas_keras_pipelines.convert_errors import ConversionError, DatasetError

METADATA_FILE = "metadata.json"
SPLITS = ("train", "validation", "test")
UNKNOWN, NO, YES = -1, 0, 1


@dataclasses.dataclass
class Metadata:
    """What `metadata.json` holds.

    Attributes:
      name: dataset name as the binaries know it (``synthetic``, ``celeba``, ...).
      source: where the data came from (a path or a generator description).
      attribute_names: N names, in the order of the ``attributes`` feature.
      split_sizes: number of records per split.
      image_height, image_width: size of the stored images in pixels (the typical size where
        images vary).
      groups: optional planted attribute grouping (list of lists of attribute names); only the
        synthetic set knows one.
      skipped: per-reason counts of source items the converter skipped (flag-controlled).
      extra: anything else the converter wants to record (split seeds, thresholds, ...).
    """

    name: str
    source: str
    attribute_names: List[str]
    split_sizes: Dict[str, int]
    image_height: int
    image_width: int
    groups: Optional[List[List[str]]] = None
    skipped: Dict[str, int] = dataclasses.field(default_factory=dict)
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, path: str = METADATA_FILE) -> "Metadata":
        """Parses and checks `metadata.json` text; `path` names the file in errors.

        Raises:
          DatasetError: garbled JSON (with line and column), a missing or unknown key, or a
            value of the wrong type, naming the key.
        """
        try:
            raw = json.loads(text.lstrip("\ufeff"))
        except json.JSONDecodeError as err:
            raise DatasetError(path, err.lineno, f"not valid JSON ({err.msg}, column "
                               f"{err.colno})", kind="bad_metadata") from None
        if not isinstance(raw, dict):
            raise DatasetError(path, None, "expected a JSON object", kind="bad_metadata")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [name for name, f in fields.items()
                    if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in raw]
        if missing:
            raise DatasetError(path, None, f"key {missing[0]!r} is missing",
                               kind="bad_metadata")
        unknown = sorted(k for k in raw if k not in fields)
        if unknown:
            raise DatasetError(path, None, f"unknown key {unknown[0]!r} (expected "
                               f"{', '.join(sorted(fields))})", kind="bad_metadata")
        for key, check, what in _METADATA_TYPES:
            if key in raw and not check(raw[key]):
                raise DatasetError(path, None, f"key {key!r} should be {what}, got "
                                   f"{raw[key]!r:.60}", kind="bad_metadata")
        meta = cls(**raw)
        if len(set(meta.attribute_names)) != len(meta.attribute_names):
            raise DatasetError(path, None, "key 'attribute_names' lists a name twice",
                               kind="bad_metadata")
        return meta


def _is_int(x, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def _is_str_list(x) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) and v for v in x)


_METADATA_TYPES = (
    ("name", lambda x: isinstance(x, str) and bool(x), "a non-empty string"),
    ("source", lambda x: isinstance(x, str), "a string"),
    ("attribute_names", lambda x: _is_str_list(x) and bool(x), "a non-empty list of names"),
    ("split_sizes", lambda x: isinstance(x, dict) and all(
        isinstance(k, str) and _is_int(v, 0) for k, v in x.items()),
     "an object of split -> record count"),
    ("image_height", lambda x: _is_int(x, 1), "a positive integer"),
    ("image_width", lambda x: _is_int(x, 1), "a positive integer"),
    ("groups", lambda x: x is None or (isinstance(x, list) and all(map(_is_str_list, x))),
     "null or a list of lists of attribute names"),
    ("skipped", lambda x: isinstance(x, dict), "an object"),
    ("extra", lambda x: isinstance(x, dict), "an object"),
)


def read_metadata(data_dir: str) -> Metadata:
    """Reads and checks `metadata.json` of a converted dataset.

    Raises:
      DatasetError: the file is missing, unreadable or not valid metadata (see
        `Metadata.from_json`).
    """
    path = os.path.join(data_dir, METADATA_FILE)
    if not tf.io.gfile.exists(path):
        raise DatasetError(path, None, "no converted dataset here (metadata.json is missing); "
                           "run `python -m flags.convert` first or point --data_dir at a "
                           "converted dataset", kind="missing_file")
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError(path, None, "not UTF-8 text", kind="bad_metadata") from None
    except (tf.errors.OpError, OSError) as err:
        raise DatasetError(path, None, f"cannot read ({_reason(err)})",
                           kind="bad_metadata") from None
    return Metadata.from_json(text, path)


def _reason(err: Exception) -> str:
    text = getattr(err, "message", None) or getattr(err, "strerror", None) or str(err)
    return str(text).splitlines()[0] if str(text) else type(err).__name__


def op_error_reason(err: Exception) -> str:
    """The first line of a TensorFlow error without its ``{{function_node ...}}`` prefix."""
    return re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", _reason(err))


def decode_image(data: tf.Tensor) -> tf.Tensor:
    """Encoded image bytes (JPEG, PNG, GIF, BMP, WebP) -> uint8 [height, width, 3]: the one
    decoder of converted records, used by the converters (`convert_common.decode_pixels`),
    `check_dataset`, the input pipeline and the export's bytes signature, so that every one of
    them sees the same pixels (16-bit PNG reduced to 8 bits, alpha dropped, palettes
    expanded, the first frame of a GIF)."""
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def shard_pattern(data_dir: str, split: str) -> str:
    return os.path.join(data_dir, f"{split}-*-of-*.tfrecord")


def check_dataset(data_dir: Union[str, Sequence[str]], splits: Sequence[str] = SPLITS,
                  check_images: bool = True) -> Metadata:
    """Checks a converted dataset before any work starts; returns its metadata.

    `data_dir` may be a list of two or more folders read as one dataset: each is checked and
    the result is their `combine_metadata`.

    A quick pass first: `metadata.json` must be valid (`read_metadata`); every split in
    `splits` must have its complete shard set (``train-00000-of-00008`` ...
    ``train-00007-of-00008``); the record headers of every shard are walked (lengths only) so
    that a truncated or overwritten shard is found here rather than mid-run, and the record
    counts must equal ``split_sizes``; the first record of each split must parse with
    ``len(attribute_names)`` attributes in {-1, 0, 1} and hold an image that decodes to 3
    channels. Then, with `check_images` (``--check_images``, on by default), every record is
    read and its image decoded as training will (`find_bad_record`): a byte flipped inside a
    shard or an image that does not decode is named here, not an hour into the search. It
    costs one parallel read of the dataset (CelebA: minutes; ``--nocheck_images`` skips it).

    Raises:
      DatasetError: naming `metadata.json` and the key, or the shard (and record number).
    """
    if not isinstance(data_dir, str):
        data_dirs = list(data_dir)
        if len(data_dirs) == 1:
            return check_dataset(data_dirs[0], splits, check_images)
        return combine_metadata([check_dataset(d, splits, check_images) for d in data_dirs],
                                data_dirs)
    meta = read_metadata(data_dir)
    meta_path = os.path.join(data_dir, METADATA_FILE)
    for split in splits:
        if split not in meta.split_sizes:
            raise DatasetError(meta_path, None, f"key 'split_sizes' has no {split!r} entry",
                               kind="bad_metadata")
        total, first = 0, None
        for path in shard_set(data_dir, split):
            count, record = _walk_records(path)
            total += count
            if first is None and record is not None:
                first = (path, record)
        if total != meta.split_sizes[split]:
            raise DatasetError(shard_pattern(data_dir, split), None, f"the {split} shards hold "
                               f"{total} records, metadata.json says {meta.split_sizes[split]}",
                               kind="bad_shard")
        if first is not None:
            _check_record(first[0], first[1], meta)
    bad = find_bad_record([data_dir], splits) if check_images else None
    if bad is not None:
        raise bad
    return meta


def shard_set(data_dir: str, split: str) -> List[str]:
    """The shard paths of `split`, checked to be one complete ``-of-N`` set."""
    pattern = shard_pattern(data_dir, split)
    found = sorted(tf.io.gfile.glob(pattern))
    if not found:
        raise DatasetError(pattern, None, f"no shards for split {split!r}", kind="bad_shard")
    numbers = {}
    for path in found:
        parts = os.path.basename(path)[len(split) + 1:-len(".tfrecord")].split("-of-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise DatasetError(path, None, "unexpected shard name", kind="bad_shard")
        numbers[path] = (int(parts[0]), int(parts[1]))
    total = max(n for _, n in numbers.values())
    for i in range(total):
        expected = os.path.join(data_dir, f"{split}-{i:05d}-of-{total:05d}.tfrecord")
        if (i, total) not in numbers.values():
            raise DatasetError(expected, None, f"missing shard ({split!r} has {len(found)} "
                               f"files of {total})", kind="bad_shard")
    if len(found) != total:
        odd = next(p for p, (_, n) in numbers.items() if n != total)
        raise DatasetError(odd, None, f"belongs to another shard set than the other "
                           f"{total} {split} shards", kind="bad_shard")
    return found


def _walk_records(path: str):
    """Counts the records of a TFRecord file by walking their length headers (each record:
    8-byte little-endian length, 4-byte CRC, data, 4-byte CRC). Returns (count, first
    record's bytes or None); a record that runs past the end of the file is a DatasetError.

    Local files are read with unbuffered ``pread`` of the 12-byte headers only (a buffered
    or `tf.io.gfile` reader would pull whole blocks: a minute instead of seconds for CelebA);
    other file systems (``gs://``) through `tf.io.gfile`.
    """
    try:
        if os.path.exists(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                return _walk(path, os.fstat(fd).st_size, lambda n, at: os.pread(fd, n, at))
            finally:
                os.close(fd)
        with tf.io.gfile.GFile(path, "rb") as f:
            def read(n, at):
                f.seek(at)
                return f.read(n)
            return _walk(path, f.size(), read)
    except (tf.errors.OpError, OSError) as err:
        raise DatasetError(path, None, f"cannot read ({_reason(err)})",
                           kind="bad_shard") from None


def _walk(path: str, size: int, read):
    position, count, first = 0, 0, None
    while position < size:
        header = read(12, position)
        length = int.from_bytes(header[:8], "little") if len(header) == 12 else size
        end = position + 12 + length + 4
        if end > size:
            raise DatasetError(path, None, f"truncated or corrupt: record {count + 1} runs "
                               f"past the end of the file (at byte {position} of {size}); "
                               "convert the dataset again", kind="bad_shard")
        if count == 0:
            first = read(length, position + 12)
        position, count = end, count + 1
    return count, first


def find_bad_record(data_dirs: Sequence[str], splits: Sequence[str] = SPLITS
                    ) -> Optional[DatasetError]:
    """Reads every record of every shard as training does, checking its CRCs, its features
    and that its image decodes (`decode_image`), and returns a `DatasetError` naming the first
    shard and record that fails, or None if all read cleanly.

    `check_dataset` calls it before a run (``--check_images``); the run calls it after a
    reading error mid-run (TensorFlow's `DataLossError` "corrupted record at N" or an
    `InvalidArgumentError` from the decoder, neither naming a file) to say which shard to
    reconvert. One parallel pass over the dataset; a failing shard is read again record by
    record to name the record.
    """
    for data_dir in data_dirs:
        meta = read_metadata(data_dir)
        paths = [path for split in splits if tf.io.gfile.glob(shard_pattern(data_dir, split))
                 for path in shard_set(data_dir, split)]
        try:
            for _ in _decoded_records(paths, meta.num_attributes):
                pass
        except tf.errors.OpError as err:
            for path in paths:  # which shard: read them one record at a time
                found = _name_bad_record(path, meta)
                if found is not None:
                    return found
            return DatasetError(data_dir, None, f"a record does not read as training reads "
                                f"it ({op_error_reason(err)})", kind="bad_shard")
    return None


def _decoded_records(paths: Sequence[str], num_attributes: int) -> tf.data.Dataset:
    """The records of the shards `paths`, one after the other, parsed and decoded in
    parallel, in batches (fewer Python steps); an element is the batch's image shapes. One
    pipeline for all the shards: building one costs more than reading a small shard."""
    def decoded(serialized):
        parsed = tf.io.parse_single_example(serialized, feature_spec(num_attributes))
        attributes = parsed["attributes"]
        tf.debugging.assert_less_equal(tf.abs(attributes), tf.constant(1, tf.int64),
                                       "attribute values must be -1, 0 or 1")
        return tf.shape(decode_image(parsed["image"]))

    return tf.data.TFRecordDataset(list(paths)).map(
        decoded, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(256)


def _name_bad_record(path: str, meta: Metadata) -> Optional[DatasetError]:
    """Reads shard `path` one record at a time; the error of its first bad record (numbered
    from 1), or None."""
    number = 0
    try:
        for data in tf.data.TFRecordDataset(path).as_numpy_iterator():
            number += 1
            _check_record(path, data, meta, number)
    except DatasetError as found:
        return found
    except tf.errors.OpError as err:
        found = re.search(r"corrupted record at \d+", str(err))
        why = (f"{found.group(0).replace('at', 'at byte')}, its checksum fails" if found
               else op_error_reason(err))
        return DatasetError(path, None, f"record {number + 1} is corrupted ({why})",
                            kind="bad_shard")
    return None


def _check_record(path: str, data: bytes, meta: Metadata, number: int = 1) -> None:
    """Checks record `number` (from 1) of shard `path`: an Example with `meta`'s attribute
    count, values in {-1, 0, 1}, and an image that decodes to a non-empty RGB image."""
    where = f"record {number}"
    try:
        example = tf.train.Example.FromString(data)
    except Exception:  # protobuf's DecodeError
        raise DatasetError(path, where, "not a tf.train.Example", kind="bad_shard") from None
    feature = example.features.feature
    if "image" not in feature or len(feature["image"].bytes_list.value) != 1:
        raise DatasetError(path, where, "has no 'image' bytes", kind="bad_shard")
    attributes = list(feature["attributes"].int64_list.value) if "attributes" in feature \
        else []
    if len(attributes) != meta.num_attributes:
        raise DatasetError(path, where, f"has {len(attributes)} attributes, metadata.json "
                           f"lists {meta.num_attributes} attribute_names", kind="bad_shard")
    bad = sorted(set(attributes) - {UNKNOWN, NO, YES})
    if bad:
        raise DatasetError(path, where, f"attribute value {bad[0]} is not -1, 0 or 1",
                           kind="bad_shard")
    try:
        image = decode_image(feature["image"].bytes_list.value[0])
    except tf.errors.OpError as err:
        raise DatasetError(path, where, f"image does not decode ({op_error_reason(err)})",
                           kind="bad_shard") from None
    if min(image.shape[:2]) < 1:
        raise DatasetError(path, where, f"image has shape {tuple(image.shape)}",
                           kind="bad_shard")


def combine_metadata(metas: Sequence[Metadata], data_dirs: Sequence[str]) -> Metadata:
    """The metadata of several converted datasets read as one (`pipelines.input.make_dataset`
    with a list of folders).

    Attributes are concatenated in the order given; every record keeps its own dataset's
    values and is unknown (-1) for all the others' attributes. A name that occurs in more
    than one dataset is prefixed with its dataset's name (``celeba/Smiling``,
    ``lfwa/Smiling``); a dataset name given twice gets ``_2``, ``_3``. Split sizes add up;
    the stored image size is the first dataset's (it sets the working size, see
    `pipelines.input.preprocessing_for`). Groups are kept only if every dataset has them.
    ``extra["combined"]`` lists each part: name, folder, attribute offset and count, split
    sizes, image size.
    """
    if len(metas) < 2 or len(metas) != len(data_dirs):
        raise ValueError("combine_metadata needs two or more datasets and one folder each")
    prefixes: List[str] = []
    for meta in metas:
        prefix, k = meta.name, 1
        while prefix in prefixes:
            k += 1
            prefix = f"{meta.name}_{k}"
        prefixes.append(prefix)
    counts: Dict[str, int] = {}
    for meta in metas:
        for name in meta.attribute_names:
            counts[name] = counts.get(name, 0) + 1

    def renamed(prefix: str, name: str) -> str:
        return f"{prefix}/{name}" if counts[name] > 1 else name

    names, parts, offset = [], [], 0
    for prefix, meta, data_dir in zip(prefixes, metas, data_dirs):
        names += [renamed(prefix, n) for n in meta.attribute_names]
        parts.append({"name": meta.name, "prefix": prefix, "data_dir": data_dir,
                      "attribute_offset": offset, "num_attributes": meta.num_attributes,
                      "split_sizes": dict(meta.split_sizes),
                      "image_height": meta.image_height, "image_width": meta.image_width})
        offset += meta.num_attributes
    if len(set(names)) != len(names):
        clash = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"attribute name {clash!r} is ambiguous after prefixing; rename a "
                         "dataset")
    groups = None
    if all(m.groups for m in metas):
        groups = [[renamed(p, n) for n in g] for p, m in zip(prefixes, metas) for g in m.groups]
    splits = sorted({s for m in metas for s in m.split_sizes},
                    key=lambda s: (SPLITS + (s,)).index(s))
    return Metadata(
        name="+".join(prefixes), source="; ".join(m.source for m in metas),
        attribute_names=names,
        split_sizes={s: sum(m.split_sizes.get(s, 0) for m in metas) for s in splits},
        image_height=metas[0].image_height, image_width=metas[0].image_width, groups=groups,
        extra={"combined": parts})


def make_example(image_bytes: bytes, attributes: Sequence[int], key: str = "") -> bytes:
    """Serializes one record; `attributes` must already be in {-1, 0, 1}."""
    bad = [a for a in attributes if a not in (UNKNOWN, NO, YES)]
    if bad:
        raise ValueError(f"{key}: attribute values must be -1, 0 or 1, got {bad[:5]}")
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        "attributes": tf.train.Feature(int64_list=tf.train.Int64List(value=list(attributes))),
        "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[key.encode("utf-8")])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def feature_spec(num_attributes: int) -> Dict[str, Any]:
    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        "attributes": tf.io.FixedLenFeature([num_attributes], tf.int64),
        "key": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


class DatasetWriter:
    """Writes a converted dataset atomically.

    Usage::

        with DatasetWriter(output_dir, shards={"train": 8}) as w:
            for img, attrs, key in ...:
                w.add("train", img, attrs, key)
            w.finish(metadata)          # metadata.split_sizes is filled in for you

    Records are spread round-robin over the split's shards. Everything goes to a temporary
    directory beside `output_dir`; `finish` renames it into place. If the block raises or
    `finish` is never called, the temporary directory is removed and `output_dir` is left as
    it was. An existing `output_dir` is replaced only when `overwrite` is true and it holds a
    converted dataset and nothing else (see `pipelines.output_dir`); the old copy is renamed
    aside, the new one renamed in, then the old one's files removed. A link is resolved and
    its target replaced.

    The writer holds `output_dir`'s `OutputLock` from start to end, so two converts into one
    folder cannot interleave; `output_dir` is checked again under the lock just before the
    swap (another process may have made it meanwhile). A dataset that a run reads
    (`output_dir.DatasetReadLock`) is not replaced (`output_dir.no_readers`). An
    operating-system error while writing (read-only file system, full disk, no permission,
    a file where a folder belongs) is one `ConversionError` naming `output_dir`, with
    nothing left behind.
    """

    def __init__(self, output_dir: str, shards: Dict[str, int], overwrite: bool = False,
                 protected: Sequence[str] = ()):
        """See the class docstring; `protected` folders (the source) are never replaced and
        never removed: `output_dir` may not be one of them or above one of them (checked by
        `pipelines.output_dir.check_output_dir`, with `overwrite`)."""
        self.shown, self.overwrite, self.protected = output_dir, overwrite, protected
        self.output_dir = output_dirs.check_output_dir(output_dir, overwrite, protected)
        self.tmp_dir: Optional[str] = None
        self.counts = {split: 0 for split in shards}
        self._writers: Dict[str, List[tf.io.TFRecordWriter]] = {}
        self._lock: Optional[output_dirs.OutputLock] = None
        self._done = False
        try:
            with self._os_errors():
                self._start(shards)
        except BaseException:
            self._discard()
            raise

    def _start(self, shards: Dict[str, int]) -> None:
        parent, base = os.path.split(self.output_dir)
        os.makedirs(parent, exist_ok=True)
        self._lock = output_dirs.OutputLock(self.output_dir, self.shown).acquire()
        with output_dirs.no_readers(self.output_dir, self.shown):
            pass  # say so now, not after the whole conversion
        # Under the lock no other convert writes here: a temporary folder is a leftover of
        # an interrupted run, never complete. Start clean.
        for name in os.listdir(parent):
            if name.startswith(f".{base}.tmp-"):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        self.tmp_dir = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
        # mkdtemp makes the folder 0700; a dataset is shared like any other output, so it
        # gets the mode a plain mkdir would give it under the user's umask.
        os.chmod(self.tmp_dir, 0o777 & ~_umask())
        for split, n in shards.items():
            self._writers[split] = [tf.io.TFRecordWriter(os.path.join(
                self.tmp_dir, f"{split}-{i:05d}-of-{n:05d}.tfrecord")) for i in range(n)]

    def add(self, split: str, image_bytes: bytes, attributes: Sequence[int], key: str = ""):
        writers = self._writers[split]
        record = make_example(image_bytes, attributes, key)
        with self._os_errors():
            writers[self.counts[split] % len(writers)].write(record)
        self.counts[split] += 1

    def finish(self, metadata: Metadata) -> None:
        with self._os_errors():
            for writers in self._writers.values():
                for w in writers:
                    w.close()
            metadata.split_sizes = dict(self.counts)
            with open(os.path.join(self.tmp_dir, METADATA_FILE), "w") as f:
                f.write(metadata.to_json())
            # Made meanwhile by another process (not a convert: those wait for the lock)?
            output_dirs.check_output_dir(self.shown, self.overwrite, self.protected)
            with output_dirs.no_readers(self.output_dir, self.shown):
                _swap_into_place(self.tmp_dir, self.output_dir)
        self._done = True
        self._release()

    @contextlib.contextmanager
    def _os_errors(self):
        """OSError and TensorFlow's file errors -> one `ConversionError` naming output_dir."""
        try:
            yield
        except ConversionError:
            raise
        except (OSError, tf.errors.OpError) as err:
            reason = getattr(err, "strerror", None) or op_error_reason(err).rpartition("; ")[2]
            raise ConversionError(self.shown, None, f"cannot write the converted dataset "
                                  f"({reason}); nothing was written, and what was there is "
                                  "unchanged", kind="write_failed") from None

    def _discard(self) -> None:
        """Removes the temporary folder; never raises (a full disk fails the writers' final
        flush again: that must not keep the folder)."""
        for writers in self._writers.values():
            for w in writers:
                try:
                    w.close()
                except Exception:  # noqa: BLE001 - the write error is already reported
                    pass
        if self.tmp_dir:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done:
            self._discard()


def _umask() -> int:
    mask = os.umask(0o022)  # reading it means setting it; put it straight back
    os.umask(mask)
    return mask


def _swap_into_place(new_dir: str, output_dir: str) -> None:
    """Renames the complete `new_dir` to `output_dir`. An existing `output_dir` (already
    checked to be a converted dataset) is first renamed aside and removed only once the new
    one is in place, so at every moment one complete dataset exists."""
    if not os.path.lexists(output_dir):
        os.rename(new_dir, output_dir)
        return
    parent, base = os.path.split(output_dir)
    old_dir = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
    os.rmdir(old_dir)  # only the unique name is wanted; rename needs it free
    os.rename(output_dir, old_dir)
    try:
        os.rename(new_dir, output_dir)
    except BaseException:
        os.rename(old_dir, output_dir)
        raise
    # The dataset's own files only: anything that appeared there since the check is kept.
    for entry in os.scandir(old_dir):
        if output_dirs.DATASET_FILE.match(entry.name) and not entry.is_dir():
            os.unlink(entry.path)
    try:
        os.rmdir(old_dir)
    except OSError:
        print(f"{output_dir}: replaced; {old_dir} keeps what the old folder held besides the "
              "dataset", file=sys.stderr)
