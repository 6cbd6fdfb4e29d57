"""Adaptive branching on the core: the thin network, the train step's predictions, widening
that leaves the outputs and optimizer slots as they were, SOMP from a saved wide model, and a
whole run. (The numpy parts are tested in test_branching_ops.py; resumption in
test_resume.py.)"""

import numpy as np
import pytest

from gnas_keras.space.architecture import cost
from gnas_keras.methods import branching as br
from gnas_keras.methods import branching_ops as ops


def small_network(num_attributes=5, omega=4, seed=0):
    import keras

    from gnas_keras.models.tree_net import build_tree_network
    keras.utils.set_random_seed(seed)
    return build_tree_network(br.thin_architecture(ops.thin_vgg_small(omega), num_attributes),
                              (32, 32, 3))


def batch(num_attributes=5, size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (size, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 2, (size, num_attributes)).astype("int32")
    labels[0, 1] = -1
    return images, labels


def loop_on(model, images, labels):
    import tensorflow as tf

    from gnas_keras.training.loop import Loop
    return Loop(model, lambda seed: tf.data.Dataset.from_tensors((images, labels)).repeat(), 0)


def test_thin_architecture_is_the_paper_layout():
    arch = br.thin_architecture(ops.thin_vgg16(32), 40)
    assert arch.layer_names[:2] == ("conv1_1", "conv1_2") and arch.layer_names[-3:] == (
        "fc6", "fc7", "logits")
    assert [b[0].width for b in arch.blocks[:13]] == [32] * 13
    assert [b[0].width for b in arch.blocks[13:15]] == [64, 64]
    assert sum(b[0].pool == "max" for b in arch.blocks[:13]) == 5
    assert arch.block_counts() == [1] * 15 + [40] and arch.group_layer == "fc7"
    small = br.thin_architecture(ops.thin_vgg_small(16), 16)
    # 32x32 -> 4x4x16 into fc4 (32 units), fc5 (32), 16 heads of 2 logits.
    assert cost(small, 32, 32).parameters == (
        3 * 9 * 16 + 5 * 16 * 9 * 16 + 6 * 16 + 4 * 4 * 16 * 32 + 32 + 32 * 32 + 32
        + 16 * (32 * 2 + 2))


def test_train_step_reports_its_batch_predictions():
    import tensorflow as tf
    model = small_network()
    images, labels = batch()
    model.report_predictions = True
    model.make_train_function(force=True)
    expected = tf.nn.softmax(model(images, training=True))[..., 1].numpy()  # before the step
    seen = []
    loop_on(model, images, labels).train(1, seen.append)
    np.testing.assert_allclose(seen[0]["present_probability"].numpy()[0], expected, atol=1e-5)
    np.testing.assert_array_equal(seen[0]["labels"].numpy()[0], labels)


def test_widening_preserves_outputs_and_copies_optimizer_slots():
    model = small_network()
    images, labels = batch()
    loop_on(model, images, labels).train(3)  # non-trivial momentum and BN statistics
    before = model(images, training=False).numpy()
    top = len(model.architecture.layer_names) - 2  # fc5: the junction under the heads
    grown = br.widen(model, top, [2, 0, 2, 1, 0])
    assert grown.architecture.parents[top + 1] == (0, 1, 0, 2, 1)
    assert grown.architecture.block_counts()[top] == 3
    assert np.abs(grown(images, training=False).numpy() - before).max() < 1e-6
    old, new = model.optimizer, grown.optimizer
    momentum = {v.path: new.momentums[new._get_variable_index(v)].numpy()
                for v in grown.trainable_variables}
    for v in model.trainable_variables:
        slot = old.momentums[old._get_variable_index(v)].numpy()
        assert np.abs(slot).sum() > 0
        copies = [v.path] if not v.path.startswith("fc5_0/") else [
            v.path.replace("fc5_0", f"fc5_{j}") for j in range(3)]
        for path in copies:
            np.testing.assert_array_equal(momentum[path], slot)
    assert int(new.iterations.numpy()) == 3
    # The next junction down (fc4 under the 3 fc5 blocks), a conv one below it.
    grown = br.widen(grown, top - 1, [0, 1, 1])
    grown = br.widen(grown, top - 2, [0, 1])
    assert grown.architecture.block_counts()[top - 2:top + 1] == [2, 2, 3]
    assert np.abs(grown(images, training=False).numpy() - before).max() < 1e-6
    with pytest.raises(ValueError, match="one label each"):
        br.widen(grown, top, [0, 1])


def save_wide_model(path, omega_wide=8, num_outputs=5):
    """A wide model of the small layout's shape, saved like a user's file."""
    import keras
    keras.utils.set_random_seed(3)
    x = image = keras.Input((32, 32, 3))
    for spec in ops.thin_vgg_small(omega_wide):
        if spec.kind == "conv":
            x = keras.layers.Conv2D(spec.width, 3, padding="same", activation="relu")(x)
            if spec.pool_after:
                x = keras.layers.MaxPooling2D(2)(x)
        else:
            if len(x.shape) > 2:
                x = keras.layers.Flatten()(x)
            x = keras.layers.Dense(spec.width, activation="relu")(x)
    model = keras.Model(image, keras.layers.Dense(num_outputs)(x))
    model.save(path)
    return model


def test_somp_initialises_the_thin_trunk_from_a_saved_wide_model(tmp_path):
    wide = save_wide_model(str(tmp_path / "wide.keras"))
    model = small_network()
    layout = ops.thin_vgg_small(4)
    residuals = br.somp_initialise(model, str(tmp_path / "wide.keras"), layout)
    assert len(residuals) == len(layout) and all(0 <= r < 1 for r in residuals)
    wide_kernels = [l.kernel.numpy() for l in wide.layers if hasattr(l, "kernel")]
    thin = ops.somp_thin_layers([ops.LayerWeights(k) for k in wide_kernels[:8]],
                                [s.width for s in layout])
    first = ops.somp_select(wide_kernels[0], 4)
    np.testing.assert_array_equal(model.block_weights(0, 0)[0], wide_kernels[0][..., first])
    np.testing.assert_array_equal(model.block_weights(1, 0)[0], thin[1].weights.kernel)
    np.testing.assert_array_equal(model.block_weights(7, 0)[0], thin[7].weights.kernel)
    wide_fc5 = [l for l in wide.layers if hasattr(l, "kernel")][7]
    np.testing.assert_array_equal(model.block_weights(7, 0)[1],
                                  wide_fc5.bias.numpy()[thin[7].filters])
    with pytest.raises(ValueError, match="somp_from: cannot load"):
        br.somp_initialise(model, str(tmp_path / "missing.keras"), layout)
    with pytest.raises(ValueError, match="has 9 conv/dense layers, the thin network needs 15"):
        br.somp_initialise(model, str(tmp_path / "wide.keras"), ops.thin_vgg16(4))


def test_a_branching_run_grows_reports_every_candidate_and_exports(synthetic_dir, tmp_path):
    from gnas_keras import run as run_module
    from gnas_keras.space.architecture import Architecture
    from gnas_keras.config import RunConfig

    config = RunConfig(
        data_dir=synthetic_dir, workdir=str(tmp_path / "run"), export_dir="",
        method="branching", batch_size=16, eval_batch_size=64, finetune_steps=2,
        methods={"branching": br.BranchingConfig(thin_layout="small", omega=4,
                                                 iterations_per_round=3,
                                                 branch_unit_cost=0.0,
                                                 max_widening_rounds=2)})
    report = run_module.run(config, out=lambda line: None)
    rounds = report["widening_rounds"]
    assert [r["layer"] for r in rounds] == ["fc5", "fc4"]
    # L0 = 0: the separation term alone decides; one-task branches separate fully (d = c).
    assert [len(r["candidates"]) for r in rounds] == [16, 16]
    assert [r["chosen"] for r in rounds] == [16, 16]
    for r in rounds:
        losses = [c["loss"] for c in r["candidates"]]
        assert r["chosen"] == r["candidates"][int(np.argmin(losses))]["num_branches"]
    arch = Architecture.from_dict(report["architecture"])
    assert arch.block_counts()[-3:] == [16, 16, 16] and arch.block_counts()[-4] == 1
    assert report["search_steps"] == 6 and np.isfinite(report["mean_test_error"])
