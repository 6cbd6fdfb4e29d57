r"""Writes LiteRT (TensorFlow Lite) and ONNX files for CPU serving from an export, and checks
them against it.

    python -m flags.export --saved_model=saved_models/synthetic_transfer/1

Converts the export's ``serving_default`` signature (`gnas_keras.export.saved_model.write_litert`,
`write_onnx`) to ``model.tflite`` and ``model.onnx`` beside the SavedModel (TF Serving
ignores them; or into ``--output_dir``), then runs each on random images beside the SavedModel
and prints the largest absolute difference of their probabilities; above ``--tolerance`` the
file is removed and the binary fails.
"""

from __future__ import annotations

import math
import os

from gnas_keras_flags import common  # first: one-line errors, quiet start-up

from absl import flags

from gnas_keras.reporting import units

FORMATS = ("litert", "onnx")

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model", None, "An export's version directory (holds saved_model.pb).")
flags.DEFINE_list("formats", list(FORMATS), f"Files to write, any of {', '.join(FORMATS)}.")
flags.DEFINE_string("output_dir", "", "Where to write them (default: the export's directory).")
flags.DEFINE_integer("parity_images", 8, "Random images the parity check runs on (at least 1).",
                     lower_bound=1)
flags.DEFINE_float("tolerance", 1e-4, "Largest allowed absolute difference of a probability.",
                   lower_bound=0.0)
flags.mark_flag_as_required("saved_model")


def main(argv):
    del argv
    import numpy as np

    from gnas_keras.export import saved_model as export

    if not math.isfinite(FLAGS.tolerance):
        raise ValueError(f"--tolerance={FLAGS.tolerance}: must be a finite number >= 0")
    unknown = sorted(set(FLAGS.formats) - set(FORMATS))
    if unknown or not FLAGS.formats:
        raise ValueError(f"--formats={','.join(FLAGS.formats)}: choose from {', '.join(FORMATS)}")
    if not os.path.exists(os.path.join(FLAGS.saved_model, "export.json")):
        raise FileNotFoundError(f"--saved_model={FLAGS.saved_model}: no export.json "
                                "(not a gnas-keras export)")
    # a damaged export (no or a cut saved_model.pb, lost variables) is one line from here
    height, width = export.image_size(FLAGS.saved_model)
    images = np.random.default_rng(0).uniform(
        0, 255, (FLAGS.parity_images, height, width, 3)).astype(np.float32)
    steps = {"litert": (export.LITERT_FILE, export.write_litert,
                        export.litert_max_abs_difference),
             "onnx": (export.ONNX_FILE, export.write_onnx, export.onnx_max_abs_difference)}
    expected = export.serving_probabilities(FLAGS.saved_model, images)
    for name in FLAGS.formats:
        file_name, write, difference_of = steps[name]
        target = os.path.join(FLAGS.output_dir, file_name) if FLAGS.output_dir else ""
        try:
            path = write(FLAGS.saved_model, target)
        except ModuleNotFoundError as err:
            raise ValueError(f"--formats={name} needs the {err.name} package "
                             "(pip install -r requirements.txt)") from None
        difference = difference_of(expected, path, images)
        if not difference <= FLAGS.tolerance:
            os.remove(path)
            raise ValueError(f"{path}: {name} probabilities differ from the SavedModel's by "
                             f"{difference:.3g} > --tolerance={FLAGS.tolerance}; file removed")
        print(f"{name} {path}: {units.size_in_bytes(os.path.getsize(path))}; max abs "
              f"difference to the SavedModel on {FLAGS.parity_images} random images "
              f"{difference:.2e}")


def cli() -> None:
    """The console script `gnas-export` (`python -m flags.export` in a checkout)."""
    common.run(main)


if __name__ == "__main__":
    cli()
