"""Market-1501 Attribute converter: struct fields by name, 1/2 and age encodings, identity
join, held-out validation identities, bad input."""

import os

import numpy as np
import scipy.io

from gnas_keras_pipelines import market1501
from tests import fixtures_datasets as fx


def _expected(identity):
    source = fx.market_values(identity)
    age = [int(source["age"] == k) for k in (1, 2, 3, 4)]
    return age + [source[f] - 1 for f in fx.MARKET_BINARY]  # 1 (no) -> 0, 2 (yes) -> 1


def test_convert(tmp_path):
    fixture = fx.make_market(str(tmp_path / "src"))
    meta = market1501.convert(str(tmp_path / "src"), str(tmp_path / "out"), val_identities=1,
                              seed=3)
    assert meta.attribute_names[:4] == ["age_young", "age_teenager", "age_adult", "age_old"]
    assert meta.attribute_names[4:] == list(fx.MARKET_BINARY)
    assert meta.split_sizes == {"train": 6, "validation": 2, "test": 6}
    assert meta.skipped == {"no_attributes": 2}  # 0000 and -1 in bounding_box_test
    assert (meta.image_height, meta.image_width) == (16, 8)
    val_ids = meta.extra["validation_identity_list"]
    assert len(val_ids) == 1 and val_ids[0] in fx.MARKET_TRAIN_IDS
    assert meta.extra["split_seed"] == 3
    recs = fx.all_records(str(tmp_path / "out"))
    for split, expected_ids in (("train", set(fx.MARKET_TRAIN_IDS) - set(val_ids)),
                                ("validation", set(val_ids)), ("test", fx.MARKET_TEST_IDS)):
        assert {key.split("/")[1][:4] for _, _, key in recs[split]} == set(expected_ids)
        for data, attrs, key in recs[split]:
            assert data == fixture["images"][key]
            assert attrs == _expected(key.split("/")[1][:4])
    # The age one-hot has exactly one 1 per record.
    assert all(sum(a[:4]) == 1 for s in recs.values() for _, a, _ in s)


def test_seed_changes_validation_identities(tmp_path):
    fx.make_market(str(tmp_path / "src"))
    picks = {tuple(market1501.convert(str(tmp_path / "src"), str(tmp_path / f"o{s}"),
                                      val_identities=2, seed=s).extra[
                                          "validation_identity_list"]) for s in range(6)}
    assert len(picks) > 1


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    fx.make_market(str(tmp_path / "src"))
    fx.check_interrupted_then_rerun(
        lambda out: market1501.convert(str(tmp_path / "src"), out, val_identities=1),
        str(tmp_path / "out"), monkeypatch)


def _edit_mat(src, part, field, index, value):
    path = os.path.join(src, "Market-1501_Attribute", "market_attribute.mat")
    mat = scipy.io.loadmat(path)
    mat["market_attribute"][0, 0][part][0, 0][field][0, index] = value
    scipy.io.savemat(path, {"market_attribute": mat["market_attribute"]})


def test_label_outside_encoding(tmp_path):
    fx.make_market(str(tmp_path / "src"))
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    _edit_mat(src, "train", "age", 1, 5)
    fx.conversion_error(lambda: market1501.convert(src, out, val_identities=1),
                        "market_attribute.mat:train.age[2] (identity 0007): value 1 is 5, "
                        "expected one of 1, 2, 3, 4")
    meta = market1501.convert(src, out, val_identities=1, skip_bad=True)
    assert meta.skipped == {"bad_label": 1, "no_attributes": 2}
    assert meta.split_sizes["train"] + meta.split_sizes["validation"] == 6  # 0007's 2 dropped
    _edit_mat(src, "train", "age", 1, 1)
    _edit_mat(src, "test", "hat", 0, 0)
    fx.conversion_error(lambda: market1501.convert(src, out, val_identities=1, overwrite=True),
                        "market_attribute.mat:test.hat[1] (identity 0001): value 1 is 0, "
                        "expected one of 1, 2")


def test_missing_field_and_wrong_count(tmp_path):
    fx.make_market(str(tmp_path / "src"))
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    path = os.path.join(src, "Market-1501_Attribute", "market_attribute.mat")
    mat = scipy.io.loadmat(path, simplify_cells=True)["market_attribute"]
    mat["test"]["bag"] = np.array([[1]], dtype=np.uint8)
    scipy.io.savemat(path, {"market_attribute": mat})
    fx.conversion_error(lambda: market1501.convert(src, out),
                        "market_attribute.mat:test.bag: expected 2 values (one per identity "
                        "in image_index), got 1")
    del mat["test"]["bag"]
    scipy.io.savemat(path, {"market_attribute": mat})
    fx.conversion_error(lambda: market1501.convert(src, out),
                        "market_attribute.mat:test: field 'bag' missing")


def test_unknown_identity_and_bad_image(tmp_path):
    fixture = fx.make_market(str(tmp_path / "src"))
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    fx.write_jpeg(os.path.join(fixture["base"], "bounding_box_train", "0099_c1s1_000001_01.jpg"))
    fx.conversion_error(lambda: market1501.convert(src, out, val_identities=1),
                        "bounding_box_train/0099_c1s1_000001_01.jpg: identity 0099 is not in "
                        "market_attribute.train.image_index")
    fx.truncate(os.path.join(fixture["base"], "bounding_box_test", "0003_c2s1_001151_01.jpg"))
    meta = market1501.convert(src, out, val_identities=1, skip_bad=True)
    assert meta.skipped == {"bad_image": 1, "no_attributes": 2, "unknown_identity": 1}
    assert meta.split_sizes["test"] == 5
    os.remove(os.path.join(src, "Market-1501_Attribute", "market_attribute.mat"))
    fx.conversion_error(lambda: market1501.convert(src, out, overwrite=True),
                        "market_attribute.mat: missing file")
