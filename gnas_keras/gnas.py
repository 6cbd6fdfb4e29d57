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

Choices the paper leaves open, each a `GnasConfig` field:
- ``warmup_steps``: optional training on uniformly random trees before the first round, so
  every edge starts equally trained (the paper's Fig. 4 also searches from inherited weights).
  Default 0 in the library = the paper's Algorithm 1.
- ``fixed_val_batches``: evaluate every candidate on the same V validation batches (less
  noise between candidates) instead of the next V batches of a cycling loader (the paper's
  most plausible setup, and the default).
- ties between candidates go to the lowest block index; a block with no attributes below it
  (dead) keeps its parent.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict, List, Optional

import numpy as np

from gnas_keras.training import Evaluation, Loop, check_finite
from gnas_keras.tree import Routing, random_routing


@dataclasses.dataclass
class GnasConfig:
    train_steps: int = 400          # K: training batches per candidate (paper: 400 / 2000);
                                    # 0 = weights frozen during the search (Fig. 4)
    val_batches: int = 5            # V: validation batches per candidate (paper: 1 / 5 / 20)
    max_rounds: int = 300           # round cap (paper: 150 CelebA, 300 LFWA / Market-1501)
    patience: int = 3               # stop after this many rounds without a tree change
    lr_decay: float = 0.96          # learning rate x this after every round
    warmup_steps: int = 0           # steps on uniformly random trees before round 1
    warmup_resample: int = 20       # draw a new random tree every this many warm-up steps
    fixed_val_batches: bool = False


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


class SearchLogger:
    """Receives progress; the default does nothing. See `gnas_keras.reporting`."""

    def warmup(self, step: int, steps: int, evaluation: Evaluation, elapsed: float) -> None:
        pass

    def candidate(self, round_: int, layer: str, candidate: int, num_candidates: int,
                  evaluation: Evaluation, elapsed: float, eta: float, done: int) -> None:
        pass

    def trial(self, trial: int, trials: int, evaluation: Evaluation, best_error: float,
              elapsed: float, eta: float) -> None:
        """A random-search trial (`gnas_keras.random_search`)."""

    def round(self, result: RoundResult) -> None:
        pass


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


def warmup(loop: Loop, steps: int, resample: int, rng: np.random.Generator,
           logger: SearchLogger) -> None:
    """Trains on a new uniformly random tree every `resample` steps."""
    model, start, done = loop.model, time.time(), 0
    while done < steps:
        model.set_routing(random_routing(model.space, model.num_attributes, rng))
        n = min(resample, steps - done)
        evaluation = loop.train(n)
        check_finite(evaluation, f"warm-up step {done}")
        done += n
        logger.warmup(done, steps, evaluation, time.time() - start)


def search(loop: Loop, val_iterator, config: GnasConfig, rng: np.random.Generator,
           logger: Optional[SearchLogger] = None,
           initial_routing: Optional[Routing] = None) -> List[RoundResult]:
    """Runs Algorithm 1 on `loop.model`; returns one `RoundResult` per round.

    The model's routing is left at the final tree. `val_iterator` yields validation batches
    forever (see `training.repeat_batches`).
    """
    model, logger = loop.model, logger or SearchLogger()
    space, n = model.space, model.num_attributes
    layers = space.searched_layers(n)
    counts = space.block_counts(n)
    start = time.time()
    if config.warmup_steps:
        warmup(loop, config.warmup_steps, config.warmup_resample, rng, logger)
    rounds_start = time.time()

    # 1. Initialization: a random tree (the weights are random from the model's creation).
    routing = initial_routing or random_routing(space, n, rng)
    model.set_routing(routing)

    # 2. Updating, round after round.
    total = config.max_rounds * sum(counts[l - 1] for l in layers)
    done, unchanged, results = 0, 0, []
    for round_ in range(1, config.max_rounds + 1):
        round_start_routing = routing
        rewards: Dict[str, np.ndarray] = {}
        reward_errors: Dict[str, np.ndarray] = {}
        for l in reversed(layers):                       # top searched layer first
            name = space.layers[l].name
            descendants = routing.descendants()[l]       # I_j: unchanged by layer l's parents
            layer_rewards = np.full((counts[l - 1], counts[l]), np.nan)
            layer_errors = np.full_like(layer_rewards, np.nan)
            for b in range(counts[l - 1]):
                model.set_routing(routing.with_layer(l, [b] * counts[l]))
                if config.train_steps:  # 0: weights frozen (the paper's Fig. 4)
                    check_finite(loop.train(config.train_steps),
                                 f"round {round_} layer {name} candidate {b}")
                evaluation = loop.evaluate(val_iterator, config.val_batches)
                layer_rewards[b] = block_rewards(descendants, evaluation.accuracy)
                layer_errors[b] = reward_standard_errors(descendants, evaluation)
                done += 1
                per_candidate = (time.time() - rounds_start) / done
                logger.candidate(round_, name, b, counts[l - 1], evaluation,
                                 time.time() - start, per_candidate * (total - done), done)
            routing = routing.with_layer(l, best_parents(layer_rewards, routing.parents[l]))
            rewards[name] = layer_rewards
            reward_errors[name] = layer_errors
        model.set_routing(routing)
        validation = loop.evaluate(val_iterator, config.val_batches)
        changed = routing != round_start_routing
        result = RoundResult(round_, routing, changed, loop.learning_rate, rewards,
                             reward_errors, validation, time.time() - start)
        results.append(result)
        logger.round(result)
        loop.set_learning_rate(loop.learning_rate * config.lr_decay)
        unchanged = 0 if changed else unchanged + 1
        if unchanged >= config.patience:
            break
    return results
