"""SUN Attribute (Patterson & Hays 2012) -> TFRecords: 102 binary scene attributes.

Needs in `source_dir` (the two downloads extracted side by side)::

    SUNAttributeDB/images.mat                     images: 14340x1 cell of paths
                                                  ("a/abbey/sun_aaaaaa.jpg")
    SUNAttributeDB/attributes.mat                 attributes: 102x1 cell of names
    SUNAttributeDB/attributeLabels_continuous.mat labels_cv: 14340x102 vote fractions
                                                  (0, 1/3, 2/3, 1)
    images/a/abbey/sun_aaaaaa.jpg ...

Labels: an attribute is 1 when its vote fraction is >= `threshold` (default 0.5, i.e. at
least 2 of 3 workers), else 0. Fractions outside [0, 1] are a ``bad_label`` error.
Images are stored unchanged.

Split: there is no official one. Images are grouped by scene class = the path's folders
joined with ``_`` after dropping the one-letter index folder (``a/apartment_building/outdoor/
x.jpg`` -> ``apartment_building_outdoor``). The sorted classes are shuffled with `seed`;
``round(test_ratio * classes)`` classes go to test, ``round(val_ratio * classes)`` to
validation, the rest to train. Seed, ratios, threshold and the class lists are recorded in
``metadata.extra``.
"""

from __future__ import annotations

import os

import numpy as np

from gnas_keras_pipelines import convert_common as common
from gnas_keras_pipelines import matfile
from gnas_keras_pipelines import records
from gnas_keras_pipelines.convert_errors import ConversionError

NAME = "sun"
DEFAULT_THRESHOLD = 0.5
DEFAULT_VAL_RATIO = 0.1
DEFAULT_TEST_RATIO = 0.2
DB_DIRS = ["SUNAttributeDB", ""]


def convert(source_dir: str, output_dir: str, *, overwrite: bool = False,
            skip_bad: bool = False, num_shards: int = common.DEFAULT_NUM_SHARDS,
            threshold: float = DEFAULT_THRESHOLD, val_ratio: float = DEFAULT_VAL_RATIO,
            test_ratio: float = DEFAULT_TEST_RATIO, seed: int = 0) -> records.Metadata:
    """Converts SUN Attribute; see the module docstring for labels and split."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if val_ratio + test_ratio >= 1.0:
        raise ValueError(f"val_ratio + test_ratio must be < 1, got {val_ratio} + {test_ratio}")
    source_dir = common.require_dir(source_dir)
    skips = common.Skips(skip_bad)

    def load(file_name, variable):
        path = common.find_path(source_dir, [os.path.join(d, file_name) for d in DB_DIRS])
        return path, matfile.load_mat(path, required=(variable,))[variable]

    images_path, images = load("images.mat", "images")
    paths = [p.replace("\\", "/") for p in matfile.strings(images, images_path, "images")]
    names_path, names = load("attributes.mat", "attributes")
    attribute_names = matfile.strings(names, names_path, "attributes")
    labels_path, labels = load("attributeLabels_continuous.mat", "labels_cv")
    labels = matfile.matrix(labels, labels_path, "labels_cv")
    common.check_count(labels_path, "labels_cv", "rows x columns (images.mat x attributes.mat)",
                       (len(paths), len(attribute_names)), labels.shape)
    image_dir = common.find_path(source_dir, ["images", "SUNAttributeDB/images"], is_dir=True)

    classes = [scene_class(p) for p in paths]
    assignment = common.seeded_split(classes, {"test": test_ratio, "validation": val_ratio},
                                     seed)
    items = []
    for row, (path, cls) in enumerate(zip(paths, classes)):
        values = labels[row]
        bad = np.flatnonzero(~((values >= 0.0) & (values <= 1.0)))  # also catches NaN
        if bad.size:
            skips.handle(ConversionError(
                labels_path, f"labels_cv row {row + 1} ({path})", f"value {bad[0] + 1} is "
                f"{values[bad[0]]:g}, expected a vote fraction in [0, 1]", kind="bad_label"))
            continue
        binary = tuple(records.YES if v >= threshold else records.NO for v in values)
        items.append(common.Item(assignment[cls], f"images/{path}", binary,
                                 path=os.path.join(image_dir, path)))
    sizes = {s: sum(i.split == s for i in items) for s in records.SPLITS}
    return common.write_dataset(
        name=NAME, source_dir=source_dir, output_dir=output_dir,
        attribute_names=attribute_names, items=items, sizes=sizes, skips=skips,
        num_shards=num_shards, overwrite=overwrite,
        extra={"threshold": threshold, "threshold_rule": "vote fraction >= threshold",
               "split_seed": seed, "val_ratio": val_ratio, "test_ratio": test_ratio,
               "split_by": "scene class",
               "validation_classes": sorted(c for c, s in assignment.items()
                                            if s == "validation"),
               "test_classes": sorted(c for c, s in assignment.items() if s == "test")})


def scene_class(path: str) -> str:
    """``a/apartment_building/outdoor/sun_x.jpg`` -> ``apartment_building_outdoor``."""
    folders = path.split("/")[:-1]
    if len(folders) > 1 and len(folders[0]) == 1:
        folders = folders[1:]  # the alphabetical index folder carries no meaning
    return "_".join(folders)
