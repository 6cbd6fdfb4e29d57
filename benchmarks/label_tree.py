"""The sceptic's baseline for a planted grouping: how much of it do the labels alone give?

Clusters the attributes by the correlation of their training labels (no image is read:
`gnas_keras.space.tree.correlation_routing`, what GNAS+'s ``--initial_tree=label_correlation``
starts from) and prints the ARI of that grouping to the dataset's planted groups, from every
training label and from random subsets of a few sizes (mean and smallest ARI over
``--draws`` subsets each):

    python -m benchmarks.label_tree --data_dir=data/synthetic --space=tiny

A search that finds no more than this has found nothing the labels did not say.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from gnas_keras.space.architecture import Architecture  # noqa: E402
from gnas_keras.training.data import planted_groups  # noqa: E402
from gnas_keras.space.search_space import get_space  # noqa: E402
from gnas_keras.space.tree import adjusted_rand_index, correlation_routing  # noqa: E402
from gnas_keras_pipelines import input as data_input  # noqa: E402
from gnas_keras_pipelines import records  # noqa: E402
from gnas_keras_pipelines.convert_errors import ConversionError  # noqa: E402


def label_tree_ari(labels: np.ndarray, space_name: str, groups) -> float:
    """ARI between the planted `groups` and the grouping (at the space's group layer) of
    the tree the `labels` alone draw."""
    space = get_space(space_name)
    routing = correlation_routing(space, labels.shape[1], labels)
    return adjusted_rand_index(Architecture.from_space(space, routing).grouping(), groups)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--space", default="tiny")
    parser.add_argument("--sizes", default="64,128,256,1000",
                        help="comma-separated subset sizes (examples)")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        meta = records.check_dataset(args.data_dir)
        groups = planted_groups(meta)
        if groups is None:
            raise ValueError(f"{args.data_dir}: the dataset has no planted groups")
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        get_space(args.space)  # an unknown name: one line, before any work
    except (ValueError, OSError, ConversionError) as e:
        print(f"label_tree: error: {e}", file=sys.stderr)
        return 2
    labels = data_input.read_labels(args.data_dir, "train")
    print(f"{args.data_dir}: {labels.shape[1]} attributes, {len(labels)} training labels, "
          f"space {args.space}")
    print(f"every training label: ARI {label_tree_ari(labels, args.space, groups):.3f}")
    rng = np.random.default_rng(args.seed)
    for size in sizes:
        if size > len(labels):
            continue
        aris = [label_tree_ari(labels[rng.choice(len(labels), size, replace=False)],
                               args.space, groups) for _ in range(args.draws)]
        print(f"{size:>6} labels: ARI mean {np.mean(aris):.3f}, smallest {np.min(aris):.3f} "
              f"({args.draws} random subsets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
