"""A user's own attribute data -> TFRecords: a folder of images and a CSV table of labels.

The table (``labels.csv`` by default; any UTF-8 CSV, with or without a byte-order mark and
CRLF line ends, as Excel writes it)::

    image,Smiling,Eyeglasses,Hat,split
    faces/0001.jpg,1,0,,train
    faces/0002.jpg,-1,1,0,test

- The first column is the image path relative to the images folder (``--source_dir``); its
  header is free (``image`` by convention). Each image is listed once. A path that is
  absolute or climbs out of the folder (``../../e/alpha.png``) is refused, naming the line,
  unless `allow_outside_source` (``--allow_outside_source``) says the table may point
  anywhere. The check is on the path as written: links inside the folder are followed.
- A column headed ``split`` (any position after the first, any letter case) assigns the row
  to ``train``, ``validation`` or ``test``. Without it the images are split at random with
  `seed`: ``round(test_ratio * n)`` to test, ``round(val_ratio * n)`` to validation, the rest
  to train (`convert_common.seeded_split` over the sorted image paths); seed and ratios are
  recorded in ``metadata.extra``.
- Every other column is an attribute; its header is the attribute's name.
- Values: ``1`` = yes; blank = unknown; and, by `label_values`:
  ``1/0/-1``: 0 = no, -1 = unknown (the project's own encoding);
  ``1/-1``: -1 = no, 0 is an error (CelebA's encoding);
  ``auto`` (default): ``1/-1`` when no cell of the table holds a 0, else ``1/0/-1``. The choice
  is printed and recorded as ``metadata.extra["label_values"]``.

Images are checked and stored like every converter's (`convert_common.write_dataset`); a bad
row names the table's file and line, and ``--skip_bad`` skips and counts it.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from typing import Dict, List, Optional, Tuple

from gnas_keras_pipelines import convert_common as common
from gnas_keras_pipelines import records
from gnas_keras_pipelines import text
from gnas_keras_pipelines.convert_errors import ConversionError

LABELS_FILE = "labels.csv"
LABEL_VALUES = ("auto", "1/0/-1", "1/-1")
ENCODINGS = {
    "1/0/-1": {1.0: records.YES, 0.0: records.NO, -1.0: records.UNKNOWN},
    "1/-1": {1.0: records.YES, -1.0: records.NO},
}
DEFAULT_VAL_RATIO = 0.1
DEFAULT_TEST_RATIO = 0.1
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# Built-in sets keep their own converters and preprocessing table rows.
RESERVED_NAMES = ("synthetic", "celeba", "lfwa", "market1501", "awa2", "awa1", "apy", "sun")


def check_name(name: Optional[str]) -> str:
    """A dataset name: letters, digits, ``_ . -``, not a built-in set's name."""
    if not name or not NAME_PATTERN.match(name):
        raise ValueError(f"--name={name or ''}: a dataset name is letters, digits, '_', '.' "
                         "and '-', starting with a letter or digit")
    if name in RESERVED_NAMES:
        raise ValueError(f"--name={name}: is a built-in dataset's name; choose another")
    return name


def convert(source_dir: str, output_dir: str, *, name: str, labels: Optional[str] = None,
            label_values: str = "auto", overwrite: bool = False, skip_bad: bool = False,
            num_shards: int = common.DEFAULT_NUM_SHARDS,
            val_ratio: float = DEFAULT_VAL_RATIO, test_ratio: float = DEFAULT_TEST_RATIO,
            seed: int = 0, allow_outside_source: bool = False) -> records.Metadata:
    """Converts the images of `source_dir` labelled by the CSV `labels` (default
    ``<source_dir>/labels.csv``); see the module docstring for the table."""
    name = check_name(name)
    if label_values not in LABEL_VALUES:
        raise ValueError(f"label_values must be one of {', '.join(LABEL_VALUES)}, got "
                         f"{label_values!r}")
    if not (0 <= val_ratio < 1 and 0 <= test_ratio < 1 and val_ratio + test_ratio < 1):
        raise ValueError(f"val_ratio + test_ratio must be in [0, 1), got {val_ratio} + "
                         f"{test_ratio}")
    source_dir = common.require_dir(source_dir)
    labels_path = os.path.abspath(labels) if labels else os.path.join(source_dir, LABELS_FILE)
    skips = common.Skips(skip_bad)
    table = read_table(labels_path, skips)
    encoding = label_values
    if encoding == "auto":
        encoding = "1/0/-1" if table.has_zero else "1/-1"
        print(f"[{name}] {os.path.basename(labels_path)}: values read as {encoding} "
              f"({'a 0 occurs' if table.has_zero else 'no 0 occurs'}; blank = unknown)",
              file=sys.stderr)
    rows, paths = [], {}
    for row in table.rows:
        try:
            paths[row.image] = image_path(source_dir, row.image, allow_outside_source,
                                          (labels_path, row.line))
            rows.append((row, _encode(row, table, encoding, labels_path)))
        except ConversionError as err:
            skips.handle(err)
    if table.split_column is None:
        assignment = common.seeded_split([r.image for r, _ in rows],
                                         {"test": test_ratio, "validation": val_ratio}, seed)
        split_info = {"split": "seeded", "split_seed": seed, "val_ratio": val_ratio,
                      "test_ratio": test_ratio}
    else:
        assignment = {r.image: r.split for r, _ in rows}
        split_info = {"split": "column"}
    items = [common.Item(assignment[row.image], row.image, values, path=paths[row.image],
                         where=(labels_path, row.line))
             for row, values in rows]
    sizes = {s: sum(i.split == s for i in items) for s in records.SPLITS}
    return common.write_dataset(
        name=name, source_dir=source_dir, output_dir=output_dir,
        attribute_names=table.attribute_names, items=items, sizes=sizes, skips=skips,
        num_shards=num_shards, overwrite=overwrite,
        protected=[os.path.dirname(labels_path)],
        extra={"format": "folder", "labels_file": labels_path, "label_values": encoding,
               **split_info, **({"allow_outside_source": True} if allow_outside_source
                                else {})})


def image_path(source_dir: str, image: str, allow_outside: bool, where: Tuple[str, int]
               ) -> str:
    """The file a table's image path names: `image` joined to the absolute `source_dir` and
    normalised. Outside `source_dir` (absolute, or climbing out with ``..``) is a
    `ConversionError` at `where` (the table's file and line) unless `allow_outside`."""
    path = os.path.normpath(os.path.join(source_dir, image))
    if allow_outside or path.startswith(os.path.join(source_dir, "")):
        return path
    how = "is absolute" if os.path.isabs(image) else "climbs out of it"
    raise ConversionError(where[0], where[1], f"image path {image!r} {how}: image paths are "
                          f"relative to --source_dir {source_dir}; pass "
                          "--allow_outside_source to read images outside it",
                          kind="outside_source")


class Row:
    """One table row: its line, image path, split (or None) and raw values (None = blank)."""

    __slots__ = ("line", "image", "split", "values")

    def __init__(self, line: int, image: str, split: Optional[str],
                 values: List[Optional[float]]):
        self.line, self.image, self.split, self.values = line, image, split, values


class Table:
    def __init__(self, attribute_names: List[str], split_column: Optional[int]):
        self.attribute_names = attribute_names
        self.split_column = split_column
        self.rows: List[Row] = []
        self.has_zero = False


def _fields(line: str) -> List[str]:
    return [text.clean(f) for f in next(csv.reader([line]))]


def read_table(path: str, skips: common.Skips) -> Table:
    """Parses the labels CSV: header checks always stop; a bad row is skippable."""
    lines = ((n, line) for n, line in text.read_lines(path) if line.strip())
    try:
        header_line, header = next(lines)
    except StopIteration:
        raise ConversionError(path, 1, "empty file; expected the header "
                              "'image,<attribute names...>'", kind="malformed_file") from None
    try:
        header = _fields(header)
    except csv.Error as err:
        raise ConversionError(path, header_line, f"not a CSV line ({err})",
                              kind="malformed_file") from None
    columns = header[1:]
    split_columns = [i for i, c in enumerate(columns) if c.lower() == "split"]
    if len(split_columns) > 1:
        raise ConversionError(path, header_line, "more than one 'split' column",
                              kind="malformed_file")
    split_column = split_columns[0] if split_columns else None
    names = [c for i, c in enumerate(columns) if i != split_column]
    if not names:
        raise ConversionError(path, header_line, "expected the header 'image,<attribute "
                              "names...>', found no attribute column", kind="malformed_file")
    for i, n in enumerate(names):
        if not n:
            raise ConversionError(path, header_line, f"attribute column {i + 1} has no name",
                                  kind="malformed_file")
        if n in names[:i]:
            raise ConversionError(path, header_line, f"attribute {n!r} appears twice",
                                  kind="malformed_file")
    table = Table(names, split_column)
    seen: Dict[str, int] = {}
    for number, line in lines:
        try:
            table.rows.append(_row(path, number, line, len(header), split_column, seen, table))
        except ConversionError as err:
            skips.handle(err)
    if not table.rows:
        raise ConversionError(path, None, "lists no images", kind="empty")
    return table


def _row(path: str, number: int, line: str, width: int, split_column: Optional[int],
         seen: Dict[str, int], table: Table) -> Row:
    try:
        fields = _fields(line)
    except csv.Error as err:
        raise ConversionError(path, number, f"not a CSV line ({err})",
                              kind="malformed_line") from None
    if len(fields) != width:
        raise ConversionError(path, number, f"expected {width} fields (as in the header), got "
                              f"{len(fields)}", kind="malformed_line")
    image, cells = fields[0], fields[1:]
    if not image:
        raise ConversionError(path, number, "no image path in the first column",
                              kind="malformed_line")
    if image in seen:
        raise ConversionError(path, number, f"{image} is listed twice (first at line "
                              f"{seen[image]})", kind="malformed_line")
    split = None
    if split_column is not None:
        split = cells.pop(split_column).lower()
        if split not in records.SPLITS:
            raise ConversionError(path, number, f"split is {split!r}, expected train, "
                                  "validation or test", kind="malformed_line")
    values: List[Optional[float]] = []
    for name, cell in zip(table.attribute_names, cells):
        if not cell:
            values.append(None)
            continue
        try:
            value = float(cell)
        except ValueError:
            raise ConversionError(path, number, f"column {name!r} is {cell!r}, expected 1, 0, "
                                  "-1 or blank", kind="bad_label") from None
        if value not in (1.0, 0.0, -1.0):  # NaN is not
            raise ConversionError(path, number, f"column {name!r} is {cell!r}, expected 1, 0, "
                                  "-1 or blank", kind="bad_label")
        values.append(value)
    seen[image] = number
    table.has_zero |= 0.0 in values
    return Row(number, image, split, values)


def _encode(row: Row, table: Table, encoding: str, path: str) -> Tuple[int, ...]:
    mapping = ENCODINGS[encoding]
    out = []
    for name, value in zip(table.attribute_names, row.values):
        if value is None:
            out.append(records.UNKNOWN)
        elif value in mapping:
            out.append(mapping[value])
        else:
            raise ConversionError(path, row.line, f"column {name!r} is {value:g}, which the "
                                  f"{encoding} encoding does not have (1 = yes, -1 = no, "
                                  "blank = unknown)", kind="bad_label")
    return tuple(out)
