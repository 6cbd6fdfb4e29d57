"""The fonts set (pipelines/fonts.py, flags/make_fonts.py): the folder + CSV layout that
`flags.convert --dataset=folder` reads, labels as designed, determinism, atomic output."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from gnas_keras_pipelines import fonts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(
    not os.path.isdir(os.path.join(fonts.FONT_DIR, "dejavu")) or
    not os.path.isdir(os.path.join(fonts.FONT_DIR, "liberation")),
    reason="fonts-dejavu-core / fonts-liberation not installed (make fonts)")

FEW = dict(fonts=["DejaVuSans", "DejaVuSerif-Bold", "LiberationMono-Italic"], glyphs="Agc4b",
           per_glyph=3, image_size=24)


def _table(folder):
    with open(os.path.join(folder, "labels.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_the_generator_writes_the_folder_layout_and_convert_reads_it(tmp_path):
    from gnas_keras_pipelines import folder
    source = str(tmp_path / "src")
    manifest = fonts.generate(source, seed=1, **FEW)
    rows = _table(source)
    assert manifest["images"] == len(rows) == 3 * 5 * 3
    assert list(rows[0]) == ["image", *fonts.ATTRIBUTE_NAMES, "split"]
    assert all(os.path.isfile(os.path.join(source, r["image"])) for r in rows)
    assert [r["split"] for r in rows[:3]] == ["train", "validation", "test"]
    assert not [p for p in os.listdir(tmp_path) if p != "src"]  # no temporary folder left
    meta = folder.convert(source, str(tmp_path / "tfr"), name="fonts", num_shards=1)
    assert meta.attribute_names == list(fonts.ATTRIBUTE_NAMES)
    assert meta.split_sizes == {"train": 15, "validation": 15, "test": 15}
    assert (meta.image_height, meta.image_width) == (24, 24)


def test_labels_are_as_designed(tmp_path):
    source = str(tmp_path / "src")
    fonts.generate(source, **FEW)
    label = {(r["image"].split("/")[1], chr(int(r["image"].split("/")[2][:4], 16))):
             {a: int(r[a]) for a in fonts.ATTRIBUTE_NAMES} for r in _table(source)}
    sans, serif, mono = (label[f, "A"] for f in FEW["fonts"])
    assert (sans["serif"], sans["bold"], sans["slanted"], sans["monospace"]) == (0, 0, 0, 0)
    assert (serif["serif"], serif["bold"], serif["slanted"]) == (1, 1, 0)
    assert (mono["monospace"], mono["slanted"], mono["serif"]) == (1, 1, 0)
    for f in FEW["fonts"]:
        assert label[f, "A"]["uppercase"] == 1 and label[f, "g"]["uppercase"] == 0
        assert label[f, "g"]["descender"] == 1 and label[f, "A"]["descender"] == 0
        assert label[f, "4"]["digit"] == 1 and label[f, "A"]["digit"] == 0
        assert label[f, "b"]["ascender"] == 1 and label[f, "c"]["ascender"] == 0
        assert label[f, "A"]["closed_counter"] == 1 and label[f, "c"]["closed_counter"] == 0
    assert fonts.Font.from_path("/x/LiberationSansNarrow-Bold.ttf").narrow


def test_same_seed_same_images_other_seed_other_images():
    font = fonts.find_fonts()[0]
    a, b, c = (fonts.render(font, "R", 32, np.random.default_rng(s)) for s in (5, 5, 6))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() < 100 < a.max()  # ink darker than paper by the minimum contrast at least


def test_an_existing_folder_is_kept_and_replaced_only_when_asked(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="was not written by this generator"):
        fonts.generate(str(tmp_path / "mine"), **FEW)
    source = str(tmp_path / "src")
    fonts.generate(source, **{**FEW, "glyphs": "A"})
    with pytest.raises(ValueError, match="pass --overwrite"):
        fonts.generate(source, **FEW)
    assert fonts.generate(source, overwrite=True, **FEW)["images"] == 45


def test_the_binary_reports_bad_input_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "flags.make_fonts", f"--output_dir={tmp_path / 'x'}",
         "--glyphs=A%"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == "make_fonts: error: --glyphs=A%: expected digits and ASCII " \
                                 "letters, got %"
    assert not os.path.exists(tmp_path / "x")
