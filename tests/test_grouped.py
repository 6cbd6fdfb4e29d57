"""--grouped_conv: a routed conv layer's blocks as one (grouped) convolution, one batch norm
and one pool over the stacked blocks computes what the per-block loop does (outputs,
gradients, a train step's weights and BN statistics), and routing changes still never
retrace."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gnas_keras.models.supernet import build_supernet
from gnas_keras.space.search_space import get_space
from gnas_keras.training.loop import Loop
from gnas_keras.space.tree import random_routing

N, SHAPE = 6, (32, 32, 3)


def batches(seed=0, batch=16):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch * 2, *SHAPE)).astype("float32")
    y = rng.integers(-1, 2, (batch * 2, N)).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat()


@pytest.fixture(scope="module")
def pair():
    """A per-block and a grouped supernet with the same weights and routing."""
    space = get_space("tiny")
    models = []
    for grouped in (False, True):
        keras.utils.set_random_seed(0)
        models.append(build_supernet(space, N, SHAPE, grouped_conv=grouped))
    routing = random_routing(space, N, np.random.default_rng(3))
    # non-trivial BN statistics, so that inference mode checks their use too
    rng = np.random.default_rng(4)
    for a, b in zip(*(m.routed_layers for m in models)):
        if hasattr(a, "moving_mean"):
            for name, values in (("moving_mean", rng.normal(0, 0.2, a.moving_mean.shape)),
                                 ("moving_variance",
                                  rng.uniform(0.5, 2, a.moving_variance.shape))):
                getattr(a, name).assign(values)
                getattr(b, name).assign(values)
    for m in models:
        m.set_routing(routing)
    for va, vb in zip(models[0].weights, models[1].weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    return space, models


def test_same_outputs_and_gradients(pair):
    _, (plain, grouped) = pair
    x, y = next(iter(batches()))
    for training in (False, True):
        np.testing.assert_allclose(grouped(x, training=training).numpy(),
                                   plain(x, training=training).numpy(), atol=1e-4)
    grads = []
    for m in (plain, grouped):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(m(x, training=True) ** 2) * 1e-3
        grads.append([tf.convert_to_tensor(g) for g in
                      tape.gradient(loss, m.trainable_variables)])
    for a, b in zip(*grads):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-4, rtol=1e-3)


def test_same_train_steps_and_statistics(pair):
    space, (plain, grouped) = pair
    results = [Loop(m, batches()).train(2) for m in (plain, grouped)]
    assert results[0].loss == pytest.approx(results[1].loss, abs=1e-5)
    for va, vb in zip(plain.weights, grouped.weights):
        np.testing.assert_allclose(vb.numpy(), va.numpy(), atol=1e-5, err_msg=va.path)


def test_grouped_routing_change_does_not_retrace(pair):
    space, (_, model) = pair
    loop = Loop(model, batches())
    loop.train(1)
    val = loop.iterator(batches(seed=1))
    loop.evaluate(val, 1)
    traces = (model.train_step_traces, model.test_step_traces)
    rng = np.random.default_rng(7)
    before = loop.evaluate(loop.iterator(batches(seed=1)), 1).loss
    for _ in range(3):
        model.set_routing(random_routing(space, N, rng))
        loop.train(1)
        loop.evaluate(val, 1)
    assert (model.train_step_traces, model.test_step_traces) == traces
    assert loop.evaluate(loop.iterator(batches(seed=1)), 1).loss != before
