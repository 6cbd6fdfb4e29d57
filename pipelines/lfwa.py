"""LFWA (LFW with the 40 CelebA attributes of Liu et al. 2015) -> TFRecords.

Needs in `source_dir`::

    lfw_att_40.mat            name (cell of N image paths, `\\` separators), label (N x 40, 0/1),
                              AttrName (cell of 40 names)
    indices_train_test.mat    indices_img_train, indices_img_test (1-based rows of `name`)
    lfw/<Person>/<Person>_0001.jpg   (250x250 LFW images; or the person folders directly in
                              source_dir, or lfw-deepfunneled/)

Both MATLAB flavours are read (v7 with scipy, v7.3/HDF5 with h5py; see `pipelines.matfile`).

Split (GNAS paper): the first `num_train` (5,000) of ``indices_img_train`` in file order are
train, the rest validation; ``indices_img_test`` is test. Labels 0/1 are stored as is.
Images are stored unchanged.
"""

from __future__ import annotations

import os
from typing import List

from gnas_keras_pipelines import convert_common as common
from gnas_keras_pipelines import matfile
from gnas_keras_pipelines import records
from gnas_keras_pipelines.convert_errors import ConversionError

NAME = "lfwa"
DEFAULT_NUM_TRAIN = 5000
LABELS = {0: records.NO, 1: records.YES}
IMAGE_DIRS = ["lfw", "lfw-deepfunneled", "lfw_funneled", "."]


def convert(source_dir: str, output_dir: str, *, overwrite: bool = False,
            skip_bad: bool = False, num_shards: int = common.DEFAULT_NUM_SHARDS,
            num_train: int = DEFAULT_NUM_TRAIN) -> records.Metadata:
    """Converts LFWA; `num_train` training indices go to train, the others to validation."""
    if num_train < 0:
        raise ValueError(f"num_train must be >= 0, got {num_train}")
    source_dir = common.require_dir(source_dir)
    skips = common.Skips(skip_bad)
    att_path = common.find_path(source_dir, ["lfw_att_40.mat"])
    att = matfile.load_mat(att_path, required=("name", "label", "AttrName"))
    names = [n.replace("\\", "/") for n in matfile.strings(att["name"], att_path, "name")]
    attr_names = matfile.strings(att["AttrName"], att_path, "AttrName")
    label = matfile.matrix(att["label"], att_path, "label")
    if label.shape == (len(attr_names), len(names)) and label.shape[0] != label.shape[1]:
        label = label.T  # saved as attributes x images
    common.check_count(att_path, "label", "rows x columns (images x attributes)",
                       (len(names), len(attr_names)), label.shape)

    idx_path = common.find_path(source_dir, ["indices_train_test.mat"])
    idx = matfile.load_mat(idx_path, required=("indices_img_train", "indices_img_test"))
    train_rows = _indices(idx["indices_img_train"], idx_path, "indices_img_train", len(names))
    test_rows = _indices(idx["indices_img_test"], idx_path, "indices_img_test", len(names))
    image_dir = _image_dir(source_dir, names)

    items = []
    for split, rows in (("train", train_rows[:num_train]),
                        ("validation", train_rows[num_train:]), ("test", test_rows)):
        for row in rows:
            try:
                values = common.parse_labels(label[row], att_path, f"label row {row + 1} "
                                             f"({names[row]})", LABELS)
            except ConversionError as err:
                skips.handle(err)
                continue
            items.append(common.Item(split, names[row], tuple(values),
                                     path=os.path.join(image_dir, names[row])))
    sizes = {s: sum(i.split == s for i in items) for s in records.SPLITS}
    return common.write_dataset(
        name=NAME, source_dir=source_dir, output_dir=output_dir, attribute_names=attr_names,
        items=items, sizes=sizes, skips=skips, num_shards=num_shards, overwrite=overwrite,
        extra={"num_train": num_train, "train_indices": len(train_rows),
               "test_indices": len(test_rows)})


def _indices(value, path: str, name: str, n: int) -> List[int]:
    """1-based MATLAB indices (stored as doubles) -> 0-based ints, checked to be in 1..n."""
    raw = matfile.vector(value, path, name)
    rows = []
    for i, x in enumerate(raw):
        if not (float(x).is_integer() and 1 <= x <= n):
            raise ConversionError(path, f"{name}[{i + 1}]", f"{x:g} is not an image index "
                                  f"in 1..{n}", kind="bad_index")
        rows.append(int(x) - 1)
    return rows


def _image_dir(source_dir: str, names: List[str]) -> str:
    """The folder the ``name`` paths are relative to: the first candidate holding the first
    image's person folder."""
    person = names[0].split("/")[0] if names else ""
    for rel in IMAGE_DIRS:
        if os.path.isdir(os.path.join(source_dir, rel, person)):
            return os.path.normpath(os.path.join(source_dir, rel))
    raise ConversionError(os.path.join(source_dir, "lfw", person), None,
                          f"missing folder for {names[0] if names else 'the images'} (looked "
                          f"in {', '.join(IMAGE_DIRS)})", kind="missing_file")
