"""GALM as a search method: the weight-sharing child, and a run through the search binary
that is killed and resumed."""

import dataclasses
import json
import os

import numpy as np
import pytest

from gnas_keras.space.architecture import cost
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
    from gnas_keras.models.galm_net import build_child
    from gnas_keras.training.loop import Loop
    space = galm.make_space("synthetic")
    child = build_child(space, N, (32, 32, 3), learning_rate=0.05, momentum=0.9,
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


def test_galm_through_the_search_binary_killed_mid_search_resumes_alike(synthetic_dir,
                                                                        tmp_path):
    """A GALM search through the search binary (pictures, controller file, the search
    report checkpointed for the next phases); the same run SIGKILLed during phase 1's
    controller training and resumed by the same command (deterministic mode) ends its search
    with the same architectures and rewards. Both runs are killed once their search is
    checkpointed: fine-tune, test and export resume like any method's (test_resume.py), and a
    GALM run's whole report is checked in-process below."""
    from tests.test_resume import run_and_kill, searched as searched_run

    def flags(name):
        return ["--deterministic", f"--data_dir={synthetic_dir}",
                f"--workdir={tmp_path}/{name}",
                "--export_dir=",  # a GALM-shaped export: tests/test_export.py
                "--export_name=galm", "--method=galm", "--galm_space=synthetic",
                "--galm_phases=2", "--galm_child_steps=2", "--galm_controller_steps=3",
                "--galm_val_batches=1", "--galm_final_samples=1", "--batch_size=16",
                "--eval_batch_size=64", "--finetune_steps=1", "--checkpoint_every=1"]

    def searched(name):
        return searched_run(tmp_path / name)[0]["galm"]  # the search report, checkpointed

    run_and_kill(flags("whole"), "tree:")
    g = searched("whole")
    assert len(g["architectures"]) == 16 and len(g["rewards"]) == 6
    assert -1.0 <= g["embedding_ari"] <= 1.0
    assert os.path.exists(g["attribute_correlation_picture"])
    assert os.path.exists(tmp_path / "whole" / "galm_controller.json")

    # What the same search found at commit dbf5c02, before GALM's network became Keras
    # layers (`gnas_keras.models.galm_net`) and before its build step: made there by
    # `gnas_keras.run.run` in-process with these flags' settings on this `synthetic_dir`
    # (attributes sorted by name; architectures as `galm_space.encode` indices). Besides
    # GALM's code they depend on the synthetic generator's output: should it change, remake
    # them with code whose GALM path is unchanged.
    space = galm.make_space("synthetic")
    assert [gs.encode(space, _choice(c)) for _, c in sorted(g["architectures"].items())] == [
        929, 929, 1272, 929, 929, 567, 929, 929, 929, 929, 414, 1287, 181, 515, 707, 138]
    assert g["rewards"] == [  # [attribute, accuracy on 64 images (exact), baseline]
        [13, 0.46875, pytest.approx(0.004687499720603228, abs=1e-6)],
        [10, 0.59375, pytest.approx(0.010578124783933163, abs=1e-6)],
        [8, 0.53125, pytest.approx(0.015784842893481255, abs=1e-6)],
        [4, 0.421875, pytest.approx(0.019845744594931602, abs=1e-6)],
        [4, 0.5, pytest.approx(0.024647288024425507, abs=1e-6)],
        [0, 0.421875, pytest.approx(0.028619565069675446, abs=1e-6)]]
    np.testing.assert_allclose(g["child_loss"], [0.9300967156887054, 0.9354785978794098],
                               rtol=0, atol=1e-6)

    run_and_kill(flags("killed"), "GALM phase 1/2  controller step 2/3")
    resumed = run_and_kill(flags("killed"), "tree:")
    assert "resuming at phase search" in resumed
    killed = searched("killed")
    assert killed["architectures"] == g["architectures"]
    assert killed["rewards"] == g["rewards"]


def _choice(fields) -> gs.Choice:
    """A `Choice` from its JSON form (lists back to tuples)."""
    return gs.Choice(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def test_transfer_adds_only_the_new_attributes_from_their_nearest_source(tmp_path):
    from gnas_keras.methods.galm_controller import (ControllerConfig, GalmController,
                                                    cosine_similarity)
    space = galm.make_space("synthetic")
    source = GalmController(space, 3, ControllerConfig(seed=1))
    table = np.zeros((3, 50), np.float32)
    table[:, :3] = np.eye(3)
    source.policy.attribute_embeddings.assign(table)
    galm.save_controller(str(tmp_path), source, ["a", "b", "c"], "synthetic")
    loaded, names = galm.load_controller(str(tmp_path), space)
    assert names == ["a", "b", "c"]
    np.testing.assert_array_equal(loaded.representations(), source.representations())
    # The new row is drawn reproducibly (seed + N): its nearest source is known beforehand.
    reps = loaded.add_attributes(1).representations()
    expected = names[int(np.argmax(cosine_similarity(reps[3:], reps[:3])[0]))]
    grown, rows, searched, sources, all_names = galm.transfer(loaded, names, ["b", "d"])
    assert rows == [1, 3] and searched == [1] and all_names == ["a", "b", "c", "d"]
    assert sources == {"d": expected}
    embeddings = grown.policy.attribute_embeddings.numpy()
    np.testing.assert_array_equal(embeddings[3], embeddings[names.index(sources["d"])])
    np.testing.assert_array_equal(embeddings[:3], table)
    with pytest.raises(ValueError, match="searched galm_space 'synthetic'"):
        galm.load_controller(str(tmp_path), galm.make_space("paper"))


def test_the_child_on_a_choice_computes_the_exported_architecture():
    """The searched network is the one the run fine-tunes and exports: a `TreeNetwork` of
    `to_architecture` with the child's weights sliced out gives the child's logits."""
    import tensorflow as tf
    from gnas_keras.models.tree_net import TreeNetwork, copy_weights
    from gnas_keras.models.galm_net import build_child
    from gnas_keras.training.loop import Loop
    space = galm.make_space("synthetic")
    child = build_child(space, N, (32, 32, 3), learning_rate=0.05, momentum=0.9,
                             weight_decay=1e-4, dropout=0.0, bn_momentum=0.5,
                             bn_epsilon=1e-3)
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 2, (16, N)).astype(np.int32)
    choices = [gs.decode(space, 0), gs.decode(space, space.num_choices - 1),
               gs.uniform_random_choice(space, rng)]
    child.set_choices(choices)
    Loop(child, tf.data.Dataset.from_tensors((images, labels)).repeat()).train(2)
    architecture = galm.to_architecture(space, choices)
    tree = TreeNetwork(architecture, (32, 32, 3), bn_momentum=0.5, bn_epsilon=1e-3)
    copy_weights(child.block_weights(choices), tree)
    np.testing.assert_allclose(tree(images[:4], training=False).numpy(),
                               child(images[:4], training=False).numpy(), atol=1e-4)


def test_uniform_sampler_keeps_each_attributes_best_rewarded_sample(synthetic_dir, tmp_path):
    """The random baseline of the same budget: uniformly drawn architectures, no controller
    update, and every evaluated attribute ends with its best-rewarded sample."""
    from gnas_keras.config import RunConfig
    from gnas_keras.run import run
    config = RunConfig(data_dir=synthetic_dir, workdir=str(tmp_path / "run"), export_dir="",
                       method="galm", batch_size=16, eval_batch_size=64, finetune_steps=0,
                       deterministic=True)
    config.methods["galm"] = galm.GalmConfig(
        galm_space="synthetic", galm_phases=1, galm_child_steps=1, galm_controller_steps=12,
        galm_val_batches=1, galm_sampler="uniform")
    whole = run(config, out=lambda line: None)
    assert whole["method"] == "galm" and len(whole["test_error"]) == 16
    report = whole["galm"]
    assert report["sampler"] == "uniform"
    assert all(baseline is None for _, _, baseline in report["rewards"])
    space, names = galm.make_space("synthetic"), list(report["architectures"])
    best = {}
    for a, reward, _ in report["rewards"]:
        best[a] = max(best.get(a, -1.0), reward)
    assert len(report["best_samples"]) == len(best) >= 2
    for a, reward in best.items():
        sample = report["best_samples"][names[a]]
        assert sample["reward"] == reward
        assert report["architectures"][names[a]] == \
            dataclasses.asdict(gs.decode(space, sample["choice_index"]))
    # What this run gave at commit dbf5c02, before GALM's network became Keras layers and
    # before its build step (made there by this test's `run(config)`; they also depend on
    # the synthetic generator's output, see the binary test above): samples, loss, test
    # metrics and report.json's keys.
    assert {a: s["choice_index"] for a, s in report["best_samples"].items()} == {
        "colour_rule_1": 1705, "colour_rule_2": 1939, "colour_rule_3": 1477,
        "form_rule_1": 1288, "texture_rule_1": 1712, "texture_rule_3": 2185,
        "lighting_rule_2": 781, "lighting_rule_3": 1725}
    assert report["child_loss"] == [pytest.approx(1.2079410552978516, abs=1e-6)]
    assert [whole[k] for k in ("mean_test_error", "mean_auc", "mean_f1",
                               "mean_balanced_accuracy", "parameters")] == pytest.approx(
        [0.49365234375, 0.522979736328125, 0.381868321539342, 0.50634765625, 132644],
        abs=1e-6)
    with open(tmp_path / "run" / "report.json") as f:
        keys = sorted(json.load(f))
    assert keys == [
        "architecture", "ari", "ari_by_layer", "ari_layer", "attribute_names",
        "compare_steps", "comparisons_from_scratch", "config", "data_dir", "dataset",
        "decision_thresholds", "export", "galm", "groups", "input_shape", "macs_per_image",
        "mean_auc", "mean_balanced_accuracy", "mean_f1", "mean_test_error", "method",
        "num_attributes", "numerical_errors", "parameters", "preprocessing", "provenance",
        "rounds",
        "search_seconds", "search_space", "supernet_parameters", "test_balanced_accuracy",
        "test_error", "test_f1", "tree", "tree_text", "trials"]
    assert sorted(report) == [
        "architectures", "attribute_correlation", "attribute_correlation_picture",
        "best_samples", "child_loss", "design_choice_frequencies", "embedding_ari", "phases",
        "rewards", "sampler", "searched_attributes", "transfer_from", "transfer_sources"]
