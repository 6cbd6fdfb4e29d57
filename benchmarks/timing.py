"""The model flags every TensorFlow benchmark shares (timing itself: `benchmarks.measure`,
which the JAX-only GPU benchmark uses too)."""

from __future__ import annotations

from gnas_keras.config import RunConfig
from gnas_keras.space.search_space import PRESETS
from gnas_keras_flags import dataclass_flags

# The model every benchmark measures: --space, --num_attributes, --crop_height, --crop_width,
# the search's own settings (defaults: Table 2's shallow_thin on CelebA's crop).
dataclass_flags.define_model_input(RunConfig(), "gnas_keras.config", PRESETS)

