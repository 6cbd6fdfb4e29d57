"""Fixed trees: baselines that choose a tree without searching (`gnas_keras.space.tree`).

- ``shared``: one trunk, every searchable block routed to block 0 below;
- ``independent``: as little sharing as the space allows (children dealt round-robin);
- ``random_tree``: one uniformly random tree (from the run's seeded generator);
- ``planted_tree``: the tree of the dataset's planted grouping (synthetic set only);
- ``label_tree``: the tree the training labels' correlations draw, no image read
  (`gnas_keras.space.tree.correlation_routing`): the baseline a search must beat to have found
  more than the labels say (GNAS+ ``--initial_tree=label_correlation`` starts from it).

The tree is trained as a fresh `TreeNetwork` by the run's fine-tune, so a fixed-tree run is
"train this architecture from scratch"; it checkpoints and resumes like any run (its search
is instantaneous and needs no state).
"""

from __future__ import annotations

from gnas_keras.space.architecture import Architecture
from gnas_keras.methods.base import Method, SearchContext, SearchResult
from gnas_keras.space.tree import routing_for


def fixed_architecture(name: str, context: SearchContext) -> Architecture:
    """The architecture of fixed method `name` for the context's space and data."""
    labels = (context.training_labels() if name == "label_tree" and context.training_labels
              else None)
    return Architecture.from_space(context.space, routing_for(
        name, context.space, context.num_attributes, context.rng, context.planted_groups,
        labels))


def _method(name: str, summary: str) -> Method:
    return Method(name, lambda context: SearchResult(fixed_architecture(name, context)),
                  uses_supernet=False, fixed=True, summary=summary)


METHODS = (
    _method("shared", "Fixed tree: one trunk, every searchable block under block 0."),
    _method("independent", "Fixed tree: least sharing, children dealt round-robin."),
    _method("random_tree", "Fixed tree: one uniformly random tree."),
    _method("planted_tree", "Fixed tree: the dataset's planted grouping (synthetic only)."),
    _method("label_tree", "Fixed tree: attributes clustered by their training labels' "
                          "correlation, no image read (the labels-only baseline)."),
)
