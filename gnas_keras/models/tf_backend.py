"""What only TensorFlow does for the models: the train step the one loop compiles, the
row-sparse optimizer, the batch-norm refresh pass.

The models themselves (`base`, `supernet`, `tree_net`, `galm_net`) are written in
`keras.ops` and run on every Keras backend; `gnas_keras.models.jax_backend` is the JAX
counterpart of this module (a stateless, jit-compiled step with the same arithmetic). The
binaries run TensorFlow: `tf.data`, `tf.distribute` and the SavedModel export need it.

Why a row-sparse optimizer: the supernet gathers the rows of the active edges from its
edge-major weights, so TensorFlow hands their gradients over as `tf.IndexedSlices`, and
`SparseSGD` updates those rows only (weights and momentum of the other edges stay
bit-for-bit unchanged, as in the paper's PyTorch setup where an unused edge is a parameter
without gradient). JAX has no sparse gradients; its step masks the rows instead
(`Supernet.rows_in_use`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gnas_keras.models.losses import masked_cross_entropy


class SparseSGD(keras.optimizers.SGD):
    """SGD with (Nesterov) momentum that leaves the rows without gradient alone.

    Keras' SGD turns a sparse (IndexedSlices) gradient into dense momentum arithmetic, so
    the momentum of every row decays and every row with momentum keeps moving. This
    optimizer updates only the gathered rows' momentum and weights for a sparse gradient; a
    dense gradient gets Keras' SGD unchanged.
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


def scale_gradients(model, grads):
    """Each gradient times its variable's `AttributeModel.gradient_scales` factor (the
    supernet's per-layer training switch); sparse gradients stay sparse."""
    scaled = []
    for g, s in zip(grads, model.gradient_scales()):
        if g is None or s is None:
            scaled.append(g)
        elif isinstance(g, tf.IndexedSlices):
            scaled.append(tf.IndexedSlices(g.values * s, g.indices, g.dense_shape))
        else:
            scaled.append(g * s)
    return scaled


def train_step(model, data):
    """One step of `model` (an `AttributeModel`) on a batch, per replica: the masked loss
    plus L2 on the weights in use, gradients scaled per layer, the optimizer's update, the
    metrics; returns the logs (`AttributeModel._logs`)."""
    images, labels = data
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
        # float32 logits, loss and metrics also under mixed precision (float16 compute)
        logits = tf.cast(model(images, training=True), tf.float32)
        loss = masked_cross_entropy(labels, logits)
        total = loss + 0.5 * model.weight_decay * model.l2_in_use()
        # Gradients are summed over replicas: scale so the step is the global mean's.
        # `scale_loss`: the dynamic loss scale of a LossScaleOptimizer (mixed precision;
        # its `apply` unscales and skips a step with non-finite gradients), else a no-op.
        scaled = model.optimizer.scale_loss(total / replicas)
    grads = scale_gradients(model, tape.gradient(scaled, model.trainable_variables))
    model.optimizer.apply(grads, model.trainable_variables)
    model._update_metrics(labels, logits, loss)
    logs = model._logs()
    if model.report_predictions:
        # Gathered so every replica holds the global batch (Keras averages per-replica
        # outputs; the average of identical values is the value), with the leading axis
        # of length 1 that `_logs` explains: read them reshaped to [batch, N].
        context = tf.distribute.get_replica_context()
        logs["present_probability"] = context.all_gather(
            tf.nn.softmax(logits)[..., 1], axis=0)[None]
        logs["labels"] = context.all_gather(tf.cast(labels, tf.int32), axis=0)[None]
    return logs


def refresh_function(model):
    """A compiled ``refresh(iterator)``: one forward pass of `model` in training mode on the
    next batch under the model's strategy (batch-norm statistics move, weights do not)."""
    strategy = model.distribute_strategy

    @tf.function
    def refresh(iterator):
        images, _ = next(iterator)
        strategy.run(lambda x: model(x, training=True), args=(images,))

    return refresh
