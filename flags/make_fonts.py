"""Writes the fonts set: letters and digits in Debian's DejaVu and Liberation fonts, as a
folder of PNGs and a labels.csv that ``flags.convert --dataset=folder`` reads.

    python -m flags.make_fonts --output_dir=data/fonts_src
    python -m flags.convert --dataset=folder --name=fonts --source_dir=data/fonts_src \
        --labels=data/fonts_src/labels.csv --output_dir=data/fonts

Attributes, nuisances and splits: `pipelines.fonts` (docs/fonts_set.md). The fonts come from
``apt-get install fonts-dejavu-core fonts-liberation`` (``make fonts``). The folder is written
under a temporary name and renamed when complete; an existing one is replaced only with
``--overwrite`` and only if this generator wrote it. Bad input prints one line, exit status 2.
"""

from __future__ import annotations

from gnas_keras_flags import common  # first: quiets TensorFlow's start-up logging

from absl import flags

from gnas_keras_pipelines import fonts

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "New folder for the images and labels.csv.")
flags.DEFINE_integer("seed", 0, "Seed of every nuisance (same seed, same files).")
flags.DEFINE_integer("per_glyph", 6, "Renderings of each glyph in each font: the last is "
                     "test, the one before validation, the others train.", lower_bound=3)
flags.DEFINE_integer("image_size", 64, "Image side in pixels.", lower_bound=8)
flags.DEFINE_string("font_dir", fonts.FONT_DIR, "Folder holding the dejavu/ and liberation/ "
                    "TrueType folders.")
flags.DEFINE_list("fonts", [], "Font file names without .ttf (default: every font found).")
flags.DEFINE_string("glyphs", fonts.GLYPHS, "Characters to render (digits, ASCII letters).")
flags.DEFINE_bool("overwrite", False, "Replace --output_dir if this generator wrote it.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    manifest = fonts.generate(FLAGS.output_dir, seed=FLAGS.seed, per_glyph=FLAGS.per_glyph,
                              image_size=FLAGS.image_size, font_dir=FLAGS.font_dir,
                              fonts=FLAGS.fonts, glyphs=FLAGS.glyphs, overwrite=FLAGS.overwrite)
    print(f"fonts: {manifest['images']} images of {len(manifest['glyphs'])} glyphs in "
          f"{len(manifest['fonts'])} fonts -> {FLAGS.output_dir}")


if __name__ == "__main__":
    common.run(main)
