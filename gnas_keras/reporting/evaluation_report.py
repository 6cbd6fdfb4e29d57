"""A readable report of every run in a workdir: ``evaluation.md`` and ``evaluation.json``.

A run directory is one that holds ``report.json`` (`gnas_keras.run`). For each run:

- per-attribute and mean test error (report.json, the fine-tuned tree on the test set);
- mean AUC and balanced accuracy (`gnas_keras.training.metrics` on ``test_predictions.npz``);
- parameters of the exported tree (report.json) and MACs per image (`gnas_keras.space.cost`:
  convolutions and matrix products of the live blocks, BN folded; at the model input size);
- latency: the exported SavedModel timed on CPU at batch 32, median over repeats, in ms per
  image (skipped with a note when the run has no export);
- the tree as ``tree.svg`` / ``tree.png`` in the run directory (`gnas_keras.reporting.draw`), and the
  attribute groups at every conv layer (report.json ``groups``).

The markdown puts the runs side by side (the paper's Table 4 layout for per-attribute error)
and references the pictures by paths relative to the workdir.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from gnas_keras.reporting import draw

from gnas_keras.training import metrics
from gnas_keras.space.architecture import Architecture
from gnas_keras.space.architecture import cost as architecture_cost
from gnas_keras.methods import REGISTRY
from gnas_keras.io import write_json_atomic, write_text_atomic
from gnas_keras.space.search_space import SearchSpace
from gnas_keras.space.tree import Routing

REPORT = "report.json"
PREDICTIONS = "test_predictions.npz"   # `gnas_keras.run.PREDICTIONS_FILE`
LATENCY_BATCH = 32


def find_runs(workdir: str) -> List[str]:
    """`workdir` itself and every directory below it that holds report.json, sorted by method
    (the order of `METHODS`) then path. Raises FileNotFoundError when there is none."""
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"{workdir}: " + ("a file, not a run directory"
                                                  if os.path.exists(workdir) else
                                                  "no such directory"))
    found = []
    for root, dirs, files in os.walk(workdir):
        # .replaced/ holds runs moved aside by --restart (gnas_keras.workdir)
        dirs[:] = sorted(d for d in dirs if d != "tensorboard" and not d.startswith("."))
        if REPORT in files:
            found.append(root)
    if not found:
        raise FileNotFoundError(f"{workdir}: no run directory (with {REPORT}) here or below")
    return found


# What this report reads from every report.json (older reports lack the other keys).
REQUIRED_KEYS = ("method", "dataset", "attribute_names", "search_space", "test_error",
                 "mean_test_error", "parameters", "groups", "tree")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _strings(x) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


# Key, check, what it should be: every key this report reads (a hand-edited report.json with
# a wrong type is one line naming the key, not a TypeError deep inside).
_REPORT_TYPES = (
    ("method", lambda x: isinstance(x, str) and bool(x), "a non-empty string"),
    ("dataset", lambda x: isinstance(x, str), "a string"),
    ("attribute_names", lambda x: _strings(x) and bool(x), "a non-empty list of names"),
    ("search_space", lambda x: isinstance(x, dict), "a search space object"),
    ("test_error", lambda x: isinstance(x, dict) and all(
        v is None or _number(v) for v in x.values()), "an object of attribute -> error"),
    ("mean_test_error", _number, "a number"),
    ("parameters", lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 0,
     "a count of parameters"),
    ("groups", lambda x: isinstance(x, dict) and all(
        isinstance(g, list) and all(map(_strings, g)) for g in x.values()),
     "an object of layer -> lists of attribute names"),
    ("tree", lambda x: isinstance(x, list) and all(
        isinstance(p, list) and all(isinstance(i, int) for i in p) for p in x),
     "a list of parent lists"),
    # optional
    ("architecture", lambda x: isinstance(x, dict), "an architecture object"),
    ("export", lambda x: x is None or isinstance(x, str), "a path or null"),
    ("input_shape", lambda x: isinstance(x, list) and len(x) == 3 and all(
        isinstance(v, int) and v > 0 for v in x), "[height, width, channels]"),
    ("config", lambda x: isinstance(x, dict), "an object"),
    ("search_seconds", lambda x: x is None or _number(x), "a number or null"),
    ("ari", lambda x: x is None or _number(x), "a number or null"),
    ("ari_layer", lambda x: x is None or isinstance(x, str), "a layer name or null"),
)
# What interpreting a report's search space, architecture or input size raises when a value
# has the right JSON type but not a meaning (a parent index out of range, a layer spec with
# unknown fields, an unknown dataset without an input shape).
_MEANING_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)


def _load_report(path: str) -> Tuple[Dict, Architecture, int]:
    """report.json of run directory `path`, its architecture and MACs per image. Raises
    ValueError naming the file (and line, or the key) when it is garbled, lacks what the
    report needs, or holds a value of the wrong type or meaning."""
    file = os.path.join(path, REPORT)
    try:
        with open(file, encoding="utf-8") as f:
            report = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}:{err.lineno}: not valid JSON ({err.msg}, column "
                         f"{err.colno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{file}: not UTF-8 text") from None
    if not isinstance(report, dict):
        raise ValueError(f"{file}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise ValueError(f"{file}: key {missing[0]!r} is missing (not a complete run report)")
    for key, check, what in _REPORT_TYPES:
        if key in report and not check(report[key]):
            raise ValueError(f"{file}: key {key!r} should be {what}, got "
                             f"{json.dumps(report[key])[:60]}")
    try:
        architecture = report_architecture(report)
        architecture.validate()
        macs = macs_per_image(report, architecture)
    except _MEANING_ERRORS as err:
        key = "architecture" if "architecture" in report else "search_space' or 'tree"
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else \
            type(err).__name__
        raise ValueError(f"{file}: key '{key}' does not describe a tree ({reason})") from None
    names = report["attribute_names"]
    if architecture.num_attributes != len(names):
        raise ValueError(f"{file}: key 'attribute_names' lists {len(names)} names for a tree "
                         f"of {architecture.num_attributes} attributes")
    return report, architecture, macs


def input_size(report: Dict):
    """(height, width) of the model input of a run, from its dataset and crop flags."""
    from gnas_keras_pipelines.input import preprocessing_for

    if "input_shape" in report:  # any dataset: the run recorded its model input
        return tuple(report["input_shape"][:2])
    config = report.get("config", {})
    prep = preprocessing_for(report["dataset"], config.get("crop_height", 0),
                             config.get("crop_width", 0), config.get("flip"))
    return prep.crop_height, prep.crop_width


def report_architecture(report: Dict) -> Architecture:
    """The run's architecture; a report from before architectures were saved has only the
    tree, whose blocks come from its search space."""
    space = SearchSpace.from_dict(report["search_space"])
    if "architecture" in report:
        return Architecture.from_dict(report["architecture"], space)
    return Architecture.from_space(space, Routing.from_lists(report["tree"]))


def macs_per_image(report: Dict, architecture: Optional[Architecture] = None) -> int:
    """Multiply-accumulates of the run's architecture for one image
    (`gnas_keras.space.architecture.cost`)."""
    height, width = input_size(report)
    return architecture_cost(architecture or report_architecture(report), height,
                             width).macs_per_image


def read_predictions(path: str, num_attributes: int):
    """(probabilities, labels) of ``test_predictions.npz``, each [examples, num_attributes].
    Raises ValueError naming the file when it is damaged (truncated, a flipped byte), lacks
    an array, or does not fit the report's attributes."""
    import zipfile

    try:
        with np.load(path) as saved:
            probabilities = np.asarray(saved["probabilities"], np.float64)
            labels = np.asarray(saved["labels"], np.float64)
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as err:
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else \
            type(err).__name__
        raise ValueError(f"{path}: not readable test predictions ({reason}); the run's "
                         "fine-tune writes them again") from None
    shape = (probabilities.shape[0] if probabilities.ndim else 0, num_attributes)
    if probabilities.shape != shape or labels.shape != shape:
        raise ValueError(f"{path}: probabilities {list(probabilities.shape)} and labels "
                         f"{list(labels.shape)}, but report.json lists {num_attributes} "
                         "attribute_names: both should be [examples, "
                         f"{num_attributes}]")
    return probabilities, labels


def latency_ms_per_image(saved_model: str, batch: int = LATENCY_BATCH, repeats: int = 20,
                         warmup: int = 3) -> float:
    """Median wall time of one ``serving_default`` call on a random batch [batch, H, W, 3]
    (CPU, all threads TensorFlow picks), divided by the batch: ms per image."""
    import tensorflow as tf

    from gnas_keras.export.saved_model import load_export

    with tf.device("/CPU:0"):
        fn = load_export(saved_model).signatures["serving_default"]
        spec = fn.structured_input_signature[1]["image"]
        images = tf.random.uniform([batch, *spec.shape[1:]], 0, 255, seed=0)
        times = []
        for i in range(warmup + repeats):
            start = time.perf_counter()
            outputs = fn(image=images)
            for value in outputs.values():
                value.numpy()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / batch


def _find_export(path: Optional[str], run_dir: str) -> Optional[str]:
    """The export report.json names (as written, or relative to the run), if it is there;
    None for a run without one (``"export": null`` or "")."""
    if not path:
        return None
    for candidate in (path, os.path.join(run_dir, path)):
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    return None


def _clean(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def evaluate_run(run_dir: str, workdir: str, latency: bool = True,
                 latency_repeats: int = 20) -> Dict:
    """Everything the report shows about one run, JSON-ready; writes its tree pictures."""
    report, architecture, macs = _load_report(run_dir)
    name = os.path.relpath(run_dir, workdir)
    name = report["method"] if name == "." else name
    names = report["attribute_names"]
    space = SearchSpace.from_dict(report["search_space"])
    notes = []
    svg, png = draw.write_pictures(architecture, names,
                                   os.path.join(run_dir, "tree"),
                                   title=f"{name}: {report['method']} on {report['dataset']}")
    out = {
        "name": name, "path": os.path.abspath(run_dir), "method": report["method"],
        # the architecture's own space: branching's thin network and GALM's per-attribute
        # space are not the `--space` preset in "search_space"
        "dataset": report["dataset"], "space": architecture.space or space.name,
        "attribute_names": names,
        "test_error": report["test_error"], "mean_test_error": report["mean_test_error"],
        "parameters": report["parameters"], "search_seconds": report.get("search_seconds"),
        "ari": report.get("ari"), "ari_layer": report.get("ari_layer"),
        "groups": report["groups"],
        "pictures": {"svg": os.path.relpath(svg, workdir), "png": os.path.relpath(png, workdir)},
        "mean_auc": None, "mean_balanced_accuracy": None, "mean_f1": None, "metrics": None,
        "macs_per_image": macs, "latency_ms_per_image": None,
    }
    predictions = os.path.join(run_dir, PREDICTIONS)
    if os.path.exists(predictions):
        m = metrics.compute(*read_predictions(predictions, len(names)))
        out["metrics"] = m.to_dict(names)
        out["mean_auc"] = _clean(m.mean_auc)
        out["mean_balanced_accuracy"] = _clean(m.mean_balanced_accuracy)
        out["mean_f1"] = _clean(m.mean_f1)
    else:
        notes.append(f"no {PREDICTIONS}: AUC and balanced accuracy not available")
    export = _find_export(report.get("export"), run_dir)
    if not latency:
        notes.append("latency not measured (--nolatency)")
    elif export is None:
        notes.append("no exported SavedModel: latency not measured")
    else:
        out["latency_ms_per_image"] = latency_ms_per_image(export, repeats=latency_repeats)
        out["export"] = export
    out["notes"] = notes
    return out


def _method_order(run: Dict):
    methods = list(REGISTRY)
    method = run["method"]
    return (methods.index(method) if method in methods else len(methods), run["name"])


def evaluate(workdir: str, latency: bool = True, latency_repeats: int = 20,
             out=lambda line: None) -> Dict:
    """Evaluates every run under `workdir`; writes ``evaluation.md`` and ``evaluation.json``
    there (atomically) and returns the JSON."""
    runs = []
    for run_dir in find_runs(workdir):
        out(f"evaluating {run_dir}")
        runs.append(evaluate_run(run_dir, workdir, latency, latency_repeats))
    runs.sort(key=_method_order)
    result = {"workdir": os.path.abspath(workdir), "latency_batch": LATENCY_BATCH,
              "latency_repeats": latency_repeats, "runs": runs}
    write_json_atomic(os.path.join(workdir, "evaluation.json"), result)
    write_text_atomic(os.path.join(workdir, "evaluation.md"), to_markdown(result))
    return result


def _fmt(x, spec: str, missing: str = "n/a") -> str:
    return missing if x is None else format(x, spec)


def _count(x: Optional[float]) -> str:
    if x is None:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return str(int(x))


def to_markdown(result: Dict) -> str:
    """The report: summary table, per-attribute error table, tree pictures, groups, notes."""
    runs = result["runs"]
    lines = [f"# Evaluation of `{result['workdir']}`", "",
             f"{len(runs)} run(s). Test error, AUC and balanced accuracy are on the test set, "
             "for the tree fine-tuned after its search. Written by "
             "`python -m flags.evaluate`.", "", "## Summary", "",
             "| run | method | dataset | mean test error (%) | mean AUC | balanced accuracy |"
             " mean F1 | parameters | MACs / image | latency (ms / image) | search time (s) |"
             " ARI |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(
            f"| {r['name']} | {r['method']} | {r['dataset']} | "
            f"{100 * r['mean_test_error']:.2f} | {_fmt(r['mean_auc'], '.4f')} | "
            f"{_fmt(r['mean_balanced_accuracy'], '.4f')} | {_fmt(r.get('mean_f1'), '.4f')} | "
            f"{_count(r['parameters'])} | "
            f"{_count(r['macs_per_image'])} | {_fmt(r['latency_ms_per_image'], '.3f')} | "
            f"{_fmt(r['search_seconds'], '.0f')} | {_fmt(r['ari'], '.3f')} |")
    lines += ["", f"Latency: the exported SavedModel on CPU, batch {result['latency_batch']}, "
              f"median of {result['latency_repeats']} calls, divided by the batch size; it "
              "depends on the machine and on whatever else runs on it. MACs: multiply-"
              "accumulates of convolutions and matrix products of the live blocks "
              "(`gnas_keras.space.cost`). ARI: adjusted Rand index between the attribute groups at "
              "the ARI layer and the planted groups (only for datasets with planted groups).",
              "", "## Per-attribute test error (%)", ""]
    names: List[str] = []
    for r in runs:
        names += [a for a in r["attribute_names"] if a not in names]
    lines.append("| attribute | " + " | ".join(r["name"] for r in runs) + " |")
    lines.append("|---|" + "---:|" * len(runs))
    for a in names + ["**mean**"]:
        values = [r["mean_test_error"] if a == "**mean**" else r["test_error"].get(a)
                  for r in runs]
        known = [v for v in values if v is not None]
        best = min(known) if len(known) > 1 else None
        cells = ["" if v is None else
                 (f"**{100 * v:.2f}**" if v == best else f"{100 * v:.2f}") for v in values]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += ["", "Bold: the lowest error of the row.", "", "## Trees", ""]
    for r in runs:
        lines += [f"### {r['name']} ({r['method']})", "",
                  f"![tree of {r['name']}]({r['pictures']['png']}) "
                  f"([SVG]({r['pictures']['svg']}))", "", "Attribute groups per layer:", ""]
        for layer, groups in r["groups"].items():
            lines.append(f"- {layer} ({len(groups)} group{'s' if len(groups) != 1 else ''}): "
                         + "; ".join("{" + ", ".join(g) + "}" for g in groups))
        for note in r["notes"]:
            lines.append(f"- note: {note}")
        lines.append("")
    return "\n".join(lines)
