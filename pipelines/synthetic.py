"""The built-in synthetic dataset, whose best tree is the planted grouping.

Each 32x32 RGB image shows one elliptical object on a striped grey background. Four
independent factors, one per planted group, are drawn per image; each factor is a *state*
of three bits (8 states, each equally often):

- ``colour``: the object's red, green and blue levels (each low or high).
- ``form``: the object's width, height (each small or large) and fill (a ring or filled).
- ``texture``: the stripes' orientation (two bits: 0, 90, 45 or 135 degrees) and period
  (coarse or fine).
- ``lighting``: the background's brightness, the stripes' contrast and the pixel noise (each
  low or high).

A group's attributes are Boolean functions of *all three* of its bits (x0, x1, x2): three
multiplexers ``rule_1 = x1 if x0 else x2``, ``rule_2 = x2 if x1 else x0``,
``rule_3 = x0 if x2 else x1``. Each is balanced, each needs every bit of its group (one bit
alone predicts it at most 75 % of the time), and the three together identify the group's
state (they are a one-to-one recoding of the 8 states). Every attribute is a function of its
own group's state only. The states are discrete and far apart, so each attribute is
learnable without label noise.

Generator versions (``version``; the metadata's ``extra.generator_version``):

- **4, the default**: the three multiplexers per group, 12 attributes. Being a one-to-one
  recoding of a uniform state, the three are independent fair coins: **the label
  correlation of any two attributes is 0** (exactly within a group in a split of a multiple
  of 8 images; across groups up to sampling noise). The groups do not show in the labels,
  so a tree drawn from label correlations is at chance and only the images tell them apart.
- **3** (2026-11-27 to 2026-12-04): the same three multiplexers plus the majority of the
  three bits, 16 attributes. Each multiplexer agrees with the majority in 6 of 8 states
  (label correlation +0.5), so clustering the training labels alone returns the planted
  groups (docs/planted_set.md). Kept for comparisons: ``generate(..., version=3)``,
  ``--synthetic_version=3``.

- **5, held out** (2026-12-04): the same renderer and the same three multiplexers per
  group, but the planted groups are *crossed*: each group's three bits drive three different
  visual factors (`CROSSED_BITS`: the width, the stripes' diagonal and the background's
  brightness; red, the stripes' turn and contrast; green, height and grain; blue, fill and
  the stripes' period),
  and the attribute columns are interleaved (rule 1 of every group, then rule 2, then 3). A
  method tuned to "one group = one visual factor" or to the column order fails here; its
  labels are pairwise uncorrelated as in version 4. Used to check, not to tune, a grouping
  method (docs/grouping_methods.md).

Why the attributes are not the bits themselves (generator version 2 used bits + majority):
independent bits make the best tree a packing problem, not a grouping one. Any 3 bits fill a
3-channel block equally well, so a tree whose blocks hold bits of mixed groups is as good as
the planted one for 12 of the 16 attributes; only the majorities tell them apart. Real
attribute groups (hair colours, textures of a coat) share evidence: each attribute needs the
group's features. Here every attribute needs its whole group's state, so attributes of a
group gain from one another's block and attributes of different groups compete for it.

Why the planted tree is the best tree of the `tiny` space (the full argument and the measured
proof are in docs/planted_set.md): every attribute of a group needs the same three features
(its bits), so one block that extracts them serves the whole group; different groups need
different evidence (the object's colour, its outline, oriented energy at two scales, mean
brightness, contrast and grain); and a top conv block that is global-average-pooled hands on
only as many numbers as it has channels, so a block of 3 channels cannot carry two groups'
six bits, and an attribute under another group's block is left with a guess. Position
carries nothing: the object is placed at random, and after global pooling the network cannot
read where it is.

Deterministic from a seed: the same arguments always give the same records.
"""

from __future__ import annotations

import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

from gnas_keras_pipelines import records

# The default version (in metadata.extra); `ensure_generated` replaces a set of any other.
GENERATOR_VERSION = 4
VERSIONS = (3, 4, 5)  # the versions `generate` writes (see the module docstring)

# Per group: rule_1, rule_2, rule_3 (multiplexers of the group's three bits, see
# `attributes_from_states`); version 3 adds the majority of the three bits. The bits:
# colour = the object's (red, green, blue) high; form = (wide, tall, filled); texture =
# stripes (diagonal, turned, fine); lighting = (bright background, contrasty stripes, grainy).
MAJORITY_NAMES = {"colour": "object_light", "form": "object_big", "texture": "stripes_busy",
                  "lighting": "light_harsh"}  # version 3's fourth attribute per group


# Version 5's crossed groups: group -> its bits (x0, x1, x2) as (factor, factor bit), the
# factors in `render`'s order (0 colour, 1 form, 2 texture, 3 lighting).
# Group g leaves factor g out, so each group reads three factors and each factor serves
# three groups.
CROSSED_BITS = {"wide_diagonal_bright": ((1, 0), (2, 0), (3, 0)),
                "red_turned_contrasty": ((0, 0), (2, 1), (3, 1)),
                "green_tall_grainy": ((0, 1), (1, 1), (3, 2)),
                "blue_filled_fine": ((0, 2), (1, 2), (2, 2))}


def groups(version: int = GENERATOR_VERSION) -> Dict[str, List[str]]:
    """Attribute names per group name of a generator `version` (`attribute_names` gives
    the column order)."""
    if version not in VERSIONS:
        raise ValueError(f"synthetic generator version {version}: expected one of "
                         f"{', '.join(map(str, VERSIONS))}")
    if version == 5:
        return {group: [f"{group}_rule_{r}" for r in (1, 2, 3)] for group in CROSSED_BITS}
    return {group: [f"{group}_rule_{r}" for r in (1, 2, 3)]
            + ([majority] if version == 3 else [])
            for group, majority in MAJORITY_NAMES.items()}


def attribute_names(version: int = GENERATOR_VERSION) -> List[str]:
    """The label columns of a generator `version`: group by group, but in version 5 rule by
    rule (interleaved)."""
    names = list(groups(version).values())
    if version == 5:
        return [members[r] for r in range(3) for members in names]
    return [a for members in names for a in members]


def factor_states(crossed: np.ndarray) -> np.ndarray:
    """Version 5: the four visual factors' states int [n, 4] (what `render` draws) from the
    crossed groups' states int [n, 4] (`CROSSED_BITS`)."""
    bits = state_bits(crossed)                      # [n, group, bit]
    factors = np.zeros_like(crossed)
    for g, placements in enumerate(CROSSED_BITS.values()):
        for b, (factor, factor_bit) in enumerate(placements):
            factors[:, factor] |= bits[:, g, b] << factor_bit
    return factors


GROUPS = groups()  # the default version's
ATTRIBUTE_NAMES = attribute_names()
DEFAULT_SIZES = {"train": 16000, "validation": 4000, "test": 4000}
NUM_STATES = 8  # three bits per group

# Rendering constants: grey levels in [0, 1] (x 255 when written), sizes as image fractions.
COLOUR_LEVELS = (0.1, 0.9)         # each of the object's R, G, B
SEMI_AXES = (0.11, 0.26)           # the object's semi-axis, small or large
RING_INNER = 0.55                  # a ring's hole, as a fraction of the semi-axes
ORIENTATIONS = ((0.0, 90.0), (45.0, 135.0))  # [diagonal][turned], degrees
STRIPE_PERIODS = (7.0, 3.5)        # pixels, coarse or fine
BACKGROUND_LEVELS = (0.35, 0.65)     # the background's mean grey
STRIPE_AMPLITUDES = (0.05, 0.15)   # the stripes' amplitude around that mean
GRAIN = 11.0                       # extra pixel noise (in [0, 255] units) of grainy images


def state_bits(states: np.ndarray) -> np.ndarray:
    """int [..., 3] bits of states in 0..7."""
    return (states[..., None] >> np.arange(3)) & 1


def attributes_from_states(states: np.ndarray, version: int = GENERATOR_VERSION) -> np.ndarray:
    """int [n, A * G] in {0, 1} from states int [n, G] in 0..7, columns group by group:
    rule_1 = x1 if x0 else x2, rule_2 = x2 if x1 else x0, rule_3 = x0 if x2 else x1 of the
    state's bits (x0, x1, x2), and in version 3 their majority (A = 3, or 4 in version 3)."""
    groups(version)  # an unknown version: ValueError
    x0, x1, x2 = np.moveaxis(state_bits(states), -1, 0)  # each [n, G]
    rules = [np.where(x0 == 1, x1, x2), np.where(x1 == 1, x2, x0), np.where(x2 == 1, x0, x1)]
    if version == 3:
        rules.append(x0 + x1 + x2 >= 2)
    # [n, G, A] group by group; version 5's columns go rule by rule ([n, A, G]).
    by_group = np.stack(rules, axis=-1)
    if version == 5:
        by_group = np.swapaxes(by_group, 1, 2)
    return by_group.reshape(len(states), -1).astype(np.int64)


def render(states: np.ndarray, size: int, rng: np.random.Generator,
           noise: float) -> np.ndarray:
    """uint8 images [n, size, size, 3] for the group states int [n, 4] (colour, form,
    texture, lighting). Nuisances (object position, stripe phase, pixel noise) come from
    `rng`; `noise` is the pixel noise of images that are not grainy ([0, 255] units)."""
    n = len(states)
    colour, form, texture, lighting = (state_bits(states[:, g]) for g in range(4))
    coords = (np.arange(size) + 0.5) / size
    y, x = np.meshgrid(coords, coords, indexing="ij")  # [size, size], in [0, 1]
    col = lambda v: np.asarray(v)[:, None, None]  # noqa: E731  per image -> broadcastable

    # texture and lighting: the background.
    theta = np.deg2rad(np.asarray(ORIENTATIONS)[texture[:, 0], texture[:, 1]])
    period = np.asarray(STRIPE_PERIODS)[texture[:, 2]]
    along = (x * col(np.cos(theta)) + y * col(np.sin(theta))) * size / col(period)
    phase = rng.uniform(0, 2 * np.pi, n)
    mean = np.asarray(BACKGROUND_LEVELS)[lighting[:, 0]]
    amplitude = np.asarray(STRIPE_AMPLITUDES)[lighting[:, 1]]
    background = col(mean) + col(amplitude) * np.sin(2 * np.pi * along + col(phase))

    # form: the object's semi-axes and fill; the centre is random, the object stays inside.
    rx = np.asarray(SEMI_AXES)[form[:, 0]]
    ry = np.asarray(SEMI_AXES)[form[:, 1]]
    cx, cy = rng.uniform(rx, 1 - rx), rng.uniform(ry, 1 - ry)
    radius2 = ((x - col(cx)) / col(rx)) ** 2 + ((y - col(cy)) / col(ry)) ** 2
    inside = (radius2 < 1.0) & ((form[:, 2] == 1)[:, None, None] | (radius2 >= RING_INNER ** 2))

    # colour: the object's RGB.
    object_rgb = np.asarray(COLOUR_LEVELS)[colour]  # [n, 3]
    image = np.where(inside[..., None], object_rgb[:, None, None, :], background[..., None])
    sigma = noise + GRAIN * lighting[:, 2]
    image = image * 255.0 + rng.normal(0.0, 1.0, image.shape) * sigma[:, None, None, None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def generate(output_dir: str, seed: int = 0, sizes: Dict[str, int] = None,
             image_size: int = 32, noise: float = 3.0, num_shards: int = 4,
             overwrite: bool = False, version: int = GENERATOR_VERSION) -> records.Metadata:
    """Writes the synthetic dataset as TFRecords (PNG images) with its metadata.

    Args:
      output_dir: the dataset directory (written atomically).
      seed: everything (states, nuisances, noise) is a function of it and the split.
      sizes: images per split; default `DEFAULT_SIZES`.
      image_size: side in pixels.
      noise: standard deviation of the Gaussian pixel noise of images that are not grainy,
        in [0, 255] units (grainy ones add `GRAIN`).
      num_shards: TFRecord shards per split.
      overwrite: replace an existing dataset at `output_dir`.
      version: the generator version (`VERSIONS`): which attributes (module docstring).
    """
    sizes = dict(sizes or DEFAULT_SIZES)
    names = groups(version)
    with records.DatasetWriter(output_dir, {s: num_shards for s in sizes},
                               overwrite=overwrite) as writer:
        for split_index, (split, n) in enumerate(sorted(sizes.items())):
            if n == 0:
                continue
            # One generator per split keeps splits independent of each other's sizes.
            rng = np.random.default_rng([seed, split_index])
            # Balanced states: every state equally often per group (then shuffled).
            states = np.stack([rng.permutation(np.arange(n) % NUM_STATES)
                               for _ in names], axis=1)
            labels = attributes_from_states(states, version)
            images = render(factor_states(states) if version == 5 else states, image_size,
                            rng, noise)
            pngs = tf.data.Dataset.from_tensor_slices(images).map(tf.io.encode_png)
            for i, png in enumerate(pngs.batch(n).get_single_element().numpy()):
                writer.add(split, png, labels[i].tolist(), key=f"{split}/{i:06d}")
        meta = records.Metadata(
            name="synthetic", source=f"pipelines.synthetic seed={seed}",
            attribute_names=attribute_names(version), split_sizes={},
            image_height=image_size, image_width=image_size,
            groups=[list(g) for g in names.values()],
            extra={"seed": seed, "noise": noise, "requested_sizes": sizes,
                   "group_names": list(names), "generator_version": version})
        writer.finish(meta)
    return meta


def ensure_generated(data_dir: str, seed: int = 0,
                     version: int = GENERATOR_VERSION) -> records.Metadata:
    """Generates the synthetic set of generator `version` at `data_dir` unless it is already
    there; a synthetic set of another version (an older default, say) is replaced."""
    groups(version)  # an unknown version: ValueError before anything is touched
    if os.path.exists(os.path.join(data_dir, records.METADATA_FILE)):
        meta = records.read_metadata(data_dir)
        if meta.name != "synthetic" or meta.extra.get("seed") != seed:
            raise ValueError(f"{data_dir}: holds dataset {meta.name!r} "
                             f"(seed {meta.extra.get('seed')}), not synthetic seed {seed}")
        if meta.extra.get("generator_version") == version:
            return meta
        return generate(data_dir, seed=seed, overwrite=True, version=version)
    return generate(data_dir, seed=seed, version=version)
