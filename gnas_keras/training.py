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

    @property
    def mean_error(self) -> float:
        return float(1.0 - np.nanmean(self.accuracy))

    @property
    def errors(self) -> np.ndarray:
        return 1.0 - self.accuracy


class Loop:
    """Train and evaluate a supernet on its current routing.

    Args:
      model: a compiled `Supernet` (built under ``strategy.scope()`` when distributed).
      train_dataset: an infinite dataset of training batches (global batch size).
    """

    def __init__(self, model: Supernet, train_dataset: tf.data.Dataset):
        self.model = model
        self.strategy = model.distribute_strategy
        model.make_train_function()
        model.make_test_function()
        self._train_iter = self.iterator(train_dataset)

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
    if not np.isfinite(evaluation.loss):
        raise FloatingPointError(f"loss is {evaluation.loss} at {where}")


def repeat_batches(dataset: tf.data.Dataset, fixed_batches: Optional[int] = None
                   ) -> tf.data.Dataset:
    """An endless evaluation stream: cycles through `dataset` in order, or through only its
    first `fixed_batches` batches (so that every evaluation sees the same examples)."""
    if fixed_batches:
        dataset = dataset.take(fixed_batches).cache()
    return dataset.repeat()
