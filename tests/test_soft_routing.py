"""Differentiable routing (`gnas_keras.methods.soft_routing`, `Supernet.soft_routing`): with
one-hot parent weights the soft supernet computes exactly the hard tree, and neither new
logits nor a new temperature retraces."""

import numpy as np
import tensorflow as tf

from gnas_keras.methods.soft_routing import (argmax_routing, make_soft_step, mixing,
                                             new_logits, soft_layers)
from gnas_keras.models.supernet import build_supernet
from gnas_keras.space.search_space import get_space
from gnas_keras.space.tree import random_routing

N = 5


def one_hot_logits(holder, routing, layers):
    """Logits whose softmax is exactly one-hot on `routing`'s parents (exp(-1e4) is 0)."""
    for logits, l in zip(holder.logits, layers):
        value = np.zeros(logits.shape, np.float32)
        value[np.arange(len(routing.parents[l])), list(routing.parents[l])] = 1e4
        logits.assign(value)


def test_one_hot_soft_routing_equals_hard_routing_and_never_retraces():
    space = get_space("tiny")
    model = build_supernet(space, N, (32, 32, 3))
    layers = soft_layers(space, N, "")
    assert [space.layers[l].name for l in layers] == ["conv3", "fc1"]
    holder = new_logits(model, layers, 0.01)
    soft = mixing(holder, layers, seed=0)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)),
                         tf.float32)

    @tf.function
    def soft_forward(x, training):
        with model.soft_routing(soft):
            return model(x, training=training)

    @tf.function
    def hard_forward(x, training):  # compiled alike: eager and graph kernels round apart
        return model(x, training=training)

    rng = np.random.default_rng(1)
    for _ in range(3):  # three trees: the logits change, the traced function does not
        routing = random_routing(space, N, rng)
        model.set_routing(routing)
        one_hot_logits(holder, routing, layers)
        assert argmax_routing(model, holder, layers).parents[-3] == routing.parents[-3]
        for training in (False, True):
            hard = hard_forward(images, training).numpy()
            got = soft_forward(images, training).numpy()
            assert np.abs(got - hard).max() < 1e-6, (training, np.abs(got - hard).max())
    assert soft_forward.experimental_get_tracing_count() == 2  # one per training mode

    # The training step: gradients reach the logits; new temperatures do not retrace.
    for logits in holder.logits:  # saturated one-hot logits have no gradient
        logits.assign(np.zeros(logits.shape, np.float32))
    labels = tf.constant(rng.integers(0, 2, (8, N)), tf.int32)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    step = make_soft_step(model, holder, layers, seed=0)
    iterator = iter(data)
    before = [v.numpy().copy() for v in holder.logits]
    for temperature in (5.0, 2.0, 0.5):
        holder.temperature.assign(temperature)
        assert np.isfinite(float(step(iterator)))
    assert step.experimental_get_tracing_count() == 1
    assert int(holder.step.numpy()) == 3
    assert all(np.abs(v.numpy() - b).max() > 0 for v, b in zip(holder.logits, before))
    # The switch is trace-time only: the model's own calls route hard again.
    assert all(layer.soft_parents is None for layer in model.routed_layers)

