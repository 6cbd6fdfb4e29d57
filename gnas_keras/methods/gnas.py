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

Resuming. `search` keeps its whole position in a `SearchState` (round, layer, candidate,
rewards so far, the tree, the random generator's state, ...) and hands it to `checkpoint`
after every candidate, layer and round; together with the weights and optimizer slots that is
all a killed search needs to continue exactly where the last checkpoint left it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional

import numpy as np

from gnas_keras.architecture import Architecture
from gnas_keras.config import CandidateConfig, setting
from gnas_keras.evaluation import Evaluation, check_finite
from gnas_keras.methods.base import (Method, SearchContext, SearchLogger, SearchResult,
                                     resume, warmup_chunk)
from gnas_keras.tree import Routing, random_routing

if TYPE_CHECKING:
    from gnas_keras.training import Loop


@dataclasses.dataclass
class GnasConfig:
    """GNAS's own settings (the candidate settings K, V, warm-up are `CandidateConfig`)."""

    max_rounds: int = setting(300, "GNAS round cap (paper: 150 CelebA, 300 LFWA / "
                                   "Market-1501); also random search's default budget.")
    patience: int = setting(3, "GNAS stops after this many rounds without a tree change.")
    lr_decay: float = setting(0.96, "Learning rate factor after every GNAS round (paper: "
                                    "0.96).")

    def validate(self) -> None:
        for name in ("max_rounds", "patience"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay: must be in (0, 1], got {self.lr_decay}")


@dataclasses.dataclass
class RoundResult:
    round: int
    routing: Routing
    changed: bool
    learning_rate: float
    rewards: Dict[str, np.ndarray]    # layer name -> [B_{l-1}, B_l] reward(b -> j)
    reward_errors: Dict[str, np.ndarray]  # same shape: binomial standard error of each reward
    validation: Evaluation            # the round's final tree on V validation batches
    elapsed: float                    # seconds since the search started

    def to_dict(self) -> Dict:
        return {"round": self.round, "routing": [list(p) for p in self.routing.parents],
                "changed": self.changed, "learning_rate": self.learning_rate,
                "rewards": {k: v.tolist() for k, v in self.rewards.items()},
                "reward_errors": {k: v.tolist() for k, v in self.reward_errors.items()},
                "validation": self.validation.to_dict(), "elapsed": self.elapsed}

    @classmethod
    def from_dict(cls, d: Dict) -> "RoundResult":
        return cls(d["round"], Routing.from_lists(d["routing"]), d["changed"],
                   d["learning_rate"], {k: np.asarray(v) for k, v in d["rewards"].items()},
                   {k: np.asarray(v) for k, v in d["reward_errors"].items()},
                   Evaluation.from_dict(d["validation"]), d["elapsed"])


@dataclasses.dataclass
class SearchState:
    """Everything but the weights that a search needs to continue after a restart.

    The position is (round, layer, candidate): the next candidate parent block to evaluate
    for the `layer`-th searched layer from the top. `rewards` / `reward_errors` hold this
    round's rows evaluated so far, [B_{l-1}, B_l] per layer, NaN where not yet evaluated.
    """

    rng_state: Dict                   # numpy bit generator state
    routing: Optional[Routing] = None  # the tree so far (None until the warm-up is done)
    round_start: Optional[Routing] = None
    round: int = 1
    layer: int = 0
    candidate: int = 0
    rewards: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    reward_errors: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    warmup_done: int = 0
    evaluations: int = 0              # candidates evaluated: a position for data seeds
    unchanged: int = 0
    finished: bool = False
    elapsed: float = 0.0              # search seconds spent before this process
    results: List[RoundResult] = dataclasses.field(default_factory=list)

    def to_dict(self) -> Dict:
        tree = lambda r: None if r is None else [list(p) for p in r.parents]  # noqa: E731
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "routing": tree(self.routing), "round_start": tree(self.round_start),
                "rewards": {k: v.tolist() for k, v in self.rewards.items()},
                "reward_errors": {k: v.tolist() for k, v in self.reward_errors.items()},
                "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: Dict) -> "SearchState":
        tree = lambda t: None if t is None else Routing.from_lists(t)  # noqa: E731
        return cls(**{**d, "routing": tree(d["routing"]), "round_start": tree(d["round_start"]),
                      "rewards": {k: np.asarray(v, float) for k, v in d["rewards"].items()},
                      "reward_errors": {k: np.asarray(v, float)
                                        for k, v in d["reward_errors"].items()},
                      "results": [RoundResult.from_dict(r) for r in d["results"]]})


def block_rewards(descendants: List[frozenset], accuracy: np.ndarray) -> np.ndarray:
    """Eq. 5: reward of each child block = mean accuracy over the attributes below it.

    descendants: I_j for the blocks j of one layer. accuracy: [N] per-attribute accuracy.
    Returns [B_l], NaN for a block with no attributes below it.
    """
    return np.array([np.mean(accuracy[sorted(d)]) if d else np.nan for d in descendants])


def reward_standard_errors(descendants: List[frozenset], evaluation: Evaluation) -> np.ndarray:
    """Binomial standard error of each `block_rewards` entry: how much a reward moves from
    the choice of validation examples alone. [B_l], NaN for dead blocks."""
    p, c = evaluation.accuracy, np.maximum(evaluation.counts, 1)
    return np.array([np.sqrt(np.sum(p[sorted(d)] * (1 - p[sorted(d)]) / c[sorted(d)])) / len(d)
                     if d else np.nan for d in descendants])


def reward_gaps(rewards: np.ndarray) -> np.ndarray:
    """Per child: best minus second-best candidate reward (NaN for dead children)."""
    top2 = -np.sort(-rewards, axis=0)[:2]
    return top2[0] - top2[1]


def best_parents(rewards: np.ndarray, current: tuple) -> tuple:
    """Eq. 6: for every child (column) the candidate parent (row) with the highest reward.

    A child whose rewards are all NaN (a dead block) keeps its current parent.
    """
    chosen = []
    for j in range(rewards.shape[1]):
        column = rewards[:, j]
        chosen.append(current[j] if np.all(np.isnan(column)) else int(np.nanargmax(column)))
    return tuple(chosen)


def search(loop: "Loop", val_data: Callable[..., Iterator], candidates: CandidateConfig,
           config: GnasConfig, rng: np.random.Generator, logger: Optional[SearchLogger] = None,
           state: Optional[SearchState] = None,
           checkpoint: Optional[Callable[[SearchState, str], None]] = None
           ) -> List[RoundResult]:
    """Runs Algorithm 1 on `loop.model`; returns one `RoundResult` per round.

    Args:
      loop: the trainer; `loop.restart(*position)` reseeds its training stream.
      val_data: position -> an endless iterator of validation batches for that position.
      candidates: K (train_steps), V (val_batches) and the warm-up.
      rng: draws the warm-up trees and the initial tree; its state is part of the state.
      state: where to continue (from `checkpoint`); None starts a new search.
      checkpoint: called as checkpoint(state, boundary) after every warm-up chunk
        ("warmup"), candidate ("candidate"), layer ("layer") and round ("round"), with the
        model's weights consistent with `state`.
    The model's routing is left at the final tree.
    """
    model, logger = loop.model, logger or SearchLogger()
    space, n = model.space, model.num_attributes
    layers = list(reversed(space.searched_layers(n)))   # top searched layer first
    counts = space.block_counts(n)
    total = config.max_rounds * sum(counts[l - 1] for l in layers)
    k, v = candidates.train_steps, candidates.val_batches
    if state is None:
        state = SearchState(rng_state=rng.bit_generator.state)
    start, save = resume(state, rng, checkpoint)

    # 0. Optional warm-up on uniformly random trees (not in Algorithm 1; see module doc).
    while state.warmup_done < candidates.warmup_steps:
        state.warmup_done = warmup_chunk(loop, candidates, rng, state.warmup_done, logger,
                                         start)
        save("warmup")

    # 1. Initialization: a random tree (the weights are random from the model's creation).
    if state.routing is None:
        state.routing = state.round_start = random_routing(space, n, rng)
    rounds_start, evaluations_before = time.time(), state.evaluations

    # 2. Updating: one candidate per iteration, at the position the state holds.
    while not state.finished:
        l = layers[state.layer]
        name, b = space.layers[l].name, state.candidate
        if b == 0:
            state.rewards[name] = np.full((counts[l - 1], counts[l]), np.nan)
            state.reward_errors[name] = np.full((counts[l - 1], counts[l]), np.nan)
        descendants = state.routing.descendants()[l]     # I_j: unchanged by layer l's parents

        model.set_routing(state.routing.with_layer(l, [b] * counts[l]))   # all children -> b
        if k:                                                             # 0: frozen (Fig. 4)
            loop.restart(1, state.evaluations)
            check_finite(loop.train(k),
                         f"round {state.round} layer {name} candidate {b}")
        evaluation = loop.evaluate(val_data(1, state.evaluations), v)
        state.rewards[name][b] = block_rewards(descendants, evaluation.accuracy)   # Eq. 5
        state.reward_errors[name][b] = reward_standard_errors(descendants, evaluation)
        state.evaluations += 1
        state.candidate += 1
        per_candidate = (time.time() - rounds_start) / (state.evaluations - evaluations_before)
        logger.candidate(state.round, config.max_rounds, name, b, counts[l - 1], evaluation,
                         time.time() - start,
                         per_candidate * (total - state.evaluations), state.evaluations)
        if state.candidate < counts[l - 1]:
            save("candidate")
            continue

        # Layer done: every child gets its best parent (Eq. 6).
        state.routing = state.routing.with_layer(
            l, best_parents(state.rewards[name], state.routing.parents[l]))
        state.layer, state.candidate = state.layer + 1, 0
        if state.layer < len(layers):
            save("layer")
            continue

        # Round done.
        model.set_routing(state.routing)
        validation = loop.evaluate(val_data(2, state.round), v)
        changed = state.routing != state.round_start
        result = RoundResult(state.round, state.routing, changed, loop.learning_rate,
                             state.rewards, state.reward_errors, validation,
                             time.time() - start)
        state.results.append(result)
        logger.round(result)
        loop.set_learning_rate(loop.learning_rate * config.lr_decay)
        state.unchanged = 0 if changed else state.unchanged + 1
        state.finished = (state.unchanged >= config.patience
                          or state.round >= config.max_rounds)
        state.round, state.layer, state.round_start = state.round + 1, 0, state.routing
        state.rewards, state.reward_errors = {}, {}
        save("round")
    model.set_routing(state.routing)
    return state.results


def round_report(r: RoundResult) -> Dict:
    """A round for report.json, with the median (over children) gap between the best and
    second-best candidate reward next to the median standard error of a reward: when the
    gaps are not clearly larger than the errors, the choice of parents is mostly noise."""
    return {"round": r.round, "mean_val_error": r.validation.mean_error,
            "learning_rate": r.learning_rate, "changed": r.changed, "elapsed": r.elapsed,
            "tree": [list(p) for p in r.routing.parents],
            "median_reward_gap": {k: float(np.nanmedian(reward_gaps(v)))
                                  for k, v in r.rewards.items()},
            "median_reward_standard_error": {k: float(np.nanmedian(v))
                                             for k, v in r.reward_errors.items()}}


def _search(context: SearchContext) -> SearchResult:
    saved = context.saved_state
    results = search(context.loop, context.val_data, context.config.candidates,
                     context.method_config, context.rng, context.logger,
                     SearchState.from_dict(saved) if saved else None, context.checkpoint)
    supernet = context.supernet
    return SearchResult(Architecture.from_space(supernet.space, supernet.routing), supernet,
                        {"rounds": [round_report(r) for r in results]})


METHOD = Method("gnas", _search, GnasConfig, uses_supernet=True,
                summary="GNAS (Huang et al. 2018): greedy layer-wise parent updates on "
                        "shared weights.")
