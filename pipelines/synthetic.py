"""The built-in synthetic dataset, whose best tree is the planted grouping.

Each 32x32 RGB image shows one elliptical object on a striped grey background. Four
independent factors, one per planted group, are drawn per image:

- ``colour``: the object's hue (its chroma direction in the colour-opponent plane).
- ``form``: the object's width and height.
- ``texture``: the background stripes' orientation.
- ``lighting``: the background's mean brightness and the stripes' contrast.

Every factor is one of 8 *states* on a circle, ``phi = (k + 1/2) * 45 degrees`` for
k = 0..7 (with a small jitter where the factor is continuous), read as the 2-D point
``(a, b) = (cos phi, sin phi)``. The group's four attributes are the four half-planes
``a > 0``, ``b > 0``, ``a + b > 0``, ``a - b > 0``: each is balanced, each is a function of
its own group's state only, and all four need the same 2-D quantity. The states sit
22.5 degrees away from every boundary, so each attribute is learnable without label noise.

Why the planted tree is the best tree of the `tiny` space (see docs/planted_set.md): a group's
four attributes are read off one 2-D factor, so the block that extracts it serves all four
(sharing within a group is free); the four factors use different evidence (chroma, object
outline, oriented luminance energy, mean luminance and contrast), and a top conv block that
is global-average-pooled carries only as many numbers as it has channels, so a thin block
that serves two groups has to split its few channels between two factors. Position carries
nothing: objects are placed at random, and after global pooling the network cannot read it.

The object is isoluminant with the background's mean: it changes the mean brightness of no
image, so brightness belongs to the lighting group alone; the object is seen through its
chroma, by which both its hue and its outline are read.

Deterministic from a seed: the same arguments always give the same records.
"""

from __future__ import annotations

import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

from pipelines import records

GENERATOR_VERSION = 2  # in metadata.extra; `ensure_generated` regenerates older sets

# The four half-planes of a group's (a, b) point, in this order in every group.
HALF_PLANES = ("a_pos", "b_pos", "sum_pos", "diff_pos")
GROUPS: Dict[str, List[str]] = {
    "colour": ["hue_reddish", "hue_greenish_not_blue", "hue_warm", "hue_not_cyan"],
    "form": ["wide", "tall", "large", "wider_than_tall"],
    "texture": ["stripes_steep_left", "stripes_near_diagonal", "stripes_0_to_90",
                "stripes_not_0_to_90_shifted"],
    "lighting": ["bright", "contrasty", "bright_plus_contrasty", "bright_minus_contrasty"],
}
ATTRIBUTE_NAMES = [a for names in GROUPS.values() for a in names]
DEFAULT_SIZES = {"train": 16000, "validation": 4000, "test": 4000}

NUM_STATES = 8
JITTER_DEGREES = 8.0  # uniform +- jitter of the angle of continuous factors (< 22.5)

# Rendering constants, all in [0, 1] pixel units (x 255 when written) or image fractions.
CHROMA = 0.25        # radius of the object's colour in the opponent plane
OBJECT_LUMINANCE = 0.5  # the object's grey level, the middle of the background's range
BASE_RADIUS = 0.18   # the object's semi-axis for a = 0 (fraction of the image side)
RADIUS_SCALE = 2.0   # semi-axis = BASE_RADIUS * RADIUS_SCALE ** a
STRIPE_PERIOD = 5.0  # pixels
MEAN_LUMINANCE, LUMINANCE_SWING = 0.5, 0.25  # background mean = 0.5 + 0.25 * a
MEAN_CONTRAST, CONTRAST_SWING = 0.16, 0.09   # stripe amplitude = 0.16 + 0.09 * b
# Orthonormal basis of the colour-opponent plane (perpendicular to grey) in RGB.
_RED_GREEN = np.array([1.0, -1.0, 0.0]) / np.sqrt(2.0)
_YELLOW_BLUE = np.array([1.0, 1.0, -2.0]) / np.sqrt(6.0)


def attributes_from_states(states: np.ndarray) -> np.ndarray:
    """int [n, 4 * G] in {0, 1} from states int [n, G] in 0..7, columns group by group in
    `HALF_PLANES` order. A state's angle is ``(k + 1/2) * 45`` degrees."""
    phi = (states + 0.5) * (2 * np.pi / NUM_STATES)
    a, b = np.cos(phi), np.sin(phi)
    bits = np.stack([a > 0, b > 0, a + b > 0, a - b > 0], axis=-1)  # [n, G, 4]
    return bits.reshape(len(states), -1).astype(np.int64)


def _angles(rng: np.random.Generator, states: np.ndarray, jitter: bool) -> np.ndarray:
    phi = (states + 0.5) * (2 * np.pi / NUM_STATES)
    if jitter:
        phi = phi + np.deg2rad(rng.uniform(-JITTER_DEGREES, JITTER_DEGREES, states.shape))
    return phi


def render(states: np.ndarray, size: int, rng: np.random.Generator,
           noise: float) -> np.ndarray:
    """uint8 images [n, size, size, 3] for the group states int [n, 4] (colour, form,
    texture, lighting). Nuisances (object position, stripe phase, pixel noise) come from
    `rng`."""
    n = len(states)
    colour, form, texture, lighting = (states[:, g] for g in range(4))
    coords = (np.arange(size) + 0.5) / size
    y, x = np.meshgrid(coords, coords, indexing="ij")  # [size, size], in [0, 1]

    # lighting: discrete levels (no jitter) so the brightness and contrast levels stay apart.
    phi = _angles(rng, lighting, jitter=False)
    mean = MEAN_LUMINANCE + LUMINANCE_SWING * np.cos(phi)
    amplitude = MEAN_CONTRAST + CONTRAST_SWING * np.sin(phi)

    # texture: stripe orientation theta = phi / 2 in [0, pi), random phase.
    theta = _angles(rng, texture, jitter=True)[:, None, None] / 2
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    along = (x * np.cos(theta) + y * np.sin(theta)) * size / STRIPE_PERIOD
    background = mean[:, None, None] + amplitude[:, None, None] * np.sin(
        2 * np.pi * along + phase)

    # form: semi-axes from the (a, b) point; the centre is random but keeps the ellipse inside.
    phi = _angles(rng, form, jitter=True)
    rx = BASE_RADIUS * RADIUS_SCALE ** np.cos(phi)
    ry = BASE_RADIUS * RADIUS_SCALE ** np.sin(phi)
    cx = rng.uniform(rx, 1 - rx)
    cy = rng.uniform(ry, 1 - ry)
    inside = (((x[None] - cx[:, None, None]) / rx[:, None, None]) ** 2
              + ((y[None] - cy[:, None, None]) / ry[:, None, None]) ** 2) < 1.0

    # colour: chroma direction phi in the opponent plane, on the background's mean grey.
    phi = _angles(rng, colour, jitter=True)
    chroma = CHROMA * (np.cos(phi)[:, None] * _RED_GREEN + np.sin(phi)[:, None] * _YELLOW_BLUE)
    object_rgb = OBJECT_LUMINANCE + chroma  # [n, 3]

    image = np.where(inside[..., None], object_rgb[:, None, None, :], background[..., None])
    image = image * 255.0 + rng.normal(0.0, noise, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def generate(output_dir: str, seed: int = 0, sizes: Dict[str, int] = None,
             image_size: int = 32, noise: float = 8.0, num_shards: int = 4,
             overwrite: bool = False) -> records.Metadata:
    """Writes the synthetic dataset as TFRecords (PNG images) with its metadata.

    Args:
      output_dir: the dataset directory (written atomically).
      seed: everything (states, nuisances, noise) is a function of it and the split.
      sizes: images per split; default `DEFAULT_SIZES`.
      image_size: side in pixels.
      noise: standard deviation of the Gaussian pixel noise, in [0, 255] units.
      num_shards: TFRecord shards per split.
      overwrite: replace an existing dataset at `output_dir`.
    """
    sizes = dict(sizes or DEFAULT_SIZES)
    with records.DatasetWriter(output_dir, {s: num_shards for s in sizes},
                               overwrite=overwrite) as writer:
        for split_index, (split, n) in enumerate(sorted(sizes.items())):
            # One generator per split keeps splits independent of each other's sizes.
            rng = np.random.default_rng([seed, split_index])
            # Balanced states: every state equally often per group (then shuffled).
            states = np.stack([rng.permutation(np.arange(n) % NUM_STATES)
                               for _ in GROUPS], axis=1)
            labels = attributes_from_states(states)
            images = render(states, image_size, rng, noise)
            for i in range(n):
                png = tf.io.encode_png(images[i]).numpy()
                writer.add(split, png, labels[i].tolist(), key=f"{split}/{i:06d}")
        meta = records.Metadata(
            name="synthetic", source=f"pipelines.synthetic seed={seed}",
            attribute_names=list(ATTRIBUTE_NAMES), split_sizes={},
            image_height=image_size, image_width=image_size,
            groups=[list(g) for g in GROUPS.values()],
            extra={"seed": seed, "noise": noise, "requested_sizes": sizes,
                   "group_names": list(GROUPS), "generator_version": GENERATOR_VERSION})
        writer.finish(meta)
    return meta


def ensure_generated(data_dir: str, seed: int = 0) -> records.Metadata:
    """Generates the default synthetic set at `data_dir` unless it is already there; a set
    written by an older generator version is replaced."""
    if os.path.exists(os.path.join(data_dir, records.METADATA_FILE)):
        meta = records.read_metadata(data_dir)
        if meta.name != "synthetic" or meta.extra.get("seed") != seed:
            raise ValueError(f"{data_dir}: holds dataset {meta.name!r} "
                             f"(seed {meta.extra.get('seed')}), not synthetic seed {seed}")
        if meta.extra.get("generator_version") == GENERATOR_VERSION:
            return meta
        return generate(data_dir, seed=seed, overwrite=True)
    return generate(data_dir, seed=seed)
