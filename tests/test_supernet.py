import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gnas_keras.models.losses import masked_cross_entropy
from gnas_keras.models.tf_backend import SparseSGD
from gnas_keras.models.supernet import build_supernet
from gnas_keras.space.search_space import get_space
from gnas_keras.training.loop import Loop
from gnas_keras.space.tree import random_routing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 6


def batches(n=N, batch=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch * 4, 32, 32, 3)).astype("float32")
    y = rng.integers(-1, 2, (batch * 4, n)).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat()


def test_masked_loss_ignores_unknown_labels():
    logits = tf.constant([[[2.0, -1.0], [0.0, 3.0], [5.0, -5.0]]])
    known = masked_cross_entropy(tf.constant([[0, 1, -1]]), logits)
    expected = np.mean([np.log1p(np.exp(-3.0)), np.log1p(np.exp(-3.0))])
    assert np.isclose(known.numpy(), expected, rtol=1e-6)
    # The masked entry's logits do not matter at all.
    other = masked_cross_entropy(tf.constant([[0, 1, -1]]),
                                 tf.constant([[[2.0, -1.0], [0.0, 3.0], [-9.0, 9.0]]]))
    assert known.numpy() == other.numpy()
    assert masked_cross_entropy(tf.constant([[-1, -1, -1]]), logits).numpy() == 0.0


def test_routing_change_does_not_retrace():
    space = get_space("tiny")
    keras.utils.set_random_seed(0)
    model = build_supernet(space, N, (32, 32, 3))
    loop = Loop(model, batches())
    loop.train(2)
    val = loop.iterator(batches(seed=1))
    loop.evaluate(val, 1)
    traces = (model.train_step_traces, model.test_step_traces)
    assert traces[0] >= 1 and traces[1] >= 1
    rng = np.random.default_rng(0)
    before = loop.evaluate(loop.iterator(batches(seed=1)), 1).loss
    for _ in range(3):
        routing = random_routing(space, N, rng)
        model.set_routing(routing)
        loop.train(1)
        loop.evaluate(val, 1)
        assert model.routing == routing
    assert (model.train_step_traces, model.test_step_traces) == traces
    # ... and the new routing really changes the computation.
    assert loop.evaluate(loop.iterator(batches(seed=1)), 1).loss != before


def test_inactive_edges_and_their_optimizer_state_do_not_move():
    space = get_space("tiny")
    keras.utils.set_random_seed(0)
    model = build_supernet(space, N, (32, 32, 3), weight_decay=1e-2)
    loop = Loop(model, batches())
    rng = np.random.default_rng(1)
    loop.train(3)  # some momentum everywhere the first tree touched
    routing = random_routing(space, N, rng)
    model.set_routing(routing)
    snapshot = {v.path: v.numpy().copy() for v in model.variables + model.optimizer.variables}
    loop.train(2)
    active = {layer.name: set(layer.edge_ids().numpy().tolist())
              for layer in model.routed_layers}
    moved_rows = 0
    for layer in model.routed_layers:
        for var in layer.weights:
            if var.path.endswith(("parents", "train_scale")):  # routing, training switch
                continue
            momentum = [m for v, m in zip(model.trainable_variables, model.optimizer.momentums)
                        if v is var]
            assert len(momentum) == (1 if var.trainable else 0)
            for v in [var] + momentum:
                old, new = snapshot[v.path], v.numpy()
                for e in range(old.shape[0]):
                    same = np.array_equal(old[e], new[e])
                    if e in active[layer.name]:
                        moved_rows += not same
                    else:
                        assert same, f"{v.path} row {e} moved but edge {e} is inactive"
    assert moved_rows > 0


@pytest.mark.parametrize("argument, expected", [
    ((), "replicas 2 routing identical"),
    (("gnas",), "mirrored run of gnas: test error"),
])
def test_mirrored_strategy_on_two_logical_cpus(argument, expected):
    """Runs in a fresh process: logical devices must be configured before TF starts (and a
    second strategy in the same process would share collective keys). The second case is a
    whole GNAS run with --strategy=mirrored."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "mirrored_check.py"),
                             *argument], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout


def test_sparse_sgd_equals_keras_nesterov_sgd_on_the_active_rows():
    """Rows gathered (some twice, like the forward pass and the L2 term) get exactly Keras'
    Nesterov SGD on those rows; the other rows and their momentum never change."""
    rng = np.random.default_rng(0)
    start = rng.normal(size=(6, 3)).astype("float32")
    rows = tf.constant([4, 1, 4])
    target = tf.constant(rng.normal(size=(3, 3)).astype("float32"))
    sparse = keras.Variable(start)
    dense = keras.Variable(start[[1, 4]])  # the active rows only, as their own variable
    ours = SparseSGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    keras_sgd = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    ours.build([sparse])
    keras_sgd.build([dense])
    for _ in range(4):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.gather(sparse, rows) - target))
        grad = tape.gradient(loss, sparse)
        assert isinstance(grad, tf.IndexedSlices)
        ours.apply([grad], [sparse])
        with tf.GradientTape() as tape:
            picked = tf.gather(dense, [1, 0, 1])  # dense rows 0, 1 = sparse rows 1, 4
            loss = tf.reduce_sum(tf.square(picked - target))
        keras_sgd.apply([tf.convert_to_tensor(tape.gradient(loss, dense))], [dense])
    np.testing.assert_allclose(sparse.numpy()[[1, 4]], dense.numpy(), rtol=1e-6, atol=1e-6)
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(sparse.numpy()[untouched], start[untouched])
    np.testing.assert_array_equal(ours.momentums[0].numpy()[untouched], 0.0)
    assert not np.array_equal(sparse.numpy()[[1, 4]], start[[1, 4]])
