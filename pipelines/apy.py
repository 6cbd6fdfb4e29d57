"""aPascal / aYahoo (aPY, Farhadi et al. 2009) -> TFRecords: 64 binary object attributes.

Needs in `source_dir`::

    attribute_data/apascal_train.txt   one object per line:
    attribute_data/apascal_test.txt      "2008_000002.jpg tvmonitor 34 12 447 292 1 0 0 ..."
    attribute_data/ayahoo_test.txt       = image, class, x1 y1 x2 y2, 64 values 0/1
    attribute_data/attribute_names.txt 64 lines (names may contain spaces: "2D Boxy")
    attribute_data/class_names.txt     the 32 class names (20 VOC + 12 Yahoo)
    VOCdevkit/VOC2008/JPEGImages/      aPascal images
    ayahoo_test_images/                aYahoo images

Each record is one object: the image cropped to its box, re-encoded as JPEG (quality 95).
Boxes are VOC pixel coordinates, 1-based and inclusive, so the crop is columns x1-1 .. x2-1
and rows y1-1 .. y2-1, clipped to the image. Boxes with zero area (x2 <= x1 or y2 <= y1) are
skipped and counted as ``skipped["zero_area_box"]``. Labels 0/1 are stored as is.

Split: train and validation from ``apascal_train.txt``, with a `val_ratio` fraction of its
*images* (all boxes of an image stay together) drawn with `seed`; test = ``apascal_test.txt``
plus, with `include_ayahoo` (default), ``ayahoo_test.txt``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Tuple

from gnas_keras_pipelines import convert_common as common
from gnas_keras_pipelines import records
from gnas_keras_pipelines.convert_errors import ConversionError

NAME = "apy"
DEFAULT_VAL_RATIO = 0.1
LABELS = {0: records.NO, 1: records.YES}
VOC_DIRS = ["VOCdevkit/VOC2008/JPEGImages", "VOC2008/JPEGImages", "JPEGImages"]
YAHOO_DIRS = ["ayahoo_test_images"]


@dataclasses.dataclass(frozen=True)
class Box:
    """One annotation line: image file, 0-based half-open crop box, labels, and its line."""

    image: str
    box: Tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)
    labels: Tuple[int, ...]
    where: Tuple[str, int]


def convert(source_dir: str, output_dir: str, *, overwrite: bool = False,
            skip_bad: bool = False, num_shards: int = common.DEFAULT_NUM_SHARDS,
            val_ratio: float = DEFAULT_VAL_RATIO, seed: int = 0,
            include_ayahoo: bool = True) -> records.Metadata:
    """Converts aPY; see the module docstring for crops and split."""
    source_dir = common.require_dir(source_dir)
    skips = common.Skips(skip_bad)
    data_dir = os.path.dirname(common.find_path(
        source_dir, ["attribute_data/apascal_train.txt", "apascal_train.txt"]))
    attribute_names = [name for _, name in common.read_names(
        common.find_path(data_dir, ["attribute_names.txt"]))]
    class_names = {name for _, name in common.read_names(
        common.find_path(data_dir, ["class_names.txt"]))}

    parts = [("apascal_train.txt", VOC_DIRS), ("apascal_test.txt", VOC_DIRS)]
    if include_ayahoo:
        parts.append(("ayahoo_test.txt", YAHOO_DIRS))
    boxes: Dict[str, List[Box]] = {}
    image_dirs: Dict[str, str] = {}
    for file_name, dirs in parts:
        path = common.find_path(data_dir, [file_name])
        boxes[file_name] = read_boxes(path, attribute_names, class_names, skips)
        image_dirs[file_name] = common.find_path(source_dir, dirs, is_dir=True)

    train_images = {b.image for b in boxes["apascal_train.txt"]}
    assignment = common.seeded_split(train_images, {"validation": val_ratio}, seed)
    items = []
    for file_name, _ in parts:
        image_dir = image_dirs[file_name]
        rel_dir = os.path.relpath(image_dir, source_dir)
        for b in boxes[file_name]:
            split = assignment[b.image] if file_name == "apascal_train.txt" else "test"
            items.append(common.Item(
                split, f"{rel_dir}/{b.image}:{','.join(map(str, b.box))}", b.labels,
                path=os.path.join(image_dir, b.image), box=b.box, where=b.where))
    sizes = {s: sum(i.split == s for i in items) for s in records.SPLITS}
    return common.write_dataset(
        name=NAME, source_dir=source_dir, output_dir=output_dir,
        attribute_names=attribute_names, items=items, sizes=sizes, skips=skips,
        num_shards=num_shards, overwrite=overwrite,
        extra={"split_seed": seed, "val_ratio": val_ratio, "include_ayahoo": include_ayahoo,
               "crop": "VOC 1-based inclusive boxes, JPEG quality 95"})


def read_boxes(path: str, attribute_names: List[str], class_names, skips: common.Skips
               ) -> List[Box]:
    """Parses one aPY annotation file; zero-area boxes are counted and left out."""
    n = len(attribute_names)
    out = []
    for number, fields in common.read_rows(path):
        try:
            if len(fields) != 6 + n:
                raise ConversionError(path, number, f"expected {6 + n} fields (image, class, "
                                      f"4 box coordinates, {n} attributes), got {len(fields)}",
                                      kind="malformed_line")
            image, cls = fields[0], fields[1]
            if cls not in class_names:
                raise ConversionError(path, number, f"unknown class {cls!r} (not in "
                                      "class_names.txt)", kind="unknown_class")
            try:
                x1, y1, x2, y2 = (int(float(v)) for v in fields[2:6])
            except ValueError:
                raise ConversionError(path, number, f"box {' '.join(fields[2:6])!r} is not "
                                      "four numbers", kind="malformed_line") from None
            labels = tuple(common.parse_labels(fields[6:], path, number, LABELS))
        except ConversionError as err:
            skips.handle(err)
            continue
        if x2 <= x1 or y2 <= y1:
            skips.count("zero_area_box")
            continue
        out.append(Box(image, (x1 - 1, y1 - 1, x2, y2), labels, (path, number)))
    return out
