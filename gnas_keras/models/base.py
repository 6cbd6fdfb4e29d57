"""The contract every trainable model of a run meets: `AttributeModel`.

An `AttributeModel` maps a float image batch [batch, H, W, 3] (pixels in [0, 255]) to logits
[batch, N, 2] (class 1 = attribute present) and owns what training needs, so that the one
loop (`gnas_keras.training.loop.Loop`), the evaluator and the exporter work with any of them:

- the masked loss (`masked_cross_entropy`: unknown labels, -1, do not count);
- L2 on the weights in use, ``0.5 * weight_decay * sum(w**2)`` over `weights_in_use()` (the
  gradient gets ``weight_decay * w``, as PyTorch's SGD weight_decay on the parameters used);
- per-attribute accuracy (`AttributeAccuracy`) and the mean loss (``loss_tracker``);
- ``train_step`` / ``test_step``.

Subclasses: `gnas_keras.models.supernet.Supernet` (all trees of a space, routing as
variables) and `gnas_keras.models.tree_net.TreeNetwork` (one `Architecture`, static).
"""

from __future__ import annotations

import contextlib
from typing import List

import keras
import numpy as np
import tensorflow as tf


def normalize_images(images):
    """[0, 255] pixels -> [-1, 1]; the same op runs in the exported model."""
    return images / 127.5 - 1.0


def masked_cross_entropy(labels, logits):
    """Mean 2-class cross-entropy over the labelled (image, attribute) pairs.

    labels: int [batch, N] in {-1, 0, 1}; -1 (unknown) is masked out.
    logits: float [batch, N, 2]. Returns a scalar (0 when nothing is labelled).
    """
    labels = tf.cast(labels, tf.int32)
    mask = tf.cast(labels >= 0, logits.dtype)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0),
                                                        logits=logits)
    return tf.reduce_sum(ce * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


class AttributeAccuracy(keras.metrics.Metric):
    """Per-attribute accuracy over labelled examples, a vector [N] (NaN where none)."""

    def __init__(self, num_attributes: int, name="attribute_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_attributes = num_attributes
        self.correct = self.add_variable(shape=(num_attributes,), initializer="zeros",
                                         name="correct", aggregation="sum")
        self.count = self.add_variable(shape=(num_attributes,), initializer="zeros",
                                       name="count", aggregation="sum")

    def update_state(self, labels, logits, sample_weight=None):
        labels = tf.cast(labels, tf.int32)
        mask = tf.cast(labels >= 0, tf.float32)
        hit = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels),
                      tf.float32)
        self.correct.assign_add(tf.reduce_sum(hit * mask, axis=0))
        self.count.assign_add(tf.reduce_sum(mask, axis=0))

    def result(self):
        return self.correct / self.count

    def get_config(self):
        return {**super().get_config(), "num_attributes": self.num_attributes}


class AttributeModel(keras.Model):
    """A functional Keras model image -> logits [batch, N, 2] with the shared training
    contract (module docstring). Subclasses call `init_training` after building the graph
    and implement `weights_in_use`."""

    def init_training(self, num_attributes: int, image_shape, weight_decay: float) -> None:
        self.num_attributes = num_attributes
        self.image_shape = tuple(image_shape)
        self.weight_decay = weight_decay
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = AttributeAccuracy(num_attributes)
        # Trace-time switch (set it before the train function is made): train_step also
        # returns the batch's labels and predicted presence probabilities, gathered from all
        # replicas, for methods that measure per-example errors (adaptive branching).
        self.report_predictions = False
        self.train_step_traces = 0  # Python side effect: counts traces, not steps
        self.test_step_traces = 0

    def weights_in_use(self) -> List[tf.Tensor]:
        """The trainable weights (or rows of them) the current network uses."""
        raise NotImplementedError

    def to_tree_network(self, architecture):
        """A `gnas_keras.models.tree_net.TreeNetwork` of `architecture` with this model's
        weights (what the exporter prunes and folds)."""
        raise NotImplementedError

    def l2_in_use(self):
        """Sum of squares of every weight in use (float32)."""
        return tf.add_n([tf.reduce_sum(tf.square(tf.cast(w, tf.float32)))
                         for w in self.weights_in_use()])

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def scale_gradients(self, grads):
        """Hook for the supernet's per-layer training switch; the identity here."""
        return grads

    # --- state a search can set aside and bring back --------------------------------------
    def snapshot(self) -> List[np.ndarray]:
        """Copies of every model and optimizer variable (weights, batch-norm statistics,
        momentum, step count): what `restore` brings back."""
        return [np.array(v.numpy()) for v in self.variables + self.optimizer.variables]

    def restore(self, snapshot: List[np.ndarray]) -> None:
        for v, value in zip(self.variables + self.optimizer.variables, snapshot):
            v.assign(value)

    def train_function_now(self):
        """The compiled train step to run now (`Supernet` picks one by the layers that
        train)."""
        return self.train_function

    def refresh_batch_norm(self, iterator, steps: int) -> None:
        """Forward passes in training mode on `steps` batches of `iterator`, no weight update:
        the batch-norm moving statistics of the current network catch up with its weights
        (running = momentum * running + (1 - momentum) * batch, per batch)."""
        if getattr(self, "_refresh_function", None) is None:
            strategy = self.distribute_strategy

            @tf.function
            def refresh(iterator):
                images, _ = next(iterator)
                strategy.run(lambda x: self(x, training=True), args=(images,))

            self._refresh_function = refresh
        for _ in range(steps):
            self._refresh_function(iterator)

    def train_step(self, data):
        self.train_step_traces += 1
        images, labels = data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            # float32 logits, loss and metrics also under mixed precision (float16 compute)
            logits = tf.cast(self(images, training=True), tf.float32)
            loss = masked_cross_entropy(labels, logits)
            total = loss + 0.5 * self.weight_decay * self.l2_in_use()
            # Gradients are summed over replicas: scale so the step is the global mean's.
            # `scale_loss`: the dynamic loss scale of a LossScaleOptimizer (mixed precision;
            # its `apply` unscales and skips a step with non-finite gradients), else a no-op.
            scaled = self.optimizer.scale_loss(total / replicas)
        grads = self.scale_gradients(tape.gradient(scaled, self.trainable_variables))
        self.optimizer.apply(grads, self.trainable_variables)
        self._update_metrics(labels, logits, loss)
        logs = self._logs()
        if self.report_predictions:
            # Gathered so every replica holds the global batch (Keras averages per-replica
            # outputs; the average of identical values is the value), with the leading axis
            # of length 1 that `_logs` explains: read them reshaped to [batch, N].
            context = tf.distribute.get_replica_context()
            logs["present_probability"] = context.all_gather(
                tf.nn.softmax(logits)[..., 1], axis=0)[None]
            logs["labels"] = context.all_gather(tf.cast(labels, tf.int32), axis=0)[None]
        return logs

    def test_step(self, data):
        self.test_step_traces += 1
        images, labels = data
        logits = tf.cast(self(images, training=False), tf.float32)
        self._update_metrics(labels, logits, masked_cross_entropy(labels, logits))
        return self._logs()

    def _update_metrics(self, labels, logits, loss):
        # The loss tracker is weighted by the labelled pairs of the batch, so its result is
        # the mean over labelled pairs however the examples are split into batches and
        # replicas (an empty batch, which a multi-worker evaluation can hand a worker whose
        # shard has run out, counts for nothing).
        labelled = tf.reduce_sum(tf.cast(tf.cast(labels, tf.int32) >= 0, tf.float32))
        self.loss_tracker.update_state(loss, sample_weight=labelled)
        self.accuracy_tracker.update_state(labels, logits)

    def _logs(self):
        # Every value has a leading axis of length 1: under MultiWorkerMirroredStrategy Keras
        # reduces what a step returns with ``strategy.reduce("MEAN", v, axis=0)``, which
        # fails on a scalar (the other strategies average over that axis just as well).
        return {"loss": self.loss_tracker.result()[None],
                "accuracy": tf.reduce_mean(self.accuracy_tracker.result())[None]}


class SparseSGD(keras.optimizers.SGD):
    """SGD with (Nesterov) momentum that leaves the rows without gradient alone.

    Keras' SGD turns a sparse (IndexedSlices) gradient into dense momentum arithmetic, so
    the momentum of every row decays and every row with momentum keeps moving. In the paper's
    PyTorch setup each edge is its own parameter and an edge outside the sampled tree gets no
    gradient, hence no update at all. This optimizer does the same per row: for a sparse
    gradient only the gathered rows' momentum and weights change; a dense gradient gets
    Keras' SGD unchanged.
    """

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        lr = tf.cast(learning_rate, variable.dtype)
        # A row can appear more than once (the forward pass and the L2 term both gather it).
        rows, position = tf.unique(gradient.indices)
        grad = tf.math.unsorted_segment_sum(tf.cast(gradient.values, variable.dtype),
                                            position, tf.shape(rows)[0])
        if self.momentum == 0:
            self.assign_sub(variable, tf.IndexedSlices(grad * lr, rows))
            return
        momentum = tf.cast(self.momentum, variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        m_rows = tf.gather(m.value if hasattr(m, "value") else m, rows) * momentum - grad * lr
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        step = m_rows * momentum - grad * lr if self.nesterov else m_rows
        self.assign_add(variable, tf.IndexedSlices(step, rows))


def make_optimizer(learning_rate: float, momentum: float = 0.9,
                   nesterov: bool = True) -> keras.optimizers.SGD:
    """SGD with Nesterov momentum, row-sparse for the supernet's edge-major weights; no
    optimizer-side weight decay (the L2 is in the loss, see `AttributeModel`)."""
    return SparseSGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)


def compile_model(model: AttributeModel, learning_rate: float, momentum: float = 0.9,
                  jit_compile: bool = False) -> AttributeModel:
    """Compiles `model` with `make_optimizer` and creates the optimizer's slots now, under
    the caller's strategy scope (created lazily inside the first traced train step, their
    initializers fail under MirroredStrategy). A model built under `precision(True)` gets
    Keras' LossScaleOptimizer around it (compile wraps it)."""
    model.compile(optimizer=make_optimizer(learning_rate, momentum), jit_compile=jit_compile)
    model.optimizer.build(model.trainable_variables)
    return model


@contextlib.contextmanager
def precision(mixed: bool):
    """Layers (and models) created inside compute in float16 with float32 variables
    (Keras' ``mixed_float16`` policy) when `mixed`; the global policy is restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def parameter_count(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
