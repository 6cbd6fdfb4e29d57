"""What an evaluation measured, and the run's data-seed and NaN conventions (no TensorFlow)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Optional

import numpy as np


@dataclasses.dataclass
class Evaluation:
    """Mean loss, per-attribute accuracy [N] and labelled examples per attribute [N] over
    the evaluated batches."""

    loss: float
    accuracy: np.ndarray
    counts: Optional[np.ndarray] = None

    def to_dict(self):
        return {"loss": self.loss, "accuracy": self.accuracy.tolist(),
                "counts": None if self.counts is None else self.counts.tolist()}

    @classmethod
    def from_dict(cls, d) -> "Evaluation":
        return cls(d["loss"], np.asarray(d["accuracy"], dtype=np.float64),
                   None if d["counts"] is None else np.asarray(d["counts"], dtype=np.float64))

    @property
    def mean_error(self) -> float:
        return float(1.0 - np.nanmean(self.accuracy))

    @property
    def errors(self) -> np.ndarray:
        return 1.0 - self.accuracy


class Stream(enum.IntEnum):
    """The first number of a segment's position (`segment_seed`, `Loop.restart`,
    ``val_data(*position)``): which stream of data (or of fresh weights) the segment draws.
    Names are per use; methods never run together, so two uses in different methods may share
    a number (the values are those the methods always used: checkpoints stay valid)."""

    WARMUP = 0            # supernet warm-up chunks (GNAS, random search)
    CANDIDATE = 1         # GNAS: a candidate's K training and V validation batches
    ROUND = 2             # GNAS: the round's tree on V validation batches
    CHOSEN_TREE = 3       # GNAS+: the chosen tree's K steps after a layer
    TRIAL = 3             # random search: a trial's training and validation batches
    FINETUNE = 4          # fine-tune and from-scratch training chunks
    FRESH_HEADS = 5       # GNAS+ fresh heads' initial weights
    BRANCHING_ROUND = 5   # adaptive branching: a round's training
    GALM_REWARDS = 5      # GALM: the validation stream of its rewards
    BN_REFRESH = 6        # GNAS+ batch-norm refresh before scoring
    GALM_PHASE = 6        # GALM: a phase's child training
    RESTART_CHOICE = 7    # GNAS+: scoring the restarts' converged trees
    GALM_FINAL = 9        # GALM: the final samples
    STUDY_TRACE = 9       # the efficiency study's tracing evaluation


def segment_seed(seed: int, *position: int) -> int:
    """A data seed for one segment of a run (a candidate, a warm-up chunk, ...), from the run
    seed and the segment's position: a resumed run draws exactly the data it would have."""
    return int(np.random.SeedSequence([seed, *position]).generate_state(1)[0])


def check_finite(evaluation: Evaluation, where: str) -> None:
    """Raises `NumericalError` if the loss of a training segment is NaN or infinite."""
    if not np.isfinite(evaluation.loss):
        raise NumericalError(f"training loss is {evaluation.loss} at {where}", where)


class NumericalError(FloatingPointError):
    """A NaN or Inf loss; `where` says in which segment of the run it happened."""

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


class WorkerLost(RuntimeError):
    """A multi-worker run lost a worker (it stopped sending heartbeats: killed, preempted,
    crashed); the message names it and where the run resumes (`gnas_keras.run`)."""
