"""Every converter reads files as real tools write them (UTF-8 byte-order mark, CRLF line
ends, trailing spaces; padded strings in .mat files) exactly like the clean files."""

import os

import numpy as np
import scipy.io

from gnas_keras_pipelines import apy, awa, celeba, folder, lfwa, market1501, records, sun
from tests import fixtures_datasets as fx


def _same_after(tmp_path, convert, quirks):
    """Converts the clean source, applies `quirks` to it, converts again: same output."""
    src = str(tmp_path / "src")
    clean = convert(src, str(tmp_path / "clean"))
    quirks(src)
    messy = convert(src, str(tmp_path / "messy"))
    assert messy == clean
    assert fx.all_records(str(tmp_path / "messy")) == fx.all_records(str(tmp_path / "clean"))
    return messy


def test_celeba_text_and_kaggle_csv(tmp_path):
    for layout in ("flat", "kaggle"):
        fx.make_celeba(str(tmp_path / layout / "src"), layout)
        meta = _same_after(tmp_path / layout, celeba.convert,
                           lambda src: fx.windows_text(src))
        assert meta.attribute_names == fx.CELEBA_ATTRIBUTES
        assert meta.split_sizes == {"train": 4, "validation": 2, "test": 2}


def test_awa_class_files_and_predicate_matrix(tmp_path):
    fx.make_awa(str(tmp_path / "src"))
    changed = []
    meta = _same_after(tmp_path, awa.convert,
                       lambda src: changed.extend(fx.windows_text(src)))
    assert len(changed) == 5 and meta.attribute_names == fx.AWA_PREDICATES


def test_apy_names_and_annotations(tmp_path):
    fx.make_apy(str(tmp_path / "src"))
    meta = _same_after(tmp_path, apy.convert, lambda src: fx.windows_text(src))
    assert meta.attribute_names == fx.APY_ATTRIBUTES  # no '\ufeff' on the first name


def test_folder_csv(tmp_path):
    fx.make_folder(str(tmp_path / "src"), ["a.jpg,1,0,1", "b.jpg,0,,1", "c.jpg,-1,1,0"])

    def convert(src, out):
        return folder.convert(os.path.join(src, "images"), out, name="mine",
                              labels=os.path.join(src, "labels.csv"))

    assert _same_after(tmp_path, convert, lambda src: fx.windows_text(src)).attribute_names \
        == fx.FOLDER_ATTRIBUTES


def _resave(path, change):
    """Loads a v7 .mat file, lets `change` edit its variables, saves it again."""
    raw = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    change(raw)
    fx.savemat_v7(path, raw)


def test_lfwa_mat_strings(tmp_path):
    fixture = fx.make_lfwa(str(tmp_path / "src"))

    def quirks(src):
        _resave(os.path.join(src, "lfw_att_40.mat"), lambda v: v.update(
            AttrName=fx.padded_cell(fx.CELEBA_ATTRIBUTES, column=False),
            name=fx.padded_cell([n.replace("/", "\\") for n in fixture["names"]])))

    assert _same_after(tmp_path, lfwa.convert, quirks).attribute_names == fx.CELEBA_ATTRIBUTES


def test_sun_mat_strings(tmp_path):
    fx.make_sun(str(tmp_path / "src"))
    db = os.path.join("SUNAttributeDB")

    def quirks(src):
        _resave(os.path.join(src, db, "attributes.mat"),
                lambda v: v.update(attributes=fx.padded_cell(fx.SUN_ATTRIBUTES)))
        _resave(os.path.join(src, db, "images.mat"),
                lambda v: v.update(images=fx.padded_cell(fx.SUN_PATHS)))

    assert _same_after(tmp_path, sun.convert, quirks).attribute_names == fx.SUN_ATTRIBUTES


def test_market_identity_strings(tmp_path):
    fx.make_market(str(tmp_path / "src"))
    path = os.path.join("Market-1501_Attribute", "market_attribute.mat")

    def quirks(src):
        full = os.path.join(src, path)
        raw = scipy.io.loadmat(full, squeeze_me=False)["market_attribute"][0, 0]
        out = {}
        for part, ids in (("train", fx.MARKET_TRAIN_IDS), ("test", fx.MARKET_TEST_IDS)):
            struct = raw[part][0, 0]
            out[part] = {f: np.asarray(struct[f]) for f in struct.dtype.names}
            out[part]["image_index"] = fx.padded_cell(ids, column=False)
        fx.savemat_v7(full, {"market_attribute": out})

    meta = _same_after(tmp_path, lambda src, out: market1501.convert(src, out, val_identities=1),
                       quirks)
    assert meta.split_sizes["train"] + meta.split_sizes["validation"] == 8


def test_metadata_json_as_an_editor_saves_it(tmp_path):
    fx.write_tiny(str(tmp_path / "d"), "tiny", ["a"], {s: [[1]] for s in records.SPLITS})
    fx.windows_text(str(tmp_path / "d"), suffixes=(".json",))
    assert records.check_dataset(str(tmp_path / "d")).attribute_names == ["a"]
