"""GALM's child (`gnas_keras.models.galm_net`) on the JAX backend: it builds and runs in a
process where TensorFlow cannot be imported, and with the same weights and decisions it
computes what it computes under TensorFlow.

The JAX side runs in a subprocess (``KERAS_BACKEND=jax``; the backend is fixed when Keras is
first imported, and this process has TensorFlow's). The weights come from this process: the
child built here after seeding Keras, saved variable by variable in ``model.variables``
order with their paths, and loaded there into the JAX child built alike."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gnas_keras.methods import galm
from gnas_keras.methods import galm_space as gs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, BATCH = 3, 4
SETTINGS = dict(weight_decay=1e-4, dropout=0.1, bn_momentum=0.5, bn_epsilon=1e-3)

# Runs under JAX with TensorFlow's import blocked (tests/without_tensorflow.py). argv: the .npz this process wrote, the
# .npz to write. Prints one JSON line: the backend, the logits' shapes in inference and
# training mode, whether TensorFlow got imported.
JAX_SCRIPT = r'''
import json
import sys

import keras
import numpy as np

from gnas_keras.methods import galm
from gnas_keras.methods import galm_space as gs
from gnas_keras.models.galm_net import GalmChild

saved = np.load(sys.argv[1])
settings = json.loads(str(saved["settings"]))
space = galm.make_space("synthetic")
child = GalmChild(space, settings.pop("num_attributes"), tuple(settings.pop("image_shape")),
                  **settings)
child.set_choices([gs.decode(space, int(i)) for i in saved["choices"]])
paths = [str(p) for p in saved["paths"]]
# The seed generators' names count those made before in the process: compare the rest.
ours = [v.path for v in child.variables]
assert ([p for p in ours if "seed_generator" not in p]
        == [p for p in paths if "seed_generator" not in p]), (ours, paths)
for i, v in enumerate(child.variables):
    value = saved[f"v{i}"]
    assert tuple(v.shape) == value.shape, (v.path, v.shape, value.shape)
    if "seed_generator" not in v.path:  # the random state is the backend's own (dtype too)
        v.assign(value)
assert (child.body.actions.numpy() == saved["actions"]).all()  # the choices, as loaded

images = saved["images"]
inference = keras.ops.convert_to_numpy(child(images, training=False))
l2 = float(keras.ops.convert_to_numpy(child.l2_in_use()))
training = keras.ops.convert_to_numpy(child(images, training=True))  # updates BN statistics
after = {f"v{i}": keras.ops.convert_to_numpy(v.value) for i, v in enumerate(child.variables)}
np.savez(sys.argv[2], logits=inference, training_logits=training, l2=l2, **after)
print(json.dumps({"backend": keras.backend.backend(), "inference": list(inference.shape),
                  "training": list(training.shape),
                  "tensorflow_imported": "tensorflow" in sys.modules}))
'''


def _choices(space):
    """No skips; every skip; choice 1234 (three different architectures)."""
    return [0, space.num_choices - 1, 1234]


def _variables(model):
    return {f"v{i}": np.array(v.numpy()) for i, v in enumerate(model.variables)}


@pytest.fixture(scope="module")
def both_backends(tmp_path_factory):
    """(what this process saved, what the JAX process saved, its JSON line)."""
    import keras
    from gnas_keras.models.galm_net import GalmChild
    tmp = tmp_path_factory.mktemp("galm_backends")
    space = galm.make_space("synthetic")
    keras.utils.set_random_seed(0)
    child = GalmChild(space, N, (32, 32, 3), **SETTINGS)
    child.set_choices([gs.decode(space, i) for i in _choices(space)])
    images = np.random.default_rng(1).uniform(0, 255, (BATCH, 32, 32, 3)).astype(np.float32)
    settings = dict(SETTINGS, num_attributes=N, image_shape=[32, 32, 3])
    saved = dict(settings=json.dumps(settings), choices=np.asarray(_choices(space)),
                 paths=np.asarray([v.path for v in child.variables]),
                 actions=child.body.actions.numpy(), images=images, **_variables(child))
    np.savez(tmp / "here.npz", **saved)
    ours = dict(saved, logits=np.asarray(child(images, training=False)),
                l2=float(child.l2_in_use()))
    ours["training_logits"] = np.asarray(child(images, training=True))
    ours["after"] = _variables(child)  # BN statistics after one training-mode pass

    (tmp / "jax_child.py").write_text(JAX_SCRIPT)
    # XLA's optimization level 0: JAX compiles every eager op (each initializer, each
    # layer's ops) for its shapes, and that takes 12 of the child's 13 s of building at the
    # default level, 2 s at level 0 (2 cores).
    xla_flags = " ".join([os.environ.get("XLA_FLAGS", ""),
                          "--xla_backend_optimization_level=0"]).strip()
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags,
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    without_tensorflow = os.path.join(ROOT, "tests", "without_tensorflow.py")
    result = subprocess.run([sys.executable, without_tensorflow, str(tmp / "jax_child.py"),
                             str(tmp / "here.npz"),
                             str(tmp / "jax.npz")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    return ours, dict(np.load(tmp / "jax.npz")), line


def test_the_child_runs_under_jax_without_tensorflow(both_backends):
    _, _, line = both_backends
    assert line == {"backend": "jax", "inference": [BATCH, N, 2], "training": [BATCH, N, 2],
                    "tensorflow_imported": False}


def test_the_child_computes_the_same_under_both_backends(both_backends):
    ours, theirs, _ = both_backends
    assert np.abs(theirs["logits"] - ours["logits"]).max() < 1e-4
    assert float(theirs["l2"]) == pytest.approx(ours["l2"], rel=1e-6)
    # Training mode: batch statistics in every conv block (dropout draws differ by backend,
    # so the logits are compared by shape only), and the moving statistics they update.
    assert theirs["training_logits"].shape == ours["training_logits"].shape
    paths = [str(p) for p in ours["paths"]]
    for i, path in enumerate(paths):
        if "seed_generator" not in path:
            np.testing.assert_allclose(theirs[f"v{i}"], ours["after"][f"v{i}"], rtol=1e-4,
                                       atol=1e-5, err_msg=path)
