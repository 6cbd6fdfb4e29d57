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

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import tensorflow as tf

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
    def from_json(cls, text: str) -> "Metadata":
        return cls(**json.loads(text))


def read_metadata(data_dir: str) -> Metadata:
    """Reads `metadata.json` of a converted dataset; a clear error if it is missing."""
    path = os.path.join(data_dir, METADATA_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path}: no converted dataset here (metadata.json is missing); run "
            "`python -m flags.convert` first or point --data_dir at a converted dataset")
    with tf.io.gfile.GFile(path) as f:
        return Metadata.from_json(f.read())


def shard_pattern(data_dir: str, split: str) -> str:
    return os.path.join(data_dir, f"{split}-*-of-*.tfrecord")


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
    it was. An existing complete `output_dir` is replaced only when `overwrite` is true.
    """

    def __init__(self, output_dir: str, shards: Dict[str, int], overwrite: bool = False):
        self.output_dir = os.path.abspath(output_dir)
        if os.path.exists(self.output_dir) and not overwrite:
            raise FileExistsError(
                f"{self.output_dir}: already exists; pass --overwrite to replace it")
        parent = os.path.dirname(self.output_dir)
        os.makedirs(parent, exist_ok=True)
        base = os.path.basename(self.output_dir)
        # Leftovers of an interrupted earlier run are never complete: start clean.
        for name in os.listdir(parent):
            if name.startswith(f".{base}.tmp-"):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        self.tmp_dir = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
        self.counts = {split: 0 for split in shards}
        self._writers = {
            split: [tf.io.TFRecordWriter(os.path.join(
                self.tmp_dir, f"{split}-{i:05d}-of-{n:05d}.tfrecord")) for i in range(n)]
            for split, n in shards.items()
        }
        self._done = False

    def add(self, split: str, image_bytes: bytes, attributes: Sequence[int], key: str = ""):
        writers = self._writers[split]
        writers[self.counts[split] % len(writers)].write(
            make_example(image_bytes, attributes, key))
        self.counts[split] += 1

    def finish(self, metadata: Metadata) -> None:
        for writers in self._writers.values():
            for w in writers:
                w.close()
        metadata.split_sizes = dict(self.counts)
        with open(os.path.join(self.tmp_dir, METADATA_FILE), "w") as f:
            f.write(metadata.to_json())
        if os.path.exists(self.output_dir):
            shutil.rmtree(self.output_dir)
        os.rename(self.tmp_dir, self.output_dir)
        self._done = True

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done:
            for writers in self._writers.values():
                for w in writers:
                    w.close()
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
