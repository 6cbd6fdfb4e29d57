import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from gnas_keras.space import get_space
from gnas_keras.supernet import build_supernet, masked_cross_entropy
from gnas_keras.training import Loop
from gnas_keras.tree import random_routing

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
    model = build_supernet(space, N, (32, 32, 3), seed=0)
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
    model = build_supernet(space, N, (32, 32, 3), seed=0, weight_decay=1e-2)
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
            if var.path.endswith("parents"):
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


def test_mirrored_strategy_on_two_logical_cpus():
    """Runs in a fresh process: logical devices must be configured before TF starts."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "mirrored_check.py")],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2 routing identical" in result.stdout
