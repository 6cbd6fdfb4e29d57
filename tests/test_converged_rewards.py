"""benchmarks/converged_rewards.py: the run's settings come back from its state file, and an
alternative tree is read layer by layer (its end-to-end use is measured in the README)."""

import dataclasses

import numpy as np
import pytest

from benchmarks import converged_rewards
from gnas_keras.config import CandidateConfig, RunConfig
from gnas_keras.methods.gnas import GnasConfig
from gnas_keras.space.search_space import get_space
from gnas_keras.space.tree import random_routing


def test_the_run_config_comes_back_from_its_checkpointed_dict():
    config = RunConfig(data_dir="data/x", seed=4, batch_size=32, flip=False,
                       compare=("random_tree", "shared"),
                       candidates=CandidateConfig(train_steps=40, val_batches=8),
                       methods={"gnas": GnasConfig(hysteresis=2.0, search_only="fc1")})
    again = converged_rewards.run_config(config.to_dict())
    assert again.seed == 4 and again.batch_size == 32 and again.flip is False
    assert again.compare == ("random_tree", "shared")
    assert again.candidates == config.candidates
    assert again.methods["gnas"] == config.methods["gnas"]
    assert dataclasses.asdict(again.methods["gnas"]) == config.to_dict()["methods"]["gnas"]


def test_an_alternative_replaces_only_the_named_layers():
    space = get_space("tiny")
    tree = random_routing(space, 16, np.random.default_rng(0))
    other = converged_rewards.parse_alternative("fc1=2222333300001111", space, tree)
    assert list(other.parents[3]) == [2] * 4 + [3] * 4 + [0] * 4 + [1] * 4
    assert other.parents[:3] == tree.parents[:3]
    assert converged_rewards.digits(other, [2, 3]).endswith("/2222333300001111")
    with pytest.raises(ValueError, match="'fc9=12' is not LAYER=DIGITS"):
        converged_rewards.parse_alternative("fc9=12", space, tree)
