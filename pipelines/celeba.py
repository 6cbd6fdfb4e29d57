"""CelebA (Liu et al. 2015) -> TFRecords: 40 binary face attributes, official split.

Accepted sources (`source_dir`):

1. The files from the CelebA site, flat in one folder or in the official ``Img/ Anno/ Eval/``
   folders::

       img_align_celeba/000001.jpg ...      (or Img/img_align_celeba/; 218x178 JPEGs)
       list_attr_celeba.txt                 (or Anno/list_attr_celeba.txt)
       list_eval_partition.txt              (or Eval/list_eval_partition.txt)

   ``list_attr_celeba.txt``: line 1 the number of images, line 2 the 40 attribute names, then
   ``000001.jpg -1  1  1 -1 ...`` (values 1/-1 padded with one or two spaces).
   ``list_eval_partition.txt``: ``000001.jpg 0`` with 0/1/2 = train/validation/test.
   The Kaggle copy is accepted too: ``list_attr_celeba.csv`` (``image_id,5_o_Clock_Shadow,...``)
   and ``list_eval_partition.csv`` (``image_id,partition``), images possibly nested as
   ``img_align_celeba/img_align_celeba/``.

2. A tensorflow-datasets ``celeb_a`` directory prepared earlier (``.../celeb_a/2.1.0``, its
   parent ``.../celeb_a`` or the tfds data dir holding ``celeb_a/``). Needs the
   ``tensorflow-datasets`` package; reads the prepared files only, never the network. tfds
   stores attributes as booleans (value > 0) and does not keep file names: the record key is
   the tfds id (``celeb_a-train.tfrecord-00000-of-00004__17``).

Encoding: CelebA 1 -> 1 (yes), -1 -> 0 (no); no unknowns. Images are stored unchanged.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Optional, Tuple

from gnas_keras_pipelines import convert_common as common
from gnas_keras_pipelines import records
from gnas_keras_pipelines.convert_errors import ConversionError

NAME = "celeba"
NUM_ATTRIBUTES = 40
PARTITIONS = {"0": "train", "1": "validation", "2": "test"}
LABELS = {1: records.YES, -1: records.NO}

ATTR_FILES = ["list_attr_celeba.txt", "Anno/list_attr_celeba.txt", "list_attr_celeba.csv",
              "Anno/list_attr_celeba.csv"]
PARTITION_FILES = ["list_eval_partition.txt", "Eval/list_eval_partition.txt",
                   "list_eval_partition.csv", "Eval/list_eval_partition.csv"]
IMAGE_DIRS = ["img_align_celeba/img_align_celeba", "img_align_celeba",
              "Img/img_align_celeba/img_align_celeba", "Img/img_align_celeba"]


def convert(source_dir: str, output_dir: str, *, overwrite: bool = False,
            skip_bad: bool = False, num_shards: int = common.DEFAULT_NUM_SHARDS
            ) -> records.Metadata:
    """Converts CelebA from the downloaded files or a tfds ``celeb_a`` directory."""
    source_dir = common.require_dir(source_dir)
    tfds_dir = find_tfds_dir(source_dir)
    if tfds_dir is not None:
        return _convert_tfds(tfds_dir, source_dir, output_dir, overwrite=overwrite,
                             skip_bad=skip_bad, num_shards=num_shards)
    skips = common.Skips(skip_bad)
    attr_path = common.find_path(source_dir, ATTR_FILES)
    names, labels = read_attributes(attr_path, skips)
    partition = read_partition(common.find_path(source_dir, PARTITION_FILES), labels, skips)
    image_dir = common.find_path(source_dir, IMAGE_DIRS, is_dir=True)
    items = [
        common.Item(split, f"img_align_celeba/{image}", tuple(labels[image]),
                    path=os.path.join(image_dir, image), where=where)
        # File names are zero-padded numbers: sorting gives the official order.
        for image, (split, where) in sorted(partition.items())
    ]
    sizes = {s: sum(i.split == s for i in items) for s in records.SPLITS}
    return common.write_dataset(
        name=NAME, source_dir=source_dir, output_dir=output_dir, attribute_names=names,
        items=items, sizes=sizes, skips=skips, num_shards=num_shards, overwrite=overwrite,
        extra={"format": "celeba_files", "unlisted_images": len(labels) - len(partition)})


def read_attributes(path: str, skips: common.Skips
                    ) -> Tuple[List[str], Dict[str, List[int]]]:
    """Parses ``list_attr_celeba.txt`` (or the Kaggle CSV).

    Returns:
      The 40 names and image file name -> 40 values in {0, 1}.
    """
    csv = path.endswith(".csv")
    rows = common.read_rows(path, sep="," if csv else None)
    if not csv:
        count_line, count = _first(rows, path, "the number of images")
        if len(count) != 1 or not count[0].isdigit():
            raise ConversionError(path, count_line, f"expected the number of images, got "
                                  f"{' '.join(count)!r}", kind="malformed_line")
    header_line, names = _first(rows, path, "the attribute names")
    if csv:
        names = names[1:]  # drop "image_id"
    common.check_count(path, header_line, "attribute names", NUM_ATTRIBUTES, len(names))
    labels: Dict[str, List[int]] = {}
    lines = 0
    for number, fields in rows:
        lines += 1
        try:
            common.check_count(path, number, "values", NUM_ATTRIBUTES, len(fields) - 1)
            if fields[0] in labels:
                raise ConversionError(path, number, f"{fields[0]} is listed twice",
                                      kind="malformed_line")
            labels[fields[0]] = common.parse_labels(fields[1:], path, number, LABELS)
        except ConversionError as err:
            if err.kind == "wrong_count":
                err.kind = "malformed_line"  # a short row is one bad line, skippable
            skips.handle(err)
    if not csv and int(count[0]) != lines:
        raise ConversionError(path, count_line, f"header says {count[0]} images, the file "
                              f"lists {lines}", kind="wrong_count")
    return names, labels


def read_partition(path: str, labels: Dict[str, List[int]], skips: common.Skips
                   ) -> Dict[str, Tuple[str, Tuple[str, int]]]:
    """Parses ``list_eval_partition.txt`` (or the Kaggle CSV ``image_id,partition``).

    Returns:
      image file name -> (split, (path, line)) for images that have attributes.
    """
    out = {}
    for number, fields in common.read_rows(path, sep="," if path.endswith(".csv") else None):
        if fields == ["image_id", "partition"]:
            continue  # Kaggle header
        try:
            if len(fields) != 2 or fields[1] not in PARTITIONS:
                raise ConversionError(path, number, f"expected '<image> 0|1|2', got "
                                      f"{' '.join(fields)!r}", kind="malformed_line")
            if fields[0] in out:
                raise ConversionError(path, number, f"{fields[0]} is listed twice",
                                      kind="malformed_line")
            if fields[0] not in labels:
                raise ConversionError(path, number, f"unknown image {fields[0]} (not in the "
                                      "attribute file)", kind="unknown_image")
            out[fields[0]] = (PARTITIONS[fields[1]], (path, number))
        except ConversionError as err:
            skips.handle(err)
    return out


def _first(rows: Iterator, path: str, what: str):
    try:
        return next(rows)
    except StopIteration:
        raise ConversionError(path, 1, f"file ends before {what}", kind="malformed_file"
                              ) from None


# ----------------------------------------------------------------------------- tfds source

def find_tfds_dir(source_dir: str) -> Optional[str]:
    """The prepared tfds ``celeb_a/<version>`` folder inside or at `source_dir`, or None.

    Looks at `source_dir` itself, then ``<version>/`` and ``celeb_a/<version>/`` below it; the
    highest version wins.
    """
    for base in (source_dir, os.path.join(source_dir, "celeb_a")):
        if os.path.isfile(os.path.join(base, "dataset_info.json")):
            return base
        if os.path.isdir(base):
            versions = sorted(
                (d for d in os.listdir(base)
                 if os.path.isfile(os.path.join(base, d, "dataset_info.json"))),
                key=lambda v: tuple(int(x) if x.isdigit() else -1 for x in v.split(".")))
            if versions:
                return os.path.join(base, versions[-1])
    return None


def _convert_tfds(tfds_dir: str, source_dir: str, output_dir: str, *, overwrite: bool,
                  skip_bad: bool, num_shards: int) -> records.Metadata:
    try:
        import tensorflow_datasets as tfds  # optional; only this source needs it
    except ImportError:
        raise ConversionError(tfds_dir, None, "is a tensorflow-datasets directory; install "
                              "tensorflow-datasets to read it", kind="missing_file") from None
    try:
        builder = tfds.builder_from_directory(tfds_dir)
    except Exception as err:
        raise ConversionError(os.path.join(tfds_dir, "dataset_info.json"), None,
                              f"not a readable tfds dataset ({err})",
                              kind="malformed_file") from None
    features = builder.info.features
    if "attributes" not in features or "image" not in features:
        raise ConversionError(os.path.join(tfds_dir, "features.json"), None,
                              "expected 'image' and 'attributes' features (a celeb_a dataset)",
                              kind="malformed_file")
    # features.json does not keep the order of list_attr_celeba.txt, which is alphabetical.
    names = sorted(features["attributes"].keys())
    common.check_count(os.path.join(tfds_dir, "features.json"), None, "attributes",
                       NUM_ATTRIBUTES, len(names))
    sizes = {s: builder.info.splits[s].num_examples for s in records.SPLITS
             if s in builder.info.splits}

    def items():
        for split in records.SPLITS:
            if split not in sizes:
                continue
            ds = builder.as_dataset(
                split=split, shuffle_files=False,
                decoders={"image": tfds.decode.SkipDecoding()},  # keep the JPEG bytes as is
                read_config=tfds.ReadConfig(add_tfds_id=True))
            for example in tfds.as_numpy(ds):
                key = example["tfds_id"].decode()
                yield common.Item(split, key, tuple(
                    records.YES if example["attributes"][n] else records.NO for n in names),
                    data=example["image"])

    return common.write_dataset(
        name=NAME, source_dir=source_dir, output_dir=output_dir, attribute_names=names,
        items=items(), sizes=sizes, skips=common.Skips(skip_bad), num_shards=num_shards,
        overwrite=overwrite, extra={"format": "tfds", "tfds_dir": os.path.abspath(tfds_dir),
                                    "tfds_version": str(builder.info.version)})
