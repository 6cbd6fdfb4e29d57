"""Shared fixtures. absl flags are marked parsed so library code that reads them under pytest
does not raise UnparsedFlagAccessError."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `make test` runs two xdist workers on CI's two cores, and most tests start TensorFlow
# subprocesses that inherit this environment. One intra-op thread per process keeps the two
# workers from oversubscribing the cores (TensorFlow would start one thread per core in each).
# The tests' models are small, so a process loses little; inter-op threads stay at the default
# because the multi-worker collectives run on them.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402
from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()

SMALL_SYNTHETIC = {"train": 384, "validation": 128, "test": 128}


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    """A small synthetic dataset, generated once per test session. Generator version 3 (16
    attributes in four groups whose labels show them), which the tests that count attributes
    or read groups from labels were written for; tests/test_synthetic.py covers version 4,
    the default."""
    from gnas_keras_pipelines import synthetic
    path = str(tmp_path_factory.mktemp("data") / "synthetic")
    synthetic.generate(path, seed=0, sizes=SMALL_SYNTHETIC, num_shards=2, version=3)
    return path


# The slowest test files first (in this order, by their seconds on 2 cores). `make test` runs
# two xdist workers with `--dist loadfile`: each file is one unit of work, handed out in
# collection order. Long files first lets the workers finish together; otherwise one of them
# runs a long file alone at the end. `make test` also passes `--no-loadscope-reorder`, so
# that xdist does not re-sort the files by their number of tests.
SLOWEST_FIRST = ("test_resume.py", "test_galm.py", "test_search_binary.py", "test_supernet.py",
                 "test_run_data.py", "test_multiworker.py", "test_evaluate.py",
                 "test_export.py", "test_run_safety.py", "test_mixed_precision.py",
                 "test_study.py", "test_run.py", "test_branching.py", "test_monitoring.py",
                 "test_serving.py", "test_galm_controller.py", "test_quiet_start.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept
