"""Shared fixtures. absl flags are marked parsed so library code that reads them under pytest
does not raise UnparsedFlagAccessError."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402
from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()

SMALL_SYNTHETIC = {"train": 384, "validation": 128, "test": 128}


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A small synthetic dataset, generated once per test session."""
    from pipelines import synthetic
    path = str(tmp_path_factory.mktemp("data") / "synthetic")
    synthetic.generate(path, seed=0, sizes=SMALL_SYNTHETIC, num_shards=2)
    return path
