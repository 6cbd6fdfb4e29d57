"""Animals with Attributes 2 (AwA2, Xian et al.) and AwA1 (Lampert et al.) -> TFRecords.

Both use the same files, in `source_dir` or in ``Animals_with_Attributes2/`` (AwA1:
``Animals_with_Attributes/``) below it::

    classes.txt                   50 lines "     1\\tantelope" (index, tab, name with '+')
    predicates.txt                85 lines "     1\\tblack"
    predicate-matrix-binary.txt   50 rows x 85 values 0/1 (row i = class i of classes.txt)
    trainclasses.txt              40 class names, one per line
    testclasses.txt               10 class names
    JPEGImages/<class>/<class>_10001.jpg ...

Labels are class-level: every image gets its class's row of the binary predicate matrix
(0/1 stored as is). Images are stored unchanged.

Split: test = all images of the 10 ``testclasses.txt`` classes (the zero-shot protocol: test
animals are never seen in training). Our choice for validation: a `val_ratio` fraction of the
*images* of the 40 training classes, drawn with `seed` over all their image paths; the rest is
train. So validation shares the training classes (it measures fitting, not generalisation to
new classes); holding out whole classes would leave too few classes to train on. Classes in
neither list are left out and counted in ``extra["unlisted_classes"]``.

``--skip_bad`` skips unreadable images; errors in the class files always stop the conversion
(a bad matrix row would mislabel a whole class).
"""

from __future__ import annotations

import os
from typing import Dict, List

from gnas_keras_pipelines import convert_common as common
from gnas_keras_pipelines import records
from gnas_keras_pipelines.convert_errors import ConversionError

DEFAULT_VAL_RATIO = 0.1
ROOTS = {"awa2": ["", "Animals_with_Attributes2"], "awa1": ["", "Animals_with_Attributes"]}
LABELS = {0: records.NO, 1: records.YES}


def convert(source_dir: str, output_dir: str, *, name: str = "awa2", overwrite: bool = False,
            skip_bad: bool = False, num_shards: int = common.DEFAULT_NUM_SHARDS,
            val_ratio: float = DEFAULT_VAL_RATIO, seed: int = 0) -> records.Metadata:
    """Converts AwA2 (``name="awa2"``) or AwA1 (``name="awa1"``)."""
    if name not in ROOTS:
        raise ValueError(f"name must be one of {sorted(ROOTS)}, got {name!r}")
    source_dir = common.require_dir(source_dir)
    root = os.path.dirname(common.find_path(
        source_dir, [os.path.join(r, "classes.txt") for r in ROOTS[name]]))
    classes = read_indexed_names(os.path.join(root, "classes.txt"))
    predicates = read_indexed_names(os.path.join(root, "predicates.txt"))
    matrix = read_matrix(os.path.join(root, "predicate-matrix-binary.txt"), len(classes),
                         len(predicates))
    class_rows = {c: i for i, c in enumerate(classes)}
    train_classes = read_class_list(os.path.join(root, "trainclasses.txt"), class_rows)
    test_classes = read_class_list(os.path.join(root, "testclasses.txt"), class_rows)
    both = sorted(set(train_classes) & set(test_classes))
    if both:
        raise ConversionError(os.path.join(root, "testclasses.txt"), None,
                              f"{both[0]} is also in trainclasses.txt", kind="malformed_file")

    image_root = common.find_path(root, ["JPEGImages"], is_dir=True)
    images: Dict[str, List[str]] = {}  # class -> sorted relative paths
    for cls in sorted(train_classes + test_classes):
        class_dir = common.find_path(image_root, [cls], is_dir=True)
        images[cls] = [f"JPEGImages/{cls}/{f}" for f in sorted(os.listdir(class_dir))
                       if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    train_images = [p for c in train_classes for p in images[c]]
    assignment = common.seeded_split(train_images, {"validation": val_ratio}, seed)
    assignment.update({p: "test" for c in test_classes for p in images[c]})

    items = [common.Item(assignment[rel], rel, tuple(matrix[class_rows[cls]]),
                         path=os.path.join(root, rel))
             for cls in sorted(images) for rel in images[cls]]
    sizes = {s: sum(i.split == s for i in items) for s in records.SPLITS}
    return common.write_dataset(
        name=name, source_dir=source_dir, output_dir=output_dir, attribute_names=predicates,
        items=items, sizes=sizes, skips=common.Skips(skip_bad), num_shards=num_shards,
        overwrite=overwrite,
        extra={"split_seed": seed, "val_ratio": val_ratio, "train_classes": train_classes,
               "test_classes": test_classes, "label_level": "class",
               "unlisted_classes": len(classes) - len(train_classes) - len(test_classes)})


def read_indexed_names(path: str) -> List[str]:
    """``classes.txt`` / ``predicates.txt``: line k is "k<tab>name"; returns the names."""
    names = []
    for number, fields in common.read_rows(path):
        if len(fields) != 2 or fields[0] != str(len(names) + 1):
            raise ConversionError(path, number, f"expected '{len(names) + 1}<tab><name>', got "
                                  f"{' '.join(fields)!r}", kind="malformed_line")
        names.append(fields[1])
    return names


def read_matrix(path: str, rows: int, columns: int) -> List[List[int]]:
    """``predicate-matrix-binary.txt``: `rows` lines of `columns` values 0/1."""
    out = []
    for number, fields in common.read_rows(path):
        common.check_count(path, number, "values", columns, len(fields))
        out.append(common.parse_labels(fields, path, number, LABELS))
    common.check_count(path, None, "rows (one per class in classes.txt)", rows, len(out))
    return out


def read_class_list(path: str, known: Dict[str, int]) -> List[str]:
    """``trainclasses.txt`` / ``testclasses.txt``: class names that must be in classes.txt."""
    out = []
    for number, name in common.read_names(path):
        if name not in known:
            raise ConversionError(path, number, f"unknown class {name!r} (not in "
                                  "classes.txt)", kind="unknown_class")
        out.append(name)
    return out
