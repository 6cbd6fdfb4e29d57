"""GALM's child network as Keras layers (`gnas_keras.models.galm_net`): each layer
round-trips through its config, and the network and a short deterministic GALM run give what
they gave before the network became layers (pinned values; how they were made is said where
they stand)."""

import json

import numpy as np
import pytest

from gnas_keras.methods import galm
from gnas_keras.methods import galm_space as gs

N = 3


def _inputs(seed=1):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 2, (16, N)).astype(np.int32)
    return images, labels


def _trained_child():
    """The child of `test_the_child_computes_what_it_computed_before_it_became_layers`:
    seeded, three architectures (no skips; every skip; choice 1234), two SGD steps."""
    import keras
    import tensorflow as tf
    from gnas_keras.models.galm_net import build_child
    from gnas_keras.training import Loop
    space = galm.make_space("synthetic")
    keras.utils.set_random_seed(7)
    child = build_child(space, N, (32, 32, 3), learning_rate=0.05, momentum=0.9,
                        weight_decay=1e-4, dropout=0.1, bn_momentum=0.5, bn_epsilon=1e-3)
    images, labels = _inputs()
    child.set_choices([gs.decode(space, 0), gs.decode(space, space.num_choices - 1),
                       gs.decode(space, 1234)])
    loss = Loop(child, tf.data.Dataset.from_tensors((images, labels)).repeat(), 0).train(2).loss
    return child, float(loss), images


# Made by `_trained_child` at commit dbf5c02, when the child was `galm.build_child` (a closure
# defining the Keras classes; the same seed, options, ops and weight-creation order):
# `child(images[:4], training=False)[0]` and the mean training loss of the two steps.
# The forward pass and eager gradients of the layers are bit-identical to the closure's. In a
# compiled train step they are not quite: Keras' `Layer.__call__` around each sublayer
# changes the graph, and TensorFlow sums the gradient parts of a tensor that several layers
# read (the trunk's outputs) in another order, so trunk gradients differ in the last bits
# (at most 7e-8 in one step, measured) and these logits after two steps by at most 5.5e-7.
CHILD_LOGITS_0 = [[0.05559615045785904, 0.14071068167686462],
                  [0.7643725872039795, -0.6138119101524353],
                  [-0.7983618974685669, -0.03478897362947464]]
CHILD_LOSS = 0.708319365978241


def test_the_child_computes_what_it_computed_before_it_became_layers():
    child, loss, images = _trained_child()
    logits = child(images[:4], training=False).numpy()
    np.testing.assert_allclose(logits[0], CHILD_LOGITS_0, rtol=0, atol=1e-6)
    assert loss == pytest.approx(CHILD_LOSS, abs=1e-6)


def _round_trip(layer, *args, **kwargs):
    """A copy of `layer` from its JSON-serialised config with its weights: the outputs of
    both on `args`."""
    config = json.loads(json.dumps(layer.get_config()))
    copy = type(layer).from_config(config)
    copy.set_weights(layer.get_weights())
    assert copy.get_config() == config
    return layer(*args, **kwargs), copy(*args, **kwargs)


def _assert_same(pair):
    first, second = pair
    if isinstance(first, list):
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    else:
        np.testing.assert_array_equal(first.numpy(), second.numpy())


def test_each_layer_round_trips_through_its_config():
    import tensorflow as tf
    from gnas_keras.models import galm_net
    child, _, images = _trained_child()
    body = child.body
    x = tf.constant(images[:4] / 127.5 - 1.0)
    features = body.trunk(x)
    _assert_same(_round_trip(body.trunk, x))
    skip_on = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    choose = tf.one_hot([0, 1, 1], 2)
    conv4 = _round_trip(body.conv4, features[2], [tf.nn.max_pool2d(features[0], 4, 4, "VALID"),
                                                  tf.nn.max_pool2d(features[1], 2, 2, "VALID")],
                        skip_on, choose)
    _assert_same(conv4)
    conv5_skips = [tf.nn.max_pool2d(f, k, k, "VALID") for f, k in zip(features, (8, 4, 2))]
    _assert_same(_round_trip(body.conv5, conv4[0], conv5_skips, tf.ones([N, 3]), choose))
    flat = tf.random.stateless_normal([4, N, body.fc1.input_dim], (1, 2))
    _assert_same(_round_trip(body.fc1, flat, tf.one_hot([0, 1, 2], 3)))
    wide = tf.random.stateless_normal([4, N, body.fc3.input_dim], (3, 4))
    _assert_same(_round_trip(body.fc3, [wide, 2 * wide], tf.one_hot([1, 0, 1], 2)))
    _assert_same(_round_trip(body, images[:4]))
    # The whole model: config -> model with the same weights and decisions -> same logits.
    copy = galm_net.GalmChild.from_config(json.loads(json.dumps(child.get_config())))
    copy.set_weights(child.get_weights())
    assert copy.get_config() == child.get_config()
    np.testing.assert_array_equal(copy(images[:4]).numpy(), child(images[:4]).numpy())


def test_decision_slots_name_the_controller_steps():
    space = galm.make_space("synthetic")
    assert [space.options(slot) for slot in gs.Slot] == space.action_counts
    choice = gs.decode(space, space.num_choices - 1)  # every skip, the last option of each
    actions = gs.choice_to_actions(space, choice)
    assert actions[gs.Slot.CONV4_KERNEL] == actions[gs.Slot.CONV5_KERNEL] == 1
    assert actions[gs.Slot.FC1_WIDTH] == actions[gs.Slot.FC2_WIDTH] == 2
    assert actions[gs.Slot.FC3_READS_FC2] == 1
    assert {s: list(slots) for s, slots in gs.SKIP_SLOTS.items()} == {
        "conv4": ["conv1", "conv2"], "conv5": ["conv1", "conv2", "conv3"]}
    assert all(actions[slot] == 1 for slots in gs.SKIP_SLOTS.values()
               for slot in slots.values())


# A short deterministic GALM run on the tests' small synthetic set (`synthetic_dir`), made by
# `_short_run` at commit dbf5c02 (before the child became layers and before the build step):
# each attribute's found architecture (`galm_space.encode`, attributes sorted by name), the
# REINFORCE steps'
# [attribute, reward, baseline], the child's train loss per phase, test metrics and the
# report's keys. They depend on the synthetic generator's output too: should
# `pipelines.synthetic` change, remake them with `_short_run` on code whose GALM path is
# unchanged.
FOUND = [929, 929, 1272, 929, 929, 567, 929, 929, 929, 929, 414, 1287, 181, 515, 707, 138]
REWARDS = [[13, 0.46875, 0.004687499720603228], [10, 0.59375, 0.010578124783933163],
           [8, 0.53125, 0.015784842893481255], [4, 0.421875, 0.019845744594931602],
           [4, 0.5, 0.024647288024425507], [0, 0.421875, 0.028619565069675446]]
PHASE_LOSS = [0.9300967156887054, 0.9354785978794098]
METRICS = {"mean_test_error": 0.47412109375, "mean_auc": 0.5509490966796875,
           "mean_f1": 0.5077435012088429, "mean_balanced_accuracy": 0.52587890625,
           "parameters": 122538}
REPORT_KEYS = [
    "architecture", "ari", "ari_by_layer", "ari_layer", "attribute_names", "compare_steps",
    "comparisons_from_scratch", "config", "data_dir", "dataset", "decision_thresholds",
    "export", "galm", "groups", "input_shape", "macs_per_image", "mean_auc",
    "mean_balanced_accuracy", "mean_f1", "mean_test_error", "method", "num_attributes",
    "numerical_errors", "parameters", "preprocessing", "rounds", "search_seconds",
    "search_space", "supernet_parameters", "test_balanced_accuracy", "test_error", "test_f1",
    "tree", "tree_text", "trials"]
GALM_KEYS = [
    "architectures", "attribute_correlation", "attribute_correlation_picture", "best_samples",
    "child_loss", "design_choice_frequencies", "embedding_ari", "phases", "rewards",
    "sampler", "searched_attributes", "transfer_from", "transfer_sources"]


def _short_run(data_dir, workdir):
    """The whole GALM run (search, fine-tune, test) in-process, deterministic: 2 phases of
    2 child steps and 3 REINFORCE steps, the best of the most probable architecture and one
    sample, 1 fine-tune step. Returns the report and report.json's keys."""
    import os
    from gnas_keras.config import RunConfig
    from gnas_keras.run import run
    config = RunConfig(data_dir=data_dir, workdir=str(workdir), export_dir="", method="galm",
                       batch_size=16, eval_batch_size=64, finetune_steps=1,
                       deterministic=True)
    config.methods["galm"] = galm.GalmConfig(
        galm_space="synthetic", galm_phases=2, galm_child_steps=2, galm_controller_steps=3,
        galm_val_batches=1, galm_final_samples=1)
    report = run(config, out=lambda line: None)
    with open(os.path.join(workdir, "report.json")) as f:
        return report, sorted(json.load(f))


def test_a_short_galm_run_finds_what_it_found_before_the_network_became_layers(
        synthetic_dir, tmp_path):
    report, keys = _short_run(synthetic_dir, tmp_path / "run")
    space, g = galm.make_space("synthetic"), report["galm"]
    found = [gs.encode(space, gs.Choice(**{k: tuple(v) if isinstance(v, list) else v
                                          for k, v in c.items()}))
             for _, c in sorted(g["architectures"].items())]
    assert found == FOUND
    assert g["rewards"] == REWARDS  # accuracies on 64 images: exact
    np.testing.assert_allclose(g["child_loss"], PHASE_LOSS, rtol=0, atol=1e-6)
    for name, value in METRICS.items():
        assert report[name] == pytest.approx(value, abs=1e-6), name
    assert keys == REPORT_KEYS and sorted(g) == GALM_KEYS
