"""Adaptive branching (Lu et al. 2017, "Fully-adaptive Feature Sharing"): the numpy parts.

Everything here is pure numpy/scipy and knows nothing about Keras, so that the method's
algorithm can be read, tested and checkpointed on its own; the core's model and train loop
call it. Paper: ``../shared/papers/fully-adaptive-feature-sharing.md``.

1. Task affinity (sec. 3.3, Eq. 6). ``m_i^n = |t_i^n - s_i^n|`` is the *error margin* of
   example n for binary task i: t in {0, 1} is the label and s the predicted probability
   that the attribute is present (the sigmoid unit's output; with two softmax logits per
   attribute, the softmax probability of class 1). It is 1 - p(true class), in [0, 1].
   Example n is *difficult* for task i when ``m_i^n >= E{m_i}``. The affinity of two tasks
   is the probability that an example is difficult for both or simple for both. Both
   expectations are estimated from the training mini-batches as weighted averages of the
   within-batch averages, with exponentially decaying weights (decay 0.99, sec. 4.5).
   `batch_task_affinity` is one batch; `TaskAffinity` accumulates.
2. Branch affinity (Eq. 7-8): `branch_affinity`.
3. Width selection (Eq. 9-11): `spectral_clustering`, `separation_loss`, `select_width`.
4. Widening (sec. 3.2, Eq. 4-5): `widen_junction` (the junction's block copied d times).
5. SOMP initialisation (sec. 3.1, Alg. 2): `somp_select`, `somp_thin_layers`.
6. Thin-omega layouts (sec. 3.1, Fig. 1): `thin_vgg16`, `thin_vgg_small`,
   `pooling_layers_above`.

One widening round (Alg. 1) with these parts, for the junction whose c child branches hold
the task sets ``branch_tasks`` and whose block (the layer just below them) is at index l of
the layout::

    selection = select_width(branch_affinity(acc.affinity(), branch_tasks),
                             pooling_layers_above(layout)[l], alpha, L0)
    if selection.chosen.num_branches == 1: stop widening (Alg. 1's d > 1 test)
    widened = widen_junction(weights_of_block_l, selection.chosen.labels)
    branch_tasks = merge_branch_tasks(branch_tasks, selection.chosen.labels)  # next junction

Array shapes: B examples per batch, T tasks (attributes), c branches at the junction being
widened, d new branches. Kernels are Keras-layout: conv ``[kh, kw, in, out]``, dense
``[in, out]``; the filters (the paper's rows of W) are the last axis.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# ---------------------------------------------------------------------------------------
# 1. Task affinity (Eq. 6)
# ---------------------------------------------------------------------------------------


def error_margins(labels: np.ndarray, present_probability: np.ndarray
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """The paper's error margins ``m = |t - s|`` of one batch.

    Args:
      labels: int [B, T] in {0, 1}, or -1 where the attribute is unknown.
      present_probability: float [B, T], the predicted probability that the attribute is
        present (the paper's sigmoid output s).
    Returns:
      margins: float64 [B, T] in [0, 1]; 0 where the label is unknown (never read there).
      known: bool [B, T], labels >= 0.
    """
    labels = np.asarray(labels)
    probability = np.asarray(present_probability, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != probability.shape:
        raise ValueError(f"labels {labels.shape} and probabilities {probability.shape} must "
                         "both be [batch, tasks]")
    known = labels >= 0
    margins = np.where(known, np.abs(np.maximum(labels, 0) - probability), 0.0)
    return margins, known


def batch_mean_margins(margins: np.ndarray, known: np.ndarray
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Within-batch mean margin of each task over its known examples.

    Returns (mean float [T], 0 where a task has no known example; count int [T]).
    """
    count = known.sum(axis=0)
    total = np.where(known, margins, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0), count


def batch_task_affinity(margins: np.ndarray, known: np.ndarray, mean_margin: np.ndarray
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """Eq. 6 within one batch: mean of ``e_i e_j + (1 - e_i)(1 - e_j)`` over the examples
    whose labels are known for both tasks, with ``e_i = [m_i >= mean_margin_i]``.

    Args:
      margins, known: [B, T] from `error_margins`.
      mean_margin: float [T], the current estimate of E{m_i} (the threshold).
    Returns:
      affinity: float64 [T, T], symmetric, 0 where a pair has no jointly known example.
      pair_count: int [T, T], examples known for both tasks (diagonal: for the task).
    """
    known_f = known.astype(np.float64)
    is_difficult = margins >= np.asarray(mean_margin, dtype=np.float64)[None, :]
    difficult = is_difficult * known_f
    simple = (~is_difficult) * known_f
    agree = difficult.T @ difficult + simple.T @ simple  # [T, T] counts of concordant pairs
    pair_count = np.rint(known_f.T @ known_f).astype(np.int64)
    affinity = np.where(pair_count > 0, agree / np.maximum(pair_count, 1), 0.0)
    return affinity, pair_count


@dataclasses.dataclass(eq=False)  # array fields: identity, not elementwise, equality
class TaskAffinity:
    """Running Eq. 6 affinity, a weighted average of within-batch averages.

    The paper (sec. 3.3) estimates both E{m_i} and the expectation of Eq. 6 by "a weighted
    average of the within-batch sample averages" with "an exponentially decaying weight"
    (error decay factor 0.99, sec. 4.5). Read literally, after batches 1..n the estimate is
    ``sum_b decay^(n-b) x_b / sum_b decay^(n-b)``: we keep numerator and denominator, so the
    first batches are not biased towards the zero start (unlike a plain EMA started at 0).

    Choices where the paper is silent (flags-to-be where it matters):
      - the threshold of a batch is the running E{m_i} *including* that batch (there is no
        earlier estimate for the first batch);
      - a label of -1 removes the example from that task's margin mean and from every pair
        involving that task; a batch with no known example for a task (pair) adds no weight
        to it, while the decay still ages its older batches (weights decay per iteration);
      - a pair never observed together (two datasets with disjoint labels, sec. 4.3 without
        the paper's soft targets) gets `unobserved_affinity` (default 0.5, what two
        independent tasks each difficult half the time would get: neither attracts nor
        repels); a task with itself is always 1.
      - no reset after a widening round: tasks, not branches, are measured, and with decay
        0.99 the weight of batches before a 1,000-iteration round is 0.99^1000 ~ 4e-5.

    State is four float64 arrays plus the two parameters (`arrays` / `from_arrays`, e.g. for
    ``np.savez``).

    Attributes:
      num_tasks: T.
      decay: weight ratio of consecutive batches (paper: 0.99).
      unobserved_affinity: affinity reported for a pair never labelled together.
      margin_sum, margin_weight: float64 [T], decayed sums of batch mean margins and weights.
      affinity_sum, affinity_weight: float64 [T, T], the same for Eq. 6.
    """

    num_tasks: int
    decay: float = 0.99
    unobserved_affinity: float = 0.5
    margin_sum: Optional[np.ndarray] = None
    margin_weight: Optional[np.ndarray] = None
    affinity_sum: Optional[np.ndarray] = None
    affinity_weight: Optional[np.ndarray] = None

    def __post_init__(self):
        if self.num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {self.num_tasks}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {self.decay}")
        t = self.num_tasks
        for name, shape in (("margin_sum", (t,)), ("margin_weight", (t,)),
                            ("affinity_sum", (t, t)), ("affinity_weight", (t, t))):
            value = getattr(self, name)
            value = np.zeros(shape) if value is None else np.array(value, dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"TaskAffinity.{name} has shape {value.shape}, "
                                 f"expected {shape} for {t} tasks")
            setattr(self, name, value)

    def update(self, labels: np.ndarray, present_probability: np.ndarray) -> None:
        """Adds one training batch (labels int [B, T] with -1 unknown; probabilities [B, T])."""
        margins, known = error_margins(labels, present_probability)
        if margins.shape[1] != self.num_tasks:
            raise ValueError(f"batch has {margins.shape[1]} tasks, expected {self.num_tasks}")
        batch_margin, margin_count = batch_mean_margins(margins, known)
        seen = margin_count > 0
        self.margin_sum = self.decay * self.margin_sum + np.where(seen, batch_margin, 0.0)
        self.margin_weight = self.decay * self.margin_weight + seen
        batch_affinity, pair_count = batch_task_affinity(margins, known, self.mean_margin())
        seen = pair_count > 0
        self.affinity_sum = self.decay * self.affinity_sum + np.where(seen, batch_affinity, 0.0)
        self.affinity_weight = self.decay * self.affinity_weight + seen

    def mean_margin(self) -> np.ndarray:
        """float [T]: the estimate of E{m_i}; 0 for a task never labelled."""
        w = self.margin_weight
        return np.where(w > 0, self.margin_sum / np.where(w > 0, w, 1.0), 0.0)

    def affinity(self) -> np.ndarray:
        """float [T, T]: the estimate of Eq. 6 (symmetric, diagonal 1)."""
        w = self.affinity_weight
        a = np.where(w > 0, self.affinity_sum / np.where(w > 0, w, 1.0),
                     self.unobserved_affinity)
        np.fill_diagonal(a, 1.0)
        return a

    def arrays(self) -> Dict[str, np.ndarray]:
        """The whole state as named arrays (``np.savez(path, **acc.arrays())``)."""
        return {"decay": np.float64(self.decay),
                "unobserved_affinity": np.float64(self.unobserved_affinity),
                "margin_sum": self.margin_sum.copy(), "margin_weight": self.margin_weight.copy(),
                "affinity_sum": self.affinity_sum.copy(),
                "affinity_weight": self.affinity_weight.copy()}

    @classmethod
    def from_arrays(cls, arrays) -> "TaskAffinity":
        """Inverse of `arrays` (accepts the mapping ``np.load`` returns)."""
        return cls(num_tasks=int(np.shape(arrays["margin_sum"])[0]),
                   decay=float(arrays["decay"]),
                   unobserved_affinity=float(arrays["unobserved_affinity"]),
                   margin_sum=arrays["margin_sum"], margin_weight=arrays["margin_weight"],
                   affinity_sum=arrays["affinity_sum"],
                   affinity_weight=arrays["affinity_weight"])


# ---------------------------------------------------------------------------------------
# 2. Branch affinity (Eq. 7-8)
# ---------------------------------------------------------------------------------------


def branch_affinity(task_affinity: np.ndarray, branch_tasks: Sequence[Sequence[int]]
                    ) -> np.ndarray:
    """Eq. 7-8: affinity of branches that each hold a set of tasks.

    ``A~(k, l) = mean_{i in k} min_{j in l} A(i, j)``; ``A_b(k, l) = (A~(k, l) + A~(l, k)) / 2``.
    The diagonal is the same formula with k = l (1 for a one-task branch, lower for a branch
    whose tasks disagree), which Eq. 10 reads for one-branch groups.

    Args:
      task_affinity: float [T, T] (Eq. 6).
      branch_tasks: c sequences of task indices, one per branch (non-empty).
    Returns:
      float [c, c], symmetric.
    """
    a = np.asarray(task_affinity, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"task affinity must be [T, T], got {a.shape}")
    sets = [np.asarray(list(tasks), dtype=np.int64) for tasks in branch_tasks]
    for b, tasks in enumerate(sets):
        if tasks.size == 0 or tasks.min() < 0 or tasks.max() >= a.shape[0]:
            raise ValueError(f"branch {b} holds tasks {tasks.tolist()}: need a non-empty set "
                             f"of indices in [0, {a.shape[0]})")
    c = len(sets)
    directed = np.empty((c, c))  # directed[k, l] = A~(k, l)
    for k in range(c):
        for l in range(c):
            directed[k, l] = a[np.ix_(sets[k], sets[l])].min(axis=1).mean()
    return (directed + directed.T) / 2.0


# ---------------------------------------------------------------------------------------
# 3. Width selection (Eq. 9-11)
# ---------------------------------------------------------------------------------------


def canonical_labels(labels: Sequence[int]) -> Tuple[int, ...]:
    """Renumbers groups in order of first appearance (``[2, 2, 0, 1] -> (0, 0, 1, 2)``), so
    that equal partitions have equal labels (deterministic trees, comparable reports)."""
    first: Dict[int, int] = {}
    return tuple(first.setdefault(int(g), len(first)) for g in labels)


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, n_init: int,
            max_iter: int = 300) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding, best of `n_init` by inertia. Every cluster is
    kept non-empty (a point of a cluster with two or more moves to an empty one), since
    every new branch must hold at least one old branch."""
    n = points.shape[0]
    best_labels, best_inertia = None, np.inf
    for _ in range(n_init):
        centers = [points[rng.integers(n)]]
        for _ in range(1, k):
            d2 = ((points[:, None, :] - np.asarray(centers)[None]) ** 2).sum(-1).min(1)
            total = d2.sum()
            p = d2 / total if total > 0 else np.full(n, 1.0 / n)
            centers.append(points[rng.choice(n, p=p)])
        centers = np.asarray(centers)
        labels = np.full(n, -1)
        for _ in range(max_iter):
            d2 = ((points[:, None, :] - centers[None]) ** 2).sum(-1)
            new_labels = d2.argmin(1)
            for empty in np.setdiff1d(np.arange(k), new_labels):
                sizes = np.bincount(new_labels, minlength=k)
                movable = np.flatnonzero(sizes[new_labels] > 1)
                far = movable[np.argmax(d2[movable, new_labels[movable]])]
                new_labels[far] = empty
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
            centers = np.stack([points[labels == j].mean(0) for j in range(k)])
        inertia = ((points - centers[labels]) ** 2).sum()
        if inertia < best_inertia - 1e-12:
            best_labels, best_inertia = labels.copy(), inertia
    return best_labels


def spectral_clustering(affinity: np.ndarray, num_clusters: int, seed: int = 0,
                        n_init: int = 10) -> Tuple[int, ...]:
    """Partitions c nodes with a precomputed affinity into `num_clusters` groups.

    The authors called scikit-learn's ``SpectralClustering(affinity="precomputed")`` (their
    released code, luyongxi/deep_share). This is the same algorithm written out in numpy
    instead of adding scikit-learn (and joblib, threadpoolctl) to requirements.txt for a
    ~40-line computation on at most a few dozen nodes, and so that the result depends only on
    `seed` and LAPACK, not on a library version (resumed ``--deterministic`` runs must find
    the same tree): the symmetric normalised Laplacian of the affinity with its diagonal
    ignored (as scipy's ``csgraph.laplacian(normed=True)``), its `num_clusters` eigenvectors
    of smallest eigenvalue divided by sqrt(degree) (scikit-learn's ``spectral_embedding``),
    then k-means with k-means++ seeding, best of `n_init`.

    Args:
      affinity: float [c, c], symmetric, non-negative.
      num_clusters: d in [1, c].
    Returns:
      `canonical_labels` of the c nodes, values in [0, d), every group non-empty.
    """
    a = np.asarray(affinity, dtype=np.float64)
    c = a.shape[0] if a.ndim == 2 else 0
    if c == 0 or a.shape != (c, c) or not np.all(np.isfinite(a)) or np.any(a < 0) \
            or not np.allclose(a, a.T):
        raise ValueError(f"affinity must be a finite, symmetric, non-negative [c, c] matrix, "
                         f"got shape {a.shape}")
    if not 1 <= num_clusters <= c:
        raise ValueError(f"num_clusters must be in [1, {c}], got {num_clusters}")
    if num_clusters == 1:
        return (0,) * c
    if num_clusters == c:
        return tuple(range(c))
    w = a.copy()
    np.fill_diagonal(w, 0.0)
    degree = w.sum(1)
    root = np.sqrt(np.where(degree > 0, degree, 1.0))  # isolated nodes: as scipy, divide by 1
    laplacian = np.eye(c) - w / root[:, None] / root[None, :]
    laplacian[degree == 0, degree == 0] = 0.0
    _, vectors = np.linalg.eigh(laplacian)  # ascending eigenvalues
    embedding = vectors[:, :num_clusters] / root[:, None]
    labels = _kmeans(embedding, num_clusters, np.random.default_rng(seed), n_init)
    return canonical_labels(labels)


def separation_loss(branch_affinity_matrix: np.ndarray, labels: Sequence[int]) -> float:
    """Eq. 10-11: ``L_s = mean over groups i of 1 - mean_{k in i} min_{l in i} A_b(k, l)``."""
    a = np.asarray(branch_affinity_matrix, dtype=np.float64)
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    return float(np.mean([1.0 - a[np.ix_(g, g)].min(axis=1).mean() for g in groups]))


@dataclasses.dataclass(frozen=True)
class WidthCandidate:
    """One d of Eq. 9: ``loss = branch_cost + branch_factor * separation``.

    Attributes:
      num_branches: d.
      labels: the group of each of the c old branches (`canonical_labels`).
      branch_cost: ``(d - 1) * L0 * 2^p_l``.
      separation: L_s (Eq. 11), before multiplying by alpha.
      loss: Eq. 9.
    """

    num_branches: int
    labels: Tuple[int, ...]
    branch_cost: float
    separation: float
    loss: float


@dataclasses.dataclass(frozen=True)
class WidthSelection:
    """Every candidate d = 1..c (for the report) and the chosen one (smallest loss; the
    smaller d on an exact tie, the cheaper network)."""

    candidates: Tuple[WidthCandidate, ...]
    chosen: WidthCandidate


def select_width(branch_affinity_matrix: np.ndarray, pools_above: int, branch_factor: float,
                 branch_unit_cost: float, seed: int = 0) -> WidthSelection:
    """Eq. 9: the number of branches d (and the grouping) for the layer being widened.

    Args:
      branch_affinity_matrix: float [c, c] (`branch_affinity` of the junction's c branches).
      pools_above: p_l, the number of pooling layers *above* the layer whose block is copied
        (sec. 3.4: "p_l is defined as the number of pooling layers above the layer l"; the
        cost doubles after each pooling layer going down, where feature maps are larger).
        `pooling_layers_above` gives it for a layout.
      branch_factor: alpha (paper: 1.0 or 2.0); larger creates more branches.
      branch_unit_cost: L0, the cost of one extra branch at a layer with no pooling layer
        above it. The paper gives no value. Since L_s is in [0, 1] and L_s(d = c) is 0 for
        one-task branches, no branch is ever created where ``L0 2^p_l >= alpha L_s(g_1)``:
        with alpha = 1 and typical affinities (0.5-0.9) L0 must be well below 0.5 for the
        fc layers to branch at all, and below 0.5 / 32 for conv1 (p = 5).
      seed: for the k-means of `spectral_clustering`.
    """
    if pools_above < 0 or branch_factor < 0 or branch_unit_cost < 0:
        raise ValueError(f"pools_above ({pools_above}), branch_factor ({branch_factor}) and "
                         f"branch_unit_cost ({branch_unit_cost}) must be >= 0")
    a = np.asarray(branch_affinity_matrix, dtype=np.float64)
    candidates = []
    for d in range(1, a.shape[0] + 1):
        labels = spectral_clustering(a, d, seed=seed)
        cost = (d - 1) * branch_unit_cost * 2.0 ** pools_above
        separation = separation_loss(a, labels)
        candidates.append(WidthCandidate(d, labels, cost, separation,
                                         cost + branch_factor * separation))
    chosen = candidates[int(np.argmin([c.loss for c in candidates]))]
    return WidthSelection(tuple(candidates), chosen)


def merge_branch_tasks(branch_tasks: Sequence[Sequence[int]], labels: Sequence[int]
                       ) -> Tuple[Tuple[int, ...], ...]:
    """Tasks of each new branch: the union of its old branches' tasks (sorted)."""
    if len(branch_tasks) != len(labels):
        raise ValueError(f"{len(branch_tasks)} branches but {len(labels)} labels")
    labels = canonical_labels(labels)
    return tuple(tuple(sorted(t for tasks, g in zip(branch_tasks, labels) if g == group
                              for t in tasks))
                 for group in range(max(labels) + 1))


# ---------------------------------------------------------------------------------------
# 4. Widening (sec. 3.2)
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WidenedJunction:
    """A junction block widened into d copies.

    Attributes:
      copies: d lists of arrays, each an independent copy of the block's weights (kernel,
        bias, BN gamma/beta/mean/variance: whatever the block has, in its order).
      copy_of_child: for each of the c child branches, the copy it now reads from.
    """

    copies: Tuple[Tuple[np.ndarray, ...], ...]
    copy_of_child: Tuple[int, ...]


def widen_junction(block_weights: Sequence[np.ndarray], child_groups: Sequence[int]
                   ) -> WidenedJunction:
    """Eq. 4-5: replaces the block below a junction by one copy per group of its children.

    The paper initialises every new ``W_j^{l-1}`` to the old ``W^{l-1}`` (sec. 3.2). Every
    child branch reads from the copy of its group, which computes exactly what the one block
    did, so the network's outputs are unchanged right after widening, for dense and conv
    blocks alike (nothing is split or rescaled: the widening fans out, never in). The
    optimizer's slots of the block must be copied the same way (the core's job).

    Args:
      block_weights: the block's arrays (e.g. ``layer.get_weights()`` of each layer in it).
      child_groups: for each child branch of the block, its group in [0, d) (any labels;
        renumbered by `canonical_labels`).
    """
    if len(child_groups) == 0:
        raise ValueError("a junction needs at least one child branch")
    copy_of_child = canonical_labels(child_groups)
    d = max(copy_of_child) + 1
    copies = tuple(tuple(np.array(w, copy=True) for w in block_weights) for _ in range(d))
    return WidenedJunction(copies, copy_of_child)


# ---------------------------------------------------------------------------------------
# 5. SOMP initialisation (sec. 3.1, Alg. 2)
# ---------------------------------------------------------------------------------------


def _filter_matrix(kernel: np.ndarray) -> np.ndarray:
    """Kernel [..., out] -> float64 [inputs, out], one filter per column."""
    return np.asarray(kernel, dtype=np.float64).reshape(-1, np.shape(kernel)[-1])


def somp_select(kernel: np.ndarray, num_filters: int, norm_order: float = 2.0) -> np.ndarray:
    """Eq. 2 by greedy simultaneous orthogonal matching pursuit (Tropp et al. 2006).

    Chooses `num_filters` of the kernel's filters (columns of ``W``, [inputs, filters]) so
    that every filter is approximated by a linear combination of the chosen ones:
    ``min ||W - W_w A||_F``. The signals and the dictionary are both the filters. Each step
    adds the filter whose normalised correlations with all current residuals have the
    largest `norm_order` norm (the authors' released code uses the 2-norm; Tropp's SOMP the
    1-norm), then projects every filter off the span of the chosen ones.

    Cost: the correlations are ``G - P B`` with the Gram matrix ``G`` of the filters (formed
    once) and a rank-t correction, so a step is O(filters^2 t) instead of
    O(filters^2 inputs): VGG's fc6 (truncated to 7*7*32 inputs, 4096 filters) stays minutes
    rather than hours (one [1568, 4096] kernel, keeping 64: 60 s on this 2-core machine).

    Measured against random selection (relative residual `reconstruction_residual`; mean of
    20 random subsets; seeds 0-9; gap = random - SOMP, mean +- standard error, smallest):
      - i.i.d. normal conv [3, 3, 8, 128], keep 32: SOMP 0.612, gap 0.0355 +- 0.0011, >= 0.029;
      - i.i.d. normal conv [3, 3, 16, 128], keep 32: SOMP 0.739, gap 0.0250 +- 0.0007, >= 0.021;
      - 16 shared prototypes + noise [3, 3, 16, 128], keep 32: SOMP/random 0.885 (<= 0.909),
        gap 0.0094 +- 0.0004 (both residuals small).
    The 2-norm beat the 1-norm on the first two (0.612 vs 0.615, 0.739 vs 0.747).

    Args:
      kernel: conv [kh, kw, in, out] or dense [in, out].
      num_filters: k <= out.
    Returns:
      int [k], the chosen filter indices in ascending order.
    """
    w = _filter_matrix(kernel)
    inputs, filters = w.shape
    if not 1 <= num_filters <= filters:
        raise ValueError(f"num_filters must be in [1, {filters}], got {num_filters}")
    norms = np.linalg.norm(w, axis=0)
    atoms = w / np.where(norms > 0, norms, 1.0)  # zero filters correlate with nothing
    gram = atoms.T @ w  # [filters, filters]: atoms' correlations with the initial residual
    basis = np.zeros((inputs, 0))  # orthonormal basis Q of the chosen filters' span
    atoms_q = np.zeros((filters, 0))  # P = atoms^T Q
    q_w = np.zeros((0, filters))  # B = Q^T W; residual correlations are G - P B
    chosen: List[int] = []
    available = np.ones(filters, dtype=bool)
    for _ in range(num_filters):
        correlation = gram - atoms_q @ q_w
        score = np.linalg.norm(correlation, ord=norm_order, axis=1)
        score[~available] = -np.inf
        j = int(np.argmax(score))
        chosen.append(j)
        available[j] = False
        q = w[:, j] - basis @ (basis.T @ w[:, j])
        q -= basis @ (basis.T @ q)  # second Gram-Schmidt pass for orthogonality
        q_norm = np.linalg.norm(q)
        if q_norm <= 1e-12 * max(norms.max(), 1e-300):
            continue  # already in the span: the residual does not change
        q /= q_norm
        basis = np.column_stack([basis, q])
        atoms_q = np.column_stack([atoms_q, atoms.T @ q])
        q_w = np.vstack([q_w, q @ w])
    return np.sort(np.asarray(chosen, dtype=np.int64))


def reconstruction_residual(kernel: np.ndarray, chosen: Sequence[int]) -> float:
    """``min_A ||W - W_w A||_F / ||W||_F`` for the filters `chosen` (least squares)."""
    w = _filter_matrix(kernel)
    basis = w[:, np.asarray(chosen)]
    coefficients, *_ = np.linalg.lstsq(basis, w, rcond=None)
    return float(np.linalg.norm(w - basis @ coefficients) / np.linalg.norm(w))


@dataclasses.dataclass(frozen=True)
class LayerWeights:
    """A conv or dense layer's weights, Keras layout.

    Attributes:
      kernel: conv [kh, kw, in, out] or dense [in, out].
      bias: [out], or None.
    """

    kernel: np.ndarray
    bias: Optional[np.ndarray] = None


@dataclasses.dataclass(frozen=True)
class ThinLayer:
    """One layer of `somp_thin_layers`' result.

    Attributes:
      weights: the thin layer's kernel (inputs and filters truncated) and bias.
      filters: int [width], indices of the wide layer's filters kept, ascending.
      residual: `reconstruction_residual` of the chosen filters in the input-truncated wide
        kernel (0 = every wide filter is a combination of the kept ones).
    """

    weights: LayerWeights
    filters: np.ndarray
    residual: float


def _truncate_inputs(kernel: np.ndarray, kept: np.ndarray, wide_channels_below: int,
                     index: int) -> np.ndarray:
    """Keeps the inputs of `kernel` that come from the filters `kept` of the layer below."""
    if kernel.ndim == 4:
        if kernel.shape[2] != wide_channels_below:
            raise ValueError(f"layer {index}: conv kernel {kernel.shape} reads "
                             f"{kernel.shape[2]} channels but the layer below has "
                             f"{wide_channels_below} filters")
        return kernel[:, :, kept, :]
    # Dense: either after a dense layer, or after Keras' Flatten of a channels-last
    # [h, w, channels] map, whose input index is position * channels + channel.
    if kernel.shape[0] % wide_channels_below:
        raise ValueError(f"layer {index}: dense kernel {kernel.shape} reads {kernel.shape[0]} "
                         f"inputs, not a multiple of the {wide_channels_below} filters below")
    positions = kernel.shape[0] // wide_channels_below
    grid = kernel.reshape(positions, wide_channels_below, kernel.shape[1])
    return grid[:, kept, :].reshape(positions * len(kept), kernel.shape[1])


def somp_thin_layers(wide_layers: Sequence[LayerWeights], widths: Sequence[int],
                     norm_order: float = 2.0) -> List[ThinLayer]:
    """Alg. 2: thin kernels for a chain of layers from a wider pretrained one.

    From the input upwards: truncate the layer's inputs to the filters kept in the layer
    below (``W^{p,l+1} <- ((W^{p,l+1})^T_w)^T``), then keep `width` of its filters by
    `somp_select`. The first layer reads the image and keeps all its inputs. A width at
    least the wide layer's keeps every filter in order. Only the chain's conv and dense
    layers are given (pooling, ReLU, flatten have no weights); a dense layer on a conv layer
    must read Keras' channels-last flatten of the conv map, at the thin model's spatial size
    (VGG-16 at 224 x 224: 7 x 7 positions).

    Args:
      wide_layers: the wide model's conv/dense layers in order, e.g. the 13 convs and fc6,
        fc7 of a user's VGG-16 (``LayerWeights(*layer.get_weights())``).
      widths: the thin model's width of each of those layers.
    Returns:
      one `ThinLayer` per layer.
    """
    if len(wide_layers) != len(widths):
        raise ValueError(f"{len(wide_layers)} wide layers but {len(widths)} widths")
    thin: List[ThinLayer] = []
    kept_below: Optional[np.ndarray] = None
    wide_channels_below = 0
    for index, (layer, width) in enumerate(zip(wide_layers, widths)):
        kernel = np.asarray(layer.kernel)
        if kernel.ndim not in (2, 4):
            raise ValueError(f"layer {index}: kernel must be conv [kh, kw, in, out] or dense "
                             f"[in, out], got shape {kernel.shape}")
        if layer.bias is not None and np.shape(layer.bias) != (kernel.shape[-1],):
            raise ValueError(f"layer {index}: bias {np.shape(layer.bias)} does not match "
                             f"kernel {kernel.shape}")
        if kept_below is not None:
            kernel = _truncate_inputs(kernel, kept_below, wide_channels_below, index)
        if width < 1:
            raise ValueError(f"layer {index}: width must be >= 1, got {width}")
        if width >= kernel.shape[-1]:
            filters = np.arange(kernel.shape[-1])
        else:
            filters = somp_select(kernel, width, norm_order)
        bias = None if layer.bias is None else np.asarray(layer.bias)[filters]
        thin.append(ThinLayer(LayerWeights(kernel[..., filters], bias), filters,
                              reconstruction_residual(kernel, filters)))
        kept_below, wide_channels_below = filters, kernel.shape[-1]
    return thin


# ---------------------------------------------------------------------------------------
# 6. Thin-omega layouts (sec. 3.1, Fig. 1)
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ThinLayerSpec:
    """One layer of a thin network (the task heads on top are not included).

    Attributes:
      name: VGG's name (``conv1_1`` ... ``conv5_3``, ``fc6``, ``fc7``).
      kind: ``conv`` (k x k, stride 1, SAME, ReLU; the paper adds BN) or ``fc``.
      kernel: conv kernel size in pixels; 0 for fc.
      width: filters (conv) or units (fc).
      pool_after: a 2x2/2 max-pool follows this layer.
    """

    name: str
    kind: str
    kernel: int
    width: int
    pool_after: bool


VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# For 32 x 32 images (the synthetic set): three VGG stages, 32 -> 16 -> 8 -> 4 pixels, with
# the widths of a CIFAR-sized VGG; two fc layers as in VGG-16.
SMALL_STAGES = ((32, 32), (64, 64), (128, 128))


def _thin_layout(stages: Sequence[Sequence[int]], omega: int) -> Tuple[ThinLayerSpec, ...]:
    if omega < 1:
        raise ValueError(f"omega must be >= 1, got {omega}")
    layers = []
    for s, stage in enumerate(stages):
        for i, reference in enumerate(stage):
            layers.append(ThinLayerSpec(f"conv{s + 1}_{i + 1}", "conv", 3,
                                        min(omega, reference), i == len(stage) - 1))
    fc_start = len(stages) + 1  # VGG numbers its fc layers after the conv stages: fc6, fc7
    layers += [ThinLayerSpec(f"fc{fc_start + i}", "fc", 0, 2 * omega, False) for i in range(2)]
    return tuple(layers)


def thin_vgg16(omega: int) -> Tuple[ThinLayerSpec, ...]:
    """Thin-omega VGG-16 (sec. 3.1): 13 3x3 convs in 5 pooling stages, conv width
    min(omega, VGG's 64-128-256-512-512), then fc6 and fc7 of 2 omega units."""
    return _thin_layout(VGG16_STAGES, omega)


def thin_vgg_small(omega: int) -> Tuple[ThinLayerSpec, ...]:
    """Thin-omega layout for 32x32 images: 6 3x3 convs in 3 pooling stages (reference widths
    32-64-128, so 4x4 maps reach fc4), conv width min(omega, reference), fc4 and fc5 of
    2 omega units."""
    return _thin_layout(SMALL_STAGES, omega)


def pooling_layers_above(layout: Sequence[ThinLayerSpec]) -> Tuple[int, ...]:
    """p_l of Eq. 9 for each layer: pooling layers above it (a layer's own pool_after counts,
    since that pool lies above it). thin_vgg16: 5 for conv1_x ... 1 for conv5_x, 0 for fc."""
    above, counts = 0, []
    for spec in reversed(layout):
        above += int(spec.pool_after)
        counts.append(above)
    return tuple(reversed(counts))
