"""AwA2 / AwA1 converter: class-level labels, 40/10-style class split, held-out validation
images, bad input."""

import os

import pytest

from gnas_keras_pipelines import awa
from tests import fixtures_datasets as fx


@pytest.mark.parametrize("name,folder", [("awa2", "Animals_with_Attributes2"),
                                         ("awa1", "Animals_with_Attributes")])
def test_convert(tmp_path, name, folder):
    fixture = fx.make_awa(str(tmp_path / "src"), folder)
    meta = awa.convert(str(tmp_path / "src"), str(tmp_path / "out"), name=name,
                       val_ratio=0.25, seed=1)
    assert meta.name == name
    assert meta.attribute_names == fx.AWA_PREDICATES
    assert meta.split_sizes == {"train": 9, "validation": 3, "test": 8}
    assert meta.extra["test_classes"] == fx.AWA_TEST
    assert (meta.extra["val_ratio"], meta.extra["split_seed"]) == (0.25, 1)
    assert (meta.image_height, meta.image_width) == (14, 20)
    recs = fx.all_records(str(tmp_path / "out"))
    for split, recs_ in recs.items():
        for data, attrs, key in recs_:
            cls = key.split("/")[1]
            assert (cls in fx.AWA_TEST) == (split == "test")
            assert attrs == fixture["matrix"][fx.AWA_CLASSES.index(cls)]  # the class's row
            assert data == fixture["images"][key]


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    fx.make_awa(str(tmp_path / "src"))
    fx.check_interrupted_then_rerun(
        lambda out: awa.convert(str(tmp_path / "src"), out), str(tmp_path / "out"),
        monkeypatch)


@pytest.fixture
def base(tmp_path):
    return fx.make_awa(str(tmp_path / "src"))["base"]


def _run(base, **kwargs):
    return lambda: awa.convert(os.path.dirname(base), os.path.join(os.path.dirname(base),
                                                                   "..", "out"), **kwargs)


def test_unknown_class(base):
    fx.replace_line(os.path.join(base, "testclasses.txt"), 2, "giant_panda")
    fx.conversion_error(_run(base), "testclasses.txt:2: unknown class 'giant_panda'")


def test_matrix_errors(base):
    path = os.path.join(base, "predicate-matrix-binary.txt")
    fx.replace_line(path, 3, "0 1 0 1 0")
    fx.conversion_error(_run(base), "predicate-matrix-binary.txt:3: expected 6 values, got 5")
    fx.replace_line(path, 3, "0 1 0 1 0 2")
    fx.conversion_error(_run(base), "predicate-matrix-binary.txt:3: value 6 is '2'")
    fx.replace_line(path, 3, "")
    fx.conversion_error(_run(base), "predicate-matrix-binary.txt: expected 5 rows")


def test_malformed_class_line(base):
    fx.replace_line(os.path.join(base, "classes.txt"), 2, "     2\tgrizzly bear")
    fx.conversion_error(_run(base), "classes.txt:2: expected '2<tab><name>'")


def test_bad_images_skip(base):
    fx.truncate(os.path.join(base, "JPEGImages", "antelope", "antelope_10002.jpg"))
    fx.conversion_error(_run(base), "antelope_10002.jpg: unreadable or truncated image")
    meta = _run(base, skip_bad=True)()
    assert meta.skipped == {"bad_image": 1}
    assert sum(meta.split_sizes.values()) == 19
    os.rename(os.path.join(base, "JPEGImages", "chimpanzee"), os.path.join(base, "x"))
    fx.conversion_error(_run(base, overwrite=True), "JPEGImages/chimpanzee: missing folder")
