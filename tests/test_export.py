"""Export: a supernet's tree and any architecture's tree network, pruned and BN-folded, equal
the in-memory model and reload in a fresh TensorFlow-only process."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gnas_keras.space.architecture import Architecture, BlockSpec, cost
from gnas_keras.export.saved_model import export_saved_model, inference_model
from gnas_keras.models.base import parameter_count
from gnas_keras.models.supernet import build_supernet
from gnas_keras.models.tree_net import build_tree_network, clone_block
from gnas_keras.space.search_space import get_space
from gnas_keras.training.loop import Loop
from gnas_keras.space.tree import Routing

N = 5
NAMES = ["Smiling", "5_o_Clock_Shadow", "Wearing Hat", "up/black", "age:old"]


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (64, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 2, (64, n)).astype("int32")
    return x, tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()


def trained_supernet():
    keras.utils.set_random_seed(0)
    space = get_space("tiny")
    model = build_supernet(space, N, (32, 32, 3))
    # fc1 uses conv3 blocks 0 and 1, which use conv2 blocks 2 and 1: the rest is dead.
    routing = Routing.from_lists([[0], [0] * 4, [2, 1, 2, 2], [0, 0, 1, 0, 1], range(N),
                                  range(N)])
    x, batches = data()
    loop = Loop(model, batches)
    model.set_routing(routing)
    loop.train(6)  # moves BN statistics away from their initial values
    return model, Architecture.from_space(space, routing), x[:8]


def test_pruned_model_equals_supernet_and_drops_dead_blocks():
    model, architecture, x = trained_supernet()
    expected = model(x, training=False).numpy()
    tree = model.to_tree_network(architecture)
    np.testing.assert_allclose(tree(x, training=False).numpy(), expected, atol=1e-4)
    folded = inference_model(tree)
    np.testing.assert_allclose(folded(x, training=False).numpy(), expected, atol=1e-4)
    names = {layer.name for layer in folded.layers}
    assert {"conv3_0", "conv3_1", "conv2_1", "conv2_2"} <= names
    assert not {"conv3_2", "conv3_3", "conv2_0", "conv2_3"} & names
    assert not any("_bn" in n for n in names)  # folded
    # conv1: 3*3*3*16+16, conv2/conv3 two live blocks each, fc per attribute.
    expected_params = (3 * 3 * 3 * 16 + 16) + 2 * (3 * 3 * 16 * 8 + 8) + 2 * (3 * 3 * 8 * 3 + 3) \
        + N * (3 * 16 + 16) + N * (16 * 16 + 16) + N * (16 * 2 + 2)  # conv3 global-pooled
    assert parameter_count(folded) == expected_params == cost(architecture, 32, 32).parameters


RELOAD = (
    "import sys, numpy as np, tensorflow as tf\n"
    "m = tf.saved_model.load(sys.argv[1])\n"
    "out = m.signatures['serving_default'](image=tf.constant(np.load(sys.argv[2])))\n"
    "np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})\n"
    "print(sorted(sys.modules).count('gnas_keras'))\n")


def reloaded_outputs(path, x, tmp_path):
    """The export's serving_default outputs on `x`, computed in a fresh process that can
    import only TensorFlow (no PYTHONPATH: our code is not importable there)."""
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run([sys.executable, "-c", RELOAD, path, str(tmp_path / "x.npy"),
                             str(tmp_path / "out.npz")], capture_output=True, text=True,
                            timeout=300, cwd=str(tmp_path),
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "0"
    return dict(np.load(tmp_path / "out.npz"))


def test_saved_model_reloads_in_a_fresh_process(tmp_path):
    model, architecture, x = trained_supernet()
    path = export_saved_model(model, architecture, NAMES, str(tmp_path), "faces")
    assert path == os.path.join(str(tmp_path), "faces", "1")
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    saved = json.load(open(os.path.join(path, "tree.json")))
    assert saved["attribute_names"] == NAMES
    assert Architecture.from_json(json.dumps(saved)) == architecture
    assert os.listdir(os.path.join(str(tmp_path), "faces")) == ["1"]  # no temporary leftovers
    # A second export is a new version, as TF Serving expects.
    assert export_saved_model(model, architecture, NAMES, str(tmp_path),
                              "faces").endswith(os.path.join("faces", "2"))
    out = reloaded_outputs(path, x, tmp_path)
    assert sorted(out) == sorted(NAMES)
    assert all(out[name].shape == (8,) for name in NAMES)
    np.testing.assert_allclose(
        np.stack([out[a] for a in NAMES], 1),
        tf.nn.softmax(model(x, training=False))[..., 1].numpy(), atol=1e-4)


def galm_shaped(n: int) -> Architecture:
    """GALM (sec. 3): a shared trunk, then per attribute its own conv block (one with kernel
    5, width 128 and a skip input from conv1) and its own fc block of width 64/128/256."""
    conv3 = [BlockSpec("conv", 8, 3, pool="global_avg") for _ in range(n)]
    conv3[1] = BlockSpec("conv", 128, 5, pool="global_avg", skips=((0, 0),))
    fc1 = [BlockSpec("fc", (64, 128, 256)[a % 3]) for a in range(n)]
    return Architecture(
        ("conv1", "conv2", "conv3", "fc1", "fc2"),
        ((0,), (0,), (0,) * n, tuple(range(n)), tuple(range(n))),
        ((BlockSpec("conv", 16, 3),), (BlockSpec("conv", 16, 3),), tuple(conv3), tuple(fc1),
         tuple(BlockSpec("fc", 2, activation=False) for _ in range(n))),
        group_layer="conv3")


def branching_shaped(n: int) -> Architecture:
    """Adaptive branching (Lu et al. sec. 3): layers of 1, 2 and 4 blocks of differing
    widths, then per attribute fc blocks under the 4 top blocks."""
    return Architecture(
        ("conv1", "conv2", "conv3", "fc1", "fc2"),
        ((0,), (0, 0), (0, 0, 1, 1), tuple(a % 4 for a in range(n)), tuple(range(n))),
        ((BlockSpec("conv", 16, 3),), (BlockSpec("conv", 8, 3), BlockSpec("conv", 12, 3)),
         tuple(BlockSpec("conv", w, 3) for w in (4, 6, 8, 10)),
         tuple(BlockSpec("fc", 16) for _ in range(n)),
         tuple(BlockSpec("fc", 2, activation=False) for _ in range(n))),
        group_layer="conv3")


@pytest.mark.parametrize("make", [galm_shaped, branching_shaped])
def test_any_architecture_trains_exports_and_reloads(make, tmp_path):
    architecture = make(N)
    architecture.validate()
    keras.utils.set_random_seed(0)
    model = build_tree_network(architecture, (32, 32, 3))
    x, batches = data()
    before = model(x[:8], training=False).numpy()
    train = Loop(model, batches).train(3)  # the shared loop: masked loss, L2, accuracy
    assert np.isfinite(train.loss) and train.accuracy.shape == (N,)
    assert not np.allclose(model(x[:8], training=False).numpy(), before)
    assert parameter_count(inference_model(model)) == cost(architecture, 32, 32).parameters
    path = export_saved_model(model, architecture, NAMES, str(tmp_path), "m")
    out = reloaded_outputs(path, x[:8], tmp_path)
    expected = tf.nn.softmax(model(x[:8], training=False))[..., 1].numpy()
    assert np.max(np.abs(np.stack([out[a] for a in NAMES], 1) - expected)) < 1e-4
    text = architecture.render(NAMES)
    assert sorted(line.split("-> ")[1] for line in text.splitlines() if "->" in line) \
        == sorted(NAMES)
    if make is galm_shaped:
        assert "conv3[1] conv 5x5 w128 pool global_avg +conv1[0]" in text


def test_cloning_a_block_preserves_the_function():
    """Adaptive branching's widening: a block is cloned and some of its children move to the
    clone; the grown network computes exactly what the old one did, and then both copies
    train apart."""
    architecture = branching_shaped(N)
    keras.utils.set_random_seed(0)
    model = build_tree_network(architecture, (32, 32, 3))
    x, batches = data()
    Loop(model, batches).train(2)
    children = [c for c, p in enumerate(architecture.parents[2]) if p == 1]  # conv3 2 and 3
    grown = clone_block(model, 1, 1, children[1:])
    assert grown.architecture.block_counts() == [1, 3, 4, N, N]
    assert grown.architecture.parents[2] == (0, 0, 1, 2)
    np.testing.assert_allclose(grown(x[:8], training=False).numpy(),
                               model(x[:8], training=False).numpy(), atol=1e-5)
    Loop(grown, batches).train(2)
    original, clone = grown.block_weights(1, 1), grown.block_weights(1, 2)
    assert not np.allclose(original[0], clone[0])


def paper_shaped(n: int) -> Architecture:
    """A paper-like tree (shallow_thin's layer kinds, smaller): siblings under shared
    parents in conv3 and fc1, then per attribute FC-2 and FC-3 each reading its own block."""
    return Architecture(
        ("conv1", "conv2", "conv3", "fc1", "fc2", "fc3"),
        ((0,), (0, 0), (0, 0, 1, 1), tuple(a % 4 for a in range(n)), tuple(range(n)),
         tuple(range(n))),
        ((BlockSpec("conv", 8, 3),), (BlockSpec("conv", 8, 3), BlockSpec("conv", 8, 3)),
         tuple(BlockSpec("conv", 4, 3) for _ in range(4)),
         tuple(BlockSpec("fc", 16) for _ in range(n)),
         tuple(BlockSpec("fc", 16) for _ in range(n)),
         tuple(BlockSpec("fc", 2, activation=False) for _ in range(n))),
        group_layer="conv3")


def graph_ops(model) -> int:
    spec = tf.TensorSpec([None, 32, 32, 3], tf.float32)
    fn = tf.function(lambda image: model(image, training=False))
    return len(fn.get_concrete_function(spec).graph.get_operations())


@pytest.mark.parametrize("make", [galm_shaped, branching_shaped, paper_shaped])
def test_fused_graph_computes_the_per_block_graph_with_fewer_ops(make):
    """Siblings as one kernel, per-attribute fc layers as one batched matmul: the same
    probabilities (max abs difference < 1e-4) and parameters, fewer ops."""
    from gnas_keras.models.fused import fused_inference_model
    keras.utils.set_random_seed(0)
    model = build_tree_network(make(N), (32, 32, 3))
    rng = np.random.default_rng(1)
    for v in model.non_trainable_variables:  # BN statistics away from 0 / 1: folding matters
        v.assign(rng.normal(0, 0.1, v.shape) if "mean" in v.path
                 else rng.uniform(0.5, 2.0, v.shape))
    x, _ = data()
    per_block, fused = inference_model(model, NAMES), fused_inference_model(model, NAMES)
    expected, got = per_block(x[:8]), fused(x[:8])
    assert sorted(got) == sorted(NAMES)
    assert max(np.max(np.abs(got[a].numpy() - expected[a].numpy())) for a in NAMES) < 1e-4
    assert parameter_count(fused) == parameter_count(per_block)
    assert graph_ops(fused) < graph_ops(per_block)
    if make is paper_shaped:  # fc2 and fc3: one batched matmul each
        assert [layer.name for layer in fused.layers if "batch" in layer.name
                and layer.name.startswith(("fc2", "fc3"))] == ["fc2_batch0", "fc3_batch0"]


def test_fused_export_reloads_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_tree_network(paper_shaped(N), (32, 32, 3))
    x, batches = data()
    Loop(model, batches).train(2)
    path = export_saved_model(model, model.architecture, NAMES, str(tmp_path), "m",
                              fused=True)
    assert json.load(open(os.path.join(path, "export.json")))["graph"] == "fused"
    out = reloaded_outputs(path, x[:8], tmp_path)
    expected = tf.nn.softmax(model(x[:8], training=False))[..., 1].numpy()
    assert np.max(np.abs(np.stack([out[a] for a in NAMES], 1) - expected)) < 1e-4
