"""flags.evaluate on a workdir of real small runs (gnas, shared, independent via flags.search in
subprocesses), and the baselines' trees: shared = one path, independent = no sharing above
the fixed layers as far as the space allows."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from gnas_keras.space.search_space import get_space
from gnas_keras.space.tree import Routing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT}
SMALL = ["--batch_size=16", "--eval_batch_size=64", "--train_steps=1", "--val_batches=1",
         "--max_rounds=1", "--patience=1", "--finetune_steps=2", "--random_trials=2"]


def binary(name, *args):
    return subprocess.Popen([sys.executable, "-m", f"flags.{name}", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    return stdout, stderr


@pytest.fixture(scope="module")
def evaluated(synthetic_dir, tmp_path_factory):
    """Three runs side by side (only gnas exported), then flags.evaluate over them."""
    workdir = tmp_path_factory.mktemp("workdir")
    runs = {method: binary("search", f"--data_dir={synthetic_dir}", f"--method={method}",
                           f"--workdir={workdir / method}",
                           f"--export_dir={workdir / 'export' if method == 'gnas' else ''}",
                           *SMALL)
            for method in ("gnas", "shared", "independent")}
    for process in runs.values():
        finish(process)
    stdout, _ = finish(binary("evaluate", f"--workdir={workdir}", "--latency_repeats=3"))
    return workdir, json.load(open(workdir / "evaluation.json")), stdout


def test_report_has_every_run_and_metric(evaluated):
    workdir, result, stdout = evaluated
    runs = {r["method"]: r for r in result["runs"]}
    assert [r["method"] for r in result["runs"]] == ["gnas", "shared", "independent"]
    for r in runs.values():
        report = json.load(open(workdir / r["name"] / "report.json"))
        assert r["mean_test_error"] == report["mean_test_error"]
        assert len(r["test_error"]) == 16 and r["parameters"] == report["parameters"]
        # Errors recomputed from the saved probabilities match the evaluator's.
        assert r["metrics"]["mean_error"] == pytest.approx(r["mean_test_error"], abs=1e-6)
        assert 0.0 <= r["mean_auc"] <= 1.0 and 0.0 <= r["mean_balanced_accuracy"] <= 1.0
        assert r["macs_per_image"] > 0
        assert r["groups"] == report["groups"]
    assert runs["gnas"]["latency_ms_per_image"] > 0
    assert runs["shared"]["latency_ms_per_image"] is None
    assert any("latency not measured" in n for n in runs["shared"]["notes"])
    # The one-trunk tree computes less than the widest tree.
    assert runs["shared"]["macs_per_image"] < runs["independent"]["macs_per_image"]
    assert "mean test error" in stdout


def test_markdown_tables_pictures_and_groups(evaluated):
    workdir, result, _ = evaluated
    text = open(workdir / "evaluation.md").read()
    assert "| attribute | gnas | shared | independent |" in text
    assert text.count("| colour_rule_1 |") == 1 and "| **mean** |" in text
    for r in result["runs"]:
        assert f"]({r['pictures']['png']})" in text
        svg = ET.parse(workdir / r["pictures"]["svg"]).getroot()
        leaves = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")
                  if t.get("class") == "leaf"]
        assert sorted(leaves) == sorted(r["attribute_names"])
        with Image.open(workdir / r["pictures"]["png"]) as image:
            image.verify()
    assert "- conv3 (1 group): {colour_rule_1" in text      # shared
    assert "- conv3 (4 groups):" in text                  # independent
    assert not [f for f in os.listdir(workdir) if ".tmp" in f]


def test_baseline_trees(evaluated):
    workdir, result, _ = evaluated
    space = get_space("tiny")
    counts = space.block_counts(16)
    trees = {r["method"]: Routing.from_lists(json.load(open(workdir / r["name"] / "tree.json"))
                                             ["parents"]) for r in result["runs"]}
    fc1 = len(space.layers) - 3
    # shared: one path, i.e. one live block in every conv layer.
    assert [len(b) for b in trees["shared"].live_blocks()[:fc1]] == [1] * fc1
    # independent: in every searchable layer each parent block has as few children as the
    # block counts allow (ceil(B_l / B_{l-1})), and every block is live.
    independent = trees["independent"]
    for l in space.searched_layers(16):
        children = np.bincount(independent.parents[l], minlength=counts[l - 1])
        assert children.max() == -(-counts[l] // counts[l - 1]) and children.min() >= 1
    assert [len(b) for b in independent.live_blocks()] == counts


def test_evaluate_errors_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "flags.evaluate", f"--workdir={tmp_path}"],
                            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"evaluate: error: {tmp_path}: no run directory "
                                     "(with report.json) here or below")
