"""Error, AUC and balanced accuracy on hand-made predictions with hand-computed values."""

import math

import numpy as np
import pytest

from gnas_keras.training import metrics

# Three attributes, five examples. Column 0: labels 1 1 0 0 -1; column 1 has a tie and an
# unknown; column 2 has only positives (AUC undefined).
P = np.array([[0.9, 0.6, 0.7],
              [0.4, 0.3, 0.2],
              [0.6, 0.3, 0.8],
              [0.1, 0.8, 0.9],
              [0.99, 0.5, 0.1]])
Y = np.array([[1, 1, 1],
              [1, 0, 1],
              [0, 1, 1],
              [0, -1, 1],
              [-1, 0, 1]])


def test_errors_ignore_unknown_labels():
    # col 0: predictions 1 0 1 0 (5th unknown) vs 1 1 0 0 -> 2 wrong of 4.
    # col 1: predictions 1 0 0 (1) 0 (0.5 is "absent") vs 1 0 1 (-1) 0 -> 1 wrong of 4.
    # col 2: predictions 1 0 1 1 0 vs all 1 -> 2 wrong of 5.
    np.testing.assert_allclose(metrics.attribute_errors(P, Y), [0.5, 0.25, 0.4])
    assert metrics.compute(P, Y).mean_error == pytest.approx((0.5 + 0.25 + 0.4) / 3)


def test_auc_by_hand():
    # col 0: positives 0.9, 0.4; negatives 0.6, 0.1. Pairs (pos > neg): 0.9>0.6, 0.9>0.1,
    # 0.4>0.1, 0.4<0.6 -> 3/4.
    assert metrics.auc(P[:, 0], Y[:, 0]) == pytest.approx(0.75)
    # col 1: positives 0.6, 0.3; negatives 0.3, 0.5 (0.8 is unknown). Pairs: 0.6>0.3,
    # 0.6>0.5, 0.3=0.3 (one half), 0.3<0.5 -> 2.5/4.
    assert metrics.auc(P[:, 1], Y[:, 1]) == pytest.approx(0.625)
    # col 2: one class only.
    assert math.isnan(metrics.auc(P[:, 2], Y[:, 2]))
    m = metrics.compute(P, Y)
    np.testing.assert_allclose(m.aucs[:2], [0.75, 0.625])
    assert m.mean_auc == pytest.approx((0.75 + 0.625) / 2)  # NaN attribute left out


def test_auc_extremes_and_all_ties():
    assert metrics.auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert metrics.auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert metrics.auc([0.5] * 4, [0, 1, 0, 1]) == 0.5
    assert math.isnan(metrics.auc([0.5, 0.4], [-1, -1]))


def test_balanced_accuracy_by_hand():
    # col 0: recall of 1 = 1/2 (0.9 right, 0.4 wrong), recall of 0 = 1/2 -> 0.5.
    # col 1: recall of 1 = 1/2 (0.6 right, 0.3 wrong), recall of 0 = 2/2 -> 0.75.
    # col 2: only positives: recall of 1 = 3/5 -> 0.6.
    np.testing.assert_allclose(metrics.balanced_accuracies(P, Y), [0.5, 0.75, 0.6])
    assert metrics.compute(P, Y).mean_balanced_accuracy == pytest.approx(
        (0.5 + 0.75 + 0.6) / 3)


def test_unlabelled_attribute_is_nan_and_json_has_none():
    y = Y.copy()
    y[:, 1] = -1
    m = metrics.compute(P, y)
    assert math.isnan(m.errors[1]) and math.isnan(m.aucs[1])
    assert math.isnan(m.balanced_accuracies[1])
    d = m.to_dict(["a", "b", "c"])
    assert d["error"]["b"] is None and d["auc"]["c"] is None
    assert d["mean_error"] == pytest.approx((0.5 + 0.4) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="examples, N"):
        metrics.compute(P, Y[:, :2])


def test_average_ranks_equal_scipys_rankdata_with_ties():
    from scipy.stats import rankdata
    rng = np.random.default_rng(0)
    for x in [rng.integers(0, 5, 40).astype(float), rng.uniform(size=17), np.zeros(6),
              np.array([0.3]), np.array([2.0, 1.0, 2.0, 1.0, 3.0])]:
        np.testing.assert_array_equal(metrics.average_ranks(x), rankdata(x))
