"""The network a method found, as data: a tree of blocks plus what every block computes.

An `Architecture` is what every search method returns and what the tree network
(`gnas_keras.models.tree_net`), the exporter, the cost model and the drawing read. It needs
no TensorFlow.

- ``parents[l][j]``: the block of layer ``l - 1`` that feeds block ``j`` of layer ``l``
  (`gnas_keras.space.tree.Routing`); ``parents[0]`` is all zeros (the image).
- ``blocks[l][j]``: a `BlockSpec` (op, width, kernel, pooling, extra inputs). Block counts
  come from here, so layers may have any number of blocks of differing widths (adaptive
  branching widens layers; GALM gives attributes their own kernels and widths).
- The last layer has one block per attribute: block ``n`` gives attribute ``n``'s 2 logits.
- ``group_layer``: the name of the layer whose blocks partition the attributes (ARI,
  colours of the picture).

A block's input is its parent's output, concatenated (channels, or features for fc) with its
``skips``: outputs of blocks of earlier layers (not the parent's layer). A conv skip source
of a larger spatial size is max-pooled down to the block's input size (the ratio must be a
whole number); a conv source feeding an fc block is globally average-pooled first (a
flattened early feature map would dwarf the block). An fc block flattens a conv input.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, List, Optional, Sequence, Tuple

from gnas_keras.space.tree import Routing

OPS = ("conv", "fc")
POOLS = ("max", "none", "global_avg")


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """What one block computes.

    Attributes:
      op: ``conv`` (k x k conv, no bias, BN, ReLU, then `pool`) or ``fc`` (dense with bias,
        ReLU unless `activation` is False; the logits layer has no activation).
      width: output channels (conv) or units (fc).
      kernel: conv kernel size in pixels (0 for fc).
      pool: conv only: ``max`` (2x2/2, VALID), ``none``, or ``global_avg`` (one vector).
      activation: fc only: False for the logits.
      skips: extra inputs, ``(layer, block)`` pairs of layers below the parent's layer.
    """

    op: str
    width: int
    kernel: int = 0
    pool: str = "max"
    activation: bool = True
    skips: Tuple[Tuple[int, int], ...] = ()

    def to_dict(self) -> Dict:
        return {"op": self.op, "width": self.width, "kernel": self.kernel, "pool": self.pool,
                "activation": self.activation, "skips": [list(s) for s in self.skips]}

    @classmethod
    def from_dict(cls, d: Dict) -> "BlockSpec":
        return cls(d["op"], int(d["width"]), int(d.get("kernel", 0)), d.get("pool", "max"),
                   bool(d.get("activation", True)),
                   tuple((int(a), int(b)) for a, b in d.get("skips", ())))


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A tree of blocks (see the module docstring). Build one with `from_space`,
    `from_json` or directly; `validate` checks it."""

    layer_names: Tuple[str, ...]
    parents: Tuple[Tuple[int, ...], ...]
    blocks: Tuple[Tuple[BlockSpec, ...], ...]
    group_layer: str
    space: str = ""  # the search space it came from, if any (informative)

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_space(cls, space, routing: Routing) -> "Architecture":
        """The tree `routing` of a `gnas_keras.space.search_space.SearchSpace`: every block of a layer has
        the layer's spec."""
        last = len(space.layers) - 1
        blocks = []
        for l, (spec, layer) in enumerate(zip(space.layers, routing.parents)):
            if spec.kind == "conv":
                block = BlockSpec("conv", spec.channels, spec.kernel, spec.pool)
            else:
                block = BlockSpec("fc", spec.channels, activation=l != last)
            blocks.append(tuple([block] * len(layer)))
        return cls(tuple(s.name for s in space.layers), routing.parents, tuple(blocks),
                   space.layers[space.grouping_layer].name, space.name)

    @property
    def routing(self) -> Routing:
        return Routing(self.parents)

    @property
    def num_attributes(self) -> int:
        return len(self.parents[-1])

    def block_counts(self) -> List[int]:
        return [len(layer) for layer in self.parents]

    def layer_index(self, name: str) -> int:
        return self.layer_names.index(name)

    @property
    def grouping_layer(self) -> int:
        return self.layer_index(self.group_layer)

    @property
    def head_layer(self) -> int:
        """The lowest layer from which every attribute has blocks of its own: block n of it
        and of every layer above leads to attribute n only (fc1 in the paper's spaces)."""
        n, head = self.num_attributes, len(self.parents) - 1
        while head > 0 and len(self.parents[head - 1]) == n \
                and self.parents[head] == tuple(range(n)):
            head -= 1
        return head

    def validate(self) -> None:
        """Raises ValueError naming the layer and block if this is not a well-formed tree."""
        layers = len(self.layer_names)
        if not (len(self.parents) == len(self.blocks) == layers) or layers < 2:
            raise ValueError(f"architecture: {layers} layer names, {len(self.parents)} parent "
                             f"rows and {len(self.blocks)} block rows must agree (>= 2)")
        if self.group_layer not in self.layer_names:
            raise ValueError(f"architecture: group_layer {self.group_layer!r} is not a layer")
        if len(self.parents[0]) != 1 or self.parents[0] != (0,):
            raise ValueError("architecture: the first layer must be one block reading the image")
        seen_fc = False
        for l, (name, parents, blocks) in enumerate(zip(self.layer_names, self.parents,
                                                        self.blocks)):
            if len(parents) != len(blocks) or not parents:
                raise ValueError(f"layer {name}: {len(parents)} parents for {len(blocks)} "
                                 "blocks")
            below = 1 if l == 0 else len(self.parents[l - 1])
            for j, (p, b) in enumerate(zip(parents, blocks)):
                where = f"layer {name} block {j}"
                if not 0 <= p < below:
                    raise ValueError(f"{where}: parent {p} is not a block of the layer below")
                if b.op not in OPS or b.width < 1 or b.pool not in POOLS:
                    raise ValueError(f"{where}: bad block {b}")
                if b.op == "conv" and (seen_fc or b.kernel < 1):
                    raise ValueError(f"{where}: a conv block needs kernel >= 1 and no fc below")
                for s in b.skips:
                    if not (0 <= s[0] < l - 1 and 0 <= s[1] < len(self.parents[s[0]])):
                        raise ValueError(f"{where}: skip {s} is not a block of a layer below "
                                         "the parent's")
            seen_fc = seen_fc or any(b.op == "fc" for b in blocks)
        if any(b.op != "fc" or b.activation or b.width != 2 for b in self.blocks[-1]):
            raise ValueError("architecture: the last layer must be fc logits (width 2, no "
                             "activation), one block per attribute")

    # --- structure ---------------------------------------------------------------------------
    def descendants(self) -> List[List[frozenset]]:
        """I[l][j]: attributes below block j of layer l (skips do not count: a block feeding
        only skips of live blocks is kept alive by `live_blocks`)."""
        return self.routing.descendants()

    def live_blocks(self) -> List[List[int]]:
        """Blocks that some attribute's output depends on (through parents or skips)."""
        live = [set(j for j, d in enumerate(layer) if d) for layer in self.descendants()]
        for l in range(len(self.parents) - 1, 0, -1):
            for j in sorted(live[l]):
                for sl, sj in self.blocks[l][j].skips:
                    if sj not in live[sl]:
                        # a block kept alive only by a skip needs its own ancestors too
                        k, b = sl, sj
                        while k >= 0 and b not in live[k]:
                            live[k].add(b)
                            b = self.parents[k][b]
                            k -= 1
        return [sorted(s) for s in live]

    def grouping(self, layer: Optional[int] = None) -> List[int]:
        """Attribute n's ancestor block at `layer` (default: `group_layer`)."""
        return self.routing.grouping(self.grouping_layer if layer is None else layer)

    def clone_block(self, layer: int, block: int, children: Sequence[int]) -> "Architecture":
        """A copy with block `block` of `layer` duplicated as a new last block of that layer
        (same spec and parent); the listed children (blocks of ``layer + 1``) now read the
        clone. With equal weights in both copies the network computes the same function
        (`gnas_keras.models.tree_net.clone_block`)."""
        if layer + 1 >= len(self.parents):
            raise ValueError("clone_block: the last layer's blocks are the attributes")
        for c in children:
            if self.parents[layer + 1][c] != block:
                raise ValueError(f"clone_block: block {c} of layer {layer + 1} is not a child "
                                 f"of block {block}")
        parents = [list(p) for p in self.parents]
        blocks = [list(b) for b in self.blocks]
        parents[layer].append(parents[layer][block])
        blocks[layer].append(blocks[layer][block])
        for c in children:
            parents[layer + 1][c] = len(parents[layer]) - 1
        return dataclasses.replace(self, parents=tuple(tuple(p) for p in parents),
                                   blocks=tuple(tuple(b) for b in blocks))

    # --- serialization and display -------------------------------------------------------------
    def to_dict(self) -> Dict:
        return {"space": self.space, "layers": list(self.layer_names),
                "parents": [list(p) for p in self.parents], "group_layer": self.group_layer,
                "blocks": [[b.to_dict() for b in layer] for layer in self.blocks]}

    def to_json(self, attribute_names: Sequence[str]) -> str:
        """``tree.json``: the old keys (space, layers, parents, attribute_names) plus
        ``blocks`` and ``group_layer``."""
        d = self.to_dict()
        d["attribute_names"] = list(attribute_names)
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str, space=None) -> "Architecture":
        """Reads `to_json`'s output, or an older ``tree.json`` without blocks: then the
        blocks come from `space` (default: the preset the file names)."""
        return cls.from_dict(json.loads(text), space)

    @classmethod
    def from_dict(cls, d: Dict, space=None) -> "Architecture":
        if "blocks" not in d:
            if space is None:
                from gnas_keras.space.search_space import get_space
                space = get_space(d["space"])
            return cls.from_space(space, Routing.from_lists(d["parents"]))
        return cls(tuple(d["layers"]), Routing.from_lists(d["parents"]).parents,
                   tuple(tuple(BlockSpec.from_dict(b) for b in layer) for layer in d["blocks"]),
                   d["group_layer"], d.get("space", ""))

    def render(self, attribute_names: Sequence[str]) -> str:
        """Indented text: every live block with its children, attributes as leaves (from the
        `head_layer` on, where every attribute has its own blocks)."""
        names, head = self.layer_names, self.head_layer
        children: Dict[tuple, List[int]] = {}
        for l in range(1, len(self.parents)):
            for j, p in enumerate(self.parents[l]):
                children.setdefault((l - 1, p), []).append(j)
        below = self.descendants()
        uniform = [len(set(layer)) == 1 for layer in self.blocks]
        lines = ["image"]

        def label(l: int, j: int) -> str:
            b = self.blocks[l][j]
            extra = "" if uniform[l] and not b.skips else (
                f" {b.op}{'' if b.op == 'fc' else f' {b.kernel}x{b.kernel}'} w{b.width}"
                + (f" pool {b.pool}" if b.op == "conv" and b.pool != "max" else "")
                + "".join(f" +{names[sl]}[{sj}]" for sl, sj in b.skips))
            return f"{names[l]}[{j}]{extra}"

        def walk(l: int, j: int, depth: int):
            if not below[l][j]:
                return
            if l == head:
                n = next(iter(below[l][j]))
                lines.append("  " * depth + f"{label(l, j)} -> {attribute_names[n]}")
                return
            lines.append("  " * depth + f"{label(l, j)}  ({len(below[l][j])} attributes)")
            for c in children.get((l, j), []):
                walk(l + 1, c, depth + 1)

        walk(0, 0, 1)
        return "\n".join(lines)


def shapes(architecture: Architecture, image_height: int, image_width: int
           ) -> List[List[Tuple[Tuple[int, ...], Tuple[int, ...]]]]:
    """(input shape, output shape) of every block for [image_height, image_width, 3] images:
    conv (height, width, channels), fc (units,) with the input flattened and skips included.
    Raises ValueError when a pool has nothing to pool or a skip cannot be resized."""
    out: List[List[Tuple[Tuple[int, ...], Tuple[int, ...]]]] = []
    for l, (parents, blocks) in enumerate(zip(architecture.parents, architecture.blocks)):
        layer = []
        for j, (p, b) in enumerate(zip(parents, blocks)):
            where = f"layer {architecture.layer_names[l]} block {j}"
            shape = (image_height, image_width, 3) if l == 0 else out[l - 1][p][1]
            sources = [out[sl][sj][1] for sl, sj in b.skips]
            if b.op == "conv":
                if len(shape) != 3:
                    raise ValueError(f"{where}: a conv block needs a feature map input")
                channels = shape[2]
                for s in sources:
                    if len(s) != 3 or s[0] % shape[0] or s[1] % shape[1] \
                            or s[0] // shape[0] != s[1] // shape[1]:
                        raise ValueError(f"{where}: skip of shape {s} cannot be pooled to "
                                         f"{shape[:2]}")
                    channels += s[2]
                h, w = shape[0], shape[1]
                inp: Tuple[int, ...] = (h, w, channels)
                if b.pool == "max":
                    if h < 2 or w < 2:
                        raise ValueError(f"{where}: gets {h}x{w}; its 2x2 max-pool needs at "
                                         "least 2x2")
                    res: Tuple[int, ...] = (h // 2, w // 2, b.width)
                elif b.pool == "global_avg":
                    res = (b.width,)
                else:
                    res = (h, w, b.width)
            else:
                units = 1
                for s in shape:
                    units *= s
                units += sum(s[-1] for s in sources)  # conv sources are globally pooled
                inp, res = (units,), (b.width,)
            layer.append((inp, res))
        out.append(layer)
    return out


@dataclasses.dataclass(frozen=True)
class ArchitectureCost:
    """Parameters of the exported network (BN folded: kernel + bias per conv block) and
    multiply-accumulates per image (convolutions and matmuls only), live blocks only."""

    parameters: int
    macs_per_image: int


def cost(architecture: Architecture, image_height: int, image_width: int) -> ArchitectureCost:
    table = shapes(architecture, image_height, image_width)
    params = macs = 0
    for l, live in enumerate(architecture.live_blocks()):
        for j in live:
            b, (inp, _) = architecture.blocks[l][j], table[l][j]
            if b.op == "conv":
                weights = b.kernel * b.kernel * inp[2] * b.width
                params += weights + b.width
                macs += inp[0] * inp[1] * weights
            else:
                params += inp[0] * b.width + b.width
                macs += inp[0] * b.width
    return ArchitectureCost(params, macs)
