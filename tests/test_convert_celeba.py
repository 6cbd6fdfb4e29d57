"""CelebA converter: flat / official / Kaggle layouts, a tfds-prepared source, bad input."""

import os

import numpy as np
import pytest

from gnas_keras_pipelines import celeba, input as pipeline_input, records
from tests import fixtures_datasets as fx


def _check(out, fixture, keys=True):
    meta = records.read_metadata(out)
    assert meta.name == "celeba"
    assert meta.attribute_names == fx.CELEBA_ATTRIBUTES
    assert meta.split_sizes == {"train": 4, "validation": 2, "test": 2}
    assert (meta.image_height, meta.image_width) == (22, 18)
    by_bytes = {data: name for name, data in fixture["images"].items()}
    for split, recs in fx.all_records(out).items():
        names = [by_bytes[data] for data, _, _ in recs]  # images are stored unchanged
        assert all(fixture["splits"][n] == split for n in names)
        for (data, attrs, key), name in zip(recs, names):
            # CelebA -1 -> 0, 1 -> 1
            assert attrs == [1 if v == 1 else 0 for v in fixture["labels"][name]]
            if keys:
                assert key == f"img_align_celeba/{name}"
        if keys:
            assert names == sorted(names)
    return meta


@pytest.mark.parametrize("layout", ["flat", "official", "kaggle"])
def test_layouts(tmp_path, layout):
    fixture = fx.make_celeba(str(tmp_path / "src"), layout)
    meta = celeba.convert(str(tmp_path / "src"), str(tmp_path / "out"), num_shards=2)
    assert _check(str(tmp_path / "out"), fixture).skipped == {}
    assert meta.extra["format"] == "celeba_files"
    assert len(os.listdir(tmp_path / "out")) == 1 + 2 + 1 + 1  # metadata + shards


def test_tfds_prepared_directory(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    fixture = fx.make_celeba_tfds(str(tmp_path))
    # The tfds data dir, its celeb_a/ folder and the version folder are all accepted.
    meta = celeba.convert(os.path.join(fixture["data_dir"], "celeb_a"), str(tmp_path / "out"))
    assert meta.extra["format"] == "tfds" and meta.extra["tfds_version"] == "2.1.0"
    _check(str(tmp_path / "out"), fixture, keys=False)


def test_deterministic_and_overwrite(tmp_path):
    fx.make_celeba(str(tmp_path / "src"))
    celeba.convert(str(tmp_path / "src"), str(tmp_path / "a"), num_shards=2)
    celeba.convert(str(tmp_path / "src"), str(tmp_path / "b"), num_shards=2)
    for name in sorted(os.listdir(tmp_path / "a")):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    fx.conversion_error(lambda: celeba.convert(str(tmp_path / "src"), str(tmp_path / "a")),
                        "a: already holds a converted dataset; pass --overwrite")
    celeba.convert(str(tmp_path / "src"), str(tmp_path / "a"), overwrite=True)


def test_make_dataset_reads_converted_fixture(tmp_path):
    fx.make_celeba(str(tmp_path / "src"))
    celeba.convert(str(tmp_path / "src"), str(tmp_path / "out"), num_shards=2)
    prep = pipeline_input.Preprocessing(22, 18, 16, 16)
    images, labels = next(iter(pipeline_input.make_dataset(
        str(tmp_path / "out"), "train", batch_size=3, training=True, prep=prep, seed=1)))
    assert images.shape == (3, 16, 16, 3) and labels.shape == (3, 40)
    batches = list(pipeline_input.make_dataset(str(tmp_path / "out"), "validation+test",
                                               batch_size=3, training=False, prep=prep))
    assert [b[0].shape[0] for b in batches] == [3, 1]
    assert set(np.unique(np.concatenate([b[1] for b in batches]))) <= {0, 1}


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    fx.make_celeba(str(tmp_path / "src"))
    meta = fx.check_interrupted_then_rerun(
        lambda out: celeba.convert(str(tmp_path / "src"), out), str(tmp_path / "out"),
        monkeypatch)
    assert sum(meta.split_sizes.values()) == 8


# ----------------------------------------------------------------------------- bad input

@pytest.fixture
def src(tmp_path):
    fx.make_celeba(str(tmp_path / "src"))
    return str(tmp_path / "src")


def _convert(src, **kwargs):
    return lambda: celeba.convert(src, os.path.join(os.path.dirname(src), "out"), **kwargs)


def test_missing_file(src):
    os.remove(os.path.join(src, "list_eval_partition.txt"))
    fx.conversion_error(_convert(src), "list_eval_partition.txt: missing file",
                        "Eval/list_eval_partition.txt")
    assert not os.path.exists(os.path.join(os.path.dirname(src), "out"))


def test_wrong_value_count(src):
    path = os.path.join(src, "list_attr_celeba.txt")
    fx.replace_line(path, 5, "000003.jpg" + " -1" * 39)
    fx.conversion_error(_convert(src), "list_attr_celeba.txt:5: expected 40 values, got 39")


def test_header_count_mismatch(src):
    fx.replace_line(os.path.join(src, "list_attr_celeba.txt"), 1, "9")
    fx.conversion_error(_convert(src), "list_attr_celeba.txt:1: header says 9 images, the "
                        "file lists 8")


def test_label_outside_encoding(src):
    fx.replace_line(os.path.join(src, "list_attr_celeba.txt"), 4, "000002.jpg  0" + "  1" * 39)
    fx.conversion_error(_convert(src), "list_attr_celeba.txt:4: value 1 is '0', expected one "
                        "of -1, 1")


def test_malformed_partition_line(src):
    fx.replace_line(os.path.join(src, "list_eval_partition.txt"), 3, "000003.jpg x")
    fx.conversion_error(_convert(src), "list_eval_partition.txt:3: expected '<image> 0|1|2'")


def test_unknown_image_in_partition(src):
    with open(os.path.join(src, "list_eval_partition.txt"), "a") as f:
        f.write("999999.jpg 2\n")
    fx.conversion_error(_convert(src), "list_eval_partition.txt:9: unknown image 999999.jpg")


def test_truncated_and_missing_jpeg(src):
    fx.truncate(os.path.join(src, "img_align_celeba", "000002.jpg"))
    fx.conversion_error(_convert(src), "img_align_celeba/000002.jpg: unreadable or truncated",
                        "listed at", "list_eval_partition.txt:2")
    os.remove(os.path.join(src, "img_align_celeba", "000002.jpg"))
    fx.conversion_error(_convert(src), "000002.jpg: missing image")


def test_skip_bad_counts(src):
    fx.truncate(os.path.join(src, "img_align_celeba", "000002.jpg"))
    fx.replace_line(os.path.join(src, "list_attr_celeba.txt"), 9, "000007.jpg  2" + "  1" * 39)
    fx.replace_line(os.path.join(src, "list_eval_partition.txt"), 5, "000005.jpg")
    meta = celeba.convert(src, os.path.join(os.path.dirname(src), "out"), skip_bad=True)
    # 000007 has no labels, so its partition line is an unknown image as well.
    assert meta.skipped == {"bad_image": 1, "bad_label": 1, "malformed_line": 1,
                            "unknown_image": 1}
    assert meta.split_sizes == {"train": 3, "validation": 1, "test": 1}
