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

Soft routing (`Supernet.soft_routing`, differentiable routing, `gnas_keras.methods.soft_routing`):
a trace-time switch under which a searched layer computes every edge and gives block j the
weighted sum over candidate parents p of edge (p, j)'s output, with weights [B_l, B_{l-1}]
from a function the caller hands in (a Gumbel-softmax over learned logits). One-hot weights
give the hard routing's output exactly. Outside the switch nothing of it is traced: the hard
path's graph is what it was.

Backends. Everything here is `keras.ops`, so the supernet builds and trains on TensorFlow (the
binaries' backend) and on JAX (`gnas_keras.models.jax_backend`, the GPU benchmark). On JAX the
routing variables are part of the state a jit-compiled stateless step takes as arguments, so
a new routing does not retrace there either; JAX's gradients are dense, and the step masks
the update to `Supernet.rows_in_use` to leave the other edges alone as TensorFlow's sparse
update does.

The training contract (loss, L2 on the active rows, accuracy, steps) is `AttributeModel`'s.
The model's input is a float image batch [batch, H, W, 3] with pixel values in [0, 255]; its
output is logits [batch, N, 2] (class 1 = attribute present).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, List, Optional

import keras
from keras import ops
import numpy as np

from gnas_keras.settings import BN_EPSILON, BN_MOMENTUM
from gnas_keras.models.base import (AttributeModel, compile_model, normalize_images,
                                    precision)
from gnas_keras.space.search_space import SearchSpace
from gnas_keras.space.tree import Routing, fixed_parents


class _Routed(keras.layers.Layer):
    """Shared bookkeeping of a routed layer: parent variable and edge ids."""

    def __init__(self, parent_blocks: int, blocks: int, searchable: bool, **kwargs):
        super().__init__(**kwargs)
        self.parent_blocks = parent_blocks
        self.blocks = blocks
        self.searchable = searchable
        self.num_edges = parent_blocks * blocks if searchable else blocks
        # Read when a train step is traced (`Supernet.train_function_now`): True when no
        # layer below trains, so the backward pass can stop at this layer's input.
        self.stop_input_gradient = False
        # Read when a step is traced: None (hard routing), or ``soft_parents(training)`` ->
        # float [B_l, B_{l-1}], the weight of each candidate parent (`Supernet.soft_routing`).
        self.soft_parents: Optional[Callable[[bool], object]] = None

    def _rows(self, *variables):
        """The rows of `variables` [E, ...] that the network uses: the active edges' (hard
        routing: gathered, so their gradients are sparse), or every edge (soft routing)."""
        if self.soft_parents is not None:
            return list(variables)
        edges = self.edge_ids()
        return [ops.take(v, edges, axis=0) for v in variables]

    def _mix(self, edge_outputs, training):
        """Soft routing: block j's output, sum over parents p of weight[j, p] times edge
        (p, j)'s output; `edge_outputs` lists the outputs in edge order (p * B_l + j)."""
        weights = ops.cast(self.soft_parents(training), edge_outputs[0].dtype)
        b = self.blocks
        return ops.stack([sum(weights[j, p] * edge_outputs[p * b + j]
                              for p in range(self.parent_blocks)) for j in range(b)])

    def _input(self, stack):
        return ops.stop_gradient(stack) if self.stop_input_gradient else stack

    def _add_train_scale(self):
        # 1.0 = this layer trains, 0.0 = its gradients are zeroed (GNAS+ trains only the
        # layers above the searched one); a variable, so switching never retraces.
        self.train_scale = self.add_weight(
            name="train_scale", shape=(), dtype="float32", trainable=False,
            initializer="ones", aggregation="only_first_replica")

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
        inputs = ops.take(stack, self.parents, axis=0)
        return [inputs[j] for j in range(self.blocks)]

    def edge_ids(self):
        """Edge row of each block's active connection, int32 [B_l]."""
        if self.searchable:
            return self.parents * self.blocks + ops.arange(self.blocks, dtype="int32")
        return ops.arange(self.blocks, dtype="int32")

    def rows_in_use(self):
        """bool [E]: True for the edges the network uses (all of them under soft
        routing)."""
        if self.soft_parents is not None:
            return ops.ones((self.num_edges,), "bool")
        return ops.any(ops.one_hot(self.edge_ids(), self.num_edges, dtype="int32") > 0,
                       axis=0)

    def get_config(self):
        return {**super().get_config(), "parent_blocks": self.parent_blocks,
                "blocks": self.blocks, "searchable": self.searchable}


class RoutedConv(_Routed):
    """Per edge: conv k x k (no bias) -> BN -> ReLU -> pool (``max``: 2x2/2, ``none``, or
    ``global_avg``).

    Input: block stack [B_{l-1}, batch, H, W, C_in]. Output: [B_l, batch, H/2, W/2, C_out]
    (max), [B_l, batch, H, W, C_out] (none) or [B_l, batch, C_out] (global_avg).
    """

    def __init__(self, parent_blocks: int, blocks: int, searchable: bool, kernel_size: int,
                 channels: int, pool: str = "max", bn_momentum: float = BN_MOMENTUM,
                 bn_epsilon: float = BN_EPSILON, grouped: bool = False, **kwargs):
        super().__init__(parent_blocks, blocks, searchable, **kwargs)
        self.kernel_size = kernel_size
        self.channels = channels
        self.pool = pool
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.grouped = grouped

    def build(self, input_shape):
        cin = input_shape[-1]
        e, k, c = self.num_edges, self.kernel_size, self.channels
        # He-normal fan-in init per edge, as PyTorch/Keras would for each conv separately.
        self.kernel = self.add_weight(name="kernel", shape=(e, k, k, cin, c),
                                      initializer=keras.initializers.RandomNormal(
                                          stddev=float(np.sqrt(2.0 / (k * k * cin)))))
        # Batch-norm weights are read in float32 also under mixed precision (autocast off).
        self.gamma = self.add_weight(name="gamma", shape=(e, c), initializer="ones",
                                     autocast=False)
        self.beta = self.add_weight(name="beta", shape=(e, c), initializer="zeros",
                                    autocast=False)
        self.moving_mean = self.add_weight(name="moving_mean", shape=(e, c),
                                           initializer="zeros", trainable=False,
                                           aggregation="mean", autocast=False)
        self.moving_variance = self.add_weight(name="moving_variance", shape=(e, c),
                                               initializer="ones", trainable=False,
                                               aggregation="mean", autocast=False)
        self._add_parents()
        self._add_train_scale()

    def active_weights(self):
        return self._rows(self.kernel, self.gamma, self.beta)

    def call(self, stack, training=False):
        stack = self._input(stack)
        if self.soft_parents is not None:
            return self._call_soft(stack, training)
        if self.grouped and self.blocks > 1:
            return self._call_grouped(stack, training)
        edges = self.edge_ids()
        kernels, gammas, betas = self.active_weights()
        inputs = self.parent_features(stack)
        if not training:
            moving_means = ops.take(self.moving_mean, edges, axis=0)
            moving_variances = ops.take(self.moving_variance, edges, axis=0)
        outputs, means, variances = [], [], []
        for j in range(self.blocks):
            y, mean, variance = self._edge(
                inputs[j], kernels[j], gammas[j], betas[j],
                None if training else (moving_means[j], moving_variances[j]))
            outputs.append(y)
            means.append(mean)
            variances.append(variance)
        if training:
            self._update_moving_stats(edges, ops.stack(means), ops.stack(variances))
        return ops.stack(outputs)

    def _call_soft(self, stack, training):
        """Every edge (p, j) computed on parent p's features, then mixed (`_mix`)."""
        b, edges = self.blocks, self.num_edges
        # Unstacked, not sliced: in a tf.function on CPU, convolutions of slices stack[p] of
        # a computed stack gave wrong outputs (off by up to 1.6 against eager; TF 2.21).
        parents = ops.unstack(stack, num=self.parent_blocks)
        outputs, means, variances = [], [], []
        for e in range(edges):
            y, mean, variance = self._edge(
                parents[e // b], self.kernel[e], self.gamma[e], self.beta[e],
                None if training else (self.moving_mean[e], self.moving_variance[e]))
            outputs.append(y)
            means.append(mean)
            variances.append(variance)
        if training:
            self._update_moving_stats(ops.arange(edges, dtype="int32"), ops.stack(means),
                                      ops.stack(variances))
        return self._mix(outputs, training)

    def _edge(self, x, kernel, gamma, beta, moving=None):
        """One edge: conv -> BN -> ReLU -> pool on features x [batch, H, W, C_in]. Batch
        norm uses the batch's statistics, or with `moving` = (mean, variance) those; returns
        the output and the statistics used."""
        f32 = "float32"  # batch norm in float32 also under mixed precision, as Keras' BN
        y = ops.cast(ops.conv(x, kernel, strides=1, padding="same"), f32)
        if moving is None:
            mean, variance = ops.moments(y, axes=[0, 1, 2])
        else:
            mean, variance = ops.cast(moving[0], f32), ops.cast(moving[1], f32)
        y = self._normalize(y, mean, variance, beta, gamma)
        return self._pool(y), mean, variance

    def _normalize(self, y, mean, variance, beta, gamma):
        """Batch norm (float32) then ReLU, cast to the compute dtype."""
        y = ops.batch_normalization(y, mean, variance, axis=-1,
                                    offset=ops.cast(beta, "float32"),
                                    scale=ops.cast(gamma, "float32"), epsilon=self.bn_epsilon)
        return ops.cast(ops.relu(y), self.compute_dtype)

    def _pool(self, y):
        if self.pool == "max":
            return ops.max_pool(y, pool_size=2, strides=2, padding="valid")
        if self.pool == "global_avg":
            return ops.mean(y, axis=[1, 2])
        return y

    def _call_grouped(self, stack, training):
        """The same function as the per-block loop, as one convolution, one batch norm, one
        ReLU and one pool over the blocks' stacked channels [batch, H, W, B_l * C_out]
        (block j owns channels j * C_out ... (j + 1) * C_out - 1):
        - one parent block (every block reads block 0): one ordinary convolution whose
          filters are the blocks' filters concatenated;
        - several: the parent features stacked along channels [batch, H, W, B_l * C_in] and
          one grouped convolution (B_l groups).
        Shapes do not depend on the routing, so a new routing does not retrace."""
        b, c = self.blocks, self.channels
        edges = self.edge_ids()
        kernels, gammas, betas = self.active_weights()  # [B, k, k, C_in, C], [B, C], [B, C]
        k, cin = self.kernel_size, kernels.shape[3]
        # [B, k, k, C_in, C] -> [k, k, C_in, B * C], block-major output channels
        filters = ops.reshape(ops.transpose(kernels, [1, 2, 3, 0, 4]), [k, k, cin, b * c])
        if self.parent_blocks == 1:
            x = stack[0]
        else:
            inputs = stack[:b] if not self.searchable else ops.take(stack, self.parents, axis=0)
            _, _, h, w, _ = inputs.shape  # static: the model's input has a fixed size
            x = ops.reshape(ops.transpose(inputs, [1, 2, 3, 0, 4]), [-1, h, w, b * cin])
        # Keras infers the groups from the depths (B_l * C_in over C_in); TensorFlow's CPU
        # kernels have no gradient for a grouped convolution, so Keras compiles that one op
        # with XLA there.
        y = ops.cast(ops.conv(x, filters, strides=1, padding="same"), "float32")
        if training:
            mean, variance = ops.moments(y, axes=[0, 1, 2])  # [B * C]
            self._update_moving_stats(edges, ops.reshape(mean, [b, c]),
                                      ops.reshape(variance, [b, c]))
        else:
            mean = ops.reshape(ops.take(self.moving_mean.value, edges, axis=0), [-1])
            variance = ops.reshape(ops.take(self.moving_variance.value, edges, axis=0), [-1])
        y = self._pool(self._normalize(y, mean, variance, ops.reshape(betas, [-1]),
                                       ops.reshape(gammas, [-1])))
        if self.pool == "global_avg":  # [batch, B * C]
            return ops.transpose(ops.reshape(y, [-1, b, c]), [1, 0, 2])
        _, h, w, _ = y.shape
        return ops.transpose(ops.reshape(y, [-1, h, w, b, c]), [3, 0, 1, 2, 4])  # block stack

    def _update_moving_stats(self, edges, means, variances):
        idx = edges[:, None]
        for var, batch_value in ((self.moving_mean, means), (self.moving_variance, variances)):
            old = ops.take(var.value, edges, axis=0)
            new = (old * self.bn_momentum
                   + ops.stop_gradient(batch_value) * (1.0 - self.bn_momentum))
            var.assign(ops.scatter_update(var.value, idx, new))

    def compute_output_shape(self, input_shape):
        _, batch, h, w, _ = input_shape
        if self.pool == "global_avg":
            return (self.blocks, batch, self.channels)
        if self.pool == "max":
            h, w = h // 2, w // 2
        return (self.blocks, batch, h, w, self.channels)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size,
                "channels": self.channels, "pool": self.pool, "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon, "grouped": self.grouped}


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
        self._add_train_scale()
        self.drop = keras.layers.Dropout(self.dropout)

    def active_weights(self):
        return self._rows(self.kernel, self.bias)

    def call(self, stack, training=False):
        stack = self._input(stack)
        kernels, biases = self.active_weights()
        if self.soft_parents is not None:  # every edge: parent p's features for edge p*B+j
            inputs, blocks = ops.repeat(stack, self.blocks, axis=0), self.num_edges
        elif not self.searchable and self.parent_blocks == self.blocks:
            inputs, blocks = stack, self.blocks  # fixed routing, block j reads block j (FC-2, 3)
        else:
            inputs, blocks = ops.take(stack, self.parents, axis=0), self.blocks
        inputs = ops.reshape(inputs, [blocks, -1, self.kernel.shape[1]])  # -1: the batch
        y = ops.matmul(inputs, kernels) + biases[:, None, :]
        if self.activation:
            y = ops.relu(y)
            if self.dropout:
                y = self.drop(y, training=training)
        if self.soft_parents is not None:
            return self._mix(ops.unstack(y, num=blocks), training)
        return y

    def compute_output_shape(self, input_shape):
        return (self.blocks, input_shape[1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "dropout": self.dropout}


class Supernet(AttributeModel):
    """All trees of a search space in one functional Keras model.

    Args:
      space: the search space (`gnas_keras.space.search_space`).
      num_attributes: N.
      image_shape: (height, width, 3) of the input images in pixels.
      dropout: rate after every fc layer but the logits (paper: 0.75 for LFWA, Market-1501).
      weight_decay: L2 coefficient on the active weights (PyTorch-style: the gradient gets
        ``weight_decay * w`` for every parameter used in the step).
      bn_momentum, bn_epsilon: batch norm, in Keras' convention (running = momentum *
        running + (1 - momentum) * batch).
    """

    def __init__(self, space: SearchSpace, num_attributes: int, image_shape,
                 dropout: float = 0.0, weight_decay: float = 1e-4,
                 bn_momentum: float = BN_MOMENTUM, bn_epsilon: float = BN_EPSILON,
                 grouped_conv: bool = False, **kwargs):
        space.validate(num_attributes)
        counts = space.block_counts(num_attributes)
        image = keras.Input(shape=tuple(image_shape), name="image")
        x = keras.layers.Lambda(lambda im: normalize_images(im)[None], name="to_stack")(image)
        routed = []
        for l, spec in enumerate(space.layers):
            below = 1 if l == 0 else counts[l - 1]
            if spec.kind == "conv":
                layer = RoutedConv(below, counts[l], spec.searchable, spec.kernel,
                                   spec.channels, spec.pool, bn_momentum, bn_epsilon,
                                   grouped=grouped_conv, name=spec.name)
            else:
                last = l == len(space.layers) - 1
                layer = RoutedDense(below, counts[l], spec.searchable, spec.channels,
                                    activation=not last, dropout=0.0 if last else dropout,
                                    name=spec.name)
            x = layer(x)
            routed.append(layer)
        logits = keras.layers.Lambda(lambda s: ops.transpose(s, [1, 0, 2]), name="logits")(x)
        super().__init__(inputs=image, outputs=logits, **kwargs)
        self.init_training(num_attributes, image_shape, weight_decay)
        self.space = space
        self.dropout = dropout
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.grouped_conv = grouped_conv
        self.routed_layers: List[_Routed] = routed
        self._train_functions_from: Dict[int, Callable] = {}  # `train_function_now`

    # --- routing --------------------------------------------------------------------------
    @property
    def routing(self) -> Routing:
        return Routing.from_lists([layer.parents.numpy() for layer in self.routed_layers])

    def set_routing(self, routing: Routing) -> None:
        """Assigns the parent variables (cross-replica context: all replicas get it)."""
        routing.validate(self.space, self.num_attributes)
        for layer, parents in zip(self.routed_layers, routing.parents):
            layer.parents.assign(np.asarray(parents, np.int32))

    @contextlib.contextmanager
    def soft_routing(self, mixing: Dict[int, Callable[[bool], object]]):
        """Within this context, a step traced (or a call made eagerly) routes layer l of
        `mixing` softly: ``mixing[l](training)`` -> float [B_l, B_{l-1}] weights of each
        block's candidate parents (module docstring), read inside the graph, so new weights
        never retrace. Every edge of those layers is in use (`weights_in_use`) and their
        moving statistics all update. Steps traced outside the context route hard."""
        for l, weights in mixing.items():
            layer = self.routed_layers[l]
            if not layer.searchable or layer.parent_blocks == 1:
                raise ValueError(f"soft routing: layer {layer.name} has no parents to choose")
            layer.soft_parents = weights
        try:
            yield
        finally:
            for l in mixing:
                self.routed_layers[l].soft_parents = None

    # --- training -------------------------------------------------------------------------
    def weights_in_use(self):
        """The rows of the active edges (gathered: on TensorFlow their gradients are sparse)."""
        return [w for layer in self.routed_layers for w in layer.active_weights()]

    def gradient_scales(self):
        """Each trainable variable's layer ``train_scale`` (1.0 trains, 0.0 frozen)."""
        scales = {id(v): layer.train_scale for layer in self.routed_layers
                  for v in layer.trainable_variables}
        return [scales.get(id(v)) for v in self.trainable_variables]

    def rows_in_use(self):
        """The active edges' rows of every edge-major variable (`_Routed.rows_in_use`)."""
        rows = {id(v): layer.rows_in_use() for layer in self.routed_layers
                for v in layer.trainable_variables}
        return [rows.get(id(v)) for v in self.trainable_variables]

    def train_only_from(self, layer: int) -> None:
        """Layers below `layer` stop training (gradients zeroed, momentum cleared so they do
        not drift); `layer` and above train. ``train_only_from(0)`` trains everything.
        Use `snapshot` / `restore` around it: the cleared momentum is not brought back.
        `train_function_now` then runs a step whose backward pass stops at `layer`."""
        for l, routed in enumerate(self.routed_layers):
            routed.train_scale.assign(1.0 if l >= layer else 0.0)
            if l < layer:
                for v in routed.trainable_variables:
                    slot = self.momentum_of(v)
                    slot.assign(ops.zeros(slot.shape, slot.dtype))

    def train_function_now(self):
        """The compiled train step for the layers that train now (their ``train_scale``): all
        of them, Keras' ``train_function``; from layer L > 0 up, a step traced once per L
        whose backward pass stops at layer L's input (`ops.stop_gradient`), so the frozen
        layers below cost a forward pass only (`tiny` from fc1: 0.30 of a full step's time,
        `benchmarks/train_step.py`). The weights it computes are those of the full step,
        whose gradients below L are zeroed anyway."""
        scales = [float(layer.train_scale.numpy()) for layer in self.routed_layers]
        lowest = next((l for l, scale in enumerate(scales) if scale), 0)
        for l, layer in enumerate(self.routed_layers):
            layer.stop_input_gradient = 0 < lowest == l  # read when the step is traced
        if lowest == 0:
            return self.train_function
        if lowest not in self._train_functions_from:
            full = self.train_function
            self.make_train_function(force=True)
            self._train_functions_from[lowest], self.train_function = self.train_function, full
        return self._train_functions_from[lowest]

    def reinitialize_active(self, layer: int, rng: np.random.Generator) -> None:
        """Fresh weights for the active edges of `layer`, drawn from `rng` as at creation
        (He-normal fan-in kernels; BN scale 1, shift 0, statistics 0 / 1; zero biases), and
        their momentum cleared."""
        routed = self.routed_layers[layer]
        edges = routed.edge_ids().numpy()
        fresh = {"kernel": lambda shape: rng.normal(
                     0.0, np.sqrt(2.0 / np.prod(shape[1:-1])), shape),
                 "gamma": np.ones, "moving_variance": np.ones,
                 "beta": np.zeros, "moving_mean": np.zeros, "bias": np.zeros}
        for name, make in fresh.items():
            var = getattr(routed, name, None)
            if var is None:
                continue
            value = var.numpy()
            value[edges] = make((len(edges),) + value.shape[1:]).astype(value.dtype)
            var.assign(value)
            if var.trainable:
                slot = self.momentum_of(var)
                m = slot.numpy()
                m[edges] = 0.0
                slot.assign(m)

    # --- one tree as a static network ------------------------------------------------------
    def block_weights(self, layer: int, block: int, parent: int) -> List[np.ndarray]:
        """The weights of edge parent -> block of `layer`, in `TreeNetwork.block_weights`'
        order (conv: kernel, gamma, beta, moving mean, moving variance; fc: kernel, bias)."""
        routed = self.routed_layers[layer]
        e = parent * routed.blocks + block if routed.searchable else block
        names = (("kernel", "gamma", "beta", "moving_mean", "moving_variance")
                 if isinstance(routed, RoutedConv) else ("kernel", "bias"))
        return [getattr(routed, n).numpy()[e] for n in names]

    def to_tree_network(self, architecture):
        """A `TreeNetwork` of `architecture` (a tree of this space, `Architecture.from_space`)
        holding this supernet's weights of the tree's edges; computes what the supernet does
        on that routing (dead blocks are not built)."""
        from gnas_keras.models.tree_net import TreeNetwork, copy_weights
        architecture.routing.validate(self.space, self.num_attributes)
        tree = TreeNetwork(architecture, self.image_shape, dropout=self.dropout,
                           weight_decay=self.weight_decay, bn_momentum=self.bn_momentum,
                           bn_epsilon=self.bn_epsilon)
        copy_weights(lambda l, j: self.block_weights(l, j, architecture.parents[l][j]), tree)
        return tree

    def get_config(self):
        return {"space": self.space.to_dict(), "num_attributes": self.num_attributes,
                "image_shape": list(self.image_shape), "dropout": self.dropout,
                "weight_decay": self.weight_decay, "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon, "grouped_conv": self.grouped_conv,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["space"] = SearchSpace.from_dict(config["space"])
        return cls(**config)


def build_supernet(space: SearchSpace, num_attributes: int, image_shape, *,
                   learning_rate: float = 0.1, momentum: float = 0.9,
                   weight_decay: float = 1e-4, dropout: float = 0.0,
                   bn_momentum: float = BN_MOMENTUM, bn_epsilon: float = BN_EPSILON,
                   routing: Optional[Routing] = None,
                   mixed_precision: bool = False, grouped_conv: bool = False) -> Supernet:
    """A compiled supernet (call inside ``strategy.scope()`` to distribute it). Its initial
    weights come from Keras' global seed: seed it (``keras.utils.set_random_seed``) first.
    `mixed_precision`: float16 compute, float32 variables, loss scaling (`precision`).
    `grouped_conv`: every multi-block conv layer as one (grouped) convolution, one batch
    norm and one pool over the stacked blocks (`RoutedConv._call_grouped`): the same
    function in fewer, larger kernels."""
    with precision(mixed_precision):
        model = Supernet(space, num_attributes, image_shape, dropout=dropout,
                         weight_decay=weight_decay, bn_momentum=bn_momentum,
                         bn_epsilon=bn_epsilon, grouped_conv=grouped_conv)
        compile_model(model, learning_rate, momentum)
    if routing is not None:
        model.set_routing(routing)
    return model
