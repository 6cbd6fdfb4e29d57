"""The models on Keras' JAX backend: built and trained without TensorFlow, a routing change
that does not retrace, and JAX's stateless step equal to TensorFlow's (issue 31).

`tests/backend_step_check.py` runs the same steps in a process per backend; the JAX one runs
with TensorFlow unimportable (`tests/without_tensorflow.py`), as on the GPU machine."""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, "tests", "backend_step_check.py")
WITHOUT_TF = os.path.join(ROOT, "tests", "without_tensorflow.py")


def run(backend, *argv):
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                            timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("steps"))
    run("tensorflow", CHECK, out)
    run("jax", WITHOUT_TF, CHECK, out, f"--init={out}/init.npz")
    return tuple(np.load(os.path.join(out, f"{name}.npz"))
                 for name in ("tensorflow", "jax", "init"))


def test_jax_step_updates_every_weight_and_momentum_as_tensorflows(steps):
    """Supernet (per-block and grouped: 2 steps, a new routing, a step, layers below fc1
    frozen, a step), tree network and GALM's child (2 steps each): every variable after the
    steps, batch-norm statistics and momentum included, within 1e-4 (float32)."""
    tf_state, jax_state, _ = steps
    # The seed generators' states are each backend's own random streams (unused: no dropout).
    mixed = ("traces/", "mixed/", "losses/mixed")  # float16: the next test's bar
    compared = [k for k in tf_state.files if not k.startswith(mixed)
                and tf_state[k].dtype == jax_state[k].dtype]
    assert len(compared) > 50
    for key in compared:
        np.testing.assert_allclose(jax_state[key], tf_state[key], rtol=0, atol=1e-4,
                                   err_msg=key)
    assert len([k for k in compared if k.startswith("losses/")]) == 4


def test_jax_step_in_mixed_precision_follows_tensorflows(steps):
    """float16 compute: the two backends round differently (TensorFlow's CPU float16
    kernels against XLA's), so the bar is float16's: losses within 1e-3 (measured 2.1e-4;
    consecutive steps' losses differ by 0.07-0.13, so a step skipped by the loss scaling
    on one backend only would show), weights and momentum within 2e-2 (measured 6.4e-3;
    the four steps move them by up to 0.11)."""
    tf_state, jax_state, _ = steps
    np.testing.assert_allclose(jax_state["losses/mixed"], tf_state["losses/mixed"],
                               rtol=0, atol=1e-3)
    keys = [k for k in tf_state.files if k.startswith("mixed/")
            and tf_state[k].dtype == jax_state[k].dtype]
    assert len(keys) > 20
    for key in keys:
        np.testing.assert_allclose(jax_state[key], tf_state[key], rtol=0, atol=2e-2,
                                   err_msg=key)


def test_jax_step_is_traced_once_through_a_routing_change_and_a_frozen_trunk(steps):
    _, jax_state, _ = steps
    for name in ("supernet", "grouped", "mixed", "tree", "galm"):
        assert int(jax_state[f"traces/{name}"]) == 1, name


def test_jax_step_leaves_the_inactive_edges_alone(steps):
    """conv3's edges used by neither routing keep their initial weights bit for bit (the
    row-sparse update), and the JAX step leaves exactly TensorFlow's rows alone."""
    tf_state, jax_state, init = steps
    key = next(k for k in init.files if k.startswith("supernet/") and "conv3/kernel" in k)
    index = "supernet/" + key.split("/")[1]
    untouched = (tf_state[index] == init[key]).all(axis=(1, 2, 3, 4))
    assert untouched.any() and not untouched.all()
    np.testing.assert_array_equal((jax_state[index] == init[key]).all(axis=(1, 2, 3, 4)),
                                  untouched)
