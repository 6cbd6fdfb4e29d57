r"""Writes a LiteRT (TensorFlow Lite) file for CPU serving from an export, and checks it.

    python -m flags.export --saved_model=saved_models/synthetic_gnas_plus/1

Converts the export's ``serving_default`` signature (`gnas_keras.export.write_litert`) to
``model.tflite`` beside the SavedModel (or ``--output``), then runs both on random images
and prints the largest absolute difference of their probabilities; above ``--tolerance``
the file is removed and the binary fails.
"""

from __future__ import annotations

import os

from flags import common  # first: one-line errors, quiet start-up

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model", None, "An export's version directory (holds saved_model.pb).")
flags.DEFINE_string("output", "", "Where to write the LiteRT file (default: "
                                  "<saved_model>/model.tflite).")
flags.DEFINE_integer("parity_images", 8, "Random images the parity check runs on.")
flags.DEFINE_float("tolerance", 1e-4, "Largest allowed absolute difference of a probability.")
flags.mark_flag_as_required("saved_model")


def main(argv):
    del argv
    import numpy as np

    from gnas_keras import export

    if not os.path.exists(os.path.join(FLAGS.saved_model, "export.json")):
        raise FileNotFoundError(f"--saved_model={FLAGS.saved_model}: no export.json "
                                "(not a gnas-keras export)")
    path = export.write_litert(FLAGS.saved_model, FLAGS.output)
    height, width = export.image_size(FLAGS.saved_model)
    images = np.random.default_rng(0).uniform(
        0, 255, (FLAGS.parity_images, height, width, 3)).astype(np.float32)
    difference = export.litert_max_abs_difference(FLAGS.saved_model, path, images)
    if not difference <= FLAGS.tolerance:
        os.remove(path)
        raise ValueError(f"{path}: LiteRT probabilities differ from the SavedModel's by "
                         f"{difference:.3g} > --tolerance={FLAGS.tolerance}; file removed")
    print(f"LiteRT {path}: {os.path.getsize(path):,} bytes; max abs difference to the "
          f"SavedModel on {FLAGS.parity_images} random images {difference:.2e}")


if __name__ == "__main__":
    common.run(main)
