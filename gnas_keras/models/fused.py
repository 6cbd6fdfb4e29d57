"""The fused inference graph: an exported tree with sibling blocks computed together.

`gnas_keras.export.saved_model.inference_model` builds one Keras layer per live block: on the paper's
spaces that is 16 small convolutions in conv5 and 40 x 3 tiny per-attribute dense layers,
each its own kernel launch. `fused_inference_model` computes the same function with fewer,
larger kernels:

- **Siblings**: blocks of a layer that read the same input (same parent, same skips) and
  compute the same kind of thing (op, kernel size, pooling, activation) become one
  ``Conv2D`` / one matmul whose filters are the blocks' filters concatenated; the output is
  split back per block (ReLU and pooling act per channel, so they commute with the split).
- **Batched fc**: in an fc layer, groups of equal input size and equal total width that read
  *different* inputs become one batched matmul ([G, batch, d] x [G, d, w]): the paper's
  per-attribute FC-2 and FC-3 (one block per attribute, each reading its own FC-1 / FC-2)
  are one op per layer instead of N.
- **Probabilities**: one softmax over the stacked logits instead of one per attribute.

Conv groups that read different inputs stay separate convolutions (their analogue, a
grouped convolution over concatenated inputs, is what the training-time supernet does with
`--grouped_conv`). BN is folded into the convolutions exactly as in the per-block graph
(`TreeNetwork.folded_block_weights`). The outputs equal the per-block graph's up to float
summation order (tests: max abs difference < 1e-4).

Input: float32 images [batch, H, W, 3] in [0, 255]. Output: {attribute name: probability
[batch]}, or logits [batch, N, 2] without names.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from gnas_keras.space.architecture import BlockSpec
from gnas_keras.models.base import normalize_images
from gnas_keras.models.tree_net import TreeNetwork, block_input, block_pool


class SplitChannels(keras.layers.Layer):
    """[..., sum(widths)] -> a list of tensors [..., widths[i]] (the last axis cut)."""

    def __init__(self, widths: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.widths = [int(w) for w in widths]

    def call(self, x):
        if len(self.widths) == 1:
            return [x]
        return tf.split(x, self.widths, axis=-1)  # one SplitV

    def get_config(self):
        return {**super().get_config(), "widths": self.widths}


class BatchedDense(keras.layers.Layer):
    """G dense layers of the same shape, one per input, as one batched matmul.

    Input: a list of G tensors [batch, d]. Output: a list of G tensors [batch, units], each
    input times its own kernel [d, units] plus its own bias (ReLU if `relu`). With G = 1 it
    is a plain matmul.
    """

    def __init__(self, groups: int, units: int, relu: bool, **kwargs):
        super().__init__(**kwargs)
        self.groups, self.units, self.relu = int(groups), int(units), bool(relu)

    def build(self, input_shape):
        d, g = int(input_shape[0][-1]), self.groups
        # One group: a plain [d, units] kernel (MatMul + BiasAdd, which grappler fuses).
        self.kernel = self.add_weight(shape=(g, d, self.units) if g > 1 else (d, self.units),
                                      name="kernel")
        self.bias = self.add_weight(shape=(g, 1, self.units) if g > 1 else (self.units,),
                                    name="bias")

    def call(self, inputs):
        if self.groups == 1:
            y = [tf.nn.bias_add(tf.matmul(inputs[0], self.kernel), self.bias)]
        else:
            stacked = tf.matmul(tf.stack(inputs, axis=0), self.kernel) + self.bias
            y = tf.unstack(stacked, self.groups, axis=0)
        return [tf.nn.relu(t) for t in y] if self.relu else y

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "units": self.units,
                "relu": self.relu}


class Probabilities(keras.layers.Layer):
    """N logits [batch, 2] -> N probabilities [batch] that the attribute is present."""

    def call(self, heads):
        probabilities = tf.nn.softmax(tf.stack(heads, axis=1))[:, :, 1]
        return tf.unstack(probabilities, len(heads), axis=1)


def sibling_groups(tree: TreeNetwork, layer: int, live: Sequence[int]) -> List[List[int]]:
    """Live blocks of `layer` grouped by identical input and computation, in block order."""
    architecture = tree.architecture
    groups: Dict[Tuple, List[int]] = {}
    for j in live:
        spec = architecture.blocks[layer][j]
        parent = architecture.parents[layer][j] if layer else 0
        key = (parent, spec.skips, spec.op, spec.kernel, spec.pool, spec.activation)
        groups.setdefault(key, []).append(j)
    return list(groups.values())


@dataclasses.dataclass
class _Group:
    """Sibling blocks of one layer computed as one: their combined input, and their folded
    weights concatenated along the output axis."""

    name: str                  # Keras layer name prefix, ``<layer>_g<i>``
    spec: BlockSpec            # the first member's (all members compute alike)
    members: List[int]         # block indices
    widths: List[int]          # each member's output width
    inputs: "keras.KerasTensor"
    kernel: np.ndarray
    bias: np.ndarray

    def split(self, y) -> Dict[int, "keras.KerasTensor"]:
        """The group's output [..., sum(widths)] -> {block: its output}."""
        return dict(zip(self.members, SplitChannels(self.widths, name=f"{self.name}_split")(y)))


def fused_inference_model(tree: TreeNetwork, attribute_names: Optional[Sequence[str]] = None
                          ) -> keras.Model:
    """`tree` for inference with siblings fused (see the module docstring); the same
    function as `gnas_keras.export.saved_model.inference_model(tree, attribute_names)`."""
    architecture, assignments = tree.architecture, []
    image = keras.Input(shape=tree.image_shape, name="image")
    x = keras.layers.Lambda(normalize_images, name="normalize")(image)
    outputs: List[Dict[int, "keras.KerasTensor"]] = []
    for l, live in enumerate(architecture.live_blocks()):
        layer_name, here = architecture.layer_names[l], {}
        # Stage 1: siblings -> one input tensor and one concatenated weight per group.
        groups = []
        for g, members in enumerate(sibling_groups(tree, l, live)):
            spec = architecture.blocks[l][members[0]]
            name = f"{layer_name}_g{g}"
            parent = x if l == 0 else outputs[l - 1][architecture.parents[l][members[0]]]
            weights = [tree.folded_block_weights(l, j) for j in members]
            groups.append(_Group(
                name, spec, members, [architecture.blocks[l][j].width for j in members],
                block_input(name, spec, parent, [outputs[sl][sj] for sl, sj in spec.skips]),
                np.concatenate([w[0] for w in weights], axis=-1),
                np.concatenate([w[1] for w in weights], axis=-1)))
        if architecture.blocks[l][live[0]].op == "conv":
            for group in groups:
                conv = keras.layers.Conv2D(sum(group.widths), group.spec.kernel,
                                           padding="same", name=group.name)
                assignments.append((conv, [group.kernel, group.bias]))
                relu = keras.layers.ReLU(name=f"{group.name}_relu")(conv(group.inputs))
                here.update(group.split(block_pool(group.name, group.spec, relu)))
        else:
            # Stage 2: groups of the same shape -> one batched matmul.
            batches: Dict[Tuple, List[_Group]] = {}
            for group in groups:
                key = (int(group.inputs.shape[-1]), sum(group.widths), group.spec.activation)
                batches.setdefault(key, []).append(group)
            for b, ((_, units, relu), batch) in enumerate(batches.items()):
                dense = BatchedDense(len(batch), units, relu, name=f"{layer_name}_batch{b}")
                ys = dense([group.inputs for group in batch])
                assignments.append((dense, [batch[0].kernel, batch[0].bias] if len(batch) == 1
                                    else [np.stack([group.kernel for group in batch]),
                                          np.stack([group.bias for group in batch])[:, None]]))
                for group, y in zip(batch, ys):
                    here.update(group.split(y))
        outputs.append(here)
    heads = [outputs[-1][n] for n in range(architecture.num_attributes)]
    if attribute_names is None:
        result = keras.layers.Lambda(lambda ys: tf.stack(ys, axis=1), name="logits")(heads)
    else:
        if len(attribute_names) != len(heads):
            raise ValueError(f"{len(attribute_names)} attribute names for {len(heads)} "
                             "attributes")
        result = dict(zip(attribute_names, Probabilities(name="probabilities")(heads)))
    model = keras.Model(image, result, name="fused_tree")
    for layer, weights in assignments:
        layer.set_weights(weights)
    return model
