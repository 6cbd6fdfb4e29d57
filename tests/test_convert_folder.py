"""The own-data converter (`pipelines.folder`): value encodings, blanks, split column or seeded
split, Excel-style files, bad rows named by file and line, and the binary."""

import os
import subprocess
import sys

import pytest

from gnas_keras_pipelines import folder, records
from tests import fixtures_datasets as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _convert(tmp_path, **kwargs):
    kwargs.setdefault("num_shards", 1)
    return folder.convert(str(tmp_path / "images"), str(tmp_path / "out"), name="faces",
                          labels=str(tmp_path / "labels.csv"), **kwargs)


def _labels(tmp_path):
    """image key -> (split, attributes) of the converted records."""
    return {key: (split, attrs) for split, recs in fx.all_records(str(tmp_path / "out")).items()
            for _, attrs, key in recs}


def test_one_zero_minus_one_with_blanks_and_split_column(tmp_path):
    fx.make_folder(str(tmp_path), ["a.jpg,1,0,-1,train", "b.jpg,,1,0,TRAIN",
                                   "sub/c.jpg,0,,,validation", "d.jpg,-1,-1,1,test"],
                   header="image,Smiling,Eyeglasses,Hat,split")
    meta = _convert(tmp_path)
    assert meta.name == "faces" and meta.attribute_names == fx.FOLDER_ATTRIBUTES
    assert meta.split_sizes == {"train": 2, "validation": 1, "test": 1}
    assert (meta.extra["label_values"], meta.extra["split"]) == ("1/0/-1", "column")
    assert _labels(tmp_path) == {
        "a.jpg": ("train", [1, 0, -1]), "b.jpg": ("train", [-1, 1, 0]),
        "sub/c.jpg": ("validation", [0, -1, -1]), "d.jpg": ("test", [-1, -1, 1])}
    assert records.check_dataset(str(tmp_path / "out")) == meta


def test_celeba_style_values_detected_and_explicit(tmp_path):
    rows = ["a.jpg,1,-1,-1,train", "b.jpg,-1,1,,train", "c.jpg,1,1,1,test",
            "d.jpg,-1,-1,1,validation"]
    fx.make_folder(str(tmp_path), rows, header="image,Smiling,Eyeglasses,Hat,split")
    meta = _convert(tmp_path)  # auto: no 0 anywhere -> -1 means no
    assert meta.extra["label_values"] == "1/-1"
    labels = _labels(tmp_path)
    assert labels["a.jpg"] == ("train", [1, 0, 0]) and labels["b.jpg"] == ("train", [0, 1, -1])
    # Forced 1/0/-1 reads the same file's -1 as unknown.
    _convert(tmp_path, label_values="1/0/-1", overwrite=True)
    assert _labels(tmp_path)["a.jpg"] == ("train", [1, -1, -1])


def test_zero_under_celeba_encoding_is_a_bad_label(tmp_path):
    fx.make_folder(str(tmp_path), ["a.jpg,1,-1,-1", "b.jpg,0,1,1"])
    fx.conversion_error(lambda: _convert(tmp_path, label_values="1/-1"),
                        "labels.csv:3: column 'Smiling' is 0, which the 1/-1 encoding")


def test_seeded_split_is_reproducible_and_recorded(tmp_path):
    rows = [f"{i:03d}.jpg,{i % 2},{(i // 2) % 2},1" for i in range(20)]
    fx.make_folder(str(tmp_path), rows)
    meta = _convert(tmp_path, val_ratio=0.2, test_ratio=0.1, seed=3)
    assert meta.split_sizes == {"train": 14, "validation": 4, "test": 2}
    assert {k: meta.extra[k] for k in ("split", "split_seed", "val_ratio", "test_ratio")} == {
        "split": "seeded", "split_seed": 3, "val_ratio": 0.2, "test_ratio": 0.1}
    first = {k: s for k, (s, _) in _labels(tmp_path).items()}
    _convert(tmp_path, val_ratio=0.2, test_ratio=0.1, seed=3, overwrite=True)
    assert {k: s for k, (s, _) in _labels(tmp_path).items()} == first
    _convert(tmp_path, val_ratio=0.2, test_ratio=0.1, seed=4, overwrite=True)
    assert {k: s for k, (s, _) in _labels(tmp_path).items()} != first


def test_excel_csv_with_bom_crlf_and_quotes(tmp_path):
    fx.make_folder(str(tmp_path), ['"a.jpg", 1 ,0,1 ', '"b.jpg",0,"1",'],
                   header='image,"Smiling",Eyeglasses,Hat ', bom=True, crlf=True)
    meta = _convert(tmp_path, val_ratio=0.0, test_ratio=0.0)
    assert meta.attribute_names == fx.FOLDER_ATTRIBUTES
    assert _labels(tmp_path) == {"a.jpg": ("train", [1, 0, 1]), "b.jpg": ("train", [0, 1, -1])}


@pytest.mark.parametrize("row, message", [
    ("c.jpg,1,0", "labels.csv:4: expected 4 fields (as in the header), got 3"),
    ("c.jpg,1,yes,0", "labels.csv:4: column 'Eyeglasses' is 'yes', expected 1, 0, -1"),
    ("c.jpg,1,2,0", "labels.csv:4: column 'Eyeglasses' is '2'"),
    ("a.jpg,1,1,1", "labels.csv:4: a.jpg is listed twice (first at line 2)"),
    (",1,1,1", "labels.csv:4: no image path"),
])
def test_malformed_rows_name_file_and_line(tmp_path, row, message):
    fx.make_folder(str(tmp_path), ["a.jpg,1,0,1", "b.jpg,0,1,1", row])
    fx.conversion_error(lambda: _convert(tmp_path), message)
    assert not os.path.exists(tmp_path / "out")


def test_bad_split_value_and_header_errors(tmp_path):
    fx.make_folder(str(tmp_path), ["a.jpg,1,train", "b.jpg,0,dev"], header="image,Smiling,split")
    fx.conversion_error(lambda: _convert(tmp_path), "labels.csv:3: split is 'dev', expected")
    fx.make_folder(str(tmp_path), ["a.jpg,1,1"], header="image,Smiling,Smiling")
    fx.conversion_error(lambda: _convert(tmp_path), "labels.csv:1: attribute 'Smiling' appears "
                        "twice")
    fx.make_folder(str(tmp_path), ["a.jpg"], header="image")
    fx.conversion_error(lambda: _convert(tmp_path), "labels.csv:1: expected the header")


def test_missing_image_names_the_csv_line_and_skip_bad_counts(tmp_path):
    fx.make_folder(str(tmp_path), ["a.jpg,1,0,1", "b.jpg,0,1,1", "d.jpg,1,1,1"])
    os.remove(tmp_path / "images" / "b.jpg")
    fx.conversion_error(lambda: _convert(tmp_path), "b.jpg: missing image",
                        "listed at", "labels.csv:3")
    with open(tmp_path / "labels.csv", "a") as f:
        f.write("c.jpg,1,x,1\n")
    meta = _convert(tmp_path, skip_bad=True, val_ratio=0.0, test_ratio=0.0)
    assert meta.skipped == {"bad_label": 1, "missing_image": 1}
    assert meta.split_sizes["train"] == 2


def test_names_are_checked():
    with pytest.raises(ValueError, match="built-in"):
        folder.check_name("celeba")
    with pytest.raises(ValueError, match="letters, digits"):
        folder.check_name("my data+x")


def test_binary_converts_a_folder(tmp_path):
    fx.make_folder(str(tmp_path), [f"{i}.jpg,{i % 2},1,0" for i in range(10)])
    result = subprocess.run(
        [sys.executable, "-m", "flags.convert", "--dataset=folder", "--name=faces",
         f"--source_dir={tmp_path / 'images'}", f"--labels={tmp_path / 'labels.csv'}",
         f"--output_dir={tmp_path / 'out'}", "--split_seed=1", "--folder_val_ratio=0.2",
         "--folder_test_ratio=0.2", "--num_shards=2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "[faces] images  [####################]  10/10  100 %" in result.stderr  # progress
    meta = records.check_dataset(str(tmp_path / "out"))
    assert meta.split_sizes == {"train": 6, "validation": 2, "test": 2}
    assert (meta.extra["split_seed"], meta.extra["num_shards"]) == (1, 2)


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    fx.make_folder(str(tmp_path), [f"{i}.jpg,1,0,1" for i in range(6)])
    meta = fx.check_interrupted_then_rerun(
        lambda out: folder.convert(str(tmp_path / "images"), out, name="faces",
                                   labels=str(tmp_path / "labels.csv")),
        str(tmp_path / "out"), monkeypatch)
    assert sum(meta.split_sizes.values()) == 6


def test_converted_folder_feeds_the_input_pipeline_with_a_resize(tmp_path):
    from gnas_keras_pipelines import input as pipeline_input

    fx.make_folder(str(tmp_path), [f"{i}.jpg,{i % 2},,1" for i in range(8)], size=(40, 30))
    _convert(tmp_path, val_ratio=0.25, test_ratio=0.25)
    meta = records.check_dataset(str(tmp_path / "out"))
    assert pipeline_input.preprocessing_for(meta) == pipeline_input.Preprocessing(
        40, 30, 35, 26, False)  # own data: no flips by default
    prep = pipeline_input.preprocessing_for(meta, image_height=16, image_width=12)
    assert prep == pipeline_input.Preprocessing(16, 12, 14, 10, False)
    images, labels = next(iter(pipeline_input.make_dataset(
        str(tmp_path / "out"), "train", 2, training=True, prep=prep, seed=0)))
    assert images.shape == (2, 14, 10, 3)
    assert labels.numpy()[:, 1].tolist() == [-1, -1]  # the blank column stays unknown


def test_image_paths_outside_the_source_folder_are_refused(tmp_path):
    """Issue 30, case 4: the table may not read files outside --source_dir unless asked."""
    fx.make_folder(str(tmp_path), ["a.jpg,1,0,1", "sub/b.jpg,0,1,1"])
    fx.write_jpeg(str(tmp_path / "e" / "alpha.jpg"))
    labels = tmp_path / "labels.csv"
    base = labels.read_text()
    for row, how in [("../e/alpha.jpg,1,1,1", "'../e/alpha.jpg' climbs out of it"),
                     (f"{tmp_path / 'e' / 'alpha.jpg'},1,1,1", "is absolute"),
                     ("sub/../../e/alpha.jpg,1,1,1", "climbs out of it")]:
        labels.write_text(base + row + "\n")
        fx.conversion_error(lambda: _convert(tmp_path), f"labels.csv:4: image path ", how,
                            f"relative to --source_dir {tmp_path / 'images'}; pass "
                            "--allow_outside_source")
        assert not os.path.exists(tmp_path / "out")
    meta = _convert(tmp_path, skip_bad=True, val_ratio=0.0, test_ratio=0.0)
    assert meta.skipped == {"outside_source": 1} and meta.split_sizes["train"] == 2
    meta = _convert(tmp_path, allow_outside_source=True, overwrite=True, val_ratio=0.0,
                    test_ratio=0.0)
    assert meta.split_sizes["train"] == 3 and meta.extra["allow_outside_source"] is True
    # Inside after normalisation is inside.
    labels.write_text(base + "sub/../a2.jpg,1,1,1\n")
    fx.write_jpeg(str(tmp_path / "images" / "a2.jpg"))
    assert _convert(tmp_path, overwrite=True, val_ratio=0.0,
                    test_ratio=0.0).split_sizes["train"] == 3
