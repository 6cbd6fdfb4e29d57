"""The weight-sharing supernet: one weight set per possible connection, routed by variables.

Shapes. Inside the network, the output of a layer is a *block stack*: a tensor
``[B_l, batch, height, width, channels]`` for conv layers and ``[B_l, batch, units]`` for fc
layers. Each `RoutedConv` / `RoutedDense` layer keeps

- ``parents``: a non-trainable int32 variable [B_l], the parent of each of its blocks. It is
  read inside the graph, so assigning a new routing changes the computation without
  retracing the compiled train/eval functions. It is created with
  ``aggregation="only_first_replica"`` so that under `tf.distribute` every replica keeps the
  same value.
- edge-major weights: ``kernel`` [E, ...], one row per possible connection W[A_ij]. A searched
  layer has E = B_{l-1} * B_l edges (edge id ``parent * B_l + child``); a fixed layer has one
  edge per block (E = B_l, edge id ``child``).

The forward pass gathers the parent features and the rows of the active edges. Gathers give
sparse (IndexedSlices) gradients, so the optimizer touches only the active rows: weights and
momentum of inactive edges stay bit-for-bit unchanged. Weight decay is therefore an L2 term on
the gathered rows in the loss (`Supernet.active_l2`), not the optimizer's decoupled decay,
which would shrink every row.

The model's input is a float image batch [batch, H, W, 3] with pixel values in [0, 255]; its
output is logits [batch, N, 2] (class 1 = attribute present).
"""

from __future__ import annotations

from typing import List, Optional

import keras
import numpy as np
import tensorflow as tf

from gnas_keras.space import SearchSpace
from gnas_keras.tree import Routing, fixed_parents

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99


def normalize_images(images):
    """[0, 255] pixels -> [-1, 1]; the same op runs in the exported model."""
    return images / 127.5 - 1.0


class _Routed(keras.layers.Layer):
    """Shared bookkeeping of a routed layer: parent variable and edge ids."""

    def __init__(self, parent_blocks: int, blocks: int, searchable: bool, **kwargs):
        super().__init__(**kwargs)
        self.parent_blocks = parent_blocks
        self.blocks = blocks
        self.searchable = searchable
        self.num_edges = parent_blocks * blocks if searchable else blocks

    def _add_parents(self):
        # Until a routing is assigned: the fixed routing, or block 0 for a searched layer.
        initial = [0] * self.blocks if self.searchable else fixed_parents(self.parent_blocks,
                                                                          self.blocks)
        self.parents = self.add_weight(
            name="parents", shape=(self.blocks,), dtype="int32", trainable=False,
            initializer=keras.initializers.Constant(np.asarray(initial, np.int32)),
            aggregation="only_first_replica")

    def parent_features(self, stack):
        """Each block's parent features: a list of B_l tensors [batch, ...] from `stack`
        [B_{l-1}, batch, ...]. Only a searched layer with several candidate parents gathers
        (a copy, whose gradient is a scatter); a fixed routing slices, so the single-block
        trunk layers (conv1-3 of Shallow) and FC-2 / FC-3 cost what a static model does."""
        if self.parent_blocks == 1:  # every parent is block 0
            return [stack[0]] * self.blocks
        if not self.searchable:  # fixed routing: block j reads block j (`fixed_parents`)
            return [stack[j] for j in range(self.blocks)]
        inputs = tf.gather(stack, self.parents)
        return [inputs[j] for j in range(self.blocks)]

    def edge_ids(self):
        """Edge row of each block's active connection, int32 [B_l]."""
        if self.searchable:
            return self.parents * self.blocks + tf.range(self.blocks, dtype=tf.int32)
        return tf.range(self.blocks, dtype=tf.int32)

    def get_config(self):
        return {**super().get_config(), "parent_blocks": self.parent_blocks,
                "blocks": self.blocks, "searchable": self.searchable}


class RoutedConv(_Routed):
    """Per edge: conv k x k (no bias) -> BN -> ReLU -> 2x2/2 max-pool.

    Input: block stack [B_{l-1}, batch, H, W, C_in]. Output: [B_l, batch, H/2, W/2, C_out].
    """

    def __init__(self, parent_blocks: int, blocks: int, searchable: bool, kernel_size: int,
                 channels: int, **kwargs):
        super().__init__(parent_blocks, blocks, searchable, **kwargs)
        self.kernel_size = kernel_size
        self.channels = channels

    def build(self, input_shape):
        cin = input_shape[-1]
        e, k, c = self.num_edges, self.kernel_size, self.channels
        # He-normal fan-in init per edge, as PyTorch/Keras would for each conv separately.
        self.kernel = self.add_weight(name="kernel", shape=(e, k, k, cin, c),
                                      initializer=keras.initializers.RandomNormal(
                                          stddev=float(np.sqrt(2.0 / (k * k * cin)))))
        self.gamma = self.add_weight(name="gamma", shape=(e, c), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(e, c), initializer="zeros")
        self.moving_mean = self.add_weight(name="moving_mean", shape=(e, c),
                                           initializer="zeros", trainable=False,
                                           aggregation="mean")
        self.moving_variance = self.add_weight(name="moving_variance", shape=(e, c),
                                               initializer="ones", trainable=False,
                                               aggregation="mean")
        self._add_parents()

    def active_weights(self):
        edges = self.edge_ids()
        return [tf.gather(self.kernel, edges), tf.gather(self.gamma, edges),
                tf.gather(self.beta, edges)]

    def call(self, stack, training=False):
        edges = self.edge_ids()
        kernels, gammas, betas = self.active_weights()
        inputs = self.parent_features(stack)
        if training:
            means, variances = [], []
        else:
            means = tf.gather(self.moving_mean, edges)
            variances = tf.gather(self.moving_variance, edges)
        outputs = []
        for j in range(self.blocks):
            y = tf.nn.conv2d(inputs[j], kernels[j], strides=1, padding="SAME")
            if training:
                mean, variance = tf.nn.moments(y, axes=[0, 1, 2])
                means.append(mean)
                variances.append(variance)
            else:
                mean, variance = means[j], variances[j]
            y = tf.nn.batch_normalization(y, mean, variance, betas[j], gammas[j], BN_EPSILON)
            y = tf.nn.max_pool2d(tf.nn.relu(y), ksize=2, strides=2, padding="VALID")
            outputs.append(y)
        if training:
            self._update_moving_stats(edges, tf.stack(means), tf.stack(variances))
        return tf.stack(outputs)

    def _update_moving_stats(self, edges, means, variances):
        idx = edges[:, None]
        for var, batch_value in ((self.moving_mean, means), (self.moving_variance, variances)):
            old = tf.gather(var, edges)
            new = old * BN_MOMENTUM + tf.stop_gradient(batch_value) * (1.0 - BN_MOMENTUM)
            var.assign(tf.tensor_scatter_nd_update(var.value, idx, new))

    def compute_output_shape(self, input_shape):
        _, batch, h, w, _ = input_shape
        return (self.blocks, batch, h // 2, w // 2, self.channels)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size,
                "channels": self.channels}


class RoutedDense(_Routed):
    """Per edge: dense layer, then ReLU and dropout unless it is the logits layer.

    Input: block stack [B_{l-1}, batch, ...] (conv stacks are flattened per block).
    Output: [B_l, batch, units].
    """

    def __init__(self, parent_blocks: int, blocks: int, searchable: bool, units: int,
                 activation: bool = True, dropout: float = 0.0, **kwargs):
        super().__init__(parent_blocks, blocks, searchable, **kwargs)
        self.units = units
        self.activation = activation
        self.dropout = dropout

    def build(self, input_shape):
        din = int(np.prod(input_shape[2:]))
        self.kernel = self.add_weight(
            name="kernel", shape=(self.num_edges, din, self.units),
            initializer=keras.initializers.RandomNormal(stddev=float(np.sqrt(2.0 / din))))
        self.bias = self.add_weight(name="bias", shape=(self.num_edges, self.units),
                                    initializer="zeros")
        self._add_parents()
        self.drop = keras.layers.Dropout(self.dropout)

    def active_weights(self):
        edges = self.edge_ids()
        return [tf.gather(self.kernel, edges), tf.gather(self.bias, edges)]

    def call(self, stack, training=False):
        kernels, biases = self.active_weights()
        if not self.searchable and self.parent_blocks == self.blocks:
            inputs = stack  # fixed routing, block j reads block j: no gather (FC-2, FC-3)
        else:
            inputs = tf.gather(stack, self.parents)
        shape = tf.shape(inputs)
        inputs = tf.reshape(inputs, [self.blocks, shape[1], self.kernel.shape[1]])
        y = tf.matmul(inputs, kernels) + biases[:, None, :]
        if self.activation:
            y = tf.nn.relu(y)
            if self.dropout:
                y = self.drop(y, training=training)
        return y

    def compute_output_shape(self, input_shape):
        return (self.blocks, input_shape[1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "dropout": self.dropout}


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


class Supernet(keras.Model):
    """All trees of a search space in one functional Keras model.

    Args:
      space: the search space (`gnas_keras.space`).
      num_attributes: N.
      image_shape: (height, width, 3) of the input images in pixels.
      dropout: rate after every fc layer but the logits (paper: 0.75 for LFWA, Market-1501).
      weight_decay: L2 coefficient on the active weights (PyTorch-style: the gradient gets
        ``weight_decay * w`` for every parameter used in the step).
    """

    def __init__(self, space: SearchSpace, num_attributes: int, image_shape,
                 dropout: float = 0.0, weight_decay: float = 1e-4, **kwargs):
        space.validate(num_attributes)
        counts = space.block_counts(num_attributes)
        image = keras.Input(shape=tuple(image_shape), name="image")
        x = keras.layers.Lambda(lambda im: normalize_images(im)[None], name="to_stack")(image)
        routed = []
        for l, spec in enumerate(space.layers):
            below = 1 if l == 0 else counts[l - 1]
            if spec.kind == "conv":
                layer = RoutedConv(below, counts[l], spec.searchable, spec.kernel,
                                   spec.channels, name=spec.name)
            else:
                last = l == len(space.layers) - 1
                layer = RoutedDense(below, counts[l], spec.searchable, spec.channels,
                                    activation=not last, dropout=0.0 if last else dropout,
                                    name=spec.name)
            x = layer(x)
            routed.append(layer)
        logits = keras.layers.Lambda(lambda s: tf.transpose(s, [1, 0, 2]), name="logits")(x)
        super().__init__(inputs=image, outputs=logits, **kwargs)
        self.space = space
        self.num_attributes = num_attributes
        self.image_shape = tuple(image_shape)
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.routed_layers: List[_Routed] = routed
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = AttributeAccuracy(num_attributes)
        self.train_step_traces = 0  # Python side effect: counts traces, not steps
        self.test_step_traces = 0

    # --- routing --------------------------------------------------------------------------
    @property
    def routing(self) -> Routing:
        return Routing.from_lists([layer.parents.numpy() for layer in self.routed_layers])

    def set_routing(self, routing: Routing) -> None:
        """Assigns the parent variables (cross-replica context: all replicas get it)."""
        routing.validate(self.space, self.num_attributes)
        for layer, parents in zip(self.routed_layers, routing.parents):
            layer.parents.assign(np.asarray(parents, np.int32))

    # --- training -------------------------------------------------------------------------
    def active_l2(self):
        """Sum of squares of every weight the current tree uses."""
        return tf.add_n([tf.reduce_sum(tf.square(w)) for layer in self.routed_layers
                         for w in layer.active_weights()])

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def train_step(self, data):
        self.train_step_traces += 1
        images, labels = data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            logits = self(images, training=True)
            loss = masked_cross_entropy(labels, logits)
            total = loss + 0.5 * self.weight_decay * self.active_l2()
            # Gradients are summed over replicas: scale so the step is the global mean's.
            scaled = total / replicas
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(labels, logits)
        return {"loss": self.loss_tracker.result(),
                "accuracy": tf.reduce_mean(self.accuracy_tracker.result())}

    def test_step(self, data):
        self.test_step_traces += 1
        images, labels = data
        logits = self(images, training=False)
        self.loss_tracker.update_state(masked_cross_entropy(labels, logits))
        self.accuracy_tracker.update_state(labels, logits)
        return {"loss": self.loss_tracker.result(),
                "accuracy": tf.reduce_mean(self.accuracy_tracker.result())}

    def get_config(self):
        return {"space": self.space.to_dict(), "num_attributes": self.num_attributes,
                "image_shape": list(self.image_shape), "dropout": self.dropout,
                "weight_decay": self.weight_decay, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["space"] = SearchSpace.from_dict(config["space"])
        return cls(**config)


class SparseSGD(keras.optimizers.SGD):
    """SGD with (Nesterov) momentum that leaves the rows without gradient alone.

    Keras' SGD turns a sparse (IndexedSlices) gradient into dense momentum arithmetic, so
    the momentum of every row decays and every row with momentum keeps moving. In the paper's
    PyTorch setup each edge is its own parameter and an edge outside the sampled tree gets no
    gradient, hence no update at all. This optimizer does the same per row: for a sparse
    gradient only the gathered rows' momentum and weights change.
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
    optimizer-side weight decay (see module docstring)."""
    return SparseSGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)


def build_supernet(space: SearchSpace, num_attributes: int, image_shape, *,
                   learning_rate: float = 0.1, momentum: float = 0.9,
                   weight_decay: float = 1e-4, dropout: float = 0.0,
                   routing: Optional[Routing] = None, seed: Optional[int] = None) -> Supernet:
    """A compiled supernet (call inside ``strategy.scope()`` to distribute it)."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = Supernet(space, num_attributes, image_shape, dropout=dropout,
                     weight_decay=weight_decay)
    model.compile(optimizer=make_optimizer(learning_rate, momentum), jit_compile=False)
    # Create the momentum slots now, under the caller's strategy scope: created lazily inside
    # the first traced train step, their initializers fail under MirroredStrategy.
    model.optimizer.build(model.trainable_variables)
    if routing is not None:
        model.set_routing(routing)
    return model


def parameter_count(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
