"""The search binary end to end, in subprocesses, as a user runs it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def search(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "flags.search", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": ROOT})


BAD_INPUT = [
    (["--space=huge"], "search: error: flag --space=huge: value should be one of"),
    (["--batch_size=0"], "search: error: batch_size: must be > 0, got 0"),
    (["--method=gnas", "extra"], "search: error: unexpected arguments 'extra'"),
    (["--dataset=celeba", "--data_dir=/nonexistent/celeba"],
     "search: error: /nonexistent/celeba/metadata.json: no converted dataset here"),
    (["--crop_height=64"], "search: error: crop 64x32 is larger than the image 32x32"),
    (["--num_attributes=40"], "search: error: num_attributes: 40 given, but "),
    (["--batch_size=1000"], "search: error: batch_size: 1000 is larger than the training"),
    (["--on_nan=ignore"], "search: error: flag --on_nan=ignore: value should be one of"),
]


# Runs the binary's entry point in-process once per case, all cases in ONE subprocess (one
# TensorFlow import instead of eight; and flags.search's flags would clash in pytest's own
# process with flags.convert's, which other tests import).
IN_PROCESS = """
import contextlib, io, json, sys
from gnas_keras_flags import common, search
results = []
for argv in json.loads(sys.argv[1]):
    search.FLAGS.unparse_flags()
    sys.argv = ["search", *argv]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            common.run(search.main)
            code = 0
        except SystemExit as e:
            code = e.code
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def test_bad_input_is_one_line_and_exit_code_2(synthetic_dir, tmp_path):
    cases = []
    for i, (args, _) in enumerate(BAD_INPUT):
        data = [] if any(a.startswith("--data_dir") for a in args) else [
            f"--data_dir={synthetic_dir}"]
        cases.append([*data, f"--workdir={tmp_path}/run{i}", "--export_dir=", *args])
    result = subprocess.run([sys.executable, "-c", IN_PROCESS, json.dumps(cases)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    for i, ((args, message), (code, stderr)) in enumerate(zip(BAD_INPUT, outcomes)):
        lines = stderr.strip().splitlines()
        assert code == 2, (args, stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith(message), (args, lines)
        assert not os.path.exists(tmp_path / f"run{i}" / "checkpoints")  # no work started


def test_the_real_binary_reports_a_bad_flag_in_one_line(tmp_path):
    result = search("--space=huge", f"--workdir={tmp_path}/run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "search: error: flag --space=huge: value should be one of <auto|deep_thin|deep_wide|"
        "shallow_thin|shallow_wide|small|tiny>"]


def test_search_end_to_end_with_a_flagfile(synthetic_dir, tmp_path):
    flagfile = tmp_path / "small.flags"
    flagfile.write_text("\n".join([
        f"--data_dir={synthetic_dir}", f"--workdir={tmp_path}/run",
        f"--export_dir={tmp_path}/export", "--export_name=small", "--batch_size=32",
        "--eval_batch_size=64", "--train_steps=2", "--val_batches=1", "--max_rounds=1",
        "--patience=1", "--warmup_steps=2", "--finetune_steps=3",
        "--compare=shared,label_tree", "--compare_steps=2"]) + "\n")
    result = search(f"--flagfile={flagfile}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "round 1 of 1, fc1 candidate 1 of 4" in result.stderr  # the search's progress
    assert "left <=" in result.stderr and "\r" not in result.stderr  # plain lines in a pipe
    report = json.load(open(tmp_path / "run" / "report.json"))
    assert report["method"] == "gnas" and report["dataset"] == "synthetic"
    assert report["search_space"]["name"] == "tiny"
    assert len(report["test_error"]) == 16
    assert abs(report["mean_test_error"] - sum(report["test_error"].values()) / 16) < 1e-6
    assert report["ari_layer"] == "conv3" and -1.0 <= report["ari"] <= 1.0
    assert len(report["initial_tree"]) == len(report["tree"])     # where round 1 started
    assert -1.0 <= report["initial_ari"] <= 1.0
    assert set(report["comparisons_from_scratch"]) == {"found_tree", "shared", "label_tree"}
    # The small set's labels give its planted groups (benchmarks/label_tree.py).
    assert report["comparisons_from_scratch"]["label_tree"]["ari"] == 1.0
    assert report["parameters"] > 0 and report["search_seconds"] > 0
    assert len(report["rounds"]) == 1
    assert os.path.exists(os.path.join(report["export"], "saved_model.pb"))
    predictions = np.load(tmp_path / "run" / "test_predictions.npz")
    assert predictions["probabilities"].shape == predictions["labels"].shape == (128, 16)
    assert ((predictions["probabilities"] >= 0) & (predictions["probabilities"] <= 1)).all()
    assert report["export"].endswith(os.path.join("export", "small", "1"))
    tree = json.load(open(tmp_path / "run" / "tree.json"))
    assert tree["parents"] == report["tree"]
    events = os.listdir(tmp_path / "run")  # the run's events: in its work directory
    assert any(e.startswith("events.out.tfevents") for e in events)
    assert "mean test error" in result.stdout and "ARI to the planted groups" in result.stdout


def test_search_runs_on_converted_fixture_data(tmp_path):
    """A real dataset's layout (Market-1501 fixture) -> its converter -> flags.search.
    (The converter runs in this process: flags.convert is tested in test_convert_flags.py.)"""
    from gnas_keras_pipelines import market1501
    from tests.fixtures_datasets import make_market
    make_market(str(tmp_path / "market"))
    market1501.convert(str(tmp_path / "market"), str(tmp_path / "tfr"), val_identities=1)
    result = search("--dataset=market1501", f"--data_dir={tmp_path / 'tfr'}",
                    f"--workdir={tmp_path / 'run'}", "--export_dir=", "--batch_size=2",
                    "--eval_batch_size=4", "--train_steps=1", "--val_batches=1",
                    "--max_rounds=1", "--finetune_steps=1", "--dropout=0.75",
                    "--search_only=fc1")  # the data is under test here, not the search
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(tmp_path / "run" / "report.json"))
    assert report["dataset"] == "market1501" and report["num_attributes"] == 30
    assert report["attribute_names"][:4] == ["age_young", "age_teenager", "age_adult",
                                             "age_old"]
    assert "ari" not in report  # no planted grouping in real data
