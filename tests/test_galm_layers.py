"""GALM's child network as Keras layers (`gnas_keras.models.galm_net`): each layer
round-trips through its config, the network computes what it computed before it became
layers (pinned values; how they were made is said where they stand), and the decision slots
name the controller's steps. Whole runs before and after: tests/test_galm.py."""

import json

import numpy as np
import pytest

from gnas_keras.methods import galm
from gnas_keras.methods import galm_space as gs

N = 3


def _images():
    """16 random 32x32 RGB images, pixels in [0, 255]."""
    return np.random.default_rng(1).uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def seeded_child():
    """A child built after seeding Keras with 7, set to three architectures (no skips; every
    skip; choice 1234), and the images. Inference calls leave it unchanged."""
    import keras
    from gnas_keras.models.galm_net import build_child
    space = galm.make_space("synthetic")
    keras.utils.set_random_seed(7)
    child = build_child(space, N, (32, 32, 3), learning_rate=0.05, momentum=0.9,
                        weight_decay=1e-4, dropout=0.1, bn_momentum=0.5, bn_epsilon=1e-3)
    child.set_choices([gs.decode(space, 0), gs.decode(space, space.num_choices - 1),
                       gs.decode(space, 1234)])
    return child, _images()


# Made at commit dbf5c02, when the child was `galm.build_child` (a closure defining the Keras
# classes), by the same seed, architectures and calls as below: the first image's logits in
# inference and then in training mode (batch statistics, dropout), and the L2 of the weights
# in use. Equal to the last bit on the machine that made them: the same weights (the same
# initializers made in the same order) and the same ops. (The gradients are bit-identical in
# eager mode too; in a compiled train step Keras' `Layer.__call__` around each sublayer
# changes the graph, and TensorFlow may sum the gradient parts of a tensor that several
# layers read, the trunk's outputs, in another order: last-bit differences, at most 7e-8 per
# step measured. Whole runs before and after: tests/test_galm.py.)
LOGITS_INFERENCE = [[0.03539251536130905, 0.07652145624160767],
                    [-0.32275986671447754, 0.7449038028717041],
                    [-1.3287633657455444, 0.967345118522644]]
LOGITS_TRAINING = [[1.085200548171997, -0.34324246644973755],
                   [-0.8635317087173462, -0.08356116712093353],
                   [-2.281421422958374, 1.7300844192504883]]
L2_IN_USE = 687.0660400390625


def test_the_child_computes_what_it_computed_before_it_became_layers(seeded_child):
    child, images = seeded_child
    np.testing.assert_allclose(child(images[:4], training=False).numpy()[0],
                               LOGITS_INFERENCE, rtol=0, atol=1e-6)
    np.testing.assert_allclose(child(images, training=True).numpy()[0], LOGITS_TRAINING,
                               rtol=0, atol=1e-6)
    assert float(child.l2_in_use()) == pytest.approx(L2_IN_USE, rel=1e-6)


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


def test_each_layer_round_trips_through_its_config(seeded_child):
    import tensorflow as tf
    from gnas_keras.models import galm_net
    child, images = seeded_child
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
