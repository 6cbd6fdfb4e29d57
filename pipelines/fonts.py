"""A real-image attribute set: letters and digits rendered with installed TrueType fonts.

Every glyph of `GLYPHS` (digits, upper- and lowercase letters) in every font of Debian's
``fonts-dejavu-core`` and ``fonts-liberation`` (``/usr/share/fonts/truetype/{dejavu,
liberation}``; ``make fonts`` installs them), rendered ``per_glyph`` times with random
nuisances, written as the own-data layout that ``flags.convert --dataset=folder`` reads
(pipelines/folder.py): ``images/<font>/<code point>_<i>.png`` and ``labels.csv`` with
``image,<attributes...>,split`` and values 1 / 0.

Attributes, two kinds (style = a function of the font, shape = of the glyph in that font):

- style: ``bold``, ``slanted`` (oblique or italic), ``serif``, ``monospace``, ``narrow``
  (DejaVu's Condensed, Liberation's Sans Narrow), read from the font's file name.
- shape: ``uppercase``, ``digit``, ``ascender`` (the lowercase letters b d f h k l t),
  ``closed_counter`` (the glyph encloses background: measured on a 128-px rendering without
  nuisances, so DejaVu's and Liberation's 4 count where closed), ``descender`` (ink more
  than 0.1 em below the baseline, measured per font: g j p q y, and Q or J where the font
  draws them so).

With every glyph in every font, the two kinds are independent in the labels; within a kind
they are not (``digit`` excludes ``uppercase``). Not a planted set: no tree is known best.

Nuisances, per image: font size 0.50-0.70 of the side (em), position (the glyph's middle
within +-0.08 of the side of the centre, moved inward where its ink would leave the image),
rotation within +-6 degrees, paper grey 0.55-1.0 with ink darker by 0.35 or more, Gaussian
pixel noise of standard deviation 0-0.05 (of the grey range). Rendered at 4x and reduced
with a Lanczos filter (anti-aliased edges, as text on a screen or a scan).

Splits: of a glyph's ``per_glyph`` renderings in a font, the last is test, the one before
validation, the others train: every (font, glyph) is in every split, in other nuisances.
Deterministic from ``seed``: the same arguments give the same files.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import shutil
import string
import tempfile
import zlib
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

FONT_DIR = "/usr/share/fonts/truetype"
FONT_FAMILIES = ("dejavu", "liberation")  # Debian's fonts-dejavu-core, fonts-liberation
# Not text faces: DejaVu Math TeX Gyre (a maths font with its own glyph shapes).
EXCLUDED_FONTS = ("DejaVuMathTeXGyre",)
GLYPHS = string.digits + string.ascii_uppercase + string.ascii_lowercase
STYLE_ATTRIBUTES = ("bold", "slanted", "serif", "monospace", "narrow")
SHAPE_ATTRIBUTES = ("uppercase", "digit", "closed_counter", "ascender", "descender")
ATTRIBUTE_NAMES = STYLE_ATTRIBUTES + SHAPE_ATTRIBUTES
ASCENDER_LETTERS = "bdfhklt"
MANIFEST = "fonts.json"  # marks a folder this generator wrote (only such a one is replaced)
GENERATOR_VERSION = 1

# Nuisance ranges (fractions of the image side or of the grey range [0, 1]).
EM_SIZES = (0.50, 0.70)
SHIFT = 0.08
ROTATION_DEGREES = 6.0
PAPER_LEVELS = (0.55, 1.0)
MIN_CONTRAST = 0.35
NOISE_STD = (0.0, 0.05)
SUPERSAMPLE = 4
MEASURE_SIZE = 128  # px per em for the measured shape attributes
DESCENDER_EM = 0.1


@dataclasses.dataclass(frozen=True)
class Font:
    """One TrueType file and its style attributes (from the file name)."""
    path: str
    name: str  # the file name without .ttf, e.g. DejaVuSerif-BoldItalic
    bold: bool
    slanted: bool
    serif: bool
    monospace: bool
    narrow: bool

    @classmethod
    def from_path(cls, path: str) -> "Font":
        name = os.path.basename(path)[:-len(".ttf")]
        family, _, style = name.partition("-")
        return cls(path=path, name=name, bold="Bold" in style,
                   slanted="Oblique" in style or "Italic" in style, serif="Serif" in family,
                   monospace="Mono" in family,
                   narrow="Condensed" in family or "Narrow" in family)

    def style(self) -> Dict[str, bool]:
        return {a: getattr(self, a) for a in STYLE_ATTRIBUTES}


def find_fonts(font_dir: str = FONT_DIR) -> List[Font]:
    """The fonts of `FONT_FAMILIES` under `font_dir`, sorted by name; ValueError saying how
    to install them when there are none."""
    paths = sorted(p for family in FONT_FAMILIES
                   for p in glob.glob(os.path.join(font_dir, family, "*.ttf"))
                   if not any(x in os.path.basename(p) for x in EXCLUDED_FONTS))
    if not paths:
        raise ValueError(f"--font_dir={font_dir}: no {' or '.join(FONT_FAMILIES)} TrueType "
                         "fonts; install them with `make fonts` (apt-get install "
                         "fonts-dejavu-core fonts-liberation)")
    return sorted((Font.from_path(p) for p in paths), key=lambda f: f.name)


def _glyph_mask(font: ImageFont.FreeTypeFont, glyph: str) -> np.ndarray:
    """bool [h, w]: the glyph's ink at the font's size, with a 2-px margin."""
    left, top, right, bottom = font.getbbox(glyph, anchor="ls")
    image = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(image).text((2 - left, 2 - top), glyph, fill=255, font=font, anchor="ls")
    return np.asarray(image) >= 128


def shape_attributes(font: Font, glyph: str) -> Dict[str, bool]:
    """The shape attributes of `glyph` as `font` draws it (module docstring)."""
    face = ImageFont.truetype(font.path, MEASURE_SIZE)
    background, count = ndimage.label(~_glyph_mask(face, glyph))  # 4-connected regions
    border = set(np.unique(np.concatenate([background[0], background[-1], background[:, 0],
                                           background[:, -1]])))
    # A counter is a background region that does not reach the border, of at least 0.2 % of
    # the em square (not a pixel left between two strokes).
    sizes = np.bincount(background.ravel(), minlength=count + 1)
    closed = any(sizes[r] >= 0.002 * MEASURE_SIZE ** 2 for r in range(1, count + 1)
                 if r not in border)
    below_baseline = face.getbbox(glyph, anchor="ls")[3]
    return {"uppercase": glyph in string.ascii_uppercase, "digit": glyph in string.digits,
            "closed_counter": closed, "ascender": glyph in ASCENDER_LETTERS,
            "descender": below_baseline > DESCENDER_EM * MEASURE_SIZE}


def render(font: Font, glyph: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [size, size, 3] grey image of `glyph` in `font`, nuisances from `rng`."""
    big = size * SUPERSAMPLE
    face = ImageFont.truetype(font.path, max(4, round(rng.uniform(*EM_SIZES) * big)))
    mask = Image.new("L", (big, big), 0)
    centre = big / 2 + rng.uniform(-SHIFT, SHIFT, 2) * big
    left, top, right, bottom = face.getbbox(glyph, anchor="mm")
    # Move the glyph inward where its ink would leave the image (1/32 of the side kept free).
    margin = big / 32
    centre[0] = np.clip(centre[0], margin - left, big - margin - right)
    centre[1] = np.clip(centre[1], margin - top, big - margin - bottom)
    ImageDraw.Draw(mask).text(tuple(centre), glyph, fill=255, font=face, anchor="mm")
    mask = mask.rotate(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES),
                       resample=Image.Resampling.BICUBIC, center=tuple(centre))
    ink = np.asarray(mask.resize((size, size), Image.Resampling.LANCZOS), float) / 255.0
    paper = rng.uniform(*PAPER_LEVELS)
    level = rng.uniform(0.0, paper - MIN_CONTRAST)  # the ink's grey
    grey = paper + (level - paper) * ink
    grey = grey + rng.normal(0.0, rng.uniform(*NOISE_STD), grey.shape)
    return np.repeat(np.clip(np.round(grey * 255), 0, 255).astype(np.uint8)[..., None], 3, -1)


def split_of(index: int, per_glyph: int) -> str:
    """The split of a glyph's `index`-th rendering: the last test, the one before validation."""
    return {per_glyph - 1: "test", per_glyph - 2: "validation"}.get(index, "train")


def generate(output_dir: str, seed: int = 0, per_glyph: int = 6, image_size: int = 64,
             font_dir: str = FONT_DIR, fonts: Optional[Sequence[str]] = None,
             glyphs: str = GLYPHS, overwrite: bool = False) -> Dict:
    """Writes the fonts set (module docstring) to `output_dir`, atomically: into a temporary
    sibling folder, renamed when complete. Returns the manifest (also ``fonts.json``).

    Args:
      seed: every nuisance is a function of it, the font and the glyph.
      per_glyph: renderings of each glyph in each font (>= 3: train, validation, test).
      image_size: side in pixels.
      fonts: font names (file names without .ttf) to use; default every font found.
      glyphs: the characters to render (each a digit or an ASCII letter).
      overwrite: replace `output_dir` if this generator wrote it (its ``fonts.json``).
    Raises:
      ValueError naming the argument or the folder.
    """
    found = find_fonts(font_dir)
    chosen = _choose_fonts(found, fonts)
    if per_glyph < 3:
        raise ValueError(f"--per_glyph={per_glyph}: at least 3 (train, validation, test)")
    if image_size < 8:
        raise ValueError(f"--image_size={image_size}: at least 8 pixels")
    bad = sorted(set(c for c in glyphs if c not in GLYPHS)) or ([] if glyphs else ["(none)"])
    if bad:
        raise ValueError(f"--glyphs={glyphs}: expected digits and ASCII letters, got "
                         f"{''.join(bad)}")
    output_dir = _check_output(output_dir, overwrite)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.", dir=parent)
    try:
        rows = _write_images(work, chosen, glyphs, per_glyph, image_size, seed)
        with open(os.path.join(work, "labels.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", *ATTRIBUTE_NAMES, "split"])
            writer.writerows(rows)
        manifest = {"generator": "pipelines.fonts", "generator_version": GENERATOR_VERSION,
                    "seed": seed, "per_glyph": per_glyph, "image_size": image_size,
                    "fonts": [f.name for f in chosen], "glyphs": glyphs,
                    "groups": {"style": list(STYLE_ATTRIBUTES), "shape": list(SHAPE_ATTRIBUTES)},
                    "images": len(rows)}
        with open(os.path.join(work, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1)
        if os.path.lexists(output_dir):
            shutil.rmtree(output_dir)
        os.rename(work, output_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _choose_fonts(found: List[Font], names: Optional[Sequence[str]]) -> List[Font]:
    if not names:
        return found
    by_name = {f.name: f for f in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"--fonts: unknown font {', '.join(unknown)} (known: "
                         f"{', '.join(by_name)})")
    return [by_name[n] for n in names]


def _check_output(output_dir: str, overwrite: bool) -> str:
    """Absolute `output_dir`; ValueError unless it is new, empty, or (with `overwrite`) a
    folder this generator wrote."""
    if not output_dir or not output_dir.strip():
        raise ValueError("--output_dir: is empty; name a new folder")
    path = os.path.abspath(os.path.expanduser(output_dir))
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise ValueError(f"--output_dir={output_dir}: exists and is not a folder")
        if os.listdir(path) and not os.path.isfile(os.path.join(path, MANIFEST)):
            raise ValueError(f"--output_dir={output_dir}: exists and was not written by this "
                             f"generator (no {MANIFEST}); it is never replaced, name a new "
                             "folder")
        if os.listdir(path) and not overwrite:
            raise ValueError(f"--output_dir={output_dir}: already holds a fonts set; pass "
                             "--overwrite to replace it")
    return path


def _write_images(folder: str, fonts: List[Font], glyphs: str, per_glyph: int,
                  image_size: int, seed: int) -> List[List]:
    """Writes every rendering as PNG under `folder`/images; returns the CSV rows."""
    rows = []
    for font in fonts:
        os.makedirs(os.path.join(folder, "images", font.name))
        style = font.style()
        for glyph in glyphs:
            labels = {**style, **shape_attributes(font, glyph)}
            # One generator per (font, glyph): a glyph's images do not depend on which other
            # fonts or glyphs were asked for.
            rng = np.random.default_rng([seed, zlib.crc32(font.name.encode()), ord(glyph)])
            for i in range(per_glyph):
                relative = f"images/{font.name}/{ord(glyph):04x}_{i}.png"
                Image.fromarray(render(font, glyph, image_size, rng)).save(
                    os.path.join(folder, relative))
                rows.append([relative, *(int(labels[a]) for a in ATTRIBUTE_NAMES),
                             split_of(i, per_glyph)])
    return rows
