"""The paper's four architectures: Table 1 structure, Table 2 sizes, sec. 3.4 arithmetic, the
describe binary, and the dataset flagfiles parsed by the search binary's own flags."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gnas_keras.space import cost
from gnas_keras.space.search_space import ATTRIBUTES, get_space
from gnas_keras.space.tree import random_routing, shared_routing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = ("shallow_thin", "shallow_wide", "deep_thin", "deep_wide")
# Table 2: parameters (millions) of the models found on CelebA (40 attributes, 192x168 crops).
TABLE2_MILLIONS = {"shallow_thin": 1.57, "shallow_wide": 7.73, "deep_thin": 1.47,
                   "deep_wide": 6.41}


def _run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})


def test_presets_are_table_1():
    expected = {  # (blocks, thin channels, wide channels) of Conv-1..5, Table 1
        "shallow": ([1, 1, 1, 4, 16], [16, 32, 64, 32, 16], [64, 128, 256, 128, 32]),
        "deep": ([1, 2, 4, 8, 16], [16] * 5, [64, 64, 64, 64, 32])}
    for name in PAPER:
        depth, width = name.split("_")
        blocks, thin, wide = expected[depth]
        layers = get_space(name).layers
        assert [s.name for s in layers] == ["conv1", "conv2", "conv3", "conv4", "conv5",
                                            "fc1", "fc2", "fc3"]
        assert [s.kernel for s in layers[:5]] == [7, 3, 3, 3, 3]
        assert [s.blocks for s in layers] == blocks + [ATTRIBUTES] * 3
        fc = 64 if width == "thin" else 128
        assert [s.channels for s in layers] == (thin if width == "thin" else wide) + [fc, fc, 2]
        searched = {"shallow": {"conv4", "conv5", "fc1"},
                    "deep": {"conv2", "conv3", "conv4", "conv5", "fc1"}}[depth]
        assert {s.name for s in layers if s.searchable} == searched


@pytest.mark.parametrize("name", PAPER)
def test_full_tree_parameters_match_table_2(name):
    space = get_space(name)
    c = cost.describe(space, 40, 192, 168)
    assert all(len(live) == len(layer) for live, layer
               in zip(cost.full_tree(space, 40).live_blocks(), cost.full_tree(space, 40).parents))
    assert c.tree_parameters / 1e6 == pytest.approx(TABLE2_MILLIONS[name], rel=0.005)


def test_shallow_thin_by_hand():
    """Per-block formulas written out for shallow_thin at 192x168 (conv: H x W before pooling)."""
    c = cost.describe(get_space("shallow_thin"), 40, 192, 168)
    conv = [(7, 3, 16, 1, 192, 168), (3, 16, 32, 1, 96, 84), (3, 32, 64, 1, 48, 42),
            (3, 64, 32, 4, 24, 21), (3, 32, 16, 16, 12, 10)]
    fc = [(6 * 5 * 16, 64), (64, 64), (64, 2)]  # conv5 pools 12x10 to 6x5
    params = sum(b * (k * k * i * o + o) for k, i, o, b, _, _ in conv) \
        + sum(40 * (i * o + o) for i, o in fc)
    macs = sum(b * h * w * k * k * i * o for k, i, o, b, h, w in conv) \
        + sum(40 * i * o for i, o in fc)
    assert (c.tree_parameters, c.macs_per_image) == (params, macs) == (1_576_304, 197_587_968)


def test_possible_trees_and_evaluations_follow_section_3_4():
    # Sec. 3.4: layers of (1, 4, 16, 40) blocks give prod B_l^B_{l+1} = 6.28e57 trees and
    # sum B_l = 20 evaluations (the single-block layer has nothing to choose). Shallow searches
    # exactly that: conv3 (1) -> conv4 (4) -> conv5 (16) -> fc1 (N = 40).
    for name in ("shallow_thin", "shallow_wide"):
        c = cost.describe(get_space(name), 40, 192, 168)
        assert c.possible_trees == 4 ** 16 * 16 ** 40
        assert f"{c.possible_trees:.3g}" == "6.28e+57"
        assert c.evaluations_per_round == 4 + 16 == 20
    # Deep: (1, 2, 4, 8, 16, 40).
    for name in ("deep_thin", "deep_wide"):
        c = cost.describe(get_space(name), 40, 192, 168)
        assert c.possible_trees == 1 ** 2 * 2 ** 4 * 4 ** 8 * 8 ** 16 * 16 ** 40
        assert c.evaluations_per_round == 2 + 4 + 8 + 16 == 30


@pytest.mark.parametrize("name, n", [("shallow_thin", 16), ("shallow_wide", 5),
                                     ("deep_thin", 5), ("deep_wide", 12), ("tiny", 3),
                                     ("small", 4)])
def test_analytic_counts_equal_built_models(name, n):
    """At a small size: the analytic counts equal the supernet and the pruned export built by
    `gnas_keras.models.supernet` / `gnas_keras.export.saved_model`, for the full tree and a random tree."""
    from gnas_keras.space.architecture import Architecture
    from gnas_keras.export.saved_model import inference_model
    from gnas_keras.models.base import parameter_count
    from gnas_keras.models.supernet import build_supernet

    space = get_space(name)
    height, width = 40, 36  # pools round down: 40x36 -> ... -> 1x1 after five pools
    supernet = build_supernet(space, n, (height, width, 3))
    full = cost.describe(space, n, height, width)
    assert parameter_count(supernet) == full.supernet_parameters
    trees = {"full": cost.full_tree(space, n), "shared": shared_routing(space, n),
             "random": random_routing(space, n, np.random.default_rng(1))}
    counted = {}
    for kind, routing in trees.items():
        counted[kind] = cost.describe(space, n, height, width, routing).tree_parameters
        architecture = Architecture.from_space(space, routing)
        assert parameter_count(inference_model(supernet.to_tree_network(architecture))) \
            == counted[kind], kind
    assert counted["shared"] < counted["full"] == full.tree_parameters


def test_too_small_image_is_a_value_error():
    with pytest.raises(ValueError, match="too small"):
        cost.describe(get_space("shallow_thin"), 40, 16, 168)


DESCRIBE_WITHOUT_TENSORFLOW = """
import runpy, sys
sys.argv = ["describe", *sys.argv[1:]]
try:
    runpy.run_module("flags.describe", run_name="__main__")
except SystemExit as exit:
    assert not exit.code, exit.code
print("tensorflow imported:", "tensorflow" in sys.modules, file=sys.stderr)
"""


def test_describe_binary_prints_json():
    result = subprocess.run(
        [sys.executable, "-c", DESCRIBE_WITHOUT_TENSORFLOW, "--space=deep_wide",
         "--num_attributes=40", "--crop_height=192", "--crop_width=168", "--nolayers"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    expected = cost.describe(get_space("deep_wide"), 40, 192, 168)
    assert out["tree_parameters"] == expected.tree_parameters == 6_413_008
    assert out["supernet_parameters"] == expected.supernet_parameters
    assert out["macs_per_image"] == expected.macs_per_image
    assert out["possible_trees"] == expected.possible_trees
    assert out["evaluations_per_round"] == 30
    assert result.stderr.strip().splitlines()[-1] == "tensorflow imported: False"


def test_describe_binary_errors_are_one_line():
    result = _run("flags.describe", "--crop_height=16")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "describe: error: space shallow_thin: image 16x168 is too small: conv5 gets 1x10 and "
        "its 2x2 max-pool needs at least 2x2"]


# The paper's settings (sec. 4.1) that every dataset flagfile must carry.
COMMON = {"batch_size": 64, "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
          "flip": True, "methods.gnas.lr_decay": 0.96, "candidates.warmup_steps": 0,
          "method": "gnas"}
FLAGFILES = {
    "celeba": {"crop_height": 192, "crop_width": 168, "candidates.train_steps": 2000,
               "methods.gnas.max_rounds": 150, "dropout": 0.0},
    "lfwa": {"crop_height": 224, "crop_width": 224, "candidates.train_steps": 400,
             "methods.gnas.max_rounds": 300, "dropout": 0.75},
    "market1501": {"candidates.train_steps": 400, "methods.gnas.max_rounds": 300,
                   "dropout": 0.75},
}

PARSE = """
import json, sys
from gnas_keras_flags import search
configs = {}
for path in sys.argv[1:]:
    search.FLAGS.unparse_flags()
    search.FLAGS(["search", "--flagfile=" + path])
    config = search.config_from_flags()
    config.validate()
    configs[path] = config.to_dict()
print(json.dumps(configs))
"""


def test_flagfiles_parse_with_the_search_flags():
    """In a subprocess: flags.search's flags would clash with other binaries' in pytest."""
    paths = [os.path.join(ROOT, "flagfiles", f"{name}.flags") for name in FLAGFILES]
    result = subprocess.run([sys.executable, "-c", PARSE, *paths], cwd=ROOT, timeout=120,
                            capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-3000:]
    configs = json.loads(result.stdout.strip().splitlines()[-1])
    for name, expected in FLAGFILES.items():
        config = configs[os.path.join(ROOT, "flagfiles", f"{name}.flags")]
        assert config["dataset"] == name
        for key, value in {**COMMON, **expected}.items():
            got = config
            for part in key.split("."):
                got = got[part]
            assert got == pytest.approx(value), (name, key)
        assert config["space"] in PAPER
