"""GALM's per-attribute search space (Cheng et al. 2018, Table 1) as data.

The network: a shared trunk Conv-1..3 (7x7 16, 3x3 32, 3x3 64 channels), then for every
attribute its own Conv-4, Conv-5, FC-1, FC-2, FC-3. Each conv is followed by ReLU, a 2x2
stride-2 max-pool and batch norm, in that order (sec. 3.1), so Conv-k's output has
``1 / 2**k`` of the image's height and width (exactly, with 'valid' pooling:
``floor(floor(x / 2) / 2) == floor(x / 4)``).

Per attribute the controller decides (Table 1, sec. 3.1):

  ========  ==========================================  ==========
  block     decision                                    options
  ========  ==========================================  ==========
  Conv-4    skip input from Conv-1 (yes/no)             2
  Conv-4    skip input from Conv-2 (yes/no)             2
  Conv-4    kernel                                      3x3, 5x5
  Conv-5    skip input from Conv-1 / Conv-2 / Conv-3    2 x 2 x 2
  Conv-5    kernel                                      3x3, 5x5
  FC-1      width                                       64, 128, 256
  FC-2      width                                       64, 128, 256
  FC-3      reads FC-2 (yes) or FC-1 (FC-2 skipped)     2
  ========  ==========================================  ==========

How the paper's count reads: "2 * 2 * 3 * 3 = 36 configurations" are the two kernels and the
two FC widths; "4 * 8 * 2 = 64 skip connections" are the 2**2 subsets of {Conv-1, Conv-2}
feeding Conv-4 (besides Conv-3, always), the 2**3 subsets of {Conv-1, Conv-2, Conv-3} feeding
Conv-5 (besides Conv-4, always) and Fc-3's two inputs ("Fc-{1,2}-Fc-3": FC-2 or FC-1, i.e.
"if Fc-2 is used"). 36 * 64 = 2,304 action sequences per attribute, the arithmetic checks.
One decision per skip edge (ten decisions in all, not one 4- or 8-way decision per block)
because the paper's Table 4 reports per-edge frequencies that do not sum to one, which is what
independent per-edge choices produce; it is also how NAS/ENAS controllers sample skips.
Note that 2,304 counts action sequences, not distinct networks: when FC-3 reads FC-1 the FC-2
width is irrelevant, so only 4 * 8 * 2 * 2 * 3 * (3 + 1) = 1,536 networks differ.

Skip inputs of other sizes (the paper says only "similar to [14]", i.e. ResNet). Two fields
of `GalmSpace` say what is done; the defaults follow ENAS's macro space (Pham et al. 2018),
whose parameter sharing the paper follows and whose author it thanks, and ResNet:

* ``skip_merge="add"`` (default): every selected skip source is resized to the block's
  *output* resolution, projected by a 1x1 convolution (no bias) to the block's channels and
  added to the block's pooled output before its batch norm (ENAS: ``add_n`` of the layer's
  output and its selected skips, then BN; ResNet's projection shortcut). The block's conv
  reads only its main input (Conv-3 for Conv-4, Conv-4 for Conv-5).
  ``skip_merge="concat"``: every selected source is resized to the block's *input*
  resolution and concatenated with the main input along channels; the block's conv reads
  the concatenation (a DenseNet-like reading of "Conv-{1,2}-Conv-4").
* ``skip_resize="max_pool"`` (default): a k x k max-pool with stride k, k = the ratio of the
  two resolutions (a power of two), the same parameter-free op the network itself
  downsamples with. ``"avg_pool"``: the same with averaging (ENAS's reductions average).
  ``"strided_conv"``: the 1x1 projection itself runs with stride k (ResNet's option B); only
  with ``skip_merge="add"``.

`Slot` names the ten decisions (the controller's steps, the columns of the child network's
``actions``); `Choice` holds one attribute's decisions by value (kernel sizes, widths, source names), so a
builder needs no index tables; `blocks` turns it into per-block specs for the core's
``Architecture``.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from typing import Dict, List, Sequence, Tuple

SKIP_MERGES = ("add", "concat")
SKIP_RESIZES = ("max_pool", "avg_pool", "strided_conv")

SHARED_LAYERS = ("conv1", "conv2", "conv3")
ATTRIBUTE_LAYERS = ("conv4", "conv5", "fc1", "fc2", "fc3")  # one block per attribute each
LAYERS = SHARED_LAYERS + ATTRIBUTE_LAYERS


class Slot(enum.IntEnum):
    """One decision of Table 1 for one attribute: a step of the controller, whose value is
    the step's position in an action sequence (`GalmSpace.action_counts`) and the column
    of the child network's ``actions`` variable. Skip slots take 0 (no) / 1 (yes), kernel
    slots an index into `GalmSpace.conv_kernels`, width slots one into
    `GalmSpace.fc_widths`, and FC3_READS_FC2 0 (FC-3 reads FC-1) / 1 (reads FC-2)."""

    CONV4_SKIP_CONV1 = 0
    CONV4_SKIP_CONV2 = 1
    CONV4_KERNEL = 2
    CONV5_SKIP_CONV1 = 3
    CONV5_SKIP_CONV2 = 4
    CONV5_SKIP_CONV3 = 5
    CONV5_KERNEL = 6
    FC1_WIDTH = 7
    FC2_WIDTH = 8
    FC3_READS_FC2 = 9


def _skip_slots(block: str) -> Dict[str, Slot]:
    """{source: slot} of `block`'s skip decisions, read off the names of `Slot`."""
    prefix = f"{block.upper()}_SKIP_"
    return {slot.name[len(prefix):].lower(): slot for slot in Slot
            if slot.name.startswith(prefix)}


# The skip sources each searched conv may read besides its main input (Table 1), in slot
# order (also the order of its kernel's input channels in the child network, after the main
# input's): {"conv4": {"conv1": Slot.CONV4_SKIP_CONV1, "conv2": ...}, "conv5": {...}}.
SKIP_SLOTS: Dict[str, Dict[str, Slot]] = {block: _skip_slots(block)
                                          for block in ("conv4", "conv5")}
KERNEL_SLOTS = {"conv4": Slot.CONV4_KERNEL, "conv5": Slot.CONV5_KERNEL}
WIDTH_SLOTS = {"fc1": Slot.FC1_WIDTH, "fc2": Slot.FC2_WIDTH}


@dataclasses.dataclass(frozen=True)
class GalmSpace:
    """Sizes of GALM's network and the options of every per-attribute decision.

    Attributes:
      shared_kernels, shared_channels: Conv-1..3 (shared by all attributes).
      conv4_channels, conv5_channels: feature maps of the per-attribute convs.
      conv_kernels: the kernel options of Conv-4 and Conv-5, in pixels.
      fc_widths: the width options of FC-1 and FC-2, in units.
      num_logits: FC-3's outputs per attribute. Table 1 says 2 (a two-way softmax); sec. 3.5
        speaks of a sigmoid with binary cross entropy, which fits 1; kept as data.
      skip_merge, skip_resize: how skip inputs of other shapes are brought to size (module
        docstring).
    """

    shared_kernels: Tuple[int, int, int] = (7, 3, 3)
    shared_channels: Tuple[int, int, int] = (16, 32, 64)
    conv4_channels: int = 32
    conv5_channels: int = 16
    conv_kernels: Tuple[int, ...] = (3, 5)
    fc_widths: Tuple[int, ...] = (64, 128, 256)
    num_logits: int = 2
    skip_merge: str = "add"
    skip_resize: str = "max_pool"

    def __post_init__(self):
        if self.skip_merge not in SKIP_MERGES:
            raise ValueError(f"skip_merge={self.skip_merge!r}: expected one of {SKIP_MERGES}")
        if self.skip_resize not in SKIP_RESIZES:
            raise ValueError(
                f"skip_resize={self.skip_resize!r}: expected one of {SKIP_RESIZES}")
        if self.skip_resize == "strided_conv" and self.skip_merge != "add":
            raise ValueError("skip_resize='strided_conv' needs skip_merge='add' (the strided "
                             "1x1 conv is the add's projection)")
        for name in ("shared_kernels", "shared_channels", "conv_kernels", "fc_widths"):
            values = getattr(self, name)
            if not values or any(int(v) < 1 for v in values):
                raise ValueError(f"{name}={values!r}: expected positive sizes")

    def to_dict(self) -> Dict:
        """JSON-ready fields (a layer's config): tuples as lists."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, fields: Dict) -> "GalmSpace":
        """Inverse of `to_dict` (JSON's lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    # ---- the controller's view: a fixed sequence of categorical decisions ----

    def options(self, slot: Slot) -> int:
        """How many options decision `slot` has."""
        if slot in KERNEL_SLOTS.values():
            return len(self.conv_kernels)
        if slot in WIDTH_SLOTS.values():
            return len(self.fc_widths)
        return 2

    @property
    def action_counts(self) -> List[int]:
        """Options per controller step, in `Slot` order (the order the controller emits
        them): Conv-4 skip from Conv-1, from Conv-2, Conv-4 kernel, Conv-5 skip from Conv-1,
        Conv-2, Conv-3, Conv-5 kernel, FC-1 width, FC-2 width, FC-3 reads FC-2.
        [2,2,2,2,2,2,2,3,3,2] for Table 1."""
        return [self.options(slot) for slot in Slot]

    @property
    def num_choices(self) -> int:
        """Action sequences per attribute (2,304 for Table 1)."""
        n = 1
        for c in self.action_counts:
            n *= c
        return n

    def resolution_divisor(self, layer: str) -> int:
        """How many times smaller than the image the output of `layer` is (conv1 -> 2, ...,
        conv5 -> 32): one 2x2/2 max-pool per conv."""
        order = LAYERS[:5]  # the convs
        if layer not in order:
            raise ValueError(f"layer={layer!r}: expected one of {order}")
        return 2 ** (order.index(layer) + 1)

    def channels(self, layer: str) -> int:
        """Feature maps of a conv layer's output."""
        if layer in SHARED_LAYERS:
            return self.shared_channels[SHARED_LAYERS.index(layer)]
        return {"conv4": self.conv4_channels, "conv5": self.conv5_channels}[layer]


def synthetic_space(width_scale: float = 0.25, **overrides) -> GalmSpace:
    """Table 1 with every channel count and FC width multiplied by `width_scale` (rounded, at
    least 1), for the synthetic 32x32 set: five 2x2 pools take 32x32 to 1x1 exactly, so the
    depth and kernels stay as in the paper. The default 0.25 gives Conv-1..5 of 4, 8, 16, 8,
    4 channels and FC widths 16, 32, 64. `overrides`: any other `GalmSpace` field."""
    if width_scale <= 0:
        raise ValueError(f"width_scale={width_scale}: expected > 0")
    paper = GalmSpace()

    def scale(x):
        return max(1, int(round(x * width_scale)))

    fields = dict(shared_channels=tuple(scale(c) for c in paper.shared_channels),
                  conv4_channels=scale(paper.conv4_channels),
                  conv5_channels=scale(paper.conv5_channels),
                  fc_widths=tuple(scale(w) for w in paper.fc_widths))
    fields.update(overrides)
    return dataclasses.replace(paper, **fields)


@dataclasses.dataclass(frozen=True)
class Choice:
    """One attribute's architecture: the decisions of Table 1, by value.

    Attributes:
      conv4_skips: the skip sources Conv-4 reads besides Conv-3, a subset of
        ``("conv1", "conv2")`` in that order.
      conv4_kernel: Conv-4's kernel size in pixels.
      conv5_skips: the skip sources Conv-5 reads besides Conv-4, a subset of
        ``("conv1", "conv2", "conv3")`` in that order.
      conv5_kernel: Conv-5's kernel size in pixels.
      fc1_width, fc2_width: units of FC-1 and FC-2.
      fc3_reads_fc2: True: FC-1 -> FC-2 -> FC-3; False: FC-3 reads FC-1 and FC-2 is unused.
    """

    conv4_skips: Tuple[str, ...]
    conv4_kernel: int
    conv5_skips: Tuple[str, ...]
    conv5_kernel: int
    fc1_width: int
    fc2_width: int
    fc3_reads_fc2: bool

    def skips(self, block: str) -> Tuple[str, ...]:
        """The skip sources of ``conv4`` or ``conv5``."""
        return {"conv4": self.conv4_skips, "conv5": self.conv5_skips}[block]

    def kernel(self, block: str) -> int:
        """The kernel size of ``conv4`` or ``conv5``, in pixels."""
        return {"conv4": self.conv4_kernel, "conv5": self.conv5_kernel}[block]


def actions_to_choice(space: GalmSpace, actions: Sequence[int]) -> Choice:
    """The controller's per-step action indices (see `GalmSpace.action_counts`) -> Choice."""
    counts = space.action_counts
    actions = [int(a) for a in actions]
    if len(actions) != len(counts) or any(not 0 <= a < c for a, c in zip(actions, counts)):
        raise ValueError(f"actions={actions}: expected {len(counts)} indices below {counts}")

    def skips(block):
        return tuple(s for s, slot in SKIP_SLOTS[block].items() if actions[slot])

    return Choice(
        conv4_skips=skips("conv4"),
        conv4_kernel=space.conv_kernels[actions[Slot.CONV4_KERNEL]],
        conv5_skips=skips("conv5"),
        conv5_kernel=space.conv_kernels[actions[Slot.CONV5_KERNEL]],
        fc1_width=space.fc_widths[actions[Slot.FC1_WIDTH]],
        fc2_width=space.fc_widths[actions[Slot.FC2_WIDTH]],
        fc3_reads_fc2=bool(actions[Slot.FC3_READS_FC2]))


def choice_to_actions(space: GalmSpace, choice: Choice) -> Tuple[int, ...]:
    """Inverse of `actions_to_choice`; raises ValueError for a value the space lacks."""
    def index(options, value, what):
        if value not in options:
            raise ValueError(f"{what}={value!r}: not an option of this space {tuple(options)}")
        return list(options).index(value)

    actions = [0] * len(Slot)
    for block in SKIP_SLOTS:
        skips, sources = choice.skips(block), tuple(SKIP_SLOTS[block])
        if tuple(s for s in sources if s in skips) != tuple(skips):
            raise ValueError(f"{block}_skips={skips!r}: expected an ordered subset of "
                             f"{sources}")
        for source, slot in SKIP_SLOTS[block].items():
            actions[slot] = int(source in skips)
    for block, slot in KERNEL_SLOTS.items():
        actions[slot] = index(space.conv_kernels, choice.kernel(block), f"{block}_kernel")
    actions[Slot.FC1_WIDTH] = index(space.fc_widths, choice.fc1_width, "fc1_width")
    actions[Slot.FC2_WIDTH] = index(space.fc_widths, choice.fc2_width, "fc2_width")
    actions[Slot.FC3_READS_FC2] = int(bool(choice.fc3_reads_fc2))
    return tuple(actions)


def decode(space: GalmSpace, index: int) -> Choice:
    """Choice number `index` in [0, num_choices): the actions read as a mixed-radix number,
    the first step most significant."""
    if not 0 <= int(index) < space.num_choices:
        raise ValueError(f"index={index}: expected 0 <= index < {space.num_choices}")
    index = int(index)
    actions = []
    for count in reversed(space.action_counts):
        index, a = divmod(index, count)
        actions.append(a)
    return actions_to_choice(space, actions[::-1])


def encode(space: GalmSpace, choice: Choice) -> int:
    """Inverse of `decode`."""
    index = 0
    for a, count in zip(choice_to_actions(space, choice), space.action_counts):
        index = index * count + a
    return index


# ---- per-block specs for the core's Architecture ----

@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One per-attribute block of a chosen architecture.

    Attributes:
      name: ``conv4``, ``conv5``, ``fc1``, ``fc2`` or ``fc3``.
      kind: ``conv`` (conv, ReLU, 2x2/2 max-pool, BN) or ``fc`` (dense; ReLU except fc3,
        which gives the logits).
      kernel: conv kernel in pixels; 0 for ``fc``.
      width: output channels (conv) or units (fc).
      main_input: the block its main path reads (``conv3``, ``conv4``, ``conv5`` (flattened),
        ``fc1`` or ``fc2``).
      skip_inputs: extra sources merged as `GalmSpace.skip_merge` / ``skip_resize`` say.
    """

    name: str
    kind: str
    kernel: int
    width: int
    main_input: str
    skip_inputs: Tuple[str, ...] = ()


def blocks(space: GalmSpace, choice: Choice) -> List[BlockSpec]:
    """The per-attribute blocks of `choice`, in build order; FC-2 is left out when FC-3
    skips it (it would be dead weight)."""
    out = [BlockSpec("conv4", "conv", choice.conv4_kernel, space.conv4_channels, "conv3",
                     tuple(choice.conv4_skips)),
           BlockSpec("conv5", "conv", choice.conv5_kernel, space.conv5_channels, "conv4",
                     tuple(choice.conv5_skips)),
           BlockSpec("fc1", "fc", 0, choice.fc1_width, "conv5")]
    if choice.fc3_reads_fc2:
        out.append(BlockSpec("fc2", "fc", 0, choice.fc2_width, "fc1"))
    out.append(BlockSpec("fc3", "fc", 0, space.num_logits,
                         "fc2" if choice.fc3_reads_fc2 else "fc1"))
    return out


def skip_pool_factor(space: GalmSpace, block: str, source: str) -> int:
    """The k of the k x k / stride-k resize that brings `source`'s output to the resolution
    where `block` merges it: the block's output (``skip_merge="add"``) or its main input
    (``"concat"``)."""
    main = {"conv4": "conv3", "conv5": "conv4"}
    if block not in main:
        raise ValueError(f"block={block!r}: only conv4 and conv5 have skip inputs")
    target = block if space.skip_merge == "add" else main[block]
    factor = space.resolution_divisor(target) // space.resolution_divisor(source)
    if factor < 1:
        raise ValueError(f"{source} is not below {block}")
    return factor


# ---- Table 4: how often each design option was chosen ----

@dataclasses.dataclass(frozen=True)
class OptionFrequency:
    """One cell of Table 4: `option` of `layer` was chosen in `frequency` of the
    architectures (edges are independent, so a layer's skip rows need not sum to 1)."""

    layer: str
    option: str
    frequency: float


def design_choice_frequencies(space: GalmSpace,
                              choices: Sequence[Choice]) -> List[OptionFrequency]:
    """Table 4 for a list of architectures (e.g. one per attribute of a domain): per layer,
    the fraction using each skip edge, kernel and width, and of FC-3 reading FC-2. FC-2's
    widths are counted among the architectures that use FC-2 (all zero if none does), so
    that they sum to one as the paper's do."""
    if not choices:
        raise ValueError("design_choice_frequencies: no architectures given")
    n = float(len(choices))

    def share(pred):
        return sum(1 for c in choices if pred(c)) / n

    rows = []
    for layer, sources in SKIP_SLOTS.items():
        for s in sources:
            rows.append(OptionFrequency(layer, f"skip from {s}",
                                        share(lambda c, s=s: s in c.skips(layer))))
        for k in space.conv_kernels:
            rows.append(OptionFrequency(layer, f"{k}x{k}",
                                        share(lambda c, k=k: c.kernel(layer) == k)))
    for w in space.fc_widths:
        rows.append(OptionFrequency("fc1", str(w), share(lambda c, w=w: c.fc1_width == w)))
    with_fc2 = [c for c in choices if c.fc3_reads_fc2]
    for w in space.fc_widths:
        count = sum(1 for c in with_fc2 if c.fc2_width == w)
        rows.append(OptionFrequency("fc2", str(w), count / len(with_fc2) if with_fc2 else 0.0))
    rows.append(OptionFrequency("fc3", "reads fc2", share(lambda c: c.fc3_reads_fc2)))
    return rows


def format_frequencies(rows: Sequence[OptionFrequency]) -> str:
    """Table 4 as markdown: one line per layer, ``option (percent)`` cells."""
    lines = ["| layer | options (share of architectures) |", "|---|---|"]
    for layer, group in itertools.groupby(rows, key=lambda r: r.layer):
        cells = ", ".join(f"{r.option} ({100 * r.frequency:.1f}%)" for r in group)
        lines.append(f"| {layer} | {cells} |")
    return "\n".join(lines) + "\n"


def all_choices(space: GalmSpace) -> List[Choice]:
    """Every choice, in index order (2,304 for Table 1)."""
    return [decode(space, i) for i in range(space.num_choices)]


def uniform_random_choice(space: GalmSpace, rng) -> Choice:
    """A uniformly random choice (the random-search baseline of issue 12);
    `rng`: a ``numpy.random.Generator``."""
    return decode(space, int(rng.integers(space.num_choices)))


__all__ = ["GalmSpace", "Choice", "Slot", "SKIP_SLOTS", "KERNEL_SLOTS", "WIDTH_SLOTS", "LAYERS",
           "SHARED_LAYERS", "ATTRIBUTE_LAYERS", "BlockSpec", "OptionFrequency", "synthetic_space",
           "actions_to_choice", "choice_to_actions", "decode", "encode", "blocks",
           "skip_pool_factor", "design_choice_frequencies", "format_frequencies",
           "all_choices", "uniform_random_choice", "SKIP_MERGES", "SKIP_RESIZES"]
