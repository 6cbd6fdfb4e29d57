r"""A readable report of every run under a workdir (`gnas_keras.reporting.evaluation_report`).

    python -m flags.evaluate --workdir=runs/synthetic

Finds the run directories (the workdir itself or any directory below it with a report.json),
writes each run's tree picture (tree.svg, tree.png) next to its report, and writes
``<workdir>/evaluation.md`` and ``<workdir>/evaluation.json``: per-attribute and mean test
error side by side, mean AUC, balanced accuracy, parameters, MACs, latency of the export,
and the attribute groups at every layer.
"""

from __future__ import annotations

from gnas_keras_flags import common  # first: quiets TensorFlow's start-up logging

import os

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A run directory, or a directory of run directories.")
flags.DEFINE_bool("latency", True, "Time each run's exported SavedModel (batch 32, CPU).")
flags.DEFINE_integer("latency_repeats", 20, "Timed calls per model (the median is reported).",
                     lower_bound=1)


def main(argv):
    if not FLAGS.workdir:
        raise ValueError("--workdir is required")
    from gnas_keras.reporting import evaluation_report  # imports TensorFlow: after the cheap checks
    from gnas_keras.reporting.reporter import terminal

    result = evaluation_report.evaluate(FLAGS.workdir, FLAGS.latency, FLAGS.latency_repeats,
                                        out=terminal)
    for run in result["runs"]:
        auc = run["mean_auc"]
        print(f"{run['name']:24s} {run['method']:12s} mean test error "
              f"{run['mean_test_error']:.4f}  mean AUC "
              f"{'n/a' if auc is None else format(auc, '.4f')}  {run['parameters']:,} params")
    print(f"wrote {os.path.join(FLAGS.workdir, 'evaluation.md')} and evaluation.json",
          flush=True)


def cli() -> None:
    """The console script `gnas-evaluate` (`python -m flags.evaluate` in a checkout)."""
    common.run(main)


if __name__ == "__main__":
    cli()
