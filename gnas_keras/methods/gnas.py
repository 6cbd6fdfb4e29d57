"""GNAS: greedy neural architecture search for multi-attribute trees (Huang et al. 2018).

Algorithm 1 of the paper, top to bottom:

    initialise a random tree A and random weights W
    repeat rounds until the tree stops changing (or a round cap):
        for each searched layer l, from the top down:
            for each block b of layer l-1 (a candidate parent):
                route every block of layer l to b              (sec. 3.3: all at once)
                train W[A] on K training batches               (weight sharing)
                r_b = per-attribute accuracy on V validation batches
                reward(b -> j) = mean of r_b over the attributes below j     (Eq. 5)
            give every block j of layer l its best parent argmax_b reward(b -> j)  (Eq. 6)
        learning rate *= 0.96

A "searched layer" is a searchable layer whose parent layer has more than one block
(`SearchSpace.searched_layers`). Everything around the algorithm (data, distribution,
TensorBoard, checkpoints) lives elsewhere; `search` reports progress through `SearchLogger`.
`METHOD` plugs it into the run (`gnas_keras.methods`).

Choices the paper leaves open, each a config field (`GnasConfig`, or the candidate settings
`config.CandidateConfig` that random search shares):
- ``warmup_steps``: optional training on uniformly random trees before the first round, so
  every edge starts equally trained (the paper's Fig. 4 also searches from inherited weights).
  Default 0 in the library = the paper's Algorithm 1.
- ``fixed_val_batches``: evaluate every candidate on the same V validation batches (less
  noise between candidates) instead of V random validation batches per candidate (the
  paper's most plausible setup, and the default).
- ties between candidates go to the lowest block index; a block with no attributes below it
  (dead) keeps its parent.
- data: every candidate trains on a training stream and draws its V reward batches from a
  shuffled validation stream, both seeded by the candidate's position in the search
  (`training.segment_seed`), so that a search resumed from a checkpoint sees the same data.

GNAS+: options that change Algorithm 1 (each off by default, each a `GnasConfig` field, the
README's table says why). ``candidate_training=above``: a candidate trains only the searched
layer and those above it, and every weight is restored after it is scored, so that scoring
does not erase the specialisation of the blocks below; ``fresh_heads``: those layers start
from fresh weights per candidate; ``train_dead_parents``: a candidate parent that no attribute
reads trains too (its features are stale, frozen it could never win a child back);
``reward=log_likelihood``; ``hysteresis``: a parent changes only on a gain beyond z paired
standard errors; ``bn_refresh``: batch-norm statistics of the candidate's own tree;
``probe_steps``: a searched fc layer's fresh heads train to convergence on the frozen block
features instead of K SGD steps (`gnas_keras.models.probe`: after K = 40 steps fresh heads read
only what a block encodes linearly); ``search_only``: only the named layers are searched
(the others keep the widest parents, block j under block j mod B, `initial_routing`);
``restarts``: after convergence the search starts again from a new random tree (on the
weights trained so far), and in the end the converged trees are scored together, as
candidates are, and the best is kept (`choose_restart`; measured once on the synthetic set,
a restart re-converged within one round to the grouping the shared weights encode: README);
``initial_tree=label_correlation``: the first tree comes from the training labels alone
(`tree.correlation_routing`: a dendrogram of the attributes on 1 - |label correlation|, cut
at each layer's block count) instead of a random draw; the greedy rounds then keep or change
it on the images' evidence; ``warmup_initial_tree``: the warm-up trains the initial tree
instead of random trees (measured on the synthetic set: after a warm-up on random trees the
first round moved 10 to 12 of the 16 fc1 parents away from the label-correlation tree, which
is the planted one, because no block had learned its group yet). On the synthetic set the
labels alone recover the planted groups (README), so a search from them shows whether GNAS
keeps a good tree, not that it finds one; a trained random initial tree is the control.
Why ``search_only``: weights belong to edges (the paper's W[A_ij]), and with ``above`` an
edge outside the tree never keeps any training, so a block whose parent changes continues on
weights last trained in the warm-up, and the attributes below it lose their features (in the
`tiny` space conv3's parents changed in most rounds, shaking fc1's grouping each time).

Resuming. `search` keeps its whole position in a `SearchState` (round, layer, candidate,
rewards so far, the tree, the random generator's state, ...) and hands it to `checkpoint`
after every candidate, layer and round; together with the weights and optimizer slots that is
all a killed search needs to continue exactly where the last checkpoint left it.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional

import numpy as np

from gnas_keras.space.architecture import Architecture
from gnas_keras.settings import CandidateConfig, setting
from gnas_keras.training.evaluation import Evaluation, Stream, check_finite, segment_seed
from gnas_keras.methods import affinity, transfer
from gnas_keras.methods.base import (Boundary, Method, SearchContext, SearchLogger,
                                     SearchResult, resume, warmup_chunk)
from gnas_keras.space.search_space import SearchSpace
from gnas_keras.space.tree import (Routing, adjusted_rand_index, correlation_routing,
                             independent_routing, random_routing)

if TYPE_CHECKING:
    from gnas_keras.training.loop import Loop


CANDIDATE_TRAINING = ("all", "above")
REWARDS = ("accuracy", "log_likelihood")


# GNAS+'s options as small objects, each with one job: where the rounds start (`StartTree`),
# how a candidate parent is scored (`TrainedScorer`, `ProbeScorer`) and how a child's parent
# is chosen from the scores (`ParentChoice`). A new start, scorer or rule is one class here
# and one entry in its table, not a new branch in `search`.


@dataclasses.dataclass
class StartTree:
    """Algorithm 1's initialization: `draw(rng)` gives the tree the first round starts from
    (`initial_routing`: the searched layers' parents drawn, the others the widest)."""

    space: SearchSpace
    num_attributes: int
    layers: List[int]
    training_labels: Optional[Callable[[], np.ndarray]] = None
    logger: SearchLogger = dataclasses.field(default_factory=SearchLogger)
    measured: Optional[Callable[[], Routing]] = None  # a tree measured on the supernet

    def draw(self, rng: np.random.Generator) -> Routing:
        return initial_routing(self.space, self.num_attributes, self.layers, rng)


class LabelCorrelationStart(StartTree):
    """GNAS+ ``initial_tree=label_correlation``: the attributes clustered by their training
    labels' correlation (`tree.correlation_routing`); draws nothing from `rng`."""

    def draw(self, rng: np.random.Generator) -> Routing:
        if self.training_labels is None:
            raise ValueError("initial_tree: label_correlation needs the training labels")
        labels = self.training_labels()
        self.logger.progress(f"initial tree from the label correlations of {len(labels)} "
                             "training examples")
        return initial_routing(self.space, self.num_attributes, self.layers, rng, labels)


class MeasuredStart(StartTree):
    """GNAS+ ``initial_tree=affinity`` or ``transfer``: the tree of a grouping measured from
    the images (`affinity.gnas_start` on the search's own supernet, `transfer.gnas_start` on
    per-attribute towers; handed in as `measured`): the searched layers take its parents,
    the others the widest; draws nothing from `rng`."""

    def draw(self, rng: np.random.Generator) -> Routing:
        if self.measured is None:
            raise ValueError("initial_tree: a measured start needs its measurement")
        return _with_layers(independent_routing(self.space, self.num_attributes),
                            self.measured(), self.layers)


START_TREES = {"random": StartTree, "label_correlation": LabelCorrelationStart,
               "affinity": MeasuredStart, "transfer": MeasuredStart}
# The measurement behind each `MeasuredStart`: context -> () -> its tree.
MEASURED_STARTS = {"affinity": affinity.gnas_start, "transfer": transfer.gnas_start}


@dataclasses.dataclass
class GnasConfig:
    """GNAS's own settings (the candidate settings K, V, warm-up are `CandidateConfig`)."""

    max_rounds: int = setting(300, "GNAS round cap (paper: 150 CelebA, 300 LFWA / "
                                   "Market-1501); also random search's default budget.")
    patience: int = setting(3, "GNAS stops after this many rounds without a tree change.")
    lr_decay: float = setting(0.96, "Learning rate factor after every GNAS round (paper: "
                                    "0.96).")
    # GNAS+ options: each changes the paper's Algorithm 1 (module docstring, "GNAS+").
    candidate_training: str = setting(
        "all", "Which layers a candidate's K steps train: all (paper) or above (the searched "
               "layer and those above it; weights restored after each candidate, then the "
               "chosen tree trains K steps).", choices=CANDIDATE_TRAINING)
    reward: str = setting("accuracy", "Per-attribute reward: accuracy (paper) or "
                                      "log_likelihood (mean log-probability of the true label).",
                          choices=REWARDS)
    fresh_heads: bool = setting(False, "Re-initialise the searched layer's and the upper "
                                       "layers' active weights before each candidate (needs "
                                       "candidate_training=above).")
    hysteresis: float = setting(0.0, "Switch a block's parent only when the best candidate's "
                                     "reward exceeds the current parent's by more than this "
                                     "many paired standard errors (0: any gain).")
    bn_refresh: int = setting(0, "Training-mode forward passes (no update) before scoring a "
                                 "candidate, so its batch-norm statistics are its own.")
    search_only: str = setting(
        "", "Comma-separated names of the searched layers GNAS updates (default: all of "
            "them); the others get the widest parents (block j under block j mod B) and keep "
            "them. E.g. fc1 in the tiny space.")
    train_dead_parents: bool = setting(
        False, "With candidate_training=above: a candidate parent that no attribute reads in "
               "the current tree (a dead block) trains too during its K steps (restored "
               "afterwards like the rest). Frozen, its stale features never win a child back, "
               "so the search could not undo a merge of two groups.")
    probe_steps: int = setting(
        0, "With candidate_training=above and fresh_heads, for a searched fc layer: the "
           "fresh heads of a candidate train to convergence (this many full-batch Adam steps "
           "on the frozen features of the K training batches, gnas_keras.models.probe) "
           "instead of K SGD steps; 0: K SGD steps.")
    restarts: int = setting(
        0, "After the search converges (patience or max_rounds rounds), start it again this "
           "many times from a new random tree on the same weights; in the end the converged "
           "trees are scored as candidates are (same weights, batches and validation "
           "batches; weights restored) and the best one is kept.")
    initial_tree: str = setting(
        "random", "The tree the rounds start from: random (Algorithm 1), label_correlation "
                  "(attributes clustered by their training labels' correlation, one cut of "
                  "the dendrogram per layer; gnas_keras.space.tree.correlation_routing) or "
                  "affinity (inter-task affinities measured on the supernet, clustered alike; "
                  "gnas_keras.methods.affinity, its affinity_* settings) or transfer (how "
                  "well per-attribute towers' features serve each other attribute, clustered "
                  "alike; gnas_keras.methods.transfer, its transfer_* settings).",
        choices=tuple(START_TREES))
    warmup_initial_tree: bool = setting(
        False, "The warm-up (warmup_steps) trains the initial tree, drawn before it, instead "
               "of uniformly random trees, so that its blocks have learned their attributes "
               "when the first round judges them.")

    def validate(self) -> None:
        for name in ("max_rounds", "patience"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay: must be in (0, 1], got {self.lr_decay}")
        if self.fresh_heads and self.candidate_training != "above":
            raise ValueError("fresh_heads: needs candidate_training=above (otherwise the "
                             "search would erase the weights it keeps)")
        if self.train_dead_parents and self.candidate_training != "above":
            raise ValueError("train_dead_parents: needs candidate_training=above (with all, "
                             "every candidate parent trains anyway)")
        for name in ("hysteresis", "bn_refresh", "restarts", "probe_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.probe_steps and not self.fresh_heads:
            raise ValueError("probe_steps: needs fresh_heads and candidate_training=above "
                             "(the probes are fresh heads on frozen features)")


@dataclasses.dataclass
class RoundResult:
    round: int
    routing: Routing
    changed: bool
    learning_rate: float
    rewards: Dict[str, np.ndarray]    # layer name -> [B_{l-1}, B_l] reward(b -> j)
    reward_errors: Dict[str, np.ndarray]  # same shape: standard error of each reward
    validation: Evaluation            # the round's final tree on V validation batches
    elapsed: float                    # seconds since the search started
    # layer name -> [B_l]: reward of the best candidate minus the current parent's, and the
    # paired standard error of that difference (both scored on the same examples)
    switch_gains: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    switch_errors: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    restart: int = 0                  # 0: the first search, i: the i-th restart
    start: Optional[Routing] = None   # the tree the round started from (not saved)

    def to_dict(self) -> Dict:
        arrays = lambda d: {k: v.tolist() for k, v in d.items()}  # noqa: E731
        return {"round": self.round, "restart": self.restart,
                "routing": [list(p) for p in self.routing.parents], "changed": self.changed,
                "learning_rate": self.learning_rate,
                "rewards": arrays(self.rewards), "reward_errors": arrays(self.reward_errors),
                "validation": self.validation.to_dict(), "elapsed": self.elapsed,
                "switch_gains": arrays(self.switch_gains),
                "switch_errors": arrays(self.switch_errors)}

    @classmethod
    def from_dict(cls, d: Dict) -> "RoundResult":
        arrays = lambda key: {k: np.asarray(v, float) for k, v in d.get(key, {}).items()}  # noqa
        return cls(d["round"], Routing.from_lists(d["routing"]), d["changed"],
                   d["learning_rate"], arrays("rewards"), arrays("reward_errors"),
                   Evaluation.from_dict(d["validation"]), d["elapsed"],
                   arrays("switch_gains"), arrays("switch_errors"), d.get("restart", 0))


def _encode(scores: np.ndarray) -> Dict:
    return {"shape": list(scores.shape),
            "float16": base64.b64encode(scores.astype(np.float16).tobytes()).decode("ascii")}


def _decode(d: Dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["float16"]), np.float16).reshape(d["shape"])


@dataclasses.dataclass
class SearchState:
    """Everything but the weights that a search needs to continue after a restart.

    The position is (round, layer, candidate): the next candidate parent block to evaluate
    for the `layer`-th searched layer from the top. `rewards` / `reward_errors` hold this
    round's rows evaluated so far, [B_{l-1}, B_l] per layer, NaN where not yet evaluated;
    `scores` the current layer's per-example scores of each evaluated candidate
    (`example_scores`, float16), from which the paired standard errors come. With
    ``restarts``: `restart` counts the restarts begun, `restart_round` is the current one's
    first round, and `selection` holds the converged trees' final scores (`choose_restart`).
    """

    rng_state: Dict                   # numpy bit generator state
    routing: Optional[Routing] = None  # the tree so far (None until the warm-up is done)
    initial: Optional[Routing] = None  # the tree the first round started from
    round_start: Optional[Routing] = None
    round: int = 1
    layer: int = 0
    candidate: int = 0
    rewards: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    reward_errors: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    switch_gains: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    switch_errors: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    scores: List[np.ndarray] = dataclasses.field(default_factory=list)
    warmup_done: int = 0
    evaluations: int = 0              # candidates evaluated so far
    unchanged: int = 0
    restart: int = 0
    restart_round: int = 1
    selection: List[Dict] = dataclasses.field(default_factory=list)
    finished: bool = False
    elapsed: float = 0.0              # search seconds spent before this process
    results: List[RoundResult] = dataclasses.field(default_factory=list)

    def to_dict(self) -> Dict:
        tree = lambda r: None if r is None else [list(p) for p in r.parents]  # noqa: E731
        arrays = lambda d: {k: v.tolist() for k, v in d.items()}  # noqa: E731
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "routing": tree(self.routing), "round_start": tree(self.round_start),
                "initial": tree(self.initial),
                "rewards": arrays(self.rewards), "reward_errors": arrays(self.reward_errors),
                "switch_gains": arrays(self.switch_gains),
                "switch_errors": arrays(self.switch_errors),
                "scores": [_encode(x) for x in self.scores],
                "results": [r.to_dict() for r in self.results]}

    def begin_layer(self, name: str, shape: tuple) -> None:
        """A layer's first candidate: its rows of rewards start empty (NaN), [B_{l-1}, B_l]."""
        self.rewards[name] = np.full(shape, np.nan)
        self.reward_errors[name] = np.full(shape, np.nan)
        self.scores = []

    def record(self, name: str, b: int, scores: np.ndarray) -> None:
        """Candidate parent `b`'s per-example scores [examples, B_l] (`example_scores`): its
        row of Eq. 5's rewards and their standard errors; the position moves on."""
        self.scores.append(scores)
        self.rewards[name][b] = scores.mean(axis=0)
        self.reward_errors[name][b] = np.std(scores, axis=0, ddof=1) / np.sqrt(len(scores))
        self.evaluations += 1
        self.candidate += 1

    def next_round(self) -> None:
        self.round, self.layer, self.round_start = self.round + 1, 0, self.routing
        self.rewards, self.reward_errors = {}, {}
        self.switch_gains, self.switch_errors = {}, {}

    @classmethod
    def from_dict(cls, d: Dict) -> "SearchState":
        tree = lambda t: None if t is None else Routing.from_lists(t)  # noqa: E731
        arrays = lambda key: {k: np.asarray(v, float) for k, v in d.get(key, {}).items()}  # noqa
        return cls(**{**d, "routing": tree(d["routing"]), "round_start": tree(d["round_start"]),
                      "initial": tree(d.get("initial")),
                      "rewards": arrays("rewards"), "reward_errors": arrays("reward_errors"),
                      "switch_gains": arrays("switch_gains"),
                      "switch_errors": arrays("switch_errors"),
                      "scores": [_decode(x) for x in d.get("scores", [])],
                      "results": [RoundResult.from_dict(r) for r in d["results"]]})


def example_scores(descendants: List[frozenset], probabilities: np.ndarray,
                   labels: np.ndarray, reward: str) -> np.ndarray:
    """Per-example contributions to Eq. 5's rewards, float16-exact [examples, B_l].

    Each attribute's reward is its mean over the labelled examples of correctness (reward
    ``accuracy``) or of the log-probability of the true label (``log_likelihood``); a child
    block's reward is the mean over the attributes below it. Column j's mean over examples
    is that reward, and the difference of two candidates' columns, example by example, gives
    the paired standard error of their reward difference. NaN columns for dead blocks.
    Rounded to float16 here, so a search resumed from a checkpoint decides on the same
    numbers as one that never stopped.
    """
    known = labels >= 0
    p_true = np.where(labels == 1, probabilities, 1.0 - probabilities)
    if reward == "accuracy":
        per = (p_true > 0.5).astype(np.float64)
    else:
        per = np.log(np.maximum(p_true, 1e-7))
    n = len(labels)
    # x n / labelled count: the column mean over all examples is the mean over labelled ones
    per = np.where(known, per, 0.0) * n / np.maximum(known.sum(axis=0), 1)
    columns = [per[:, sorted(d)].mean(axis=1) if d else np.full(n, np.nan) for d in descendants]
    return np.stack(columns, axis=1).astype(np.float16).astype(np.float64)


def paired_standard_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Standard error of mean(a) - mean(b) per column, from per-example scores [n, B] of two
    candidates on the same examples."""
    d = a - b
    return np.std(d, axis=0, ddof=1) / np.sqrt(len(d))


def block_rewards(descendants: List[frozenset], accuracy: np.ndarray) -> np.ndarray:
    """Eq. 5: reward of each child block = mean accuracy over the attributes below it.

    descendants: I_j for the blocks j of one layer. accuracy: [N] per-attribute accuracy.
    Returns [B_l], NaN for a block with no attributes below it.
    """
    return np.array([np.mean(accuracy[sorted(d)]) if d else np.nan for d in descendants])


def reward_gaps(rewards: np.ndarray) -> np.ndarray:
    """Per child: best minus second-best candidate reward (NaN for dead children)."""
    top2 = -np.sort(-rewards, axis=0)[:2]
    return top2[0] - top2[1]


def best_parents(rewards: np.ndarray, current: tuple, scores: Optional[List[np.ndarray]] = None,
                 hysteresis: float = 0.0):
    """Eq. 6: for every child (column) the candidate parent (row) with the highest reward.

    A child keeps its current parent on a tie, when its rewards are all NaN (a dead block),
    and, with `hysteresis` z > 0, unless the best candidate beats the current parent by more
    than z paired standard errors (from the per-example `scores` of each candidate).
    Returns (parents, gains, errors): the chosen parent per child, and per child the best
    reward minus the current parent's with the paired standard error of that difference
    (NaN without `scores`).
    """
    chosen, gains, errors = [], [], []
    for j in range(rewards.shape[1]):
        column, p = rewards[:, j], current[j]
        if np.all(np.isnan(column)):
            chosen.append(p)
            gains.append(np.nan)
            errors.append(np.nan)
            continue
        best = int(np.nanargmax(column))
        gain = column[best] - column[p]
        error = (paired_standard_errors(scores[best][:, [j]], scores[p][:, [j]])[0]
                 if scores is not None else np.nan)
        switch = gain > 0 and (hysteresis == 0 or gain > hysteresis * error)
        chosen.append(best if switch else p)
        gains.append(gain)
        errors.append(error)
    return tuple(chosen), np.array(gains), np.array(errors)


def layer_names(only: str) -> List[str]:
    """The layer names of a ``search_only`` value (comma-separated, blanks ignored)."""
    return [name.strip() for name in only.split(",") if name.strip()]


def searched_layers(space, num_attributes: int, only: str = "") -> List[int]:
    """The layers GNAS updates: the space's searched layers, or those of them named in
    `only` (comma-separated). Raises ValueError naming a name that is not one of them."""
    layers = space.searched_layers(num_attributes)
    if not only:
        return layers
    names = {space.layers[l].name: l for l in layers}
    chosen = layer_names(only)
    for name in chosen:
        if name not in names:
            raise ValueError(f"search_only: {name!r} is not a searched layer of space "
                             f"{space.name} ({', '.join(names)})")
    return [l for l in layers if space.layers[l].name in chosen]


def initial_routing(space, num_attributes: int, layers: List[int],
                    rng: np.random.Generator, labels: Optional[np.ndarray] = None) -> Routing:
    """Algorithm 1's initial tree: uniformly random parents for the searched `layers` (with
    training `labels`: those of `tree.correlation_routing` instead); a
    searchable layer left out by ``search_only`` takes the widest parents instead (block j
    under block j mod B, `independent_routing`), because it keeps them to the end: a random
    draw there would put an accident into the found tree (measured: seed 0's found grouping
    was the planted one, but three of its conv3 blocks shared one conv2 block, and from
    scratch it was 1.3 paired standard errors behind the planted tree)."""
    drawn = (random_routing(space, num_attributes, rng) if labels is None
             else correlation_routing(space, num_attributes, labels))
    return _with_layers(independent_routing(space, num_attributes), drawn, layers)


def restart_routing(space, num_attributes: int, routing: Routing, layers: List[int],
                    rng: np.random.Generator) -> Routing:
    """`routing` with the parents of the searched `layers` drawn anew (uniformly, as the
    initial tree); the layers that are not searched keep theirs."""
    return _with_layers(routing, random_routing(space, num_attributes, rng), layers)


def _with_layers(routing: Routing, source: Routing, layers: List[int]) -> Routing:
    """`routing` with the parents of `layers` taken from `source`."""
    for l in layers:
        routing = routing.with_layer(l, source.parents[l])
    return routing


def _train_and_predict(loop: "Loop", val_data: Callable[..., Iterator],
                       candidates: CandidateConfig, config: GnasConfig, tree: Routing,
                       layer: int, train_from: int, heads: np.random.Generator,
                       position: tuple, where: str):
    """Scores `tree` as Algorithm 1 scores a candidate of `layer`: K training steps on the
    training batches of `position` (with ``candidate_training=above`` only the layers from
    `train_from` up train, and with ``fresh_heads`` `layer` and those above start from
    weights drawn from `heads`), batch-norm statistics refreshed when ``bn_refresh``, then
    predictions on the V validation batches of `position`. The model is left trained on
    `tree`: the caller restores a snapshot where the weights must not stay. `where` names
    the training segment in a `NumericalError`. Returns
    (probabilities [examples, N], labels [examples, N], the K steps' training loss)."""
    model, space = loop.model, loop.model.space
    model.set_routing(tree)
    if config.candidate_training == "above":
        model.train_only_from(train_from)
        if config.fresh_heads:
            for upper in range(layer, len(space.layers)):
                model.reinitialize_active(upper, heads)
    train_loss = float("nan")
    if candidates.train_steps:                                         # 0: frozen (Fig. 4)
        loop.restart(Stream.CANDIDATE, *position)
        trained = loop.train(candidates.train_steps)
        check_finite(trained, where)
        train_loss = trained.loss
    if config.bn_refresh:
        loop.restart(Stream.BN_REFRESH, *position)
        loop.refresh_batch_norm(config.bn_refresh)
    probabilities, labels = loop.predict_batches(val_data(Stream.CANDIDATE, *position),
                                                 candidates.val_batches)
    return probabilities, labels, train_loss


@dataclasses.dataclass
class ProbeFeatures:
    """What the probes of one searched fc layer read (`probe_features`): every candidate
    parent's output [B_{l-1}, examples, d] on the K training batches and the V validation
    batches of `position`, with their labels [examples, N]."""
    position: tuple
    hidden: tuple            # widths of the heads' hidden layers (the fc layers above)
    train: np.ndarray
    train_labels: np.ndarray
    validation: np.ndarray
    validation_labels: np.ndarray

    def probe(self, parent: int, steps: int, rng: np.random.Generator):
        """Fresh heads on `parent`'s features: (probabilities, labels) on the validation
        examples, and NaN for the training loss (as `_train_and_predict` returns)."""
        # Imported here, not at the top: the method registry imports this module when the
        # binaries define their flags, before TensorFlow should register its own.
        from gnas_keras.models import probe
        probabilities = probe.fit_heads(self.train[parent], self.train_labels,
                                        self.validation[parent], self.hidden, steps, rng)
        return probabilities, self.validation_labels, float("nan")


def probe_features(loop: "Loop", val_data: Callable[..., Iterator],
                   candidates: CandidateConfig, config: GnasConfig, routing: Routing,
                   layer: int, position: tuple) -> ProbeFeatures:
    """The frozen features the probes of searched fc `layer` read: the outputs of every block
    of layer - 1 under `routing` (the model is left on it) on the K training batches a
    candidate would train on and on the V validation batches it is scored on (batch-norm
    statistics refreshed first when ``bn_refresh``, and every weight restored afterwards:
    scoring changes nothing)."""
    model = loop.model
    model.set_routing(routing)
    saved = model.snapshot()
    if config.bn_refresh:
        loop.restart(Stream.BN_REFRESH, *position)
        loop.refresh_batch_norm(config.bn_refresh)
    loop.restart(Stream.CANDIDATE, *position)
    train, train_labels = loop.block_outputs(layer - 1, candidates.train_steps)
    validation, validation_labels = loop.block_outputs(
        layer - 1, candidates.val_batches, val_data(Stream.CANDIDATE, *position))
    model.restore(saved)
    hidden = tuple(spec.channels for spec in model.space.layers[layer:-1])
    return ProbeFeatures(position, hidden, train, train_labels, validation, validation_labels)


def probed_layers(space, num_attributes: int, layers: List[int], config: GnasConfig
                  ) -> Dict[int, bool]:
    """Per searched layer: does ``probe_steps`` score its candidates? The fc layers, whose
    blocks are one per attribute up to the logits (every preset's fc1); conv layers train K
    steps. Raises ValueError for an fc layer that is not."""
    counts = space.block_counts(num_attributes)
    probing = {}
    for l in layers:
        above = space.layers[l:]
        probing[l] = bool(config.probe_steps) and space.layers[l].kind == "fc"
        if probing[l] and any(s.kind != "fc" or counts[m] != num_attributes
                              for m, s in enumerate(above, start=l)):
            raise ValueError(f"probe_steps: layer {space.layers[l].name} and those above it "
                             f"must be fc layers with one block per attribute")
    return probing


def choose_restart(loop: "Loop", val_data: Callable[..., Iterator], ends: List[RoundResult],
                   candidates: CandidateConfig, config: GnasConfig, layer: int, seed: int
                   ) -> List[Dict]:
    """Scores each restart's converged tree (the last round of each, `ends`) as a candidate
    of the lowest searched `layer` is scored, and restores every weight after each: K
    training steps from the same weights on the same batches (with ``candidate_training=
    above`` only `layer` and those above it train, from the same fresh heads when
    ``fresh_heads``), batch-norm statistics refreshed when ``bn_refresh``, then the mean
    reward over all attributes on the same V validation batches. Returns one row per tree:
    its reward, the paired standard error of its difference to the best tree, and
    ``chosen`` for the best (the first on a tie).

    Why not each tree's validation error at the end of its restart: the weights keep training
    across restarts, so a later restart's error is lower for that alone; here the trees
    differ only by their routing (the shared conv features are still those trained last)."""
    model = loop.model
    everything = [frozenset(range(model.num_attributes))]
    saved = model.snapshot()
    columns = []
    for end in ends:  # position (7,): batches no candidate of the search used
        probabilities, labels, _ = _train_and_predict(
            loop, val_data, candidates, config, end.routing, layer, layer,
            np.random.default_rng(segment_seed(seed, Stream.RESTART_CHOICE)),
            (Stream.RESTART_CHOICE,), f"restart {end.restart}'s tree")
        columns.append(example_scores(everything, probabilities, labels, config.reward)[:, 0])
        model.restore(saved)
    means = [float(c.mean()) for c in columns]
    best = int(np.argmax(means))
    return [{"restart": end.restart, "round": end.round,
             "tree": [list(p) for p in end.routing.parents], "reward": means[i],
             "paired_standard_error": float(paired_standard_errors(
                 columns[i][:, None], columns[best][:, None])[0]) if i != best else 0.0,
             "chosen": i == best}
            for i, end in enumerate(ends)]


# How a candidate parent is scored (`TrainedScorer`, `ProbeScorer`) and how a child's parent
# is chosen (`ParentChoice`): one class each (see `StartTree`).


@dataclasses.dataclass
class TrainedScorer:
    """Algorithm 1's candidate scoring: the tree with every child of layer `l` under parent
    `b` trains K steps, then predicts V validation batches (`_train_and_predict`). With
    ``candidate_training=above`` the weights are restored afterwards, so every candidate
    starts from the same weights."""

    loop: "Loop"
    val_data: Callable[..., Iterator]
    candidates: CandidateConfig
    config: GnasConfig
    seed: int

    def for_layer(self, routing: Routing, l: int, position: tuple) -> "TrainedScorer":
        self.routing, self.l, self.position = routing, l, position
        self.descendants = routing.descendants()
        return self

    def score(self, b: int):
        """(probabilities [examples, N], labels [examples, N], training loss) of candidate
        parent `b`."""
        model, config, l = self.loop.model, self.config, self.l
        above = config.candidate_training == "above"
        saved = model.snapshot() if above else None
        dead = not self.descendants[l - 1][b]                      # no attribute reads b now
        name = model.space.layers[l].name
        out = _train_and_predict(
            self.loop, self.val_data, self.candidates, config,
            self.routing.with_layer(l, [b] * len(self.routing.parents[l])),  # all children -> b
            l, l - 1 if config.train_dead_parents and dead else l,
            np.random.default_rng(segment_seed(self.seed, Stream.FRESH_HEADS, *self.position,
                                               b)), self.position,
            f"round {self.position[0]} layer {name} candidate {b}")
        if above:
            model.restore(saved)
        return out


@dataclasses.dataclass
class ProbeScorer(TrainedScorer):
    """GNAS+ ``probe_steps``: fresh heads trained to convergence on the frozen features of
    every candidate parent (`probe_features`, computed once per layer and position, so a
    resumed search computes the same ones)."""

    def for_layer(self, routing: Routing, l: int, position: tuple) -> "ProbeScorer":
        self.features = probe_features(self.loop, self.val_data, self.candidates, self.config,
                                       routing, l, position)
        self.position = position
        return self

    def score(self, b: int):
        heads = np.random.default_rng(segment_seed(self.seed, Stream.FRESH_HEADS,
                                                   *self.position, b))
        return self.features.probe(b, self.config.probe_steps, heads)


@dataclasses.dataclass
class ParentChoice:
    """Eq. 6: every child takes the candidate parent with the highest reward; with GNAS+'s
    ``hysteresis`` z > 0 only when it beats the current parent by more than z paired standard
    errors (`best_parents`)."""

    hysteresis: float = 0.0

    def choose(self, rewards: np.ndarray, current: tuple, scores: List[np.ndarray]):
        """(parents, gains over the current parents, their paired standard errors)."""
        return best_parents(rewards, current, scores, self.hysteresis)


@dataclasses.dataclass
class _Clock:
    """Time left, from the mean time per candidate since this process's rounds began."""

    start: float            # the search's start (earlier by the time before a resume)
    total: int              # candidate evaluations over all rounds and restarts
    done_before: int
    began: float = dataclasses.field(default_factory=time.time)

    def eta(self, done: int) -> float:
        per_candidate = (time.time() - self.began) / max(done - self.done_before, 1)
        return per_candidate * (self.total - done)


def search(loop: "Loop", val_data: Callable[..., Iterator], candidates: CandidateConfig,
           config: GnasConfig, rng: np.random.Generator, logger: Optional[SearchLogger] = None,
           state: Optional[SearchState] = None,
           checkpoint: Optional[Callable[[SearchState, str], None]] = None, seed: int = 0,
           training_labels: Optional[Callable[[], np.ndarray]] = None,
           measured_start: Optional[Callable[[], Routing]] = None) -> List[RoundResult]:
    """Runs Algorithm 1 (with the GNAS+ options of `config`) on `loop.model`; returns one
    `RoundResult` per round. The model's routing is left at the final tree.

    Args:
      loop: the trainer; `loop.restart(*position)` reseeds its training stream.
      val_data: position -> an endless iterator of validation batches for that position.
      candidates: K (train_steps), V (val_batches) and the warm-up.
      rng: draws the warm-up trees and the initial tree; its state is part of the state.
      state: where to continue (from `checkpoint`); None starts a new search. The loops
        below start at its (round, layer, candidate): that is all resuming is.
      checkpoint: called as checkpoint(state, boundary) after every warm-up chunk,
        candidate, layer and round (`Boundary`), the model's weights consistent with `state`.
      seed: the run seed (fresh heads draw their weights from it and the position).
      training_labels: () -> every training label, int [examples, N] (for
        ``initial_tree=label_correlation``).
      measured_start: () -> the tree of ``initial_tree=affinity`` or ``transfer``
        (`MEASURED_STARTS`).
    """
    model, logger = loop.model, logger or SearchLogger()
    space, n = model.space, model.num_attributes
    layers = list(reversed(searched_layers(space, n, config.search_only)))  # top first
    counts = space.block_counts(n)
    scorers = _scorers(loop, val_data, candidates, config, layers, seed)
    choice = ParentChoice(config.hysteresis)
    max_rounds = config.max_rounds * (config.restarts + 1)      # over all restarts
    state = state or SearchState(rng_state=rng.bit_generator.state)
    start, save = resume(state, rng, checkpoint)
    start_tree = START_TREES[config.initial_tree](space, n, layers, training_labels, logger,
                                                  measured_start)
    _initialize(loop, candidates, config, state, start_tree, rng, logger, start, save)
    clock = _Clock(start, max_rounds * space.evaluations_per_round(n, layers),
                   state.evaluations)

    while not state.finished:                                  # for each round
        for i in range(state.layer, len(layers)):              #   for each searched layer l
            l, position = layers[i], (state.round, i)          #   (top first)
            name, num_parents = space.layers[l].name, counts[l - 1]
            if state.candidate == 0:
                state.begin_layer(name, (num_parents, counts[l]))
            descendants = state.routing.descendants()[l]       # I_j: not changed by l's parents
            scorer = scorers[l].for_layer(state.routing, l, position)
            for b in range(state.candidate, num_parents):      #     for each parent block b
                probabilities, labels, train_loss = scorer.score(b)
                state.record(name, b, example_scores(descendants, probabilities, labels,
                                                     config.reward))              # Eq. 5
                logger.candidate(state.round, max_rounds, name, b, num_parents,
                                 _evaluation(probabilities, labels), time.time() - start,
                                 clock.eta(state.evaluations), state.evaluations, train_loss,
                                 clock.total)
                if state.candidate < num_parents:
                    save(Boundary.CANDIDATE)
            parents, state.switch_gains[name], state.switch_errors[name] = choice.choose(
                state.rewards[name], state.routing.parents[l], state.scores)      # Eq. 6
            state.routing, state.scores = state.routing.with_layer(l, parents), []
            _train_chosen_tree(loop, candidates, config, state.routing, position, name)
            state.layer, state.candidate = i + 1, 0
            if state.layer < len(layers):
                save(Boundary.LAYER)
        _end_round(loop, val_data, candidates, config, state, layers, rng, logger, start,
                   seed)
        save(Boundary.ROUND)
    model.set_routing(state.routing)
    return state.results


def _scorers(loop: "Loop", val_data: Callable[..., Iterator], candidates: CandidateConfig,
             config: GnasConfig, layers: List[int], seed: int) -> Dict[int, TrainedScorer]:
    """The scorer of each searched layer: probes where ``probe_steps`` applies
    (`probed_layers`), K training steps elsewhere."""
    model = loop.model
    probing = probed_layers(model.space, model.num_attributes, layers, config)
    if any(probing.values()) and not candidates.train_steps:
        raise ValueError("probe_steps: needs train_steps > 0 (the probes train on the K "
                         "training batches)")
    return {l: (ProbeScorer if probing[l] else TrainedScorer)(loop, val_data, candidates,
                                                              config, seed)
            for l in layers}


def _initialize(loop: "Loop", candidates: CandidateConfig, config: GnasConfig,
                state: SearchState, start_tree: StartTree, rng: np.random.Generator,
                logger: SearchLogger, start: float, save: Callable[[str], None]) -> None:
    """The optional warm-up (not in Algorithm 1; module doc), on uniformly random trees or,
    with ``warmup_initial_tree``, on the initial tree, drawn first; then Algorithm 1's
    initialization: the first round's tree (the weights are random from the model's
    creation). Each step is skipped when `state` has done it."""
    if config.warmup_initial_tree and state.initial is None:
        state.initial = start_tree.draw(rng)
        save(Boundary.WARMUP)
    while state.warmup_done < candidates.warmup_steps:
        state.warmup_done = warmup_chunk(
            loop, candidates, rng, state.warmup_done, logger, start,
            state.initial if config.warmup_initial_tree else None)
        save(Boundary.WARMUP)
    if state.routing is None:
        state.initial = state.initial or start_tree.draw(rng)
        state.routing = state.round_start = state.initial


def _train_chosen_tree(loop: "Loop", candidates: CandidateConfig, config: GnasConfig,
                       routing: Routing, position: tuple, name: str) -> None:
    """With ``candidate_training=above`` (GNAS+): the layer's chosen tree trains K steps, so
    the layers below learn from the new parents (candidates' own steps were undone)."""
    if config.candidate_training == "above" and candidates.train_steps:
        loop.model.set_routing(routing)
        loop.restart(Stream.CHOSEN_TREE, *position)
        check_finite(loop.train(candidates.train_steps),
                     f"round {position[0]} layer {name} chosen tree")


def _end_round(loop: "Loop", val_data: Callable[..., Iterator], candidates: CandidateConfig,
               config: GnasConfig, state: SearchState, layers: List[int],
               rng: np.random.Generator, logger: SearchLogger, start: float, seed: int) -> None:
    """A round's end: the tree on V validation batches, the learning rate decayed, and the
    stopping rule (``patience`` unchanged rounds or ``max_rounds``). GNAS+ ``restarts``: a
    converged search climbs again from a new random tree (the weights, trained meanwhile,
    are kept), and after the last one the best converged tree is kept (`choose_restart`)."""
    model = loop.model
    model.set_routing(state.routing)
    validation = loop.evaluate(val_data(Stream.ROUND, state.round), candidates.val_batches)
    changed = state.routing != state.round_start
    result = RoundResult(state.round, state.routing, changed, loop.learning_rate,
                         state.rewards, state.reward_errors, validation, time.time() - start,
                         state.switch_gains, state.switch_errors, state.restart,
                         state.round_start)
    state.results.append(result)
    logger.round(result)
    loop.set_learning_rate(loop.learning_rate * config.lr_decay)
    state.unchanged = 0 if changed else state.unchanged + 1
    converged = (state.unchanged >= config.patience
                 or state.round - state.restart_round + 1 >= config.max_rounds)
    if converged and state.restart < config.restarts:
        state.restart, state.restart_round, state.unchanged = (
            state.restart + 1, state.round + 1, 0)
        state.routing = restart_routing(model.space, model.num_attributes, state.routing,
                                        layers, rng)
        logger.progress(f"restart {state.restart} of {config.restarts} from a random tree "
                        f"at round {state.round + 1}")
    elif converged:
        if config.restarts:
            _keep_best_restart(loop, val_data, candidates, config, state, min(layers), seed,
                               logger)
        state.finished = True
    state.next_round()


def _keep_best_restart(loop: "Loop", val_data: Callable[..., Iterator],
                       candidates: CandidateConfig, config: GnasConfig, state: SearchState,
                       layer: int, seed: int, logger: SearchLogger) -> None:
    """After the last restart: every restart's converged tree (its last round) is scored
    (`choose_restart`) and the best one becomes the search's tree."""
    ends = [r for r, after in zip(state.results, state.results[1:] + [None])
            if after is None or after.restart != r.restart]
    state.selection = choose_restart(loop, val_data, ends, candidates, config, layer, seed)
    chosen = next(row for row in state.selection if row["chosen"])
    state.routing = Routing.from_lists(chosen["tree"])
    logger.progress(f"kept restart {chosen['restart']}'s tree (round {chosen['round']}): "
                    "mean validation reward "
                    + ", ".join(f"{row['reward']:.4f}" for row in state.selection))


def _evaluation(probabilities: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Per-attribute accuracy of predictions (for progress lines)."""
    known = labels >= 0
    correct = ((probabilities > 0.5) == (labels == 1)) & known
    counts = known.sum(axis=0)
    return Evaluation(loss=float("nan"), accuracy=correct.sum(axis=0) / np.maximum(counts, 1),
                      counts=counts.astype(float))


def round_report(r: RoundResult) -> Dict:
    """A round for report.json. Per searched layer, medians over children of: the gap between
    the best and second-best candidate reward, the standard error of one reward, and the
    best candidate's gain over the current parent with the paired standard error of that
    gain. When gains are not clearly larger than their paired errors, the choice of parents
    is mostly noise."""
    median = lambda d: {k: float(np.nanmedian(v)) if np.isfinite(v).any() else None  # noqa
                        for k, v in d.items()}
    return {"round": r.round, "restart": r.restart, "mean_val_error": r.validation.mean_error,
            "learning_rate": r.learning_rate, "changed": r.changed, "elapsed": r.elapsed,
            "tree": [list(p) for p in r.routing.parents],
            "median_reward_gap": median({k: reward_gaps(v) for k, v in r.rewards.items()}),
            "median_reward_standard_error": median(r.reward_errors),
            "median_switch_gain": median(r.switch_gains),
            "median_switch_paired_standard_error": median(r.switch_errors)}


def measured_start(context: SearchContext) -> Optional[Callable[[], Routing]]:
    """() -> the measured tree the rounds start from, when ``initial_tree`` is measured."""
    measure = MEASURED_STARTS.get(context.method_config.initial_tree)
    return measure(context) if measure else None


def _search(context: SearchContext) -> SearchResult:
    saved = context.saved_state
    state = (SearchState.from_dict(saved) if saved
             else SearchState(rng_state=context.rng.bit_generator.state))
    results = search(context.loop, context.val_data, context.config.candidates,
                     context.method_config, context.rng, context.logger, state,
                     context.checkpoint, seed=context.config.seed,
                     training_labels=context.training_labels,
                     measured_start=measured_start(context))
    supernet = context.supernet
    report = {"rounds": [round_report(r) for r in results]}
    if state.initial is not None:
        initial = Architecture.from_space(supernet.space, state.initial)
        report["initial_tree"] = [list(p) for p in state.initial.parents]
        if context.planted_groups:
            report["initial_ari"] = adjusted_rand_index(initial.grouping(),
                                                        context.planted_groups)
    if state.selection:
        report["restarts"] = state.selection
    return SearchResult(Architecture.from_space(supernet.space, supernet.routing), supernet,
                        report)


METHOD = Method("gnas", _search, GnasConfig, uses_supernet=True,
                summary="GNAS (Huang et al. 2018): greedy layer-wise parent updates on "
                        "shared weights.",
                round_layers=lambda space, n, config: searched_layers(space, n,
                                                                      config.search_only))
