"""Search spaces: the pre-defined graph whose tree-shaped sub-graphs GNAS searches.

A search space is a stack of layers, each with a number of blocks (``B_l``) of a fixed width.
Every block of layer ``l`` has exactly one parent block in layer ``l - 1`` (the paper's Eq. 2);
the first layer's parent is the input image. The last three layers are fully connected and
have one block per attribute (``blocks=ATTRIBUTES``), as in the paper's Table 1.

A layer is *searchable* when the parents of its blocks are searched. A layer that is not
searchable has a fixed routing: every block's parent is block 0 when the layer below has one
block, and block ``j``'s parent is block ``j`` when both layers have the same number of blocks
(FC-2 and FC-3, which are per attribute).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Tuple

ATTRIBUTES = 0  # `LayerSpec.blocks` value meaning "one block per attribute" (the paper's N)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One layer of the pre-defined graph.

    Attributes:
      name: e.g. ``conv4`` or ``fc1``.
      kind: ``conv`` (conv k x k, BN, ReLU, 2x2/2 max-pool per edge) or ``fc`` (dense per
        edge, ReLU except on the last layer, which gives 2 logits per attribute).
      kernel: conv kernel size in pixels; 0 for ``fc``.
      blocks: number of blocks B_l, or `ATTRIBUTES` for N.
      channels: feature maps per block (conv) or units per block (fc).
      searchable: whether the parents of this layer's blocks are searched.
      pool: conv only: ``max`` (2x2/2 max-pool, the paper's), ``none``, or ``global_avg``
        (global average pooling to one vector per block, e.g. at the conv -> fc transition).
    """

    name: str
    kind: str
    kernel: int
    blocks: int
    channels: int
    searchable: bool = False
    pool: str = "max"


POOLS = ("max", "none", "global_avg")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Layers of the pre-defined graph, and `group_layer`: the name of the layer whose blocks
    partition the attributes when a tree's grouping is read (ARI, colours of the picture);
    empty = the top conv layer (the parents of FC-1, the finest shared grouping)."""

    name: str
    layers: Tuple[LayerSpec, ...]
    group_layer: str = ""

    @property
    def grouping_layer(self) -> int:
        """Index of the layer where groups are read (see the class docstring)."""
        if self.group_layer:
            return [s.name for s in self.layers].index(self.group_layer)
        return max(l for l, s in enumerate(self.layers) if s.kind == "conv")

    def block_counts(self, num_attributes: int) -> List[int]:
        """B_l for every layer, with N substituted."""
        return [num_attributes if s.blocks == ATTRIBUTES else s.blocks for s in self.layers]

    def validate(self, num_attributes: int) -> None:
        """Raises ValueError with the offending layer if the space cannot form trees."""
        if num_attributes < 1:
            raise ValueError(f"num_attributes must be >= 1, got {num_attributes}")
        kinds = [s.kind for s in self.layers]
        if any(k not in ("conv", "fc") for k in kinds):
            raise ValueError(f"space {self.name}: layer kinds must be conv or fc, got {kinds}")
        if kinds[-3:] != ["fc"] * 3 or "conv" in kinds[kinds.index("fc"):]:
            raise ValueError(f"space {self.name}: layers must be convs followed by fc1, fc2, "
                             f"fc3 (per attribute), got {kinds}")
        if [s.blocks for s in self.layers[-2:]] != [ATTRIBUTES, ATTRIBUTES] \
                or self.layers[-1].channels != 2 or any(s.searchable for s in self.layers[-2:]):
            raise ValueError(f"space {self.name}: fc2 and fc3 must be fixed, one block per "
                             "attribute, and fc3 must have 2 channels (logits)")
        if self.layers[-3].blocks != ATTRIBUTES:
            raise ValueError(f"space {self.name}: fc1 must have one block per attribute")
        names = [s.name for s in self.layers]
        if self.group_layer and self.group_layer not in names:
            raise ValueError(f"space {self.name}: group_layer {self.group_layer!r} is not one "
                             f"of its layers {names}")
        for s in self.layers:
            if s.pool not in POOLS or (s.kind == "fc" and s.pool != "max"):
                raise ValueError(f"space {self.name}: layer {s.name}: pool must be one of "
                                 f"{POOLS} (conv only), got {s.pool!r}")
        if any(s.pool == "global_avg" for s in self.layers[:-4]):
            raise ValueError(f"space {self.name}: only the top conv layer may pool globally")
        counts = self.block_counts(num_attributes)
        if counts[0] != 1:
            raise ValueError(f"space {self.name}: the first layer must have one block")
        for spec, below, here in zip(self.layers[1:], counts, counts[1:]):
            if spec.channels < 1 or here < 1:
                raise ValueError(f"space {self.name}: layer {spec.name} needs blocks and "
                                 "channels >= 1")
            if not spec.searchable and below != 1 and below != here:
                raise ValueError(
                    f"space {self.name}: layer {spec.name} is not searchable, so it needs one "
                    f"parent block or as many blocks as its parent layer ({below} vs {here})")

    def searched_layers(self, num_attributes: int) -> List[int]:
        """Indices of layers whose routing GNAS updates: searchable, with more than one
        candidate parent. A layer whose parent layer has one block has nothing to choose
        (the paper counts sec. 3.4's (1, 4, 16, 40) example as 4 + 16 = 20 evaluations)."""
        counts = self.block_counts(num_attributes)
        return [l for l, s in enumerate(self.layers)
                if l > 0 and s.searchable and counts[l - 1] > 1]

    def num_trees(self, num_attributes: int) -> int:
        """Number of possible trees, prod over searched layers of B_{l-1} ** B_l (Eq. 2)."""
        counts = self.block_counts(num_attributes)
        return math.prod(counts[l - 1] ** counts[l] for l in self.searched_layers(num_attributes))

    def evaluations_per_round(self, num_attributes: int, layers=None) -> int:
        """Candidate evaluations in one GNAS round: sum of B_{l-1} over the searched layers
        (or the given `layers`, e.g. those of ``--search_only``)."""
        counts = self.block_counts(num_attributes)
        if layers is None:
            layers = self.searched_layers(num_attributes)
        return sum(counts[l - 1] for l in layers)

    def to_dict(self) -> Dict:
        return {"name": self.name, "layers": [dataclasses.asdict(s) for s in self.layers],
                "group_layer": self.group_layer}

    @classmethod
    def from_dict(cls, d: Dict) -> "SearchSpace":
        return cls(d["name"], tuple(LayerSpec(**s) for s in d["layers"]),
                   d.get("group_layer", ""))


def scientific(count: int, digits: int = 3) -> str:
    """A non-negative integer of any size in scientific notation (``1.23e+45``); numbers of
    trees overflow a float beyond about 1e308."""
    if count < 1e15:
        return f"{count:.{digits}g}"
    exponent = math.floor(math.log10(count))
    mantissa = round(10 ** (math.log10(count) - exponent), digits - 1)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.{digits - 1}f}e+{exponent}"


def _table1(name: str, deep: bool, wide: bool) -> SearchSpace:
    """The paper's Table 1. Shallow searches Conv-4, Conv-5, FC-1; Deep Conv-2..5 and FC-1."""
    if deep:
        blocks = [1, 2, 4, 8, 16]
        conv_ch = [64, 64, 64, 64, 32] if wide else [16] * 5
    else:
        blocks = [1, 1, 1, 4, 16]
        conv_ch = [64, 128, 256, 128, 32] if wide else [16, 32, 64, 32, 16]
    fc = 128 if wide else 64
    searched = {2, 3, 4, 5} if deep else {4, 5}
    layers = [LayerSpec(f"conv{i + 1}", "conv", 7 if i == 0 else 3, blocks[i], conv_ch[i],
                        searchable=(i + 1) in searched) for i in range(5)]
    layers += [LayerSpec("fc1", "fc", 0, ATTRIBUTES, fc, searchable=True),
               LayerSpec("fc2", "fc", 0, ATTRIBUTES, fc),
               LayerSpec("fc3", "fc", 0, ATTRIBUTES, 2)]
    return SearchSpace(name, tuple(layers))


PRESETS: Dict[str, SearchSpace] = {
    "shallow_thin": _table1("shallow_thin", deep=False, wide=False),
    "shallow_wide": _table1("shallow_wide", deep=False, wide=True),
    "deep_thin": _table1("deep_thin", deep=True, wide=False),
    "deep_wide": _table1("deep_wide", deep=True, wide=True),
    # For the built-in 32x32 synthetic set on a laptop CPU: conv2 has four blocks under the
    # single conv1 block (nothing to search there), conv3 four thin blocks (one per planted
    # group is possible) searched over conv2, and FC-1 searched over conv3. conv3 is
    # global-average-pooled, so a block carries as many numbers as it has channels (3, the
    # number of independent bits of each synthetic group): a block has no room for a second
    # group, nor for one attribute of another group (docs/planted_set.md).
    "tiny": SearchSpace("tiny", (
        LayerSpec("conv1", "conv", 3, 1, 16),
        LayerSpec("conv2", "conv", 3, 4, 8),
        LayerSpec("conv3", "conv", 3, 4, 3, searchable=True, pool="global_avg"),
        LayerSpec("fc1", "fc", 0, ATTRIBUTES, 16, searchable=True),
        LayerSpec("fc2", "fc", 0, ATTRIBUTES, 16),
        LayerSpec("fc3", "fc", 0, ATTRIBUTES, 2),
    )),
    # For real images at small resolution (32-64 px) on a CPU; what `--space=auto` picks
    # for any dataset but the planted synthetic set (`gnas_keras.config.space_for_data`).
    # Two shared conv layers, then conv3 (4 blocks under the shared trunk, fixed) and
    # conv4 (4 blocks searched over conv3), each 2x2 max-pooled; fc1 reads conv4's block
    # flattened (16 channels at a 16th of the side: 4x4x16 = 256 numbers at 64 px), so it
    # knows *where* in the image a feature is (a loop at the top, ink below the baseline),
    # which `tiny`'s global average pool of 3 channels throws away. About 6 M multiply-adds
    # per 64x64 image, as `tiny` at that size.
    "small": SearchSpace("small", (
        LayerSpec("conv1", "conv", 3, 1, 16),
        LayerSpec("conv2", "conv", 3, 1, 16),
        LayerSpec("conv3", "conv", 3, 4, 16),
        LayerSpec("conv4", "conv", 3, 4, 16, searchable=True),
        LayerSpec("fc1", "fc", 0, ATTRIBUTES, 32, searchable=True),
        LayerSpec("fc2", "fc", 0, ATTRIBUTES, 32),
        LayerSpec("fc3", "fc", 0, ATTRIBUTES, 2),
    )),
}


def get_space(name: str) -> SearchSpace:
    if name not in PRESETS:
        raise ValueError(f"unknown search space {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
