"""--mixed_precision on CPU (numerics only, no speed): float16 compute, float32 variables,
loss scaling, float32 loss and metrics; a supernet search step keeps its row sparsity, and
the export (float32, BN folded) computes what the mixed-precision supernet does within
float16 rounding. --jit_compile is refused together with a strategy."""

import numpy as np
import pytest

N, SHAPE = 6, (32, 32, 3)


@pytest.fixture(scope="module")
def trained():
    import keras
    import tensorflow as tf
    from gnas_keras.models.supernet import build_supernet
    from gnas_keras.space.search_space import get_space
    from gnas_keras.training.loop import Loop
    from gnas_keras.space.tree import random_routing

    space = get_space("tiny")
    keras.utils.set_random_seed(0)
    model = build_supernet(space, N, SHAPE, mixed_precision=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, *SHAPE)).astype("float32")
    y = rng.integers(-1, 2, (32, N)).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    routing = random_routing(space, N, rng)
    model.set_routing(routing)
    loop = Loop(model, data)
    before = model.routed_layers[3].kernel.numpy().copy()
    train = loop.train(3)
    return model, space, routing, loop, data, x, before, train


def test_policy_variables_and_loss_scaling(trained):
    import keras
    model = trained[0]
    assert model.dtype_policy.name == "mixed_float16"
    assert keras.config.dtype_policy().name == "float32"  # restored after the build
    assert {v.dtype for v in model.weights if "parents" not in v.path} == {"float32"}
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert str(model(trained[5][:2]).dtype) == "<dtype: 'float16'>"


def test_search_step_is_finite_and_moves_only_active_rows(trained):
    model, _, routing, loop, data, _, before, train = trained
    assert np.isfinite(train.loss) and train.loss > 0
    assert train.accuracy.dtype == np.float32 or train.accuracy.dtype == np.float64
    layer = model.routed_layers[3]
    moved = np.abs(layer.kernel.numpy() - before).reshape(len(before), -1).max(axis=1) > 0
    active = set(int(e) for e in layer.edge_ids().numpy())
    assert set(np.flatnonzero(moved)) == active
    evaluation = loop.evaluate(loop.iterator(data), 2)
    assert np.isfinite(evaluation.loss) and np.all(np.isfinite(evaluation.accuracy))


def test_export_matches_the_mixed_precision_model(trained, tmp_path):
    import tensorflow as tf
    from gnas_keras.space.architecture import Architecture
    from gnas_keras.export.saved_model import export_saved_model
    model, space, routing, _, _, x, _, _ = trained
    names = [f"a{i}" for i in range(N)]
    path = export_saved_model(model, Architecture.from_space(space, routing), names,
                              str(tmp_path), "m")
    served = tf.saved_model.load(path).signatures["serving_default"](image=tf.constant(x))
    exported = np.stack([served[a].numpy() for a in names], axis=1)
    assert exported.dtype == np.float32
    logits = tf.cast(model(x, training=False), tf.float32)
    mixed = tf.nn.softmax(logits)[..., 1].numpy()
    # float16 activations: a few 1e-3 in probability
    assert np.abs(exported - mixed).max() < 2e-2, np.abs(exported - mixed).max()


def test_jit_compile_with_a_strategy_is_refused():
    from gnas_keras.config import RunConfig
    with pytest.raises(ValueError, match="jit_compile"):
        RunConfig(jit_compile=True, strategy="mirrored").validate()
    RunConfig(jit_compile=True, mixed_precision=True).validate()


def test_tree_network_trains_with_xla_and_mixed_precision():
    import keras
    import tensorflow as tf
    from gnas_keras.space.architecture import Architecture
    from gnas_keras.models.tree_net import build_tree_network
    from gnas_keras.space.search_space import get_space
    from gnas_keras.training.loop import Loop
    from gnas_keras.space.tree import random_routing

    space = get_space("tiny")
    keras.utils.set_random_seed(1)
    architecture = Architecture.from_space(space, random_routing(space, N,
                                                                 np.random.default_rng(1)))
    model = build_tree_network(architecture, SHAPE, mixed_precision=True, jit_compile=True)
    rng = np.random.default_rng(1)
    data = tf.data.Dataset.from_tensors(
        (rng.uniform(0, 255, (16, *SHAPE)).astype("float32"),
         rng.integers(-1, 2, (16, N)).astype("int32"))).repeat()
    losses = [Loop(model, data).train(4).loss for _ in range(2)]
    assert all(np.isfinite(losses)) and losses[1] < losses[0]
