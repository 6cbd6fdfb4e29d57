r"""Search (or train a fixed tree), fine-tune, test and export: one run of `gnas_keras.run`.

    python -m flags.search --flagfile=flagfiles/synthetic.flags
    python -m flags.search --dataset=celeba --data_dir=data/celeba --space=shallow_thin \
        --workdir=runs/celeba --train_steps=2000 --max_rounds=150

Every flag but --generate_synthetic and --synthetic_version is a field of
`gnas_keras.config.RunConfig` or of a method's config (`gnas_keras.methods`), with its
default and help text from there;
``--helpfull`` lists each method's settings under the method.
"""

from __future__ import annotations

import os

from gnas_keras_flags import common  # first: quiets TensorFlow's start-up logging

from absl import flags

from gnas_keras_flags import dataclass_flags
from gnas_keras.reporting import units
from gnas_keras.config import AUTO_SPACE, RunConfig
from gnas_keras.methods import REGISTRY
from gnas_keras.space.search_space import PRESETS

FLAGS = flags.FLAGS
common.define_synthetic_flags()
dataclass_flags.define(RunConfig(), "gnas_keras.config", choices={
    "space": [AUTO_SPACE, *sorted(PRESETS)], "method": list(REGISTRY)})


def config_from_flags() -> RunConfig:
    return dataclass_flags.build(RunConfig)


def print_summary(report, workdir: str) -> None:
    lines = [
        "", "== summary ==", report["tree_text"],
        f"method {report['method']} on {report['dataset']}: mean test error "
        f"{report['mean_test_error']:.4f}, {units.count(report['parameters'])} parameters, "
        f"{units.count(report['macs_per_image'])} MACs per image, "
        f"search {units.duration(report['search_seconds'])}",
    ]
    if "ari" in report:
        lines.append(f"ARI to the planted groups at {report['ari_layer']}: {report['ari']:.3f}")
    if report.get("provenance"):
        lines.append(f"tree provenance: {report['provenance']}")
    for name, c in report["comparisons_from_scratch"].items():
        ari = f", ARI {c['ari']:.3f}" if "ari" in c else ""
        lines.append(f"from scratch, {report['compare_steps']} steps: {name:12s} mean test "
                     f"error {c['mean_test_error']:.4f}, {units.count(c['parameters'])} "
                     f"parameters{ari}")
    # The parent directory: TensorBoard names the run after its work directory.
    lines.append(f"run directory {workdir} (tensorboard --logdir "
                 f"{os.path.dirname(os.path.abspath(workdir))})")
    if report["export"]:
        lines.append(f"SavedModel {report['export']}")
    print("\n".join(lines), flush=True)


def main(argv):
    config = config_from_flags()
    config.validate()
    common.generate_synthetic_if_wanted(config, FLAGS.generate_synthetic,
                                        FLAGS.synthetic_version)
    from gnas_keras.run import run  # imports TensorFlow: after the cheap checks
    print_summary(run(config), config.workdir)


def cli() -> None:
    """The console script `gnas-search` (`python -m flags.search` in a checkout)."""
    common.run(main)


if __name__ == "__main__":
    cli()
