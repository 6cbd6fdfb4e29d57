"""Random search over trees with the shared supernet weights (GNAS paper, sec. 4.3).

    (the optional warm-up on random trees, `CandidateConfig.warmup_steps`, as for GNAS)
    for each trial:
        draw a tree uniformly at random (every searchable block gets a random parent)
        train W[tree] on K training batches      (K = 0: weights frozen, as in Fig. 4)
        evaluate it on V validation batches
    return the tree with the best validation mean accuracy seen so far

It shares the trainer (`training.Loop`), the evaluator, the candidate settings
(`config.CandidateConfig`) and the weights with GNAS, so with the same K, V and number of
evaluations both methods get the same compute. By default the number of trials is GNAS's
budget: ``max_rounds * evaluations_per_round``.

Resuming: `RandomSearchState` holds the position (warm-up steps, trials done, the random
generator's state, the best tree so far and every trial's result); `search` hands it to
`checkpoint` after every warm-up chunk ("warmup") and every trial ("candidate").
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional

import numpy as np

from gnas_keras.space.architecture import Architecture
from gnas_keras.settings import CandidateConfig, setting
from gnas_keras.training.evaluation import Stream, check_finite
from gnas_keras.methods.base import (Method, SearchContext, SearchLogger, SearchResult,
                                     resume, warmup_chunk)
from gnas_keras.space.tree import Routing, random_routing

if TYPE_CHECKING:
    from gnas_keras.training.loop import Loop


@dataclasses.dataclass
class RandomSearchConfig:
    random_trials: int = setting(0, "Random search trials (0 = GNAS's budget: max_rounds x "
                             "evaluations per round).")

    def validate(self) -> None:
        if self.random_trials < 0:
            raise ValueError(f"random_trials: must be >= 0, got {self.random_trials}")


@dataclasses.dataclass
class TrialResult:
    trial: int
    routing: Routing
    mean_val_error: float       # this trial's tree on V validation batches
    best_routing: Routing       # best tree so far (lowest mean validation error)
    best_error: float
    elapsed: float              # seconds since the search started

    def to_dict(self) -> Dict:
        return {"trial": self.trial, "routing": [list(p) for p in self.routing.parents],
                "mean_val_error": self.mean_val_error,
                "best_routing": [list(p) for p in self.best_routing.parents],
                "best_error": self.best_error, "elapsed": self.elapsed}

    @classmethod
    def from_dict(cls, d: Dict) -> "TrialResult":
        return cls(d["trial"], Routing.from_lists(d["routing"]), d["mean_val_error"],
                   Routing.from_lists(d["best_routing"]), d["best_error"], d["elapsed"])


@dataclasses.dataclass
class RandomSearchState:
    """Everything but the weights that a random search needs to continue after a restart."""

    rng_state: Dict
    warmup_done: int = 0
    evaluations: int = 0           # trials done
    elapsed: float = 0.0           # search seconds spent before this process
    results: List[TrialResult] = dataclasses.field(default_factory=list)

    def to_dict(self) -> Dict:
        return {"rng_state": self.rng_state, "warmup_done": self.warmup_done,
                "evaluations": self.evaluations, "elapsed": self.elapsed,
                "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: Dict) -> "RandomSearchState":
        return cls(d["rng_state"], d["warmup_done"], d["evaluations"], d["elapsed"],
                   [TrialResult.from_dict(r) for r in d["results"]])


def search(loop: "Loop", val_data: Callable[..., Iterator], candidates: CandidateConfig,
           trials: int, rng: np.random.Generator, logger: Optional[SearchLogger] = None,
           state: Optional[RandomSearchState] = None,
           checkpoint: Optional[Callable[[RandomSearchState, str], None]] = None
           ) -> List[TrialResult]:
    """Runs `trials` random trials (> 0); leaves the model on the best tree.

    Data streams are seeded by the trial number, like GNAS's by the candidate's position.
    """
    model, logger = loop.model, logger or SearchLogger()
    space, n = model.space, model.num_attributes
    if state is None:
        state = RandomSearchState(rng_state=rng.bit_generator.state)
    start, save = resume(state, rng, checkpoint)

    while state.warmup_done < candidates.warmup_steps:  # the same warm-up as GNAS, if any
        state.warmup_done = warmup_chunk(loop, candidates, rng, state.warmup_done, logger,
                                         start)
        save("warmup")
    while state.evaluations < trials:
        trial = state.evaluations + 1
        routing = random_routing(space, n, rng)
        model.set_routing(routing)
        train_loss = float("nan")
        if candidates.train_steps:
            loop.restart(Stream.TRIAL, trial)
            trained = loop.train(candidates.train_steps)
            check_finite(trained, f"random trial {trial}")
            train_loss = trained.loss
        evaluation = loop.evaluate(val_data(Stream.TRIAL, trial), candidates.val_batches)
        best = state.results[-1] if state.results else None
        if best is None or evaluation.mean_error < best.best_error:
            best_routing, best_error = routing, evaluation.mean_error
        else:
            best_routing, best_error = best.best_routing, best.best_error
        elapsed = time.time() - start
        state.results.append(TrialResult(trial, routing, evaluation.mean_error, best_routing,
                                         best_error, elapsed))
        state.evaluations = trial
        logger.trial(trial, trials, evaluation, best_error, elapsed,
                     elapsed / trial * (trials - trial), train_loss)
        save("candidate")
    model.set_routing(state.results[-1].best_routing)
    return state.results


def budget(context: SearchContext) -> int:
    """Trials of this run: the configured number, or GNAS's budget in evaluations."""
    from gnas_keras.methods.gnas import GnasConfig
    trials = context.method_config.random_trials
    gnas = context.config.methods.get("gnas") or GnasConfig()
    return trials or gnas.max_rounds * context.space.evaluations_per_round(
        context.num_attributes)


def _search(context: SearchContext) -> SearchResult:
    saved = context.saved_state
    results = search(context.loop, context.val_data, context.config.candidates,
                     budget(context), context.rng, context.logger,
                     RandomSearchState.from_dict(saved) if saved else None, context.checkpoint)
    supernet = context.supernet
    return SearchResult(
        Architecture.from_space(supernet.space, supernet.routing), supernet,
        {"trials": [{"trial": t.trial, "mean_val_error": t.mean_val_error,
                     "best_val_error": t.best_error, "elapsed": t.elapsed} for t in results]})


METHOD = Method("random", _search, RandomSearchConfig, uses_supernet=True,
                summary="Random search over trees on shared weights (GNAS paper sec. 4.3).")
