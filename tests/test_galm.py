"""GALM as a search method: the weight-sharing child and a run through the search binary."""

import json
import os

import numpy as np
import pytest

from gnas_keras.architecture import cost
from gnas_keras.methods import galm
from gnas_keras.methods import galm_space as gs

N = 3


def test_every_choice_is_a_valid_core_architecture():
    space = galm.make_space("synthetic")
    rng = np.random.default_rng(0)
    choices = [gs.uniform_random_choice(space, rng) for _ in range(N)]
    choices[0] = gs.decode(space, 0)                    # no skips, FC-3 reads FC-1
    choices[1] = gs.decode(space, space.num_choices - 1)  # every skip, FC-2 used
    architecture = galm.to_architecture(space, choices)
    architecture.validate()
    assert cost(architecture, 32, 32).parameters > 0
    assert architecture.blocks[3][1].skips == ((0, 0), (1, 0))
    assert architecture.blocks[4][1].skips == ((0, 0), (1, 0), (2, 0))
    assert architecture.blocks[6][0].width == 2 and not architecture.blocks[6][0].activation


def test_switching_architectures_does_not_retrace():
    import tensorflow as tf
    from gnas_keras.training import Loop
    space = galm.make_space("synthetic")
    child = galm.build_child(space, N, (32, 32, 3), learning_rate=0.05, momentum=0.9,
                             weight_decay=1e-4, dropout=0.0, bn_momentum=0.99,
                             bn_epsilon=1e-3)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 2, (16, N)).astype(np.int32)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    loop = Loop(child, data)
    outputs = []
    for index in (0, space.num_choices - 1, 1000):
        child.set_choices([gs.decode(space, index)] * N)
        assert np.isfinite(loop.train(1).loss)
        loop.evaluate(loop.iterator(data), 1)
        outputs.append(child(images[:4], training=False).numpy())
    assert child.train_step_traces == 1 and child.test_step_traces == 1
    assert outputs[0].shape == (4, N, 2)
    assert not np.allclose(outputs[0], outputs[1])


def test_galm_run_through_the_search_binary(synthetic_dir, tmp_path):
    from tests.test_search_binary import search
    result = search(f"--data_dir={synthetic_dir}", f"--workdir={tmp_path}/run",
                    f"--export_dir={tmp_path}/export", "--export_name=galm",
                    "--method=galm", "--galm_space=synthetic", "--galm_phases=2",
                    "--galm_child_steps=2", "--galm_controller_steps=3",
                    "--galm_val_batches=1", "--galm_final_samples=1", "--batch_size=32",
                    "--eval_batch_size=64", "--finetune_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(tmp_path / "run" / "report.json"))
    assert report["method"] == "galm" and len(report["test_error"]) == 16
    g = report["galm"]
    assert len(g["architectures"]) == 16 and len(g["rewards"]) == 6
    assert -1.0 <= g["embedding_ari"] <= 1.0
    assert os.path.exists(g["attribute_correlation_picture"])
    assert os.path.exists(os.path.join(report["export"], "saved_model.pb"))
    assert os.path.exists(tmp_path / "run" / "galm_controller.json")
