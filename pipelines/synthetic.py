"""The built-in synthetic dataset with a planted attribute grouping.

Each 32x32 RGB image shows one object on a striped grey background. Four independent visual
factors are drawn per image, and each group of four binary attributes is read off exactly one
factor:

- ``colour``: the object's hue h in [0, 1).
- ``form``: the object's shape (disk, square, triangle, plus) and its size.
- ``position``: the object's centre (cx, cy) in [0.25, 0.75]^2 of the image.
- ``texture``: the background stripes' orientation (0/45/90/135 degrees) and frequency.

Every attribute is balanced (about half the images have it). Attributes of one group need the
same features; attributes of different groups need different ones (colour channels inside the
object, its outline, where it is, oriented filters on the background), so a thin block that
serves two groups has to split its few channels between them. That is what makes the ideal
tree share within a group and split between groups. Pixel noise (sigma in [0, 255] units) keeps
the task from being trivially separable.

Deterministic from a seed: the same arguments always give the same records.
"""

from __future__ import annotations

import colorsys
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

from pipelines import records

GROUPS: Dict[str, List[str]] = {
    "colour": ["hue_lt_half", "hue_shifted_lt_half", "hue_double_lt_half",
               "hue_double_shifted_lt_half"],
    "form": ["shape_round_or_square", "shape_round_or_triangle", "shape_round_or_plus",
             "size_large"],
    "position": ["left", "top", "above_anti_diagonal", "above_diagonal"],
    "texture": ["stripes_0_or_45", "stripes_0_or_90", "stripes_0_or_135", "stripes_fine"],
}
ATTRIBUTE_NAMES = [a for names in GROUPS.values() for a in names]
DEFAULT_SIZES = {"train": 6000, "validation": 1000, "test": 2000}


def _factors(rng: np.random.Generator, n: int) -> Dict[str, np.ndarray]:
    return {
        "hue": rng.random(n),
        "shape": rng.integers(0, 4, n),
        "radius": rng.uniform(0.12, 0.22, n),
        "cx": rng.uniform(0.25, 0.75, n),
        "cy": rng.uniform(0.25, 0.75, n),
        "angle": rng.integers(0, 4, n),
        "fine": rng.integers(0, 2, n),
    }


def attributes_from_factors(f: Dict[str, np.ndarray]) -> np.ndarray:
    """int [n, 16] in {0, 1}, columns in `ATTRIBUTE_NAMES` order."""
    h, s, a = f["hue"], f["shape"], f["angle"]
    cols = [
        h < 0.5, (h + 0.25) % 1.0 < 0.5, (2 * h) % 1.0 < 0.5, (2 * h + 0.25) % 1.0 < 0.5,
        np.isin(s, [0, 1]), np.isin(s, [0, 2]), np.isin(s, [0, 3]), f["radius"] > 0.17,
        f["cx"] < 0.5, f["cy"] < 0.5, f["cx"] + f["cy"] < 1.0, f["cx"] > f["cy"],
        np.isin(a, [0, 1]), np.isin(a, [0, 2]), np.isin(a, [0, 3]), f["fine"] == 1,
    ]
    return np.stack(cols, axis=1).astype(np.int64)


def render(f: Dict[str, np.ndarray], size: int, rng: np.random.Generator,
           noise: float) -> np.ndarray:
    """uint8 images [n, size, size, 3] for the factors `f`."""
    coords = (np.arange(size) + 0.5) / size
    y, x = np.meshgrid(coords, coords, indexing="ij")  # [size, size], in [0, 1]
    theta = f["angle"][:, None, None] * np.pi / 4
    cycles = np.where(f["fine"] == 1, 6.0, 3.0)[:, None, None]
    stripes = np.sin(2 * np.pi * cycles * (x * np.cos(theta) + y * np.sin(theta)))
    background = 0.5 + 0.2 * stripes  # grey, [n, size, size]

    dx = x[None] - f["cx"][:, None, None]
    dy = y[None] - f["cy"][:, None, None]
    r = f["radius"][:, None, None]
    disk = dx ** 2 + dy ** 2 < r ** 2
    square = np.maximum(np.abs(dx), np.abs(dy)) < 0.8 * r
    triangle = (dy < 0.8 * r) & (np.abs(dx) < 0.6 * (dy + r))
    plus = ((np.abs(dx) < r / 3) & (np.abs(dy) < r)) | ((np.abs(dy) < r / 3) & (np.abs(dx) < r))
    s = f["shape"][:, None, None]
    mask = np.where(s == 0, disk, np.where(s == 1, square, np.where(s == 2, triangle, plus)))

    colour = np.array([colorsys.hsv_to_rgb(h, 0.9, 0.9) for h in f["hue"]])  # [n, 3]
    image = np.where(mask[..., None], colour[:, None, None, :], background[..., None])
    image = image * 255.0 + rng.normal(0.0, noise, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def generate(output_dir: str, seed: int = 0, sizes: Dict[str, int] = None,
             image_size: int = 32, noise: float = 12.0, num_shards: int = 4,
             overwrite: bool = False) -> records.Metadata:
    """Writes the synthetic dataset as TFRecords (PNG images) with its metadata."""
    sizes = dict(sizes or DEFAULT_SIZES)
    with records.DatasetWriter(output_dir, {s: num_shards for s in sizes},
                               overwrite=overwrite) as writer:
        for split_index, (split, n) in enumerate(sorted(sizes.items())):
            # One generator per split keeps splits independent of each other's sizes.
            rng = np.random.default_rng([seed, split_index])
            factors = _factors(rng, n)
            labels = attributes_from_factors(factors)
            images = render(factors, image_size, rng, noise)
            for i in range(n):
                png = tf.io.encode_png(images[i]).numpy()
                writer.add(split, png, labels[i].tolist(), key=f"{split}/{i:06d}")
        meta = records.Metadata(
            name="synthetic", source=f"pipelines.synthetic seed={seed}",
            attribute_names=list(ATTRIBUTE_NAMES), split_sizes={},
            image_height=image_size, image_width=image_size,
            groups=[list(g) for g in GROUPS.values()],
            extra={"seed": seed, "noise": noise, "requested_sizes": sizes,
                   "group_names": list(GROUPS)})
        writer.finish(meta)
    return meta


def ensure_generated(data_dir: str, seed: int = 0) -> records.Metadata:
    """Generates the default synthetic set at `data_dir` unless it is already there."""
    if os.path.exists(os.path.join(data_dir, records.METADATA_FILE)):
        meta = records.read_metadata(data_dir)
        if meta.name != "synthetic" or meta.extra.get("seed") != seed:
            raise ValueError(f"{data_dir}: holds dataset {meta.name!r} "
                             f"(seed {meta.extra.get('seed')}), not synthetic seed {seed}")
        return meta
    return generate(data_dir, seed=seed)
