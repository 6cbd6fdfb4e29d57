"""The one training/evaluation loop every method shares.

`Loop` drives a compiled `AttributeModel` (a supernet or a tree network) with its own persistent data iterators, so that GNAS can
train K batches, evaluate V batches, reassign the routing and continue, thousands of times,
without rebuilding a `fit()` (which would restart the input pipeline and its shuffle buffer
on every call). It calls the model's compiled ``train_function`` / ``test_function``, which
run ``AttributeModel.train_step`` / ``test_step`` under the model's distribution strategy.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from gnas_keras.space.architecture import Architecture
from gnas_keras.training.evaluation import Evaluation, Stream, check_finite, segment_seed
from gnas_keras.models.base import AttributeModel
from gnas_keras.models.supernet import Supernet, build_supernet
from gnas_keras.models.tree_net import TreeNetwork, build_tree_network
from gnas_keras.reporting.progress import Progress
from gnas_keras.space.search_space import SearchSpace

# `RunConfig` in annotations is gnas_keras.config.RunConfig, not imported (no import circle
# through the config's method registry).
if TYPE_CHECKING:
    from gnas_keras.training.data import Data


class Loop:
    """Train and evaluate a model (a supernet on its current routing, or a tree network).

    Args:
      model: a compiled `AttributeModel` (built under ``strategy.scope()`` when distributed).
      train_data: an infinite dataset of training batches (global batch size), or a function
        seed -> such a dataset, which `restart` uses to start a new, seeded stream.
      seed: the run seed `restart` derives segment seeds from.
    """

    def __init__(self, model: AttributeModel, train_data, seed: int = 0):
        self.model = model
        self.strategy = model.distribute_strategy
        self.seed = seed
        model.make_train_function()
        model.make_test_function()
        self._train_data = train_data
        self._train_iter = None
        self._logits = None  # compiled inference call of `predict`
        self._block_output_functions = {}  # (layers, pool) -> compiled `_collect_blocks`

    def restart(self, *position: int) -> None:
        """Continues training on a new stream seeded by `segment_seed(seed, *position)`."""
        self._train_iter = self.iterator(self._train_data(segment_seed(self.seed, *position)))

    def iterator(self, dataset: tf.data.Dataset) -> Iterator:
        """An iterator the compiled functions accept (distributed when the model is). Under
        a multi-worker strategy the datasets are sharded by file already (`Data.shard`):
        worker k of W reads its own files, and a global batch of B is W per-worker batches
        of B / W."""
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def _reset(self):
        for m in self.model.metrics:
            m.reset_state()

    def set_learning_rate(self, lr: float) -> None:
        self.model.optimizer.learning_rate.assign(lr)

    @property
    def learning_rate(self) -> float:
        return float(self.model.optimizer.learning_rate.numpy())

    def train(self, steps: int, on_step: Optional[Callable[[dict], None]] = None
              ) -> Evaluation:
        """`steps` optimizer steps on the next training batches; returns training metrics.
        ``on_step(logs)`` gets every step's outputs (tensors; with the model's
        ``report_predictions`` also the batch's labels and predictions)."""
        if self._train_iter is None:
            data = self._train_data
            self._train_iter = self.iterator(data if isinstance(data, tf.data.Dataset)
                                             else data(segment_seed(self.seed)))
        self._reset()
        step = self.model.train_function_now()
        for _ in range(steps):
            logs = step(self._train_iter)
            if on_step is not None:
                on_step(logs)
        return self._result()

    def evaluate(self, iterator: Iterator, steps: int) -> Evaluation:
        """Metrics over the next `steps` batches of `iterator` (inference mode)."""
        self._reset()
        for _ in range(steps):
            self.model.test_function(iterator)
        return self._result()

    def evaluate_dataset(self, dataset: tf.data.Dataset, num_examples: int,
                         batch_size: int) -> Evaluation:
        """One full pass over a finite evaluation dataset of `num_examples` examples.

        It runs until the data run out: with file sharding a worker's shard need not hold
        exactly its share of the batches (a worker that has run out gets empty batches,
        which count for nothing, until every worker has)."""
        self._reset()
        iterator = self.iterator(dataset)
        limit = math.ceil(num_examples / batch_size) + self.strategy.num_replicas_in_sync
        for _ in range(limit):
            try:
                self.model.test_function(iterator)
            except (StopIteration, tf.errors.OutOfRangeError):
                break
        return self._result()

    def predict_batches(self, iterator: Iterator, steps: int):
        """Probabilities [examples, N] that each attribute is present and the labels
        [examples, N] (-1 unknown) of the next `steps` batches of `iterator` (from `iterator`:
        distributed when the model is; inference mode)."""
        if getattr(self, "_predict_function", None) is None:
            strategy, model = self.strategy, self.model

            @tf.function
            def predict(iterator):
                images, labels = next(iterator)
                logits = strategy.run(lambda x: model(x, training=False), args=(images,))
                return strategy.gather(logits, axis=0), strategy.gather(labels, axis=0)

            self._predict_function = predict
        probabilities, labels = [], []
        for _ in range(steps):
            logits, batch_labels = self._predict_function(iterator)
            probabilities.append(tf.nn.softmax(logits)[..., 1].numpy())
            labels.append(batch_labels.numpy())
        return np.concatenate(probabilities), np.concatenate(labels)

    def block_outputs(self, layer: int, steps: int, iterator: Optional[Iterator] = None):
        """Every block's output of `layer` [B_l, examples, features] (conv outputs flattened
        per block) and the labels [examples, N] of the next `steps` batches of `iterator`
        (default: the training stream), in inference mode. Needs a `Supernet`."""
        return self._collect_blocks((layer,), False, steps, iterator)

    def pooled_block_outputs(self, layers: Sequence[int], steps: int, iterator: Iterator):
        """Every block's outputs of `layers` [B, examples, features], each conv output
        averaged over its positions (a vector of its channels per block) and the layers'
        vectors concatenated, with the labels [examples, N], from one pass over the next
        `steps` batches of `iterator` (inference mode). The layers must have equally many
        blocks. Needs a `Supernet`."""
        return self._collect_blocks(tuple(layers), True, steps, iterator)

    def _collect_blocks(self, layers: Tuple[int, ...], pool: bool, steps: int,
                        iterator: Optional[Iterator]):
        """`block_outputs` and `pooled_block_outputs`: one compiled call per (layers, pool)."""
        if iterator is None:
            if self._train_iter is None:
                self.restart()
            iterator = self._train_iter
        functions = self._block_output_functions
        if (layers, pool) not in functions:
            strategy = self.strategy
            outputs = keras.Model(self.model.inputs,
                                  [self.model.routed_layers[l].output for l in layers])

            @tf.function
            def blocks(iterator):
                images, labels = next(iterator)
                stacks = strategy.run(lambda x: outputs(x, training=False), args=(images,))
                vectors = []
                for stack in tf.nest.flatten(stacks):  # [B, batch, ...]; one layer: a tensor
                    stack = strategy.gather(stack, axis=1)
                    if pool and len(stack.shape) == 5:
                        vectors.append(tf.reduce_mean(stack, axis=[2, 3]))
                    else:
                        vectors.append(tf.reshape(stack, tf.concat(
                            [tf.shape(stack)[:2], [-1]], axis=0)))
                return tf.concat(vectors, axis=-1), strategy.gather(labels, axis=0)

            functions[(layers, pool)] = blocks
        vectors, labels = [], []
        for _ in range(steps):
            vector, batch_labels = functions[(layers, pool)](iterator)
            vectors.append(vector.numpy())
            labels.append(batch_labels.numpy())
        return np.concatenate(vectors, axis=1), np.concatenate(labels)

    def refresh_batch_norm(self, steps: int) -> None:
        """`AttributeModel.refresh_batch_norm` on the next `steps` training batches."""
        if self._train_iter is None:
            self.restart()
        self.model.refresh_batch_norm(self._train_iter, steps)

    def predict(self, dataset: tf.data.Dataset):
        """Probabilities [examples, N] that each attribute is present, and the labels
        [examples, N] (-1 unknown), over one pass of a finite dataset (not distributed:
        every worker predicts every example)."""
        if self._logits is None:
            self._logits = tf.function(lambda images: self.model(images, training=False))
        probabilities, labels = [], []
        for images, batch_labels in dataset:
            logits = tf.cast(self._logits(images), tf.float32)
            probabilities.append(tf.nn.softmax(logits)[..., 1].numpy())
            labels.append(batch_labels.numpy())
        return np.concatenate(probabilities), np.concatenate(labels)

    def _result(self) -> Evaluation:
        tracker = self.model.accuracy_tracker
        return Evaluation(loss=float(self.model.loss_tracker.result().numpy()),
                          accuracy=np.asarray(tracker.result().numpy()),
                          counts=np.asarray(tracker.count.numpy()))


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) \
        and strategy.extended._num_workers > 1  # pylint: disable=protected-access


# --- models with a run's settings ------------------------------------------------------------
def new_supernet(config: "RunConfig", space: SearchSpace, num_attributes: int, image_shape,
                 seed: int, strategy: Optional[tf.distribute.Strategy] = None) -> Supernet:
    """A compiled supernet with the run's settings, its initial weights drawn from `seed`
    (Keras' global seed is set here, visibly), built under `strategy` (default: current)."""
    keras.utils.set_random_seed(seed)
    with (strategy or tf.distribute.get_strategy()).scope():
        return build_supernet(space, num_attributes, image_shape,
                              learning_rate=config.learning_rate, momentum=config.momentum,
                              weight_decay=config.weight_decay, dropout=config.dropout,
                              bn_momentum=config.bn_momentum, bn_epsilon=config.bn_epsilon,
                              mixed_precision=config.mixed_precision,
                              grouped_conv=config.grouped_conv)


def new_tree_network(config: "RunConfig", architecture: Architecture, image_shape, seed: int,
                     strategy: Optional[tf.distribute.Strategy] = None) -> TreeNetwork:
    """A compiled `TreeNetwork` of `architecture` with fresh weights drawn from `seed`."""
    keras.utils.set_random_seed(seed)
    with (strategy or tf.distribute.get_strategy()).scope():
        return build_tree_network(architecture, image_shape,
                                  learning_rate=config.learning_rate, momentum=config.momentum,
                                  weight_decay=config.weight_decay, dropout=config.dropout,
                                  bn_momentum=config.bn_momentum, bn_epsilon=config.bn_epsilon,
                                  mixed_precision=config.mixed_precision,
                                  jit_compile=config.jit_compile)


# --- train on train+validation, then test ----------------------------------------------------
def train_and_test(model: AttributeModel, data: "Data", steps: int, config: "RunConfig",
                   out: Callable[[str], None], label: str, done: int = 0,
                   after_chunk: Optional[Callable[[int, Loop], None]] = None,
                   chunk_steps: int = 0) -> Tuple[Evaluation, Loop]:
    """Trains `model` on train+validation from step `done` to `steps` in chunks of
    `chunk_steps` (0 = a fifth of `steps`), each on its own seeded stream, calling
    ``after_chunk(done, loop)`` after each (checkpoints, test curves); then one pass over the
    test set. Returns the test `Evaluation` and the `Loop`."""
    loop = Loop(model, data.train_and_validation, config.seed)
    chunk = chunk_steps or max(1, -(-steps // 5))
    with Progress(label, steps, out, done=done) as bar:
        while done < steps:
            loop.restart(Stream.FINETUNE, done)
            n = min(chunk, steps - done)
            # A live bar moves every step; plain lines come after each chunk, with its loss.
            steps_done = itertools.count(done + 1)
            train = loop.train(n, on_step=(lambda logs: bar.update(next(steps_done)))
                               if bar.live else None)
            check_finite(train, f"{label} step {done}")
            done += n
            bar.update(done, f"train loss {train.loss:.4f}")
            if after_chunk:
                after_chunk(done, loop)
    return test(loop, data, config), loop


def test(loop: Loop, data: "Data", config: "RunConfig") -> Evaluation:
    """One pass of `loop`'s model over the test split."""
    return loop.evaluate_dataset(data.test, data.meta.split_sizes["test"],
                                 config.eval_batch_size)


@dataclasses.dataclass
class ScratchResult:
    """`train_from_scratch`'s answer: the final test `Evaluation`, and with ``test_every``
    the test mean error curve [(step, error)] from step 0."""

    test: Evaluation
    curve: List[Tuple[int, float]]


def train_from_scratch(architecture: Architecture, data: "Data", steps: int,
                       config: "RunConfig", seed: int,
                       out: Callable[[str], None] = lambda line: None,
                       strategy: Optional[tf.distribute.Strategy] = None,
                       label: str = "from scratch", test_every: int = 0) -> ScratchResult:
    """`architecture` as a fresh `TreeNetwork` (weights from `seed`), trained `steps` steps on
    train+validation with the run's optimizer settings (chunks of `test_every` steps, tested
    after each, when given), then tested. The architecture-only comparison of a run
    (``--compare``) and of the study (Fig. 5)."""
    model = new_tree_network(config, architecture, data.image_shape, seed, strategy)
    curve: List[Tuple[int, float]] = []
    if test_every:
        curve.append((0, test(Loop(model, data.train_and_validation, config.seed), data,
                              config).mean_error))
    evaluation, _ = train_and_test(
        model, data, steps, config, out, label, chunk_steps=test_every,
        after_chunk=(lambda done, loop: curve.append((done, test(loop, data, config).mean_error)))
        if test_every else None)
    return ScratchResult(evaluation, curve)
