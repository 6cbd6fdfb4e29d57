r"""GALM on the synthetic set (issue 12): its controller against uniformly random
per-attribute architectures with the same budget, and transfer to held-out attributes.

    PYTHONPATH=. .venv/bin/python -m benchmarks.galm_transfer --seeds=0,1 --part=transfer
    PYTHONPATH=. .venv/bin/python -m benchmarks.galm_transfer --seeds=0,1,2 --part=compare

``--part=compare`` runs ``flagfiles/synthetic_galm.flags`` per seed with
``--galm_sampler=controller`` and ``=uniform`` and prints mean test error, mean AUC and
the embedding ARI per seed, their means and standard errors, and the paired difference.

``--part=transfer``: the last attribute of each planted group is held out
(`pipelines.subset`); per seed, GALM searches the 12 others (``source``), then the 16 with
``--transfer_from=source`` (only the 4 held-out ones are searched: ``transfer``), and,
with the same flags and budget, the 4 held-out attributes alone from scratch (``scratch``).
Printed: the held-out attributes' mean reward per fifth of the controller steps (the reward
curve) and their mean test error, transfer vs scratch.

Runs go to ``runs/galm_<part>/``; a finished run is reused (the run resumes or reprints).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from absl import app, flags

flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_enum("part", "compare", ["compare", "transfer"], "Which experiment.")
flags.DEFINE_string("data_dir", "data/synthetic", "The synthetic set (make search writes it).")
flags.DEFINE_string("flagfile_galm", "flagfiles/synthetic_galm.flags", "GALM's flags.")
FLAGS = flags.FLAGS


def search(workdir: str, *extra: str) -> dict:
    """One GALM run (or its finished report); returns report.json."""
    report = os.path.join(workdir, "report.json")
    if not os.path.exists(report):
        log = workdir + ".log"
        os.makedirs(os.path.dirname(workdir), exist_ok=True)
        with open(log, "w") as f:
            subprocess.run([sys.executable, "-m", "flags.search",
                            f"--flagfile={FLAGS.flagfile_galm}", f"--workdir={workdir}",
                            "--export_dir=", *extra], stdout=f, stderr=subprocess.STDOUT,
                           check=True)
    with open(report) as f:
        return json.load(f)


def mean_se(values) -> str:
    v = np.asarray(values, float)
    se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():.4f} +- {se:.4f}"


def compare(seeds):
    rows = {}
    for sampler in ("controller", "uniform"):
        rows[sampler] = [search(f"runs/galm_compare/{sampler}_s{s}", f"--seed={s}",
                                f"--data_dir={FLAGS.data_dir}",
                                f"--galm_sampler={sampler}") for s in seeds]
    print("| sampler | seed | mean test error | mean AUC | embedding ARI |")
    print("|---|---|---:|---:|---:|")
    for sampler, reports in rows.items():
        for s, r in zip(seeds, reports):
            print(f"| {sampler} | {s} | {r['mean_test_error']:.4f} | {r['mean_auc']:.4f} | "
                  f"{r['galm'].get('embedding_ari', float('nan')):.3f} |")
    for key in ("mean_test_error", "mean_auc"):
        a = [r[key] for r in rows["controller"]]
        b = [r[key] for r in rows["uniform"]]
        print(f"{key}: controller {mean_se(a)}, uniform {mean_se(b)}, paired difference "
              f"(controller - uniform) {mean_se(np.subtract(a, b))} over {len(seeds)} seeds")
    print("embedding ARI: controller",
          mean_se([r["galm"]["embedding_ari"] for r in rows["controller"]]))


def reward_curve(report: dict, attributes, fifths: int = 5):
    """Mean reward of `attributes` (indices into the report's attributes) per fifth of the
    controller steps that evaluated one of them."""
    rewards = [r for a, r, _ in report["galm"]["rewards"] if a in attributes]
    return [float(np.mean(part)) for part in np.array_split(rewards, fifths)]


def transfer(seeds):
    from gnas_keras_pipelines import records
    from gnas_keras_pipelines.subset import subset_attributes
    meta = records.read_metadata(FLAGS.data_dir)
    held_out = [g[-1] for g in meta.groups]
    kept = [n for n in meta.attribute_names if n not in held_out]
    sources = {"source": kept, "held_out": held_out}
    for label, names in sources.items():
        path = f"{FLAGS.data_dir}_{label}"
        if not os.path.exists(os.path.join(path, records.METADATA_FILE)):
            subset_attributes(FLAGS.data_dir, path, names)
    curves, errors = {"transfer": [], "scratch": []}, {"transfer": [], "scratch": []}
    for s in seeds:
        source = f"runs/galm_transfer/source_s{s}"
        search(source, f"--seed={s}", f"--data_dir={FLAGS.data_dir}_source")
        moved = search(f"runs/galm_transfer/transfer_s{s}", f"--seed={s}",
                       f"--data_dir={FLAGS.data_dir}", f"--transfer_from={source}")
        scratch = search(f"runs/galm_transfer/scratch_s{s}", f"--seed={s}",
                         f"--data_dir={FLAGS.data_dir}_held_out")
        index = [moved["attribute_names"].index(n) for n in held_out]
        curves["transfer"].append(reward_curve(moved, index))
        curves["scratch"].append(reward_curve(scratch, range(len(held_out))))
        errors["transfer"].append(np.mean([moved["test_error"][n] for n in held_out]))
        errors["scratch"].append(np.mean([scratch["test_error"][n] for n in held_out]))
        print(f"seed {s}: transfer sources {moved['galm']['transfer_sources']}")
    print(f"held-out attributes: {', '.join(held_out)}")
    print("| fifth of controller steps | " + " | ".join(str(i + 1) for i in range(5)) + " |")
    print("|---|" + "---:|" * 5)
    for label, c in curves.items():
        c = np.asarray(c)
        se = c.std(axis=0, ddof=1) / np.sqrt(len(c)) if len(c) > 1 else np.full(5, np.nan)
        print(f"| {label} reward | " + " | ".join(f"{m:.3f} +- {e:.3f}"
                                                 for m, e in zip(c.mean(0), se)) + " |")
    for label, e in errors.items():
        print(f"{label}: held-out mean test error {mean_se(e)}")
    print(f"paired difference (transfer - scratch): "
          f"{mean_se(np.subtract(errors['transfer'], errors['scratch']))}")


def main(argv):
    del argv
    seeds = [int(s) for s in FLAGS.seeds]
    compare(seeds) if FLAGS.part == "compare" else transfer(seeds)


if __name__ == "__main__":
    app.run(main)
