r"""The adaptive-branching paper's grouping ablation (Lu et al. 2017, sec. 4.4) on a run.

    PYTHONPATH=. .venv/bin/python -m benchmarks.branching_ablation \
        --flagfile=flagfiles/synthetic_branching.flags \
        --report=runs/compare/branching/report.json --ablation_steps=400 --seeds=0,1

Takes the architecture a branching run found (``report.json``) and a shuffled copy of it:
the same tree with the same block counts, the attributes dealt to its heads by a seeded
random permutation (the paper swaps tasks between branches and retrains). Both are trained
from scratch with the run's settings for ``--ablation_steps`` steps per seed
(`training.train_from_scratch`) and tested; prints each seed's mean test error, the mean
difference shuffled - found with its standard error, and the ARI of both groupings to the
planted groups (synthetic set).
"""

from __future__ import annotations

from gnas_keras_flags import common  # noqa: F401  (first: quiets TensorFlow's start-up logging)

import dataclasses
import json

from absl import app, flags
import numpy as np

from gnas_keras_flags import dataclass_flags
from gnas_keras.space.architecture import Architecture
from gnas_keras.config import RunConfig
from gnas_keras.methods import REGISTRY

dataclass_flags.define(RunConfig(), "gnas_keras.config", choices={"method": list(REGISTRY)})
flags.DEFINE_string("report", "", "report.json of a finished branching run.")
flags.DEFINE_integer("ablation_steps", 400, "From-scratch training steps per tree and seed.")
flags.DEFINE_list("seeds", ["0"], "Seeds (weights and data order) per tree.")
flags.DEFINE_integer("shuffle_seed", 0, "Seed of the attribute permutation.")
FLAGS = flags.FLAGS


def shuffled(architecture: Architecture, seed: int) -> Architecture:
    """The same tree with attribute n's head moved to where attribute perm[n]'s was: every
    block keeps its number of attributes below it, the attributes are dealt at random."""
    perm = np.random.default_rng(seed).permutation(architecture.num_attributes)
    heads = architecture.parents[-1]
    return dataclasses.replace(architecture, parents=architecture.parents[:-1] + (
        tuple(heads[p] for p in perm),))


def main(argv):
    from gnas_keras.training.data import Data, planted_groups
    from gnas_keras.training.loop import train_from_scratch
    from gnas_keras.space.tree import adjusted_rand_index

    config = dataclass_flags.build(RunConfig)
    with open(FLAGS.report) as f:
        found = Architecture.from_dict(json.load(f)["architecture"])
    data = Data.load(config)
    trees = {"found": found, "shuffled": shuffled(found, FLAGS.shuffle_seed)}
    planted = planted_groups(data.meta)
    errors = {name: [] for name in trees}
    for seed in (int(s) for s in FLAGS.seeds):
        for name, tree in trees.items():
            result = train_from_scratch(tree, data, FLAGS.ablation_steps, config, seed,
                                        label=f"{name} seed {seed}")
            errors[name].append(result.test.mean_error)
            print(f"seed {seed} {name:8s} mean test error {result.test.mean_error:.4f}",
                  flush=True)
    for name, tree in trees.items():
        ari = f", ARI {adjusted_rand_index(tree.grouping(), planted):.3f}" if planted else ""
        print(f"{name:8s} block counts {tree.block_counts()}, mean test error "
              f"{np.mean(errors[name]):.4f} over {len(errors[name])} seed(s){ari}")
    diff = np.asarray(errors["shuffled"]) - np.asarray(errors["found"])
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    print(f"shuffled - found: {diff.mean():+.4f} +- {se:.4f} (standard error, "
          f"{len(diff)} seed(s))")


if __name__ == "__main__":
    app.run(main)
