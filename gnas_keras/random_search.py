"""Random search over trees with the shared supernet weights (GNAS paper, sec. 4.3).

    (GNAS's optional warm-up on random trees, `GnasConfig.warmup_steps`)
    for each trial:
        draw a tree uniformly at random (every searchable block gets a random parent)
        train W[tree] on K training batches      (K = 0: weights frozen, as in Fig. 4)
        evaluate it on V validation batches
    return the tree with the best validation mean accuracy seen so far

It shares the trainer (`training.Loop`), the evaluator and the weights with GNAS, so with the
same K, V and number of evaluations both methods get the same compute. By default the number
of trials is GNAS's budget: ``max_rounds * evaluations_per_round``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterator, List, Optional

import numpy as np

from gnas_keras.gnas import GnasConfig, SearchLogger, warmup_chunk
from gnas_keras.training import Evaluation, Loop, check_finite
from gnas_keras.tree import Routing, random_routing


@dataclasses.dataclass
class TrialResult:
    trial: int
    routing: Routing
    validation: Evaluation     # this trial's tree on V validation batches
    best_routing: Routing      # best tree so far (lowest mean validation error)
    best_error: float
    elapsed: float             # seconds since the search started


def search(loop: Loop, val_data: Callable[..., Iterator], config: GnasConfig,
           rng: np.random.Generator, logger: Optional[SearchLogger] = None,
           trials: int = 0) -> List[TrialResult]:
    """Runs `trials` random trials (0 = GNAS's budget); leaves the model on the best tree.

    Data streams are seeded by the trial number, like GNAS's by the candidate's position.
    """
    model, logger = loop.model, logger or SearchLogger()
    space, n = model.space, model.num_attributes
    trials = trials or config.max_rounds * space.evaluations_per_round(n)
    start, results = time.time(), []
    warmed_up = 0
    while warmed_up < config.warmup_steps:  # the same warm-up as GNAS, if any
        warmed_up = warmup_chunk(loop, config, rng, warmed_up, logger, start)
    best: Optional[TrialResult] = None
    for trial in range(1, trials + 1):
        routing = random_routing(space, n, rng)
        model.set_routing(routing)
        if config.train_steps:
            loop.restart(3, trial)
            check_finite(loop.train(config.train_steps), f"random trial {trial}")
        evaluation = loop.evaluate(val_data(3, trial), config.val_batches)
        if best is None or evaluation.mean_error < best.best_error:
            best_routing, best_error = routing, evaluation.mean_error
        else:
            best_routing, best_error = best.best_routing, best.best_error
        best = TrialResult(trial, routing, evaluation, best_routing, best_error,
                           time.time() - start)
        results.append(best)
        elapsed = time.time() - start
        logger.trial(trial, trials, evaluation, best_error, elapsed,
                     elapsed / trial * (trials - trial))
    model.set_routing(best.best_routing)
    return results
