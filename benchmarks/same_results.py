r"""Same results before and after a change: short deterministic runs of every method in two
checkouts, then report.json compared key by key (timings and paths aside).

    git worktree add /tmp/before <commit>
    python -m benchmarks.same_results --before=/tmp/before --after=. --out=/tmp/same

Each run: the small synthetic set (generator version 3, seed 0, 384/128/128 images),
``--deterministic``, one intra-op thread, a few steps per phase. Prints, per method, whether
the tree, every metric and the set of report.json keys are identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app, flags

flags.DEFINE_string("before", None, "Checkout of the code before the change.")
flags.DEFINE_string("after", ".", "Checkout of the code after the change.")
flags.DEFINE_string("out", "/tmp/same_results", "Where the runs go.")
flags.DEFINE_list("methods", ["gnas", "gnas_plus", "random", "branching", "galm", "shared",
                              "label_tree"], "Which runs.")
FLAGS = flags.FLAGS

COMMON = ["--deterministic", "--nogenerate_synthetic", "--export_dir=", "--batch_size=32",
          "--eval_batch_size=64", "--finetune_steps=10", "--compare=shared,label_tree",
          "--compare_steps=5", "--seed=1"]
RUNS = {
    "gnas": ["--method=gnas", "--space=tiny", "--warmup_steps=10", "--train_steps=3",
             "--val_batches=1", "--max_rounds=2"],
    # make search's GNAS+ settings as of 2026-12-04 (its flagfile started from the label tree)
    "gnas_plus": ["--flagfile=flagfiles/synthetic_plus.flags", *COMMON, "--warmup_steps=10",
                  "--initial_tree=label_correlation",
                  "--train_steps=3", "--val_batches=1", "--max_rounds=2",
                  "--eval_batch_size=64", "--compare=shared", "--export_dir="],
    "random": ["--method=random", "--space=tiny", "--train_steps=3", "--val_batches=1",
               "--max_rounds=1"],
    "branching": ["--flagfile=flagfiles/synthetic_branching.flags", *COMMON,
                  "--iterations_per_round=5", "--compare_steps=5"],
    "galm": ["--method=galm", "--galm_space=synthetic", "--galm_phases=2",
             "--galm_child_steps=2", "--galm_controller_steps=3", "--galm_val_batches=1",
             "--galm_final_samples=1", "--batch_size=16", "--finetune_steps=1"],
    "shared": ["--method=shared", "--space=tiny"],
    "label_tree": ["--method=label_tree", "--space=tiny"],
}
# Keys whose values are times or paths, which differ between any two runs.
VOLATILE = {"search_seconds", "elapsed", "workdir", "data_dir", "attribute_correlation_picture"}


def generate(data_dir: str) -> None:
    if not os.path.exists(os.path.join(data_dir, "metadata.json")):
        from gnas_keras_pipelines import synthetic
        synthetic.generate(data_dir, seed=0, sizes={"train": 384, "validation": 128,
                                                    "test": 128}, num_shards=2, version=3)


def run(checkout: str, name: str, data_dir: str, workdir: str) -> dict:
    if not os.path.exists(os.path.join(workdir, "report.json")):
        env = {**os.environ, "PYTHONPATH": os.path.abspath(checkout),
               "TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        args = [sys.executable, "-m", "flags.search", *COMMON, *RUNS[name],
                f"--workdir={workdir}", f"--data_dir={data_dir}"]
        done = subprocess.run(args, cwd=checkout, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} in {checkout} failed: {done.stderr.strip()[-500:]}")
    with open(os.path.join(workdir, "report.json")) as f:
        return json.load(f)


def differences(a, b, path=""):
    """Paths where two JSON values differ, volatile keys aside. Settings added by the change
    (``config`` keys on one side only) are not differences: the run's results are."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = ([] if path.startswith(".config") else
               [f"{path}.{k} (only one side)" for k in set(a) ^ set(b)])
        for k in set(a) & set(b):
            if k not in VOLATILE:
                out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


def main(argv):
    del argv
    data_dir = os.path.join(FLAGS.out, "data")
    generate(data_dir)
    for name in FLAGS.methods:
        reports = [run(checkout, name, data_dir, os.path.join(FLAGS.out, side, name))
                   for side, checkout in (("before", FLAGS.before), ("after", FLAGS.after))]
        found = differences(*reports)
        print(f"{name}: " + ("identical (tree, metrics, keys)" if not found
                             else "DIFFERENT at " + ", ".join(sorted(found)[:8])), flush=True)


if __name__ == "__main__":
    flags.mark_flag_as_required("before")
    app.run(main)
