"""--space=auto: `tiny` for the planted synthetic set, `small` for real images (issue 29)."""

import dataclasses

import pytest

from gnas_keras.space import cost
from gnas_keras.config import AUTO_SPACE, RunConfig, space_for_data
from gnas_keras.space.search_space import get_space


def test_auto_picks_tiny_for_the_synthetic_set_and_small_for_real_images():
    assert RunConfig().space == AUTO_SPACE
    assert space_for_data("synthetic", (32, 32, 3)) == "tiny"
    assert space_for_data("fonts", (56, 56, 3)) == "small"
    assert space_for_data("fonts", (32, 40, 3)) == "small"
    assert space_for_data("faces", (14, 31, 3)) == "tiny"  # too small for four pools
    assert RunConfig().for_data("fonts", (56, 56, 3)).space == "small"
    explicit = RunConfig(space="deep_thin")
    assert explicit.for_data("fonts", (56, 56, 3)) is explicit  # a chosen space is kept


def test_the_small_space_keeps_where_things_are():
    # fc1 reads conv4's block flattened (4x4x16 at 64 px), not a global average.
    layers = {c.name: c for c in cost.layer_costs(get_space("small"), 10, 64, 64)}
    assert layers["conv4"].output_shape == (4, 4, 16)
    assert layers["fc1"].input_shape == (256,)
    assert [s.name for s in get_space("small").layers if s.searchable] == ["conv4", "fc1"]
    macs = sum(c.block_macs * c.blocks for c in layers.values())
    tiny = sum(c.block_macs * c.blocks for c in cost.layer_costs(get_space("tiny"), 10, 64, 64))
    assert macs < 1.5 * tiny  # as cheap as tiny at that size, within half again


def test_search_only_with_auto_must_suit_both_presets():
    from gnas_keras.methods.gnas import GnasConfig
    config = RunConfig()
    config.methods["gnas"] = GnasConfig(search_only="fc1")
    config.validate()
    config.methods["gnas"] = GnasConfig(search_only="conv3")
    with pytest.raises(ValueError, match="'conv3' is not a searchable layer of space small"):
        config.validate()
    dataclasses.replace(config, space="tiny").validate()


def test_the_cpu_flagfile_parses_with_the_search_flags():
    """flagfiles/own_data_cpu.flags (docs/fonts_set.md), in a subprocess as the dataset
    flagfiles are (tests/test_presets.py)."""
    import json
    import os
    import subprocess
    import sys

    from tests.test_presets import PARSE, ROOT
    path = os.path.join(ROOT, "flagfiles", "own_data_cpu.flags")
    result = subprocess.run([sys.executable, "-c", PARSE, path], cwd=ROOT, timeout=120,
                            capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads(result.stdout.strip().splitlines()[-1])[path]
    assert config["space"] == AUTO_SPACE and config["candidates"]["train_steps"] == 40
    assert config["methods"]["gnas"]["search_only"] == "fc1"
