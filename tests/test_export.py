import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from gnas_keras.export import build_tree_model, export_saved_model
from gnas_keras.space import get_space
from gnas_keras.supernet import build_supernet, parameter_count
from gnas_keras.training import Loop
from gnas_keras.tree import Routing

N = 5
NAMES = ["Smiling", "5_o_Clock_Shadow", "Wearing Hat", "up/black", "age:old"]


def trained_supernet():
    space = get_space("tiny")
    model = build_supernet(space, N, (32, 32, 3), seed=0)
    # fc1 uses conv3 blocks 0 and 1, which use conv2 blocks 2 and 1: the rest is dead.
    routing = Routing.from_lists([[0], [0] * 4, [2, 1, 2, 2], [0, 0, 1, 0, 1], range(N),
                                  range(N)])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (64, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 2, (64, N)).astype("int32")
    loop = Loop(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat())
    model.set_routing(routing)
    loop.train(6)  # moves BN statistics away from their initial values
    return model, routing, x[:8]


def test_pruned_model_equals_supernet_and_drops_dead_blocks():
    model, routing, x = trained_supernet()
    expected = model(x, training=False).numpy()
    for fold in (True, False):
        pruned = build_tree_model(model, routing, fold_bn=fold)
        np.testing.assert_allclose(pruned(x, training=False).numpy(), expected, atol=1e-4)
    pruned = build_tree_model(model, routing, fold_bn=True)
    names = {layer.name for layer in pruned.layers}
    assert {"conv3_0", "conv3_1", "conv2_1", "conv2_2"} <= names
    assert not {"conv3_2", "conv3_3", "conv2_0", "conv2_3"} & names
    assert not any("_bn" in n for n in names)  # folded
    # conv1: 3*3*3*16+16, conv2/conv3 two live blocks each, fc per attribute.
    expected_params = (3 * 3 * 3 * 16 + 16) + 2 * (3 * 3 * 16 * 8 + 8) + 2 * (3 * 3 * 8 * 4 + 4) \
        + N * ((4 * 4 * 4) * 16 + 16) + N * (16 * 16 + 16) + N * (16 * 2 + 2)
    assert parameter_count(pruned) == expected_params


def test_saved_model_reloads_in_a_fresh_process(tmp_path):
    model, routing, x = trained_supernet()
    tree_json = routing.to_json(model.space, NAMES)
    path = export_saved_model(model, routing, NAMES, str(tmp_path), "faces", tree_json)
    assert path == os.path.join(str(tmp_path), "faces", "1")
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert json.load(open(os.path.join(path, "tree.json")))["attribute_names"] == NAMES
    assert os.listdir(os.path.join(str(tmp_path), "faces")) == ["1"]  # no temporary leftovers
    # A second export is a new version, as TF Serving expects.
    assert export_saved_model(model, routing, NAMES, str(tmp_path), "faces",
                              tree_json).endswith(os.path.join("faces", "2"))

    in_memory = build_tree_model(model, routing, attribute_names=NAMES)(x, training=False)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({path!r})\n"
        "out = m.signatures['serving_default'](image=tf.constant(np.load(sys.argv[1])))\n"
        "np.savez(sys.argv[2], **{k: v.numpy() for k, v in out.items()})\n"
        "print(sorted(sys.modules).count('gnas_keras'))\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.npy"),
                             str(tmp_path / "out.npz")], capture_output=True, text=True,
                            timeout=300, cwd=str(tmp_path),
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "0"  # our code was not importable there
    out = np.load(tmp_path / "out.npz")
    assert sorted(out.files) == sorted(NAMES)
    for name in NAMES:
        assert out[name].shape == (8,)
        np.testing.assert_allclose(out[name], in_memory[name].numpy(), atol=1e-4)
    np.testing.assert_allclose(
        np.stack([out[a] for a in NAMES], 1),
        tf.nn.softmax(model(x, training=False))[..., 1].numpy(), atol=1e-4)
