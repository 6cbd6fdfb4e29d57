"""Hand-made cases for gnas_keras.methods.branching_ops (Lu et al. 2017, numpy parts)."""

import numpy as np
import pytest

from gnas_keras.methods import branching_ops as ops

# Batch 1: 4 examples, 3 tasks; task 2 unknown (-1) on example 1.
LABELS_1 = np.array([[1, 0, 1], [0, 0, -1], [1, 1, 0], [0, 1, 1]])
PROBS_1 = np.array([[0.9, 0.2, 0.6], [0.4, 0.1, 0.5], [0.3, 0.7, 0.2], [0.2, 0.4, 0.9]])
# Margins |t - s|:  task 0: .1 .4 .7 .2 (mean .35)  -> difficult 0 1 1 0
#                   task 1: .2 .1 .3 .6 (mean .3)   -> difficult 0 0 1 1
#                   task 2: .4  -  .2 .1 (mean .7/3) -> difficult 1 - 0 0
# Eq. 6 (agreements / jointly known): A01 = 2/4 (examples 0, 2), A02 = 1/3 (example 3 of
# 0, 2, 3), A12 = 0/3.
AFFINITY_1 = np.array([[1, 2 / 4, 1 / 3], [2 / 4, 1, 0], [1 / 3, 0, 1]])
MEAN_1 = np.array([0.35, 0.3, 0.7 / 3])

# Batch 2: 2 examples, all known. Margins: task 0 .38 .42; task 1 .1 .3; task 2 1.0 .2.
LABELS_2 = np.array([[1, 1, 1], [0, 0, 0]])
PROBS_2 = np.array([[0.62, 0.9, 0.0], [0.42, 0.3, 0.2]])


def test_error_margin_is_distance_of_label_and_probability():
    margins, known = ops.error_margins(LABELS_1, PROBS_1)
    np.testing.assert_allclose(margins[:, 0], [0.1, 0.4, 0.7, 0.2])
    assert known.tolist()[1] == [True, True, False]


def test_one_batch_affinity_by_hand():
    acc = ops.TaskAffinity(num_tasks=3)
    acc.update(LABELS_1, PROBS_1)
    np.testing.assert_allclose(acc.mean_margin(), MEAN_1)
    np.testing.assert_allclose(acc.affinity(), AFFINITY_1)
    # The pure function gives the same for this batch.
    margins, known = ops.error_margins(LABELS_1, PROBS_1)
    affinity, count = ops.batch_task_affinity(margins, known, MEAN_1)
    np.testing.assert_allclose(affinity, AFFINITY_1)
    assert count.tolist() == [[4, 4, 3], [4, 4, 3], [3, 3, 3]]


def test_decayed_weighted_average_over_two_batches_by_hand():
    acc = ops.TaskAffinity(num_tasks=3, decay=0.99)
    acc.update(LABELS_1, PROBS_1)
    acc.update(LABELS_2, PROBS_2)
    # Running means, weights 0.99 (batch 1) and 1 (batch 2):
    mean = (0.99 * MEAN_1 + np.array([0.4, 0.2, 0.6])) / 1.99  # .3751 .2497 .4176
    np.testing.assert_allclose(acc.mean_margin(), mean)
    # Batch 2 thresholds at those running means (not at the batch's own means, which would
    # make task 0 difficult 0 1): difficult task 0: 1 1; task 1: 0 1; task 2: 1 0
    # -> A01 = 1/2, A02 = 1/2, A12 = 0.
    batch_2 = np.array([[1, 0.5, 0.5], [0.5, 1, 0], [0.5, 0, 1]])
    np.testing.assert_allclose(acc.affinity(), (0.99 * AFFINITY_1 + batch_2) / 1.99)


def test_unknown_labels_are_ignored():
    acc = ops.TaskAffinity(num_tasks=3)
    acc.update(LABELS_1, PROBS_1)
    other = ops.TaskAffinity(num_tasks=3)
    probs = PROBS_1.copy()
    probs[1, 2] = 0.0  # the unknown entry: any prediction must change nothing
    other.update(LABELS_1, probs)
    np.testing.assert_array_equal(acc.affinity(), other.affinity())
    np.testing.assert_array_equal(acc.mean_margin(), other.mean_margin())
    # A batch where task 2 is unknown everywhere leaves its estimates as they were (ratios),
    # while the known tasks move.
    before = acc.affinity()
    acc.update(np.array([[1, 0, -1], [0, 1, -1]]), np.array([[0.0, 0.0, 0.9], [1.0, 1.0, 0.1]]))
    np.testing.assert_allclose(acc.mean_margin()[2], MEAN_1[2])
    np.testing.assert_allclose(acc.affinity()[:2, 2], before[:2, 2])
    assert acc.affinity()[0, 1] != before[0, 1]


def test_pairs_never_labelled_together_get_the_unobserved_value():
    # Tasks 0,1 from one dataset, task 2 from another: never known together.
    labels = np.array([[1, 0, -1], [0, 1, -1], [-1, -1, 1], [-1, -1, 0]])
    probs = np.array([[0.8, 0.1, 0.5], [0.6, 0.3, 0.5], [0.5, 0.5, 0.9], [0.5, 0.5, 0.4]])
    acc = ops.TaskAffinity(num_tasks=3, unobserved_affinity=0.25)
    acc.update(labels, probs)
    a = acc.affinity()
    assert a[0, 2] == a[2, 1] == 0.25
    np.testing.assert_array_equal(np.diag(a), [1, 1, 1])


def test_state_round_trips_through_arrays(tmp_path):
    acc = ops.TaskAffinity(num_tasks=3, decay=0.9)
    acc.update(LABELS_1, PROBS_1)
    np.savez(tmp_path / "affinity.npz", **acc.arrays())
    restored = ops.TaskAffinity.from_arrays(np.load(tmp_path / "affinity.npz"))
    acc.update(LABELS_2, PROBS_2)
    restored.update(LABELS_2, PROBS_2)
    assert restored.decay == 0.9
    np.testing.assert_array_equal(acc.affinity(), restored.affinity())
    np.testing.assert_array_equal(acc.mean_margin(), restored.mean_margin())


def test_branch_affinity_two_branches_three_tasks():
    a = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
    ab = ops.branch_affinity(a, [(0, 1), (2,)])
    # A~(0,1) = mean(min A(0,2), min A(1,2)) = (.3 + .5) / 2 = .4
    # A~(1,0) = mean over task 2 of min(A(0,2), A(1,2)) = .3  -> A_b(0,1) = .35
    # A_b(0,0) = mean(min(1, .8), min(.8, 1)) = .8; A_b(1,1) = 1.
    np.testing.assert_allclose(ab, [[0.8, 0.35], [0.35, 1.0]])
    # One task per branch: Eq. 7-8 reduce to Eq. 6.
    np.testing.assert_allclose(ops.branch_affinity(a, [(0,), (1,), (2,)]), a)


def _two_blocks():
    """4 branches: {0, 1} and {2, 3} at affinity .9 inside, .3 across."""
    a = np.full((4, 4), 0.3)
    a[:2, :2] = a[2:, 2:] = 0.9
    np.fill_diagonal(a, 1.0)
    return a


def test_width_loss_picks_the_arithmetic_minimum():
    a = _two_blocks()
    # L_s: d=1: 1 - .3 = .7; d=2 ({0,1},{2,3}): 1 - .9 = .1; d=3 (one pair split):
    # (.1 + 0 + 0) / 3; d=4: 0. Branch cost with L0 = .1, p_l = 1: (d - 1) * .2.
    separation = [0.7, 0.1, 0.1 / 3, 0.0]
    cost = [0.0, 0.2, 0.4, 0.6]
    selection = ops.select_width(a, pools_above=1, branch_factor=1.0, branch_unit_cost=0.1)
    np.testing.assert_allclose([c.separation for c in selection.candidates], separation)
    np.testing.assert_allclose([c.branch_cost for c in selection.candidates], cost)
    np.testing.assert_allclose([c.loss for c in selection.candidates],
                               [0.7, 0.3, 0.4 + 0.1 / 3, 0.6])
    assert selection.chosen.num_branches == 2
    assert selection.chosen.labels == (0, 0, 1, 1)
    # alpha = 10: losses 7, 1.2, .733, .6 -> every branch separate.
    assert ops.select_width(a, 1, 10.0, 0.1).chosen.num_branches == 4
    # The same L0 three pooling layers further down costs 8x: losses .7, 1.7, ... -> d = 1.
    assert ops.select_width(a, 4, 1.0, 0.1).chosen.num_branches == 1


def test_spectral_clustering_recovers_planted_groups_deterministically():
    rng = np.random.default_rng(0)
    groups = np.repeat([2, 0, 1], 4)
    rng.shuffle(groups)
    a = np.where(groups[:, None] == groups[None, :], 0.85, 0.35) + rng.uniform(0, 0.05, (12, 12))
    a = (a + a.T) / 2
    labels = ops.spectral_clustering(a, 3, seed=0)
    assert labels == ops.canonical_labels(groups)
    assert ops.spectral_clustering(a, 3, seed=0) == labels
    for d in range(1, 13):  # every group non-empty for every d
        assert sorted(set(ops.spectral_clustering(a, d))) == list(range(d))


def test_merge_branch_tasks():
    assert ops.merge_branch_tasks([(0,), (3, 1), (2,)], [5, 7, 5]) == ((0, 2), (1, 3))


def _relu(x):
    return np.maximum(x, 0.0)


def _conv_same(x, kernel, bias):
    """x [B, H, W, C], kernel [k, k, C, F], stride 1, SAME padding."""
    k = kernel.shape[0]
    pad = k // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    h, w = x.shape[1:3]
    patches = np.stack([xp[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)], 3)
    return np.einsum("bhwpc,pcf->bhwf", patches, kernel.reshape(k * k, *kernel.shape[2:])) + bias


def test_widening_dense_junction_preserves_outputs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 8))
    junction = [rng.normal(size=(8, 6)), rng.normal(size=6)]
    children = [(rng.normal(size=(6, 3)), rng.normal(size=3)) for _ in range(4)]
    before = [_relu(x @ junction[0] + junction[1]) @ k + b for k, b in children]
    widened = ops.widen_junction(junction, [3, 1, 3, 0])
    assert widened.copy_of_child == (0, 1, 0, 2) and len(widened.copies) == 3
    after = [_relu(x @ widened.copies[g][0] + widened.copies[g][1]) @ k + b
             for (k, b), g in zip(children, widened.copy_of_child)]
    assert max(np.abs(p - q).max() for p, q in zip(before, after)) < 1e-6
    # The copies are independent arrays: training one must not move another or the source.
    widened.copies[0][0][0, 0] += 1.0
    assert widened.copies[1][0][0, 0] == junction[0][0, 0] != widened.copies[0][0][0, 0]


def test_widening_conv_junction_preserves_outputs():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 6, 3))
    # Junction block: conv 3x3 + (inference) batch norm + ReLU.
    kernel, bias = rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    mean, var = rng.normal(size=4), rng.uniform(0.5, 2, 4)

    def block(weights, inputs):
        k, b, g, be, m, v = weights
        return _relu((_conv_same(inputs, k, b) - m) / np.sqrt(v + 1e-3) * g + be)

    junction = [kernel, bias, gamma, beta, mean, var]
    children = [(rng.normal(size=(3, 3, 4, 2)), rng.normal(size=2)) for _ in range(3)]
    before = [_conv_same(block(junction, x), k, b) for k, b in children]
    widened = ops.widen_junction(junction, [0, 1, 1])
    after = [_conv_same(block(widened.copies[g], x), k, b)
             for (k, b), g in zip(children, widened.copy_of_child)]
    assert max(np.abs(p - q).max() for p, q in zip(before, after)) < 1e-6


def test_somp_recovers_a_spanning_set_exactly():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(27, 3))
    w = np.concatenate([base, base @ rng.normal(size=(3, 29))], axis=1).reshape(3, 3, 3, 32)
    chosen = ops.somp_select(w, 3)
    assert len(set(chosen.tolist())) == 3
    assert ops.reconstruction_residual(w, chosen) < 1e-8


def test_somp_beats_random_filter_selection():
    # Random wide conv layer [3, 3, 8, 128] (72 inputs), keep 32 filters. Measured over seeds
    # 0-9 (see branching_ops.somp_select): SOMP's relative residual is below the mean of 20
    # random selections by 0.0355 on average (se 0.0011, smallest 0.029). Asserted: > 0.02.
    for seed in range(3):
        rng = np.random.default_rng(seed)
        w = rng.normal(size=(3, 3, 8, 128))
        somp = ops.reconstruction_residual(w, ops.somp_select(w, 32))
        random = np.mean([ops.reconstruction_residual(w, rng.choice(128, 32, replace=False))
                          for _ in range(20)])
        assert somp < random - 0.02, (seed, somp, random)


def test_somp_thin_layers_truncates_inputs_to_the_filters_below():
    rng = np.random.default_rng(4)
    wide = [ops.LayerWeights(rng.normal(size=(3, 3, 3, 8)), rng.normal(size=8)),
            ops.LayerWeights(rng.normal(size=(3, 3, 8, 6)), rng.normal(size=6)),
            # dense on a flattened 2x2x6 channels-last map: input index = position * 6 + c
            ops.LayerWeights(np.arange(24 * 5, dtype=float).reshape(24, 5) ** 0.5, None),
            ops.LayerWeights(rng.normal(size=(5, 4)), rng.normal(size=4))]
    thin = ops.somp_thin_layers(wide, [4, 3, 2, 10])
    conv1, conv2, fc1, fc2 = thin
    assert conv1.weights.kernel.shape == (3, 3, 3, 4)
    np.testing.assert_array_equal(conv1.weights.bias, wide[0].bias[conv1.filters])
    np.testing.assert_array_equal(
        conv2.weights.kernel, wide[1].kernel[:, :, conv1.filters][..., conv2.filters])
    rows = [p * 6 + c for p in range(4) for c in conv2.filters]
    np.testing.assert_array_equal(fc1.weights.kernel, wide[2].kernel[rows][:, fc1.filters])
    assert fc1.weights.bias is None and fc1.weights.kernel.shape == (12, 2)
    # A width at least the wide one keeps every filter, in order.
    np.testing.assert_array_equal(fc2.filters, np.arange(4))
    np.testing.assert_array_equal(fc2.weights.kernel, wide[3].kernel[fc1.filters])
    with pytest.raises(ValueError, match="layer 1"):
        ops.somp_thin_layers([wide[0], ops.LayerWeights(np.zeros((3, 3, 5, 2)))], [4, 2])


def test_thin_vgg16_layout():
    layout = ops.thin_vgg16(128)
    assert [s.width for s in layout] == [64, 64] + [128] * 11 + [256, 256]
    assert [s.name for s in layout if s.pool_after] == [
        "conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"]
    assert [s.kind for s in layout] == ["conv"] * 13 + ["fc"] * 2
    assert ops.pooling_layers_above(layout) == (5, 5, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0)
    assert [s.width for s in ops.thin_vgg16(32)] == [32] * 13 + [64, 64]
    small = ops.thin_vgg_small(16)
    assert [s.width for s in small] == [16] * 6 + [32, 32]
    assert ops.pooling_layers_above(small) == (3, 3, 2, 2, 1, 1, 0, 0)
