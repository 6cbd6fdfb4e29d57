r"""What a search space costs, as JSON, before any data or GPU is involved.

    python -m flags.describe --space=shallow_thin --num_attributes=40 \
        --image_height=192 --image_width=168

Prints `gnas_keras.space.cost.Cost` as JSON: the exported full tree's parameters (BN folded), the
supernet's trainable parameters, multiply-accumulates per image, the number of possible trees
and the candidate evaluations per GNAS round, plus a per-layer breakdown. --space has the
same name and choices as in ``flags.search``; the image size is the model input (the crop).
No TensorFlow is imported.
"""

from __future__ import annotations

import json

from gnas_keras_flags import common  # first: one-line errors, quiet start-up

from absl import flags

from gnas_keras.space import cost
from gnas_keras.space.search_space import PRESETS, get_space

FLAGS = flags.FLAGS
flags.DEFINE_enum("space", "shallow_thin", sorted(PRESETS), "Search space preset.")
flags.DEFINE_integer("num_attributes", 40,
                     "N: attributes (CelebA and LFWA 40; Market-1501 30 as converted here).")
flags.DEFINE_integer("image_height", 192, "Model input height in pixels (the crop).")
flags.DEFINE_integer("image_width", 168, "Model input width in pixels (the crop).")
flags.DEFINE_bool("layers", True, "Include the per-layer breakdown.")


def main(argv):
    del argv
    result = cost.describe(get_space(FLAGS.space), FLAGS.num_attributes, FLAGS.image_height,
                           FLAGS.image_width).to_dict()
    if not FLAGS.layers:
        del result["layers"]
    print(json.dumps(result, indent=1))


def cli() -> None:
    """The console script `gnas-describe` (`python -m flags.describe` in a checkout)."""
    common.run(main)


if __name__ == "__main__":
    cli()
