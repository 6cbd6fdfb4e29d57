"""The one training/evaluation loop every method shares.

`Loop` drives a compiled `Supernet` with its own persistent data iterators, so that GNAS can
train K batches, evaluate V batches, reassign the routing and continue, thousands of times,
without rebuilding a `fit()` (which would restart the input pipeline and its shuffle buffer
on every call). It calls the model's compiled ``train_function`` / ``test_function``, which
run ``Supernet.train_step`` / ``test_step`` under the model's distribution strategy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf

from gnas_keras.supernet import Supernet


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


class Loop:
    """Train and evaluate a supernet on its current routing.

    Args:
      model: a compiled `Supernet` (built under ``strategy.scope()`` when distributed).
      train_data: an infinite dataset of training batches (global batch size), or a function
        seed -> such a dataset, which `restart` uses to start a new, seeded stream.
      seed: the run seed `restart` derives segment seeds from.
    """

    def __init__(self, model: Supernet, train_data, seed: int = 0):
        self.model = model
        self.strategy = model.distribute_strategy
        self.seed = seed
        model.make_train_function()
        model.make_test_function()
        self._train_data = train_data
        self._train_iter = None

    def restart(self, *position: int) -> None:
        """Continues training on a new stream seeded by `segment_seed(seed, *position)`."""
        self._train_iter = self.iterator(self._train_data(segment_seed(self.seed, *position)))

    def iterator(self, dataset: tf.data.Dataset) -> Iterator:
        """An iterator the compiled functions accept (distributed when the model is)."""
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def _reset(self):
        for m in self.model.metrics:
            m.reset_state()

    def set_learning_rate(self, lr: float) -> None:
        self.model.optimizer.learning_rate.assign(lr)

    @property
    def learning_rate(self) -> float:
        return float(self.model.optimizer.learning_rate.numpy())

    def train(self, steps: int) -> Evaluation:
        """`steps` optimizer steps on the next training batches; returns training metrics."""
        if self._train_iter is None:
            data = self._train_data
            self._train_iter = self.iterator(data if isinstance(data, tf.data.Dataset)
                                             else data(segment_seed(self.seed)))
        self._reset()
        for _ in range(steps):
            self.model.train_function(self._train_iter)
        return self._result()

    def evaluate(self, iterator: Iterator, steps: int) -> Evaluation:
        """Metrics over the next `steps` batches of `iterator` (inference mode)."""
        self._reset()
        for _ in range(steps):
            self.model.test_function(iterator)
        return self._result()

    def evaluate_dataset(self, dataset: tf.data.Dataset, num_examples: int,
                         batch_size: int) -> Evaluation:
        """One full pass over a finite evaluation dataset of `num_examples` examples."""
        return self.evaluate(self.iterator(dataset), math.ceil(num_examples / batch_size))

    def predict(self, dataset: tf.data.Dataset):
        """Probabilities [examples, N] that each attribute is present, and the labels
        [examples, N] (-1 unknown), over one pass of a finite dataset."""
        probabilities, labels = [], []
        for images, batch_labels in dataset:
            logits = self.model.predict_on_batch(images)
            probabilities.append(tf.nn.softmax(logits)[..., 1].numpy())
            labels.append(batch_labels.numpy())
        return np.concatenate(probabilities), np.concatenate(labels)

    def _result(self) -> Evaluation:
        tracker = self.model.accuracy_tracker
        return Evaluation(loss=float(self.model.loss_tracker.result().numpy()),
                          accuracy=np.asarray(tracker.result().numpy()),
                          counts=np.asarray(tracker.count.numpy()))


def check_finite(evaluation: Evaluation, where: str) -> None:
    """Raises `NumericalError` if the loss of a training segment is NaN or infinite."""
    if not np.isfinite(evaluation.loss):
        raise NumericalError(f"training loss is {evaluation.loss} at {where}", where)


class NumericalError(FloatingPointError):
    """A NaN or Inf loss; `where` says in which segment of the run it happened."""

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


def repeat_batches(dataset: tf.data.Dataset, fixed_batches: Optional[int] = None
                   ) -> tf.data.Dataset:
    """An endless evaluation stream: cycles through `dataset` in order, or through only its
    first `fixed_batches` batches (so that every evaluation sees the same examples)."""
    if fixed_batches:
        dataset = dataset.take(fixed_batches).cache()
    return dataset.repeat()
