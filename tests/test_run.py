"""Run settings that change what is trained or measured: --fixed_val_batches and
--finetune_lr, through the library's own data and run."""

import dataclasses

import numpy as np
import pytest

from gnas_keras.config import CandidateConfig, RunConfig
from gnas_keras.training.data import Data


def labels(dataset, batches):
    return [y.numpy() for _, y in dataset.take(batches)]


def test_fixed_val_batches_gives_every_candidate_the_same_batches(synthetic_dir):
    config = RunConfig(data_dir=synthetic_dir, eval_batch_size=16,
                       candidates=CandidateConfig(val_batches=2, fixed_val_batches=True))
    data = Data.load(config)
    first = labels(data.rewards(1), 5)
    # the same first 2 validation batches, in order, for every seed, cycled
    assert all(np.array_equal(a, b) for a, b in zip(first, labels(data.rewards(2), 5)))
    assert np.array_equal(first[0], first[2]) and np.array_equal(first[1], first[3])
    shuffled = Data.load(dataclasses.replace(
        config, candidates=CandidateConfig(val_batches=2, fixed_val_batches=False)))
    a, b = labels(shuffled.rewards(1), 2), labels(shuffled.rewards(2), 2)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))  # a stream per seed


@pytest.mark.parametrize("finetune_lr, expected", [(0.0, 0.1), (0.02, 0.02)])
def test_finetune_lr_sets_the_fine_tune_learning_rate(finetune_lr, expected, synthetic_dir,
                                                      tmp_path, monkeypatch):
    from gnas_keras import run as run_module
    from gnas_keras.training.loop import Loop

    rates = []
    real_train = Loop.train

    def train(self, steps, on_step=None):
        rates.append(self.learning_rate)
        return real_train(self, steps, on_step)

    monkeypatch.setattr(Loop, "train", train)
    config = RunConfig(data_dir=synthetic_dir, workdir=str(tmp_path / "run"), export_dir="",
                       method="shared", batch_size=16, eval_batch_size=64, finetune_steps=2,
                       finetune_lr=finetune_lr)
    report = run_module.run(config, out=lambda line: None)
    assert rates and all(r == pytest.approx(expected) for r in rates)
    assert np.isfinite(report["mean_test_error"]) and report["supernet_parameters"] is None
