"""Market-1501 Attribute (Lin et al.) -> TFRecords: 30 binary pedestrian attributes.

Needs, anywhere up to one folder deep in `source_dir` (the two downloads side by side)::

    market_attribute.mat            (or Market-1501_Attribute/market_attribute.mat)
    bounding_box_train/*.jpg        (or Market-1501-v15.09.15/bounding_box_train/)
    bounding_box_test/*.jpg

``market_attribute.mat`` holds struct ``market_attribute`` with ``train`` (751 identities) and
``test`` (750). Each of its 28 fields is a 1 x n vector over identities; ``image_index`` holds
the 4-digit identity strings. The field order differs between train and test, so fields are
read by name. Labels are per identity and join to images by the first 4 characters of the
image file name (``0002_c1s1_000451_03.jpg`` -> ``0002``). Identities ``0000`` (junk) and
``-1`` (distractors) have no attributes: skipped, counted as ``skipped["no_attributes"]``.

Encoding (source 1 = no, 2 = yes -> stored 0 / 1), attribute order = `ATTRIBUTES`:
``gender`` 1 = female, ``hair`` 1 = long hair, ``up`` 1 = short sleeves, ``down`` 1 = short
lower-body clothing, ``clothes`` 1 = pants (source: male/female, short/long, long/short,
long/short, dress/pants as 1/2). ``age`` (1 young, 2 teenager, 3 adult, 4 old) becomes four
one-hot attributes ``age_young``, ``age_teenager``, ``age_adult``, ``age_old``.

Split: test = ``bounding_box_test`` images of the 750 test identities; validation =
`val_identities` training identities chosen with `seed` (all their images); train = the other
training identities' images. Real Market-1501 has 12,936 training images of 751 identities
and 19,732 test images (of which the 750 labelled identities own 13,115 after removing 0000
and -1). The GNAS paper reports 16,522 / 17,661 images, which does not match these files; we
follow the files.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from gnas_keras_pipelines import convert_common as common
from gnas_keras_pipelines import matfile
from gnas_keras_pipelines import records
from gnas_keras_pipelines.convert_errors import ConversionError

NAME = "market1501"
DEFAULT_VAL_IDENTITIES = 75
AGE_CLASSES = ("young", "teenager", "adult", "old")
BINARY_FIELDS = (
    "backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat", "gender",
    "upblack", "upwhite", "upred", "uppurple", "upyellow", "upgray", "upblue", "upgreen",
    "downblack", "downwhite", "downpink", "downpurple", "downyellow", "downgray", "downblue",
    "downgreen", "downbrown")
ATTRIBUTES = tuple(f"age_{a}" for a in AGE_CLASSES) + BINARY_FIELDS
NO_ATTRIBUTES = ("0000", "-1")  # junk and distractor identity prefixes
MAT_FILES = ["market_attribute.mat", "Market-1501_Attribute/market_attribute.mat"]
IMAGE_DIRS = {"train": ["bounding_box_train", "Market-1501-v15.09.15/bounding_box_train"],
              "test": ["bounding_box_test", "Market-1501-v15.09.15/bounding_box_test"]}


def convert(source_dir: str, output_dir: str, *, overwrite: bool = False,
            skip_bad: bool = False, num_shards: int = common.DEFAULT_NUM_SHARDS,
            val_identities: int = DEFAULT_VAL_IDENTITIES, seed: int = 0) -> records.Metadata:
    """Converts Market-1501 Attribute; see the module docstring for encodings and split."""
    if val_identities < 0:
        raise ValueError(f"val_identities must be >= 0, got {val_identities}")
    source_dir = common.require_dir(source_dir)
    skips = common.Skips(skip_bad)
    mat_path = common.find_path(source_dir, MAT_FILES)
    root = matfile.load_mat(mat_path, required=("market_attribute",))["market_attribute"]
    if not isinstance(root, dict) or not {"train", "test"} <= set(root):
        raise ConversionError(mat_path, "market_attribute", "expected a struct with fields "
                              "'train' and 'test'", kind="malformed_file")
    labels = {part: read_identities(root[part], mat_path, part, skips)
              for part in ("train", "test")}

    train_ids = sorted(labels["train"])
    if val_identities >= len(train_ids) > 0:
        raise ValueError(f"val_identities={val_identities} leaves no training identity "
                         f"(there are {len(train_ids)})")
    fraction = val_identities / max(len(train_ids), 1)
    # seeded_split rounds fraction * n: exactly val_identities of them.
    assignment = common.seeded_split(train_ids, {"validation": fraction}, seed)
    assignment.update({identity: "test" for identity in labels["test"]})

    items = []
    for part in ("train", "test"):
        image_dir = common.find_path(source_dir, IMAGE_DIRS[part], is_dir=True)
        rel_dir = os.path.basename(image_dir)
        for file_name in sorted(os.listdir(image_dir)):
            if not file_name.lower().endswith(".jpg"):
                continue  # the download also has Thumbs.db
            identity = file_name[:4] if not file_name.startswith("-1") else "-1"
            if identity in NO_ATTRIBUTES:
                skips.count("no_attributes")
                continue
            if identity not in labels[part]:
                skips.handle(ConversionError(
                    os.path.join(image_dir, file_name), None, f"identity {identity} is not in "
                    f"market_attribute.{part}.image_index", kind="unknown_identity"))
                continue
            if labels[part][identity] is None:
                continue
            items.append(common.Item(assignment[identity], f"{rel_dir}/{file_name}",
                                     labels[part][identity],
                                     path=os.path.join(image_dir, file_name)))
    sizes = {s: sum(i.split == s for i in items) for s in records.SPLITS}
    return common.write_dataset(
        name=NAME, source_dir=source_dir, output_dir=output_dir, attribute_names=ATTRIBUTES,
        items=items, sizes=sizes, skips=skips, num_shards=num_shards, overwrite=overwrite,
        extra={"split_seed": seed, "val_identities": val_identities,
               "validation_identity_list": sorted(
                   i for i, s in assignment.items() if s == "validation"),
               "identities": {p: len(labels[p]) for p in labels}})


def read_identities(struct, path: str, part: str, skips: common.Skips
                    ) -> Dict[str, Optional[Tuple[int, ...]]]:
    """One of ``market_attribute.train`` / ``.test`` -> identity -> attribute values (None
    for an identity skipped with ``--skip_bad``).

    Fields are looked up by name. A value outside its encoding is a ``bad_label`` error naming
    the field and identity (``market_attribute.mat:train.age[3] (identity 0007): ...``).
    """
    if not isinstance(struct, dict):
        raise ConversionError(path, part, "expected a struct", kind="malformed_file")
    missing = [f for f in ("image_index", "age") + BINARY_FIELDS if f not in struct]
    if missing:
        raise ConversionError(path, part, f"field {missing[0]!r} missing",
                              kind="malformed_file")
    identities = [i.strip() for i in matfile.strings(struct["image_index"], path,
                                                     f"{part}.image_index")]
    columns: Dict[str, np.ndarray] = {}
    for field in ("age",) + BINARY_FIELDS:
        columns[field] = matfile.vector(struct[field], path, f"{part}.{field}")
        common.check_count(path, f"{part}.{field}", "values (one per identity in image_index)",
                           len(identities), len(columns[field]))
    one_hot = {float(k): k for k in range(1, len(AGE_CLASSES) + 1)}
    binary = {1.0: records.NO, 2.0: records.YES}
    out = {}
    for i, identity in enumerate(identities):
        try:
            age = common.parse_labels([columns["age"][i]], path,
                                      f"{part}.age[{i + 1}] (identity {identity})", one_hot)[0]
            values: List[int] = [int(age == k) for k in range(1, len(AGE_CLASSES) + 1)]
            for field in BINARY_FIELDS:
                values += common.parse_labels(
                    [columns[field][i]], path, f"{part}.{field}[{i + 1}] (identity {identity})",
                    binary)
        except ConversionError as err:
            skips.handle(err)
            out[identity] = None  # known identity, its images are dropped without a 2nd count
            continue
        out[identity] = tuple(values)
    return out
