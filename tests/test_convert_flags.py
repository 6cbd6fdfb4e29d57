"""`python -m flags.convert`: dataset names, a successful run, one-line errors with status 2."""

import os
import subprocess
import sys

from absl.testing import flagsaver

from gnas_keras_flags import convert
from gnas_keras_pipelines import input as pipeline_input, records
from tests import fixtures_datasets as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the binary must quiet TensorFlow itself
    return subprocess.run([sys.executable, "-m", "flags.convert", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_dataset_names_match_preprocessing_table():
    assert set(convert.DATASETS) - {"folder"} == set(pipeline_input.PREPROCESSING) - {"synthetic"}


def test_bad_flag_is_one_line_and_status_2():
    result = _run("--dataset=imagenet", "--source_dir=x", "--output_dir=y")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "convert: error: flag --dataset=imagenet: value should be one of "
        "<celeba|lfwa|market1501|awa2|awa1|apy|sun|folder>"]


def test_conversion_error_is_one_line_and_status_2(tmp_path):
    fx.make_sun(str(tmp_path / "src"))
    os.remove(tmp_path / "src" / "SUNAttributeDB" / "attributes.mat")
    result = _run("--dataset=sun", f"--source_dir={tmp_path / 'src'}",
                  f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convert: error: ")
    assert "SUNAttributeDB/attributes.mat: missing file" in lines[0]
    assert not os.path.exists(tmp_path / "out")


def test_flags_reach_the_converter(tmp_path):
    fx.make_sun(str(tmp_path / "src"))
    with flagsaver.flagsaver(dataset="sun", source_dir=str(tmp_path / "src"),
                             output_dir=str(tmp_path / "out"), num_shards=2, split_seed=4,
                             sun_threshold=0.6, sun_val_ratio=0.2, sun_test_ratio=0.3):
        meta = convert.convert()
    assert records.read_metadata(str(tmp_path / "out")) == meta
    assert (meta.extra["threshold"], meta.extra["split_seed"], meta.extra["val_ratio"],
            meta.extra["test_ratio"], meta.extra["num_shards"]) == (0.6, 4, 0.2, 0.3, 2)


def test_allow_outside_source_reaches_the_folder_converter(tmp_path):
    fx.make_folder(str(tmp_path), ["a.jpg,1,0,1", "../b.jpg,0,1,1"])
    fx.write_jpeg(str(tmp_path / "b.jpg"))
    args = dict(dataset="folder", name="mine", source_dir=str(tmp_path / "images"),
                labels=str(tmp_path / "labels.csv"), output_dir=str(tmp_path / "out"),
                folder_val_ratio=0.0, folder_test_ratio=0.0)
    with flagsaver.flagsaver(**args):
        fx.conversion_error(convert.convert, "labels.csv:3: image path '../b.jpg' climbs out")
    with flagsaver.flagsaver(allow_outside_source=True, **args):
        assert convert.convert().split_sizes["train"] == 2
