"""SUN Attribute converter: >= threshold, seeded split by scene class, bad input."""

import os

import pytest

from gnas_keras_pipelines import sun
from tests import fixtures_datasets as fx


@pytest.mark.parametrize("threshold", [0.5, 2 / 3])
def test_convert(tmp_path, threshold):
    fixture = fx.make_sun(str(tmp_path / "src"))
    meta = sun.convert(str(tmp_path / "src"), str(tmp_path / "out"), threshold=threshold,
                       val_ratio=0.2, test_ratio=0.3, seed=5)
    assert meta.attribute_names == fx.SUN_ATTRIBUTES
    assert (meta.image_height, meta.image_width) == (16, 20)
    extra = meta.extra
    assert (extra["threshold"], extra["split_seed"], extra["val_ratio"],
            extra["test_ratio"]) == (threshold, 5, 0.2, 0.3)
    classes = {sun.scene_class(p) for p in fx.SUN_PATHS}
    assert "apartment_building_outdoor" in classes and len(classes) == 6
    assert len(extra["test_classes"]) == 2 and len(extra["validation_classes"]) == 1
    recs = fx.all_records(str(tmp_path / "out"))
    assert sum(len(r) for r in recs.values()) == len(fx.SUN_PATHS)
    for split, split_recs in recs.items():
        for data, attrs, key in split_recs:
            path = key[len("images/"):]
            row = fx.SUN_PATHS.index(path)
            # >= threshold: 0.5 counts at 0.5, 2/3 counts at 2/3.
            assert attrs == (fixture["labels"][row] >= threshold).astype(int).tolist()
            assert data == fixture["images"][path]
            cls = sun.scene_class(path)
            expected = ("test" if cls in extra["test_classes"] else
                        "validation" if cls in extra["validation_classes"] else "train")
            assert split == expected


def test_split_is_seeded(tmp_path):
    fx.make_sun(str(tmp_path / "src"))
    run = lambda seed, out: sun.convert(str(tmp_path / "src"), str(tmp_path / out),
                                        val_ratio=0.2, test_ratio=0.3, seed=seed).extra
    assert run(1, "a")["test_classes"] == run(1, "b")["test_classes"]
    assert len({tuple(run(s, f"c{s}")["test_classes"]) for s in range(5)}) > 1


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    fx.make_sun(str(tmp_path / "src"))
    fx.check_interrupted_then_rerun(lambda out: sun.convert(str(tmp_path / "src"), out),
                                    str(tmp_path / "out"), monkeypatch)


def test_bad_input(tmp_path):
    fixture = fx.make_sun(str(tmp_path / "src"))
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    labels_path = os.path.join(src, "SUNAttributeDB", "attributeLabels_continuous.mat")
    labels = fixture["labels"].copy()
    labels[3, 1] = 1.5
    fx.savemat_v7(labels_path, {"labels_cv": labels})
    fx.conversion_error(lambda: sun.convert(src, out), "attributeLabels_continuous.mat:"
                        "labels_cv row 4 (a/apartment_building/outdoor/sun_aaghwofwbvptbjil.jpg)"
                        ": value 2 is 1.5, expected a vote fraction in [0, 1]")
    fx.truncate(os.path.join(src, "images", fx.SUN_PATHS[0]))
    meta = sun.convert(src, out, skip_bad=True)
    assert meta.skipped == {"bad_image": 1, "bad_label": 1}
    fx.savemat_v7(labels_path, {"labels_cv": labels[:, :4]})
    fx.conversion_error(lambda: sun.convert(src, out), "attributeLabels_continuous.mat:"
                        "labels_cv: expected (10, 5) rows x columns")
    fx.savemat_v7(labels_path, {"labels": labels})
    fx.conversion_error(lambda: sun.convert(src, out), "attributeLabels_continuous.mat: "
                        "variable 'labels_cv' missing")
    os.remove(os.path.join(src, "SUNAttributeDB", "images.mat"))
    fx.conversion_error(lambda: sun.convert(src, out), "SUNAttributeDB/images.mat: missing")
    with pytest.raises(ValueError):
        sun.convert(src, out, val_ratio=0.5, test_ratio=0.5)
