"""The contract every trainable model of a run meets: `AttributeModel`.

An `AttributeModel` maps a float image batch [batch, H, W, 3] (pixels in [0, 255]) to logits
[batch, N, 2] (class 1 = attribute present) and owns what training needs, so that the one
loop (`gnas_keras.training.loop.Loop`), the evaluator and the exporter work with any of them:

- the masked loss (`losses.masked_cross_entropy`: unknown labels, -1, do not count);
- L2 on the weights in use, ``0.5 * weight_decay * sum(w**2)`` over `weights_in_use()` (the
  gradient gets ``weight_decay * w``, as PyTorch's SGD weight_decay on the parameters used);
- per-attribute accuracy (`AttributeAccuracy`) and the mean loss (``loss_tracker``);
- ``train_step`` / ``test_step``.

Subclasses: `gnas_keras.models.supernet.Supernet` (all trees of a space, routing as
variables), `gnas_keras.models.tree_net.TreeNetwork` (one `Architecture`, static) and GALM's
child (`gnas_keras.models.galm_net`).

Backends. The models are `keras.ops` and Keras layers, so they build and run on every Keras
backend. The train step is the one backend-specific piece: `tf_backend.train_step` (what
Keras' compiled ``train_function`` runs, with `tf.distribute`; the binaries use it) and
`jax_backend.TrainStep` (a stateless jit-compiled step with the same arithmetic, for
`KERAS_BACKEND=jax`, e.g. the GPU benchmark). Both read the same two hooks of a model:
`gradient_scales` and, for JAX's dense gradients, `rows_in_use`.
"""

from __future__ import annotations

import contextlib
from typing import List

import keras
from keras import ops
import numpy as np

from gnas_keras.models.losses import masked_cross_entropy


def normalize_images(images):
    """[0, 255] pixels -> [-1, 1]; the same op runs in the exported model."""
    return images / 127.5 - 1.0


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
        labels = ops.cast(labels, "int32")
        mask = ops.cast(labels >= 0, "float32")
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels),
                       "float32")
        self.correct.assign_add(ops.sum(hit * mask, axis=0))
        self.count.assign_add(ops.sum(mask, axis=0))

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

    def weights_in_use(self) -> list:
        """The trainable weights (or rows of them) the current network uses."""
        raise NotImplementedError

    def gradient_scales(self) -> list:
        """Per trainable variable, a scalar its gradient is multiplied by, or None (as
        is); the supernet's per-layer training switch. All None here."""
        return [None] * len(self.trainable_variables)

    def rows_in_use(self) -> list:
        """Per trainable variable, None (the whole variable is in use) or a bool [rows]
        mask of the rows the current network uses: the JAX step updates only those rows
        (TensorFlow gets the same from sparse gradients, `tf_backend.SparseSGD`)."""
        return [None] * len(self.trainable_variables)

    def to_tree_network(self, architecture):
        """A `gnas_keras.models.tree_net.TreeNetwork` of `architecture` with this model's
        weights (what the exporter prunes and folds)."""
        raise NotImplementedError

    def l2_in_use(self):
        """Sum of squares of every weight in use (float32)."""
        return sum(ops.sum(ops.square(ops.cast(w, "float32"))) for w in self.weights_in_use())

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    # --- state a search can set aside and bring back --------------------------------------
    def snapshot(self) -> List[np.ndarray]:
        """Copies of every model and optimizer variable (weights, batch-norm statistics,
        momentum, step count): what `restore` brings back."""
        return [np.array(v.numpy()) for v in self.variables + self.optimizer.variables]

    def restore(self, snapshot: List[np.ndarray]) -> None:
        for v, value in zip(self.variables + self.optimizer.variables, snapshot):
            v.assign(value)

    @property
    def sgd(self) -> keras.optimizers.SGD:
        """The SGD that steps the weights: the optimizer, or the one inside the loss
        scaling of a mixed-precision model (Keras' ``LossScaleOptimizer``)."""
        return getattr(self.optimizer, "inner_optimizer", self.optimizer)

    def momentum_of(self, variable):
        """The SGD's momentum slot of trainable `variable`."""
        return self.sgd.momentums[self.sgd._get_variable_index(variable)]

    def train_function_now(self):
        """The compiled train step to run now (`Supernet` picks one by the layers that
        train)."""
        return self.train_function

    def refresh_batch_norm(self, iterator, steps: int) -> None:
        """Forward passes in training mode on `steps` batches of `iterator`, no weight update:
        the batch-norm moving statistics of the current network catch up with its weights
        (running = momentum * running + (1 - momentum) * batch, per batch). TensorFlow."""
        if getattr(self, "_refresh_function", None) is None:
            from gnas_keras.models import tf_backend
            self._refresh_function = tf_backend.refresh_function(self)
        for _ in range(steps):
            self._refresh_function(iterator)

    def train_step(self, data):
        """Keras' hook for the compiled train function: TensorFlow's step
        (`tf_backend.train_step`); on JAX use `jax_backend.TrainStep`."""
        from gnas_keras.models import tf_backend
        self.train_step_traces += 1
        return tf_backend.train_step(self, data)

    def test_step(self, data):
        self.test_step_traces += 1
        images, labels = data
        logits = ops.cast(self(images, training=False), "float32")
        self._update_metrics(labels, logits, masked_cross_entropy(labels, logits))
        return self._logs()

    def _update_metrics(self, labels, logits, loss):
        # The loss tracker is weighted by the labelled pairs of the batch, so its result is
        # the mean over labelled pairs however the examples are split into batches and
        # replicas (an empty batch, which a multi-worker evaluation can hand a worker whose
        # shard has run out, counts for nothing).
        labelled = ops.sum(ops.cast(ops.cast(labels, "int32") >= 0, "float32"))
        self.loss_tracker.update_state(loss, sample_weight=labelled)
        self.accuracy_tracker.update_state(labels, logits)

    def _logs(self):
        # Every value has a leading axis of length 1: under MultiWorkerMirroredStrategy Keras
        # reduces what a step returns with ``strategy.reduce("MEAN", v, axis=0)``, which
        # fails on a scalar (the other strategies average over that axis just as well).
        return {"loss": self.loss_tracker.result()[None],
                "accuracy": ops.mean(self.accuracy_tracker.result())[None]}


def make_optimizer(learning_rate: float, momentum: float = 0.9,
                   nesterov: bool = True) -> keras.optimizers.SGD:
    """SGD with Nesterov momentum, no optimizer-side weight decay (the L2 is in the loss,
    see `AttributeModel`). On TensorFlow row-sparse for the supernet's edge-major weights
    (`tf_backend.SparseSGD`); other backends get Keras' SGD here, and the JAX step does
    the row-sparse update itself (`jax_backend`)."""
    if keras.backend.backend() == "tensorflow":
        from gnas_keras.models.tf_backend import SparseSGD
        return SparseSGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                nesterov=nesterov)


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
