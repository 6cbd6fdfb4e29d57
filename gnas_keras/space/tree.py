"""Routing: which parent block feeds every block, i.e. one tree of the search space.

``Routing.parents[l][j]`` is the index of the block of layer ``l - 1`` that feeds block ``j``
of layer ``l`` (the paper's adjacency A^(l-1) of Eq. 2, stored as one parent per child, which
makes the tree constraint hold by construction). ``parents[0]`` is all zeros: the first layer's
only block reads the image. The last layer's block ``n`` is attribute ``n``.

Descendants (the paper's I_j): the attributes whose path to the image passes through a block.
A block with no descendants is dead: it is computed by the supernet but pruned on export.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import numpy as np

from gnas_keras.space.search_space import SearchSpace


@dataclasses.dataclass(frozen=True)
class Routing:
    parents: tuple  # tuple (per layer) of tuples of ints

    @classmethod
    def from_lists(cls, parents: Sequence[Sequence[int]]) -> "Routing":
        return cls(tuple(tuple(int(p) for p in layer) for layer in parents))

    def with_layer(self, layer: int, parents: Sequence[int]) -> "Routing":
        new = list(self.parents)
        new[layer] = tuple(int(p) for p in parents)
        return Routing(tuple(new))

    # --- structure -------------------------------------------------------------------------
    def descendants(self) -> List[List[frozenset]]:
        """I[l][j]: the set of attribute indices below block j of layer l."""
        num_layers = len(self.parents)
        out: List[List[set]] = [[set() for _ in layer] for layer in self.parents]
        for n in range(len(self.parents[-1])):
            out[-1][n].add(n)
        for l in range(num_layers - 1, 0, -1):
            for j, p in enumerate(self.parents[l]):
                out[l - 1][p] |= out[l][j]
        return [[frozenset(s) for s in layer] for layer in out]

    def live_blocks(self) -> List[List[int]]:
        """Indices of the blocks with at least one descendant attribute, per layer."""
        return [[j for j, d in enumerate(layer) if d] for layer in self.descendants()]

    def dead_blocks(self) -> List[List[int]]:
        return [[j for j, d in enumerate(layer) if not d] for layer in self.descendants()]

    def grouping(self, layer: int) -> List[int]:
        """Attribute n's ancestor block at `layer`: the partition of attributes there."""
        labels = [-1] * len(self.parents[-1])
        for j, d in enumerate(self.descendants()[layer]):
            for n in d:
                labels[n] = j
        return labels

    def validate(self, space: SearchSpace, num_attributes: int) -> None:
        """Raises ValueError naming the layer and block if this is not a tree of `space`."""
        counts = space.block_counts(num_attributes)
        if len(self.parents) != len(counts):
            raise ValueError(f"routing has {len(self.parents)} layers, space {space.name} "
                             f"has {len(counts)}")
        for l, (spec, layer) in enumerate(zip(space.layers, self.parents)):
            if len(layer) != counts[l]:
                raise ValueError(f"layer {spec.name}: {len(layer)} parents for {counts[l]} "
                                 "blocks")
            below = 1 if l == 0 else counts[l - 1]
            for j, p in enumerate(layer):
                if not 0 <= p < below:
                    raise ValueError(f"layer {spec.name} block {j}: parent {p} is not a block "
                                     f"of the layer below (0..{below - 1})")
            if l > 0 and not spec.searchable and tuple(layer) != fixed_parents(below, counts[l]):
                raise ValueError(f"layer {spec.name} is not searchable but its routing "
                                 f"{list(layer)} differs from the fixed one")


def fixed_parents(below: int, here: int) -> tuple:
    """The routing of a layer that is not searched (see `gnas_keras.space.search_space`)."""
    return tuple([0] * here) if below == 1 else tuple(range(here))


def _routing(space: SearchSpace, num_attributes: int, choose) -> Routing:
    counts = space.block_counts(num_attributes)
    parents = [tuple([0] * counts[0])]
    for l in range(1, len(counts)):
        if space.layers[l].searchable:
            parents.append(tuple(choose(l, counts[l - 1], counts[l])))
        else:
            parents.append(fixed_parents(counts[l - 1], counts[l]))
    routing = Routing.from_lists(parents)
    routing.validate(space, num_attributes)
    return routing


def random_routing(space: SearchSpace, num_attributes: int,
                   rng: np.random.Generator) -> Routing:
    """Every searchable block gets a parent drawn uniformly (Alg. 1's initialization)."""
    return _routing(space, num_attributes,
                    lambda l, below, here: rng.integers(0, below, size=here))


def shared_routing(space: SearchSpace, num_attributes: int) -> Routing:
    """One trunk: every searchable block routed to block 0 below."""
    return _routing(space, num_attributes, lambda l, below, here: [0] * here)


def independent_routing(space: SearchSpace, num_attributes: int) -> Routing:
    """As little sharing as the space allows: children dealt round-robin over their parents
    (block j -> j % below), so every parent block is used and siblings are few. Round-robin
    rather than contiguous runs, so that attributes listed group by group (as in the
    synthetic set) are not split into their groups by accident."""
    return _routing(space, num_attributes,
                    lambda l, below, here: [j % below for j in range(here)])


def adjusted_rand_index(a: Sequence[int], b: Sequence[int]) -> float:
    """ARI (Hubert & Arabie 1985) between two labelings of the same items; 1 = identical
    partitions, ~0 = chance. Defined as 1.0 when both put everything in one cluster."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"labelings must be 1-D of equal length, got {a.shape} and {b.shape}")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), dtype=np.int64)
    np.add.at(table, (ai, bi), 1)

    def pairs(x):
        return (x * (x - 1) // 2).sum()

    index = pairs(table)
    rows, cols, total = pairs(table.sum(1)), pairs(table.sum(0)), pairs(np.array([len(a)]))
    expected = rows * cols / total if total else 0.0
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))


def planted_routing(space: SearchSpace, num_attributes: int, groups: Sequence[int]) -> Routing:
    """The tree a known grouping asks for: attribute n's fc1 block hangs under block
    ``groups[n] % B`` of the top conv layer, and below it block j under block
    ``j % B_{l-1}``, so different groups share as little as the space allows."""
    heads = space.grouping_layer + 1  # the layer whose blocks are the attributes' own
    return _routing(space, num_attributes, lambda l, below, here: (
        [groups[n] % below for n in range(here)] if l == heads
        else [j % below for j in range(here)]))


def label_correlations(labels: np.ndarray) -> np.ndarray:
    """Pearson correlation [N, N] between the attributes' labels (int [n, N]: 1, 0, or -1
    unknown), each pair over the examples where both are known; 0 where either label is
    constant there (nothing to correlate), 1 on the diagonal."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels: expected [examples, attributes], got shape {labels.shape}")
    known = (labels >= 0).astype(np.float64)
    x = (labels == 1).astype(np.float64)        # 0 where unknown, so sums skip those
    count = known.T @ known                     # [N, N]: examples with both labels known
    sum_i = x.T @ known                         # sum of attribute i's labels over those
    sum_ij = x.T @ x
    # Binary labels: sum of squares = sum.
    covariance = count * sum_ij - sum_i * sum_i.T
    variance_i = count * sum_i - sum_i ** 2
    scale = np.sqrt(np.maximum(variance_i, 0.0) * np.maximum(variance_i.T, 0.0))
    correlation = np.divide(covariance, scale, out=np.zeros_like(covariance), where=scale > 0)
    np.fill_diagonal(correlation, 1.0)
    return np.clip(correlation, -1.0, 1.0)


def correlation_clusters(correlation: np.ndarray, num_clusters: int) -> np.ndarray:
    """Attributes clustered by their labels alone: `dendrogram_clusters` on the distance
    1 - |r| (a negative correlation links as well as a positive one)."""
    return dendrogram_clusters(1.0 - np.abs(np.asarray(correlation, np.float64)), num_clusters)


def dendrogram_clusters(distance: np.ndarray, num_clusters: int) -> np.ndarray:
    """Average linkage (scipy's hierarchy) on a symmetric distance [N, N] between attributes
    (its diagonal is not read), cut into at most `num_clusters` clusters. int [N] in
    0..C-1, clusters numbered by their lowest attribute index, so cuts of one dendrogram
    nest and number alike."""
    from scipy.cluster import hierarchy
    n = len(distance)
    if n < 2 or num_clusters <= 1:
        return np.zeros(n, np.int64)
    distance = np.asarray(distance, np.float64)
    linkage = hierarchy.linkage(distance[np.triu_indices(n, k=1)], method="average")
    labels = hierarchy.fcluster(linkage, t=min(num_clusters, n), criterion="maxclust")
    order = {c: i for i, c in enumerate(dict.fromkeys(labels))}  # by first attribute
    return np.array([order[c] for c in labels], np.int64)


def correlation_routing(space: SearchSpace, num_attributes: int,
                        labels: np.ndarray) -> Routing:
    """A tree drawn from the training labels alone (GNAS+ ``initial_tree``):
    `dendrogram_routing` on the distance 1 - |label correlation|."""
    correlation = label_correlations(labels)
    if correlation.shape[0] != num_attributes:
        raise ValueError(f"labels: {correlation.shape[0]} attributes, the space is built "
                         f"for {num_attributes}")
    return dendrogram_routing(space, num_attributes, 1.0 - np.abs(correlation))


def affinity_routing(space: SearchSpace, num_attributes: int,
                     affinity: np.ndarray) -> Routing:
    """A tree from an inter-task affinity [N, N] (row i's step onto column j's loss,
    `gnas_keras.methods.affinity`): `dendrogram_routing` on the distance max(S) - S of the
    symmetric affinity S = (Z + Z^T) / 2, so the pairs that help each other most link
    first and average linkage maximises the mean affinity within clusters greedily."""
    affinity = np.asarray(affinity, np.float64)
    if affinity.shape != (num_attributes, num_attributes):
        raise ValueError(f"affinity: expected shape {(num_attributes, num_attributes)}, got "
                         f"{affinity.shape}")
    symmetric = (affinity + affinity.T) / 2.0
    return dendrogram_routing(space, num_attributes, symmetric.max() - symmetric)


def dendrogram_routing(space: SearchSpace, num_attributes: int,
                       distance: np.ndarray) -> Routing:
    """One dendrogram of the attributes on `distance` [N, N] (`dendrogram_clusters`), cut
    for each layer into as many clusters as the layer has blocks; block j of the layer stands
    for cluster j, and its parent is the block below that holds most of its attributes (the
    lowest index on a tie). A block with no cluster (more blocks than clusters) takes the
    widest parent, j mod B_{l-1}; a layer with one block per attribute stands for the
    attributes themselves."""
    counts = space.block_counts(num_attributes)
    # cluster[l][n]: the block of layer l that stands for attribute n.
    cluster = [np.arange(num_attributes) if count == num_attributes
               else dendrogram_clusters(distance, count) for count in counts]

    def choose(l, below, here):
        parents = []
        for j in range(here):
            members = np.flatnonzero(cluster[l] == j)
            parents.append(int(np.bincount(cluster[l - 1][members], minlength=below).argmax())
                           if len(members) else j % below)
        return parents

    return _routing(space, num_attributes, choose)


def routing_for(method: str, space: SearchSpace, num_attributes: int,
                rng: Optional[np.random.Generator] = None,
                planted: Optional[Sequence[int]] = None,
                labels: Optional[np.ndarray] = None) -> Routing:
    """The fixed tree of a baseline method: ``shared``, ``independent``, ``random_tree``,
    ``planted_tree`` (needs the dataset's planted group of every attribute) or
    ``label_tree`` (needs the training labels: `correlation_routing`)."""
    if method == "shared":
        return shared_routing(space, num_attributes)
    if method == "independent":
        return independent_routing(space, num_attributes)
    if method == "random_tree":
        return random_routing(space, num_attributes, rng or np.random.default_rng())
    if method == "planted_tree":
        if planted is None:
            raise ValueError("planted_tree: the dataset has no planted grouping")
        return planted_routing(space, num_attributes, planted)
    if method == "label_tree":
        if labels is None:
            raise ValueError("label_tree: needs the training labels")
        return correlation_routing(space, num_attributes, labels)
    raise ValueError(f"no fixed routing for method {method!r}")
