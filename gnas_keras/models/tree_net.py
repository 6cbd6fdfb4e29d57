"""A static tree network built from an `Architecture`: plain Keras layers, one per block.

`TreeNetwork` is the model a method's result is trained as when it is not a supernet: with
fresh weights (`TreeNetwork(...)`), with the weights of a supernet's tree
(`TreeNetwork.from_supernet`), or grown from a smaller tree by cloning a block
(`clone_block`, function-preserving, for adaptive branching). Only live blocks are built.

Per block (Keras layer names ``<layer>_<block>``):
- conv: ``Conv2D`` (SAME, no bias) -> ``BatchNormalization`` (``<name>_bn``) -> ReLU ->
  the block's pool (2x2/2 max, none, or global average);
- fc: ``Dense`` (with bias), then ReLU and dropout unless it is a logits block.
A block's input is its parent's output concatenated with its skips (`gnas_keras.space.architecture`
says how skips are resized). `build_graph` wires this for any block maker: the exporter uses
it with BN folded into the convolution.

Input: float images [batch, H, W, 3] in [0, 255]; output: logits [batch, N, 2].
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
from keras import ops
import numpy as np

from gnas_keras.space.architecture import Architecture, BlockSpec
from gnas_keras.settings import BN_EPSILON, BN_MOMENTUM
from gnas_keras.models.base import (AttributeModel, compile_model, normalize_images,
                                    precision)

BlockMaker = Callable[[int, int, str, BlockSpec, "keras.KerasTensor"], "keras.KerasTensor"]


def block_input(name: str, spec: BlockSpec, parent, skips: Sequence) -> "keras.KerasTensor":
    """The block's input: parent output plus skips, resized as the module docstring says."""
    if spec.op == "fc":
        parts = [keras.layers.Flatten(name=f"{name}_flatten")(parent)
                 if len(parent.shape) > 2 else parent]
        for i, s in enumerate(skips):
            parts.append(keras.layers.GlobalAveragePooling2D(name=f"{name}_skip{i}_pool")(s)
                         if len(s.shape) == 4 else s)
    else:
        parts = [parent]
        for i, s in enumerate(skips):
            ratio = s.shape[1] // parent.shape[1]
            if ratio > 1:
                s = keras.layers.MaxPooling2D(ratio, ratio, name=f"{name}_skip{i}_pool")(s)
            parts.append(s)
    if len(parts) == 1:
        return parts[0]
    return keras.layers.Concatenate(name=f"{name}_concat")(parts)


def block_pool(name: str, spec: BlockSpec, y):
    if spec.pool == "max":
        return keras.layers.MaxPooling2D(2, 2, name=f"{name}_pool")(y)
    if spec.pool == "global_avg":
        return keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(y)
    return y


def build_graph(architecture: Architecture, image, make_block: BlockMaker
                ) -> List["keras.KerasTensor"]:
    """Wires the live blocks of `architecture` on the Keras input `image`; returns the last
    layer's outputs in attribute order. ``make_block(layer, block, name, spec, input)``
    builds one block from its combined input (conv: up to the activation; pooling is added here)."""
    x = keras.layers.Lambda(normalize_images, name="normalize")(image)
    outputs: List[Dict[int, "keras.KerasTensor"]] = []
    for l, live in enumerate(architecture.live_blocks()):
        here = {}
        for j in live:
            spec = architecture.blocks[l][j]
            name = f"{architecture.layer_names[l]}_{j}"
            parent = x if l == 0 else outputs[l - 1][architecture.parents[l][j]]
            y = make_block(l, j, name, spec, block_input(name, spec, parent,
                                                [outputs[sl][sj] for sl, sj in spec.skips]))
            here[j] = block_pool(name, spec, y) if spec.op == "conv" else y
        outputs.append(here)
    return [outputs[-1][n] for n in range(architecture.num_attributes)]


def stack_logits(heads) -> "keras.KerasTensor":
    """N tensors [batch, 2] -> logits [batch, N, 2]."""
    return keras.layers.Lambda(lambda ys: ops.stack(ys, axis=1), name="logits")(list(heads))


class TreeNetwork(AttributeModel):
    """One `Architecture` as a trainable functional model (see the module docstring).

    Args:
      architecture: the tree; validated.
      image_shape: (height, width, 3).
      dropout: after every non-logits fc block.
      weight_decay: L2 on all trainable weights (all are in use).
      bn_momentum, bn_epsilon: Keras convention (see `gnas_keras.models.supernet`).
    """

    def __init__(self, architecture: Architecture, image_shape, dropout: float = 0.0,
                 weight_decay: float = 1e-4, bn_momentum: float = BN_MOMENTUM,
                 bn_epsilon: float = BN_EPSILON, **kwargs):
        architecture.validate()
        blocks: Dict[str, List[keras.layers.Layer]] = {}

        def make_block(l: int, j: int, name: str, spec: BlockSpec, x):
            if spec.op == "conv":
                conv = keras.layers.Conv2D(
                    spec.width, spec.kernel, padding="same", use_bias=False, name=name,
                    kernel_initializer=keras.initializers.HeNormal())
                bn = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=bn_epsilon,
                                                     name=f"{name}_bn")
                blocks[name] = [conv, bn]
                return keras.layers.ReLU(name=f"{name}_relu")(bn(conv(x)))
            dense = keras.layers.Dense(spec.width, activation="relu" if spec.activation
                                       else None, name=name,
                                       kernel_initializer=keras.initializers.HeNormal())
            blocks[name] = [dense]
            y = dense(x)
            if spec.activation and dropout:
                y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
            return y

        image = keras.Input(shape=tuple(image_shape), name="image")
        logits = stack_logits(build_graph(architecture, image, make_block))
        super().__init__(inputs=image, outputs=logits, **kwargs)
        self.init_training(architecture.num_attributes, image_shape, weight_decay)
        self.architecture = architecture
        self.dropout = dropout
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self._block_names = sorted(blocks)

    def settings(self) -> Dict:
        """Constructor arguments besides the architecture (to build a sibling)."""
        return {"image_shape": self.image_shape, "dropout": self.dropout,
                "weight_decay": self.weight_decay, "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon}

    def weights_in_use(self):
        return list(self.trainable_variables)

    def to_tree_network(self, architecture: Architecture) -> "TreeNetwork":
        if architecture != self.architecture:
            raise ValueError("this tree network was built for another architecture")
        return self

    # --- per-block weights -------------------------------------------------------------------
    def block_name(self, layer: int, block: int) -> str:
        return f"{self.architecture.layer_names[layer]}_{block}"

    def block_weights(self, layer: int, block: int) -> List[np.ndarray]:
        """conv: [kernel, gamma, beta, moving mean, moving variance]; fc: [kernel, bias]."""
        name = self.block_name(layer, block)
        if self.architecture.blocks[layer][block].op == "conv":
            return self.get_layer(name).get_weights() + \
                self.get_layer(f"{name}_bn").get_weights()
        return self.get_layer(name).get_weights()

    def folded_block_weights(self, layer: int, block: int) -> List[np.ndarray]:
        """[kernel, bias] of the block for inference: a conv's BN folded into it (kernel *
        gamma / sqrt(var + eps), bias beta - mean * gamma / sqrt(var + eps)); an fc's own."""
        weights = self.block_weights(layer, block)
        if self.architecture.blocks[layer][block].op != "conv":
            return weights
        kernel, gamma, beta, mean, var = weights
        scale = gamma / np.sqrt(var + self.bn_epsilon)
        return [kernel * scale, beta - mean * scale]

    def set_block_weights(self, layer: int, block: int, weights: Sequence[np.ndarray]) -> None:
        name = self.block_name(layer, block)
        if self.architecture.blocks[layer][block].op == "conv":
            self.get_layer(name).set_weights([weights[0]])
            self.get_layer(f"{name}_bn").set_weights(list(weights[1:]))
        else:
            self.get_layer(name).set_weights(list(weights))

    def get_config(self):
        return {"architecture": self.architecture.to_json([]), **self.settings(),
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["architecture"] = Architecture.from_json(config["architecture"])
        return cls(**config)


def build_tree_network(architecture: Architecture, image_shape, *, learning_rate: float = 0.1,
                       momentum: float = 0.9, mixed_precision: bool = False,
                       jit_compile: bool = False, **settings) -> TreeNetwork:
    """A compiled `TreeNetwork` with fresh weights (Keras' global seed decides them; call
    inside ``strategy.scope()`` to distribute it). `mixed_precision`: float16 compute,
    float32 variables, loss scaling; `jit_compile`: XLA train/eval steps."""
    with precision(mixed_precision):
        return compile_model(TreeNetwork(architecture, image_shape, **settings),
                             learning_rate, momentum, jit_compile)


def copy_weights(source: Callable[[int, int], Sequence[np.ndarray]], target: TreeNetwork,
                 origin: Optional[Callable[[int, int], Tuple[int, int]]] = None) -> None:
    """Sets every live block (l, j) of `target` to ``source(*origin(l, j))`` (default
    origin: the same block)."""
    for l, live in enumerate(target.architecture.live_blocks()):
        for j in live:
            target.set_block_weights(l, j, source(*(origin(l, j) if origin else (l, j))))


def clone_block(model: TreeNetwork, layer: int, block: int, children: Sequence[int],
                learning_rate: float = 0.1, momentum: float = 0.9) -> TreeNetwork:
    """A new compiled network in which block `block` of `layer` has a clone (a new last
    block of that layer, `Architecture.clone_block`) that feeds `children`; every block,
    the clone included, starts with the weights (and BN statistics) it or its original has
    in `model`, so the new network computes exactly what `model` does. Optimizer state is
    not carried over (fresh momentum)."""
    architecture = model.architecture.clone_block(layer, block, children)
    grown = build_tree_network(architecture, learning_rate=learning_rate, momentum=momentum,
                               **model.settings())
    clone = len(architecture.parents[layer]) - 1
    copy_weights(model.block_weights, grown,
                 lambda l, j: (l, block) if (l, j) == (layer, clone) else (l, j))
    return grown
