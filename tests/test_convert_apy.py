"""aPY converter: box crops, zero-area boxes, image-level validation split, bad input."""

import os

import numpy as np
import pytest

from gnas_keras_pipelines import apy, records
from tests import fixtures_datasets as fx


def _pixels(data: bytes) -> np.ndarray:
    """What training and serving decode (`records.decode_image`), as int."""
    return records.decode_image(data).numpy().astype(int)


def test_convert(tmp_path):
    fixture = fx.make_apy(str(tmp_path / "src"))
    meta = apy.convert(str(tmp_path / "src"), str(tmp_path / "out"), val_ratio=0.25, seed=0)
    assert meta.attribute_names == fx.APY_ATTRIBUTES  # names with spaces kept whole
    assert meta.skipped == {"zero_area_box": 1}
    assert meta.split_sizes == {"train": 4, "validation": 1, "test": 2}
    recs = fx.all_records(str(tmp_path / "out"))
    # Expected crops by key, from the fixture lines (VOC boxes: 1-based, inclusive).
    expected = {}
    for file_name, lines in fixture["lines"].items():
        for path, (x1, y1, x2, y2), labels in lines:
            if x2 <= x1 or y2 <= y1:
                continue
            rel = os.path.relpath(path, str(tmp_path / "src"))
            expected[f"{rel}:{x1 - 1},{y1 - 1},{x2},{y2}"] = (
                file_name, _pixels(open(path, "rb").read()), (x1, y1, x2, y2), labels)
    seen = set()
    for split, split_recs in recs.items():
        for data, attrs, key in split_recs:
            file_name, image, (x1, y1, x2, y2), labels = expected[key]
            assert (split == "test") == (file_name != "apascal_train.txt")
            assert attrs == labels
            crop = _pixels(data)
            assert crop.shape == (y2 - y1 + 1, x2 - x1 + 1, 3)

            def error(dx, dy):  # mean difference to the box shifted by (dx, dy), clipped
                window = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")[
                    y1 + dy:y2 + 1 + dy, x1 + dx:x2 + 1 + dx]
                return np.abs(crop - window).mean()

            # Crops of the pixels TensorFlow decodes, re-encoded at JPEG quality 95: close,
            # not identical; and the exact box matches better than any one-pixel shift of it.
            assert error(0, 0) < 2.5
            assert all(error(0, 0) < error(dx, dy) for dx, dy in
                       ((1, 0), (-1, 0), (0, 1), (0, -1)))
            seen.add(key)
    assert seen == set(expected)
    # Both boxes of 2008_000001.jpg land in the same split.
    splits = {s for s, rs in recs.items() for _, _, k in rs if "2008_000001" in k}
    assert len(splits) == 1


def test_without_ayahoo(tmp_path):
    fx.make_apy(str(tmp_path / "src"))
    meta = apy.convert(str(tmp_path / "src"), str(tmp_path / "out"), include_ayahoo=False)
    assert meta.split_sizes["test"] == 1


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    fx.make_apy(str(tmp_path / "src"))
    fx.check_interrupted_then_rerun(lambda out: apy.convert(str(tmp_path / "src"), out),
                                    str(tmp_path / "out"), monkeypatch)


@pytest.fixture
def src(tmp_path):
    fx.make_apy(str(tmp_path / "src"))
    return str(tmp_path / "src")


def _run(src, **kwargs):
    return lambda: apy.convert(src, os.path.join(os.path.dirname(src), "out"), **kwargs)


def test_malformed_lines(src):
    path = os.path.join(src, "attribute_data", "apascal_train.txt")
    with open(path) as f:
        lines = f.read().split("\n")
    fx.replace_line(path, 3, lines[2].rsplit(" ", 1)[0])
    fx.conversion_error(_run(src), "apascal_train.txt:3: expected 70 fields (image, class, "
                        "4 box coordinates, 64 attributes), got 69")
    fx.replace_line(path, 3, lines[2][:-1] + "7")
    fx.conversion_error(_run(src), "apascal_train.txt:3: value 64 is '7', expected one of 0, 1")
    fx.replace_line(path, 3, lines[2].replace("tvmonitor", "television"))
    fx.conversion_error(_run(src), "apascal_train.txt:3: unknown class 'television'")
    fx.replace_line(path, 3, lines[2].replace(" 5 5 35 25 ", " 5 five 35 25 "))
    fx.conversion_error(_run(src), "apascal_train.txt:3: box '5 five 35 25' is not four")
    meta = _run(src, skip_bad=True)()
    assert meta.skipped == {"malformed_line": 1, "zero_area_box": 1}


def test_missing_and_truncated_images(src):
    image = os.path.join(src, "ayahoo_test_images", "bag_227.jpg")
    fx.truncate(image)
    fx.conversion_error(_run(src), "bag_227.jpg: unreadable or truncated image",
                        "listed at", "ayahoo_test.txt:1")
    os.remove(image)
    fx.conversion_error(_run(src), "bag_227.jpg: missing image")
    assert _run(src, skip_bad=True)().skipped == {"missing_image": 1, "zero_area_box": 1}
    os.remove(os.path.join(src, "attribute_data", "class_names.txt"))
    fx.conversion_error(_run(src, overwrite=True), "class_names.txt: missing file")
