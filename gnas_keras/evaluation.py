"""What an evaluation measured, and the run's data-seed and NaN conventions (no TensorFlow)."""

from __future__ import annotations

import dataclasses
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
