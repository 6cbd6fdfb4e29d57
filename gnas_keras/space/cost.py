"""What a search space costs before anything is trained: parameters, MACs, trees, evaluations.

Everything here is computed analytically from `SearchSpace` (no TensorFlow), so that
``python -m flags.describe`` answers instantly even for supernets too large to build on a
laptop. The per-block formulas mirror `gnas_keras.models.supernet` and `gnas_keras.export.saved_model`
(tests/test_presets.py checks them against built models); a tree's own size is
`gnas_keras.space.architecture.cost` (any architecture, not only trees of a space):

- conv block: k x k convolution, SAME padding, stride 1, then BN, ReLU and the layer's pool
  (2x2/2 max, VALID, so odd sizes round down; none; or global average). In the exported tree BN is folded into the convolution
  (kernel + bias); in the supernet every edge has a kernel (no bias) and BN gamma and beta
  (trainable) plus moving mean and variance (not counted: not trainable).
- fc block: dense layer with bias on the flattened parent block.

The exported *full tree* is `gnas_keras.space.tree.independent_routing` (children spread over their
parents): every block is live whenever N is at least the largest conv block count (true for
all of the paper's datasets), so its size is the largest any tree of the space can have.
Parameter counts and MACs do not depend on which parent a block has, only on how many blocks
are live, because all blocks of a layer have the same shape.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

from gnas_keras.space.architecture import Architecture
from gnas_keras.space.architecture import cost as architecture_cost
from gnas_keras.space.search_space import SearchSpace, scientific
from gnas_keras.space.tree import Routing, independent_routing


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """One layer of a space at a given input size.

    Attributes:
      name: layer name (``conv1`` ... ``fc3``).
      blocks: B_l.
      edges: weight sets the supernet keeps (B_{l-1} * B_l when searched, else B_l).
      input_shape: one block's input (height, width, channels) or (units,), flattened for fc.
      output_shape: one block's output, after pooling for conv.
      block_parameters: one exported block (BN folded: kernel + bias).
      edge_parameters: one supernet edge's trainable weights (conv: kernel + gamma + beta).
      block_macs: multiply-accumulates of one block per image (convolution or matmul only;
        BN, ReLU, pooling and bias additions are not counted).
    """

    name: str
    blocks: int
    edges: int
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    block_parameters: int
    edge_parameters: int
    block_macs: int


@dataclasses.dataclass(frozen=True)
class Cost:
    """The answer of ``flags.describe``.

    Attributes:
      tree_parameters: the exported full tree (BN folded), in parameters.
      supernet_parameters: trainable parameters of the weight-sharing supernet.
      macs_per_image: multiply-accumulates of the exported full tree for one image.
      supernet_macs_per_image: the supernet's forward pass for one image; it computes every
        block of every layer (dead ones too), so it equals the full tree's when all are live.
      possible_trees: prod over searched layers of B_{l-1} ** B_l (Eq. 2).
      evaluations_per_round: candidate evaluations in one GNAS round, sum of B_{l-1} over
        searched layers (sec. 3.4).
    """

    space: str
    num_attributes: int
    image_height: int
    image_width: int
    tree_parameters: int
    supernet_parameters: int
    macs_per_image: int
    supernet_macs_per_image: int
    possible_trees: int
    evaluations_per_round: int
    layers: Tuple[LayerCost, ...]

    def to_dict(self) -> Dict:
        d = dataclasses.asdict(self)
        d["tree_parameters_millions"] = round(self.tree_parameters / 1e6, 3)
        d["supernet_parameters_millions"] = round(self.supernet_parameters / 1e6, 3)
        d["gmacs_per_image"] = round(self.macs_per_image / 1e9, 4)
        d["possible_trees_scientific"] = scientific(self.possible_trees)
        if self.possible_trees >= 10 ** 4000:  # beyond what int -> str converts by default
            d["possible_trees"] = None
        d["layers"] = [{**dataclasses.asdict(l), "input_shape": list(l.input_shape),
                        "output_shape": list(l.output_shape)} for l in self.layers]
        return d


def layer_costs(space: SearchSpace, num_attributes: int, image_height: int,
                image_width: int) -> List[LayerCost]:
    """Per-layer shapes and per-block costs for input images [image_height, image_width, 3].

    Raises ValueError if the space is invalid for N or the image is too small for its pools.
    """
    space.validate(num_attributes)
    if image_height < 1 or image_width < 1:
        raise ValueError(f"image size must be positive, got {image_height}x{image_width}")
    counts = space.block_counts(num_attributes)
    shape: Tuple[int, ...] = (image_height, image_width, 3)
    out = []
    for l, spec in enumerate(space.layers):
        edges = counts[l - 1] * counts[l] if l > 0 and spec.searchable else counts[l]
        c = spec.channels
        if spec.kind == "conv":
            h, w, cin = shape
            if spec.pool == "max" and (h < 2 or w < 2):
                raise ValueError(
                    f"space {space.name}: image {image_height}x{image_width} is too small: "
                    f"{spec.name} gets {h}x{w} and its 2x2 max-pool needs at least 2x2")
            kernel = spec.kernel * spec.kernel * cin * c
            new_shape: Tuple[int, ...] = {"max": (h // 2, w // 2, c), "none": (h, w, c),
                                          "global_avg": (c,)}[spec.pool]
            block_params, edge_params, macs = kernel + c, kernel + 2 * c, h * w * kernel
        else:
            din = 1
            for s in shape:
                din *= s
            shape = (din,)
            new_shape = (c,)
            block_params = edge_params = din * c + c
            macs = din * c
        out.append(LayerCost(spec.name, counts[l], edges, shape, new_shape, block_params,
                             edge_params, macs))
        shape = new_shape
    return out


def full_tree(space: SearchSpace, num_attributes: int) -> Routing:
    """The tree whose export is measured: `independent_routing` (see module docstring)."""
    return independent_routing(space, num_attributes)


def describe(space: SearchSpace, num_attributes: int, image_height: int, image_width: int,
             routing: Optional[Routing] = None) -> Cost:
    """The cost of `space` for N attributes and [image_height, image_width, 3] images.

    routing: the tree whose export is counted (default `full_tree`); only its live block
    counts matter.
    """
    layers = layer_costs(space, num_attributes, image_height, image_width)
    routing = routing or full_tree(space, num_attributes)
    routing.validate(space, num_attributes)
    tree = architecture_cost(Architecture.from_space(space, routing), image_height, image_width)
    return Cost(
        space=space.name, num_attributes=num_attributes, image_height=image_height,
        image_width=image_width,
        tree_parameters=tree.parameters,
        supernet_parameters=sum(l.edges * l.edge_parameters for l in layers),
        macs_per_image=tree.macs_per_image,
        supernet_macs_per_image=sum(l.blocks * l.block_macs for l in layers),
        possible_trees=space.num_trees(num_attributes),
        evaluations_per_round=space.evaluations_per_round(num_attributes),
        layers=tuple(layers))
