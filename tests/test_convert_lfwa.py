"""LFWA converter: MATLAB v7 and v7.3 (HDF5) flavours, paper split, bad input."""

import os

import h5py
import numpy as np
import pytest

from gnas_keras_pipelines import lfwa
from tests import fixtures_datasets as fx


@pytest.mark.parametrize("flavour", ["v7", "v73"])
def test_convert(tmp_path, flavour):
    fixture = fx.make_lfwa(str(tmp_path / "src"), flavour)
    assert h5py.is_hdf5(str(tmp_path / "src" / "lfw_att_40.mat")) == (flavour == "v73")
    meta = lfwa.convert(str(tmp_path / "src"), str(tmp_path / "out"), num_train=4)
    assert meta.attribute_names == fx.CELEBA_ATTRIBUTES
    assert meta.split_sizes == {"train": 4, "validation": 2, "test": 3}
    assert (meta.image_height, meta.image_width) == (25, 25)
    assert meta.extra["num_train"] == 4
    for split, recs in fx.all_records(str(tmp_path / "out")).items():
        # Training indices keep their file order: first 4 train, the rest validation.
        assert [key for _, _, key in recs] == fixture["splits"][split]
        for data, attrs, key in recs:
            assert data == fixture["images"][key]
            assert attrs == fixture["label"][fixture["names"].index(key)].tolist()


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    fx.make_lfwa(str(tmp_path / "src"), "v73")
    fx.check_interrupted_then_rerun(
        lambda out: lfwa.convert(str(tmp_path / "src"), out, num_train=4),
        str(tmp_path / "out"), monkeypatch)


def _rewrite(src, flavour, file_name, **changes):
    """Rewrites one fixture .mat file with some variables changed."""
    from gnas_keras_pipelines import matfile
    path = os.path.join(src, file_name)
    variables = matfile.load_mat(path)
    variables.update(changes)
    os.remove(path)
    (fx.savemat_v7 if flavour == "v7" else fx.savemat_v73)(path, variables)


@pytest.mark.parametrize("flavour", ["v7", "v73"])
def test_label_outside_encoding(tmp_path, flavour):
    fixture = fx.make_lfwa(str(tmp_path / "src"), flavour)
    label = fixture["label"].astype(float)
    label[1, 3] = 2
    _rewrite(str(tmp_path / "src"), flavour, "lfw_att_40.mat", label=label)
    run = lambda **kw: lfwa.convert(str(tmp_path / "src"), str(tmp_path / "out"),
                                    num_train=4, **kw)
    fx.conversion_error(run, "lfw_att_40.mat:label row 2 (Aaron_Eckhart/Aaron_Eckhart_0002."
                        "jpg): value 4 is 2, expected one of 0, 1")
    assert run(skip_bad=True).skipped == {"bad_label": 1}


def test_wrong_counts_and_indices(tmp_path):
    fixture = fx.make_lfwa(str(tmp_path / "src"), "v7")
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    _rewrite(src, "v7", "indices_train_test.mat", indices_img_test=np.array([[4.0], [10]]))
    fx.conversion_error(lambda: lfwa.convert(src, out),
                        "indices_train_test.mat:indices_img_test[2]: 10 is not an image "
                        "index in 1..9")
    _rewrite(src, "v7", "lfw_att_40.mat", label=fixture["label"][:8].astype(float))
    fx.conversion_error(lambda: lfwa.convert(src, out), "lfw_att_40.mat:label: expected "
                        "(9, 40) rows x columns")


def test_missing_files(tmp_path):
    fx.make_lfwa(str(tmp_path / "src"), "v73")
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    fx.truncate(os.path.join(src, "lfw", "Alan_Ball", "Alan_Ball_0001.jpg"))
    fx.conversion_error(lambda: lfwa.convert(src, out, num_train=4),
                        "Alan_Ball_0001.jpg: unreadable or truncated image")
    meta = lfwa.convert(src, out, num_train=4, skip_bad=True)
    assert meta.skipped == {"bad_image": 1} and meta.split_sizes["validation"] == 1
    os.remove(os.path.join(src, "indices_train_test.mat"))
    fx.conversion_error(lambda: lfwa.convert(src, out, overwrite=True),
                        "indices_train_test.mat: missing file")
    with open(os.path.join(src, "indices_train_test.mat"), "wb") as f:
        f.write(b"MATLAB 5.0 MAT-file, garbage")
    fx.conversion_error(lambda: lfwa.convert(src, out, overwrite=True),
                        "indices_train_test.mat: not a readable MATLAB file")
