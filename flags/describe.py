r"""What a search space costs, as JSON, before any data or GPU is involved.

    python -m flags.describe --space=shallow_thin --num_attributes=40 \
        --crop_height=192 --crop_width=168

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

from gnas_keras_flags import dataclass_flags
from gnas_keras.config import RunConfig
from gnas_keras.space import cost
from gnas_keras.space.search_space import PRESETS, get_space

FLAGS = flags.FLAGS
# --space, --num_attributes, --crop_height, --crop_width: the search's own settings.
dataclass_flags.define_model_input(RunConfig(), "gnas_keras.config", PRESETS)
flags.DEFINE_bool("layers", True, "Include the per-layer breakdown.")


def main(argv):
    del argv
    for name in ("num_attributes", "crop_height", "crop_width"):
        if getattr(FLAGS, name) <= 0:
            raise ValueError(f"{name}: must be > 0 here (no dataset to take it from), got "
                             f"{getattr(FLAGS, name)}")
    result = cost.describe(get_space(FLAGS.space), FLAGS.num_attributes, FLAGS.crop_height,
                           FLAGS.crop_width).to_dict()
    if not FLAGS.layers:
        del result["layers"]
    print(json.dumps(result, indent=1))


def cli() -> None:
    """The console script `gnas-describe` (`python -m flags.describe` in a checkout)."""
    common.run(main)


if __name__ == "__main__":
    cli()
