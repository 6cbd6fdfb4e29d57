"""Issue 30, case 13 and the fuzz test of `flags.evaluate`'s readers: a hand-edited, truncated
or byte-flipped report.json or test_predictions.npz is a report (when it still says something
valid) or one ValueError naming the file, never another exception."""

import json
import os
import shutil

import numpy as np
import pytest

from gnas_keras.reporting import evaluation_report
from gnas_keras.space.architecture import Architecture, cost
from gnas_keras.space.search_space import get_space
from gnas_keras.space.tree import Routing
from tests.test_export import NAMES
from tests.test_run_safety import in_process


def valid_report():
    """A report.json as `gnas_keras.run` writes it, for a tiny-space tree of 5 attributes."""
    space = get_space("tiny")
    routing = Routing.from_lists([[0], [0] * 4, [2, 1, 2, 2], [0, 0, 1, 0, 1], range(5),
                                  range(5)])
    architecture = Architecture.from_space(space, routing)
    groups = {}
    for l in range(architecture.head_layer):
        labels = architecture.grouping(l)
        groups[architecture.layer_names[l]] = [
            [NAMES[n] for n in range(5) if labels[n] == b] for b in sorted(set(labels))]
    errors = [0.1, 0.2, 0.3, 0.25, 0.15]
    return {"method": "gnas", "dataset": "synthetic", "attribute_names": NAMES,
            "search_space": space.to_dict(), "tree": [list(p) for p in architecture.parents],
            "architecture": architecture.to_dict(), "groups": groups,
            "test_error": dict(zip(NAMES, errors)), "mean_test_error": float(np.mean(errors)),
            "parameters": cost(architecture, 32, 32).parameters, "search_seconds": 12.5,
            "input_shape": [32, 32, 3], "export": "", "config": {}}


def write_run(path, report, attributes=5, examples=20):
    """A run directory `path` with `report` (a dict, or text) and test predictions."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "report.json"), "w") as f:
        f.write(report if isinstance(report, str) else json.dumps(report, indent=2))
    rng = np.random.default_rng(0)
    np.savez(os.path.join(path, "test_predictions.npz"),
             probabilities=rng.uniform(0, 1, (examples, attributes)),
             labels=rng.integers(0, 2, (examples, attributes)),
             attribute_names=np.asarray(NAMES[:attributes]))
    return str(path)


def outcome(run_dir):
    """None when `flags.evaluate`'s library call succeeds, else its ValueError's text; any
    other exception fails the test."""
    try:
        result = evaluation_report.evaluate(run_dir, latency=False)
    except ValueError as err:
        text = str(err)
        assert "\n" not in text and text.startswith(run_dir), text
        return text
    json.dumps(result)
    evaluation_report.to_markdown(result)
    return None


def test_hand_edited_reports_are_one_line_naming_the_file_and_key(tmp_path):
    base = valid_report()
    runs = {
        "no_export": dict(base, export=None),
        "space_string": dict(base, search_space="tiny"),
        "short_names": dict(base, attribute_names=NAMES[:4]),
        "damaged_export": dict(base, export=str(tmp_path / "export")),
    }
    for name, report in runs.items():
        write_run(tmp_path / name, report)
    write_run(tmp_path / "six_predictions", base, attributes=6)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff")
    cases = [
        ("no_export", None),
        ("space_string", "key 'search_space' should be a search space object, got \"tiny\""),
        ("short_names", "key 'attribute_names' lists 4 names for a tree of 5 attributes"),
        ("six_predictions", "test_predictions.npz: probabilities [20, 6] and labels [20, 6], "
                            "but report.json lists 5 attribute_names: both should be "
                            "[examples, 5]"),
        ("damaged_export", f"{tmp_path}/export: damaged export, it does not load (Cannot "
                           "parse file saved_model.pb: Error parsing message"),
    ]
    (tmp_path / "a_file").write_text("not a run")
    outcomes = in_process("evaluate", [[f"--workdir={tmp_path / name}", "--latency_repeats=1"]
                                       for name, _ in cases] +
                          [[f"--workdir={tmp_path / 'a_file'}"], ["--latency_repeats=0"]])
    assert outcomes[-2:] == [
        [2, f"evaluate: error: {tmp_path}/a_file: a file, not a run directory\n"],
        [2, "evaluate: error: flag --latency_repeats=0: 0 is not a positive integer\n"]]
    for (name, message), (code, stderr) in zip(cases, outcomes):
        lines = stderr.strip().splitlines()
        assert lines[0] == f"evaluating {tmp_path / name}", (name, lines)
        if message is None:
            assert code in (0, None) and len(lines) == 1, (name, lines)  # absl: exit(None)
            report = json.load(open(tmp_path / name / "evaluation.json"))["runs"][0]
            assert report["latency_ms_per_image"] is None
            assert "no exported SavedModel: latency not measured" in report["notes"]
            continue
        assert code == 2 and len(lines) == 2, (name, lines)
        where = "" if message.startswith(str(tmp_path)) else f"{tmp_path / name}/" + (
            "" if message.startswith("test_predictions") else "report.json: ")
        assert lines[1].startswith(f"evaluate: error: {where}{message}"), (name, lines)
    assert (tmp_path / "export" / "saved_model.pb").read_bytes() == b"\x0a\xff\xff\xff"


WRONG_VALUES = (None, "x", -1, 1.5, True, [], {}, [1], {"a": 1}, [[1, "a"]])


def test_fuzzed_reports_and_predictions_are_a_report_or_one_line(tmp_path):
    text = json.dumps(valid_report(), indent=2)
    rng = np.random.default_rng(30)
    runs = []
    for i, cut in enumerate(sorted(set(rng.integers(0, len(text), 30)))):
        runs.append(write_run(tmp_path / f"cut{i}", text[:cut]))
    raw = text.encode()
    for i, at in enumerate(rng.integers(0, len(raw), 60)):
        flipped = bytearray(raw)
        flipped[at] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip{i}"
        write_run(path, "")
        (path / "report.json").write_bytes(bytes(flipped))
        runs.append(str(path))
    for key in valid_report():
        for j, value in enumerate(WRONG_VALUES):
            runs.append(write_run(tmp_path / f"{key}{j}", dict(valid_report(), **{key: value})))
    good = write_run(tmp_path / "good", valid_report())
    npz = open(os.path.join(good, "test_predictions.npz"), "rb").read()
    for i, cut in enumerate(sorted(set(rng.integers(0, len(npz), 12)))):
        path = write_run(tmp_path / f"npz_cut{i}", valid_report())
        with open(os.path.join(path, "test_predictions.npz"), "wb") as f:
            f.write(npz[:cut])
        runs.append(path)
    for i, at in enumerate(rng.integers(0, len(npz), 20)):
        path = write_run(tmp_path / f"npz_flip{i}", valid_report())
        flipped = bytearray(npz)
        flipped[at] ^= int(rng.integers(1, 256))
        with open(os.path.join(path, "test_predictions.npz"), "wb") as f:
            f.write(bytes(flipped))
        runs.append(path)
    for name, arrays in {"npz_object": dict(probabilities=np.array([None, 1]), labels=[1]),
                         "npz_missing": dict(labels=np.zeros((3, 5))),
                         "npz_scalar": dict(probabilities=1.0, labels=1.0)}.items():
        path = write_run(tmp_path / name, valid_report())
        np.savez(os.path.join(path, "test_predictions.npz"), **arrays)
        runs.append(path)
    assert outcome(good) is None
    results = {run: outcome(run) for run in runs}
    failed = [r for r in results.values() if r is not None]
    assert len(failed) > len(runs) // 2  # most damage is caught, each in one line
    assert all(results[str(tmp_path / f"{key}0")] for key in evaluation_report.REQUIRED_KEYS
               if key != "test_error"), results
