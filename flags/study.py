r"""The efficiency study (the paper's Fig. 4) and from-scratch test curves (Fig. 5).

    python -m flags.study --data_dir=data/synthetic --workdir=runs/study

GNAS-V and Random-V (V = validation batches per evaluation) search with frozen weights, at
random init and after training a supernet on random trees; every search's current tree is
scored on a fixed held-out part of the validation split. Writes ``efficiency.png``,
``scratch.png``, ``study.json`` and ``tensorboard/`` into --workdir and prints the ratio:
time for GNAS to reach random search's final error, over random search's budget. The
defaults take a few minutes on 2 CPU cores on the synthetic set. See `gnas_keras.study`.
"""

from __future__ import annotations

import dataclasses

from gnas_keras_flags import common  # first: quiets TensorFlow's start-up logging

from absl import flags

from gnas_keras_flags import dataclass_flags
from gnas_keras.config import AUTO_SPACE, RunConfig
from gnas_keras.space.search_space import PRESETS
from gnas_keras.study_config import RUN_FIELDS, StudyConfig

FLAGS = flags.FLAGS
common.define_synthetic_flags()
_RUN_SKIPPED = [f.name for f in dataclasses.fields(RunConfig) if f.name not in RUN_FIELDS]
dataclass_flags.define(RunConfig(), "gnas_keras.config", skip=_RUN_SKIPPED,
                       choices={"space": [AUTO_SPACE, *sorted(PRESETS)]})
dataclass_flags.define(StudyConfig(), "gnas_keras.study", skip=["run"])


def config_from_flags() -> StudyConfig:
    run = dataclass_flags.build(RunConfig, skip=_RUN_SKIPPED)
    return dataclass_flags.build(StudyConfig, skip=["run"], run=run)


def main(argv):
    config = config_from_flags()
    config.validate()
    common.generate_synthetic_if_wanted(config.run, FLAGS.generate_synthetic,
                                        FLAGS.synthetic_version)
    from gnas_keras.study import run_study  # the heavy work

    result = run_study(config)
    lines = ["", "== efficiency study =="]
    for r in result["ratios"]:
        t = r["gnas_seconds_to_random_final_error"]
        lines.append(
            f"{r['setting']:12s} V={r['val_batches']:<3d} Random final error "
            f"{r['random_final_error']:.4f} after {r['random_budget_seconds']:.1f} s; GNAS final "
            f"{r['gnas_final_error']:.4f} after {r['gnas_budget_seconds']:.1f} s; GNAS reaches "
            "Random's final error " + ("never" if t is None else
                                       f"at {t:.1f} s (ratio {r['ratio']:.3f})"))
    for name, curve in result["scratch"]["curves"].items():
        lines.append(f"from scratch {name:9s} test error {curve['errors'][-1]:.4f} after "
                     f"{curve['steps'][-1]} steps")
    lines.append(f"wrote {config.workdir}/efficiency.png, scratch.png, study.json, tensorboard/")
    print("\n".join(lines), flush=True)


def cli() -> None:
    """The console script `gnas-study` (`python -m flags.study` in a checkout)."""
    common.run(main)


if __name__ == "__main__":
    cli()
