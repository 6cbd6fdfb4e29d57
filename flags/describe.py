r"""What a search space costs, as JSON, before any data or GPU is involved.

    python -m flags.describe --space=shallow_thin --num_attributes=40 \
        --crop_height=192 --crop_width=168

Prints `gnas_keras.space.cost.Cost`: the exported full tree's parameters (BN folded), the
supernet's trainable parameters, multiply-accumulates per image, the number of possible trees
and the candidate evaluations per GNAS round, plus a per-layer breakdown. On a terminal in
words with short sizes ("6.41 M parameters", "4.31e+68 trees"); into a pipe or a file as JSON
(exact integers, for scripts: ``python -m flags.describe ... > cost.json``). --space has the
same name and choices as in ``flags.search``; the image size is the model input (the crop).
No TensorFlow is imported.
"""

from __future__ import annotations

import json
import sys

from gnas_keras_flags import common  # first: one-line errors, quiet start-up

from absl import flags

from gnas_keras_flags import dataclass_flags
from gnas_keras.config import RunConfig
from gnas_keras.reporting import units
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
    print(describe_text(result) if sys.stdout.isatty() else json.dumps(result, indent=1))


def describe_text(d) -> str:
    """`Cost.to_dict()` for a person: counts in short form, one line per layer."""
    lines = [f"space {d['space']}, {d['num_attributes']} attributes, "
             f"{d['image_height']}x{d['image_width']} input",
             f"exported full tree: {units.count(d['tree_parameters'])} parameters, "
             f"{units.count(d['macs_per_image'])} MACs per image",
             f"supernet: {units.count(d['supernet_parameters'])} parameters, "
             f"{units.count(d['supernet_macs_per_image'])} MACs per image",
             f"{d['possible_trees_scientific']} possible trees, "
             f"{d['evaluations_per_round']} candidate evaluations per GNAS round"]
    if d.get("layers"):
        lines.append(f"{'layer':8s}{'blocks':>7s}  {'output':14s}{'parameters/block':>17s}"
                     f"{'MACs/block':>12s}")
        for layer in d["layers"]:
            shape = "x".join(map(str, layer["output_shape"]))
            lines.append(f"{layer['name']:8s}{layer['blocks']:7d}  {shape:14s}"
                         f"{units.count(layer['block_parameters']):>17s}"
                         f"{units.count(layer['block_macs']):>12s}")
    return "\n".join(lines)


def cli() -> None:
    """The console script `gnas-describe` (`python -m flags.describe` in a checkout)."""
    common.run(main)


if __name__ == "__main__":
    cli()
