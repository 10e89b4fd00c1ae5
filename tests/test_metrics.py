"""Tests of mcal_utils.metrics against hand-computed values and invariants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcal_utils import metrics

curve_st = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=30)


def test_aubc_and_tp_by_hand():
    a = [0.5, 0.7, 0.6, 0.9]
    # intervals: (0.5, 0.7), (0.7, 0.6), (0.6, 0.9); n - 1 = 3
    areas = [(0.5 + 0.7) / 2, (0.7 + 0.6) / 2, (0.6 + 0.9) / 2]  # 0.60, 0.65, 0.75
    deltas = [0.7 - 0.5, 0.6 - 0.7, 0.9 - 0.6]  # +0.2, -0.1, +0.3
    assert metrics.aubc(a) == pytest.approx(sum(areas) / 3)  # 2.0 / 3
    assert metrics.aubc(a) == pytest.approx(2.0 / 3.0)
    tpr = deltas[0] + deltas[2]  # 0.5
    paulc = areas[0] + areas[2]  # 1.35
    tnr = deltas[1]  # -0.1
    naulc = areas[1]  # 0.65
    parts = metrics.tp_parts(a)
    assert parts.tpr == pytest.approx(0.5) and parts.paulc == pytest.approx(1.35)
    assert parts.tnr == pytest.approx(-0.1) and parts.naulc == pytest.approx(0.65)
    expected = (paulc * tpr + naulc * tnr) / 3  # (0.675 - 0.065) / 3 = 0.20333...
    assert metrics.tp(a) == pytest.approx(expected)
    assert metrics.tp(a) == pytest.approx(0.61 / 3)


def test_zero_increment_counts_as_negative_part():
    # the MC-dropout-entropy paper's code: its "else" branch takes delta <= 0, so a flat interval adds its area to NAULC
    parts = metrics.tp_parts([0.4, 0.4, 0.8])
    assert parts.naulc == pytest.approx(0.4) and parts.tnr == 0.0
    assert parts.paulc == pytest.approx(0.6) and parts.tpr == pytest.approx(0.4)
    assert parts.tp == pytest.approx(0.6 * 0.4 / 2)


@given(st.floats(0.0, 1.0), st.integers(2, 40))
def test_constant_curve(c, n):
    values = [c] * n
    assert metrics.tp(values) == 0.0
    assert metrics.aubc(values) == pytest.approx(c)


@settings(max_examples=50)
@given(curve_st)
def test_monotone_curve_has_no_negative_rise(values):
    up = np.sort(values)
    parts = metrics.tp_parts(up)
    assert parts.tnr == 0.0
    assert parts.tpr == pytest.approx(up[-1] - up[0])
    assert parts.paulc + parts.naulc == pytest.approx(metrics.aubc(up) * (len(up) - 1))


@settings(max_examples=50)
@given(curve_st)
def test_reversal_symmetries(values):
    a = np.asarray(values)
    # AUBC is symmetric under reversal; TPR and TNR swap sign and role
    assert metrics.aubc(a[::-1]) == pytest.approx(metrics.aubc(a))
    f, r = metrics.tp_parts(a), metrics.tp_parts(a[::-1])
    strictly = np.all(np.diff(a) != 0)
    if strictly:
        assert r.tpr == pytest.approx(-f.tnr, abs=1e-12)
        assert r.tnr == pytest.approx(-f.tpr, abs=1e-12)
        assert r.paulc == pytest.approx(f.naulc, abs=1e-12)
        assert r.tp == pytest.approx(-f.tp, abs=1e-12)
    assert 0.0 <= metrics.aubc(a) <= 1.0


def test_highest_first_argmax():
    assert metrics.highest([0.1, 0.9, 0.9, 0.3], [10, 20, 30, 40]) == (0.9, 20)
    with pytest.raises(ValueError):
        metrics.highest([0.1, 0.2], [10])
    with pytest.raises(ValueError):
        metrics.highest([0.1, 0.2], [20, 10])


def test_acquisitions_to_threshold():
    budgets = [0, 10, 20, 30]
    curves = np.array([[0.5, 0.8, 0.96, 0.97], [0.5, 0.9, 0.94, 0.99]])  # mean .5 .85 .95 .98
    assert metrics.acquisitions_to_threshold(budgets, curves, 0.95) == 20
    assert metrics.acquisitions_to_threshold(budgets, curves, 0.85) == 10
    assert metrics.acquisitions_to_threshold(budgets, curves, 0.99) is None
    mse = np.array([0.2, 0.12, 0.1, 0.09])
    assert metrics.acquisitions_to_threshold(budgets, mse, 0.11, higher_is_better=False) == 20
    assert metrics.acquisitions_to_threshold(budgets, mse, 0.05, higher_is_better=False) is None
    with pytest.raises(ValueError):
        metrics.acquisitions_to_threshold(budgets, curves[:, :3], 0.9)
    with pytest.raises(ValueError):
        metrics.acquisitions_to_threshold(budgets, curves, float("nan"))


def test_threshold_crossings_mean_and_per_seed_by_hand():
    budgets = [0, 1, 2, 3, 4]
    curves = np.array(
        [
            [0.90, 0.96, 0.95, 0.97, 0.98],  # seed 0 reaches .96 at 1
            [0.90, 0.93, 0.97, 0.96, 0.99],  # seed 1 at 2
            [0.90, 0.91, 0.92, 0.94, 0.97],
        ]
    )  # seed 2 at 4; mean .90 .9333 .9467 .9567 .98
    out = metrics.threshold_crossings(budgets, curves, [0.95, 0.96, 0.99, 0.995])
    np.testing.assert_array_equal(out.mean_K, [3, 4, np.nan, np.nan])
    np.testing.assert_array_equal(out.per_seed_S_K, [[1, 1, np.nan, np.nan], [2, 2, 4, np.nan], [4, 4, np.nan, np.nan]])
    np.testing.assert_array_equal(out.spread_K()[:2], [3, 3])
    assert out.higher_is_better and out.thresholds_K.tolist() == [0.95, 0.96, 0.99, 0.995]


def test_threshold_crossings_lower_is_better():
    mse = np.array([[0.2, 0.12, 0.10, 0.09], [0.2, 0.10, 0.11, 0.08]])  # mean .2 .11 .105 .085
    out = metrics.threshold_crossings([75, 80, 90, 100], mse, [0.11, 0.09], higher_is_better=False)
    np.testing.assert_array_equal(out.mean_K, [80, 100])
    np.testing.assert_array_equal(out.per_seed_S_K, [[90, 100], [80, 100]])
    with pytest.raises(ValueError, match="higher_is_better"):
        metrics.threshold_crossings([0, 1], mse[:, :2], [0.1], higher_is_better="no")
    with pytest.raises(ValueError, match="thresholds"):
        metrics.threshold_crossings([0, 1], mse[:, :2], [])
    with pytest.raises(ValueError, match="budgets"):
        metrics.threshold_crossings([0, 1, 2], mse, [0.1])


def _plain_first_crossing(budgets, values, t, higher):
    for b, v in zip(budgets, values):
        if (v >= t) if higher else (v <= t):
            return float(b)
    return np.nan


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(2, 12),
    st.lists(st.floats(0, 1), min_size=1, max_size=4),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_threshold_crossings_match_plain_loops(n_seeds, n_points, thresholds, higher, seed):
    rng = np.random.default_rng(seed)
    curves = np.round(rng.uniform(size=(n_seeds, n_points)), 2)
    budgets = np.cumsum(rng.integers(1, 5, size=n_points))
    out = metrics.threshold_crossings(budgets, curves, thresholds, higher_is_better=higher)
    for k, t in enumerate(thresholds):
        np.testing.assert_array_equal(out.mean_K[k], _plain_first_crossing(budgets, curves.mean(0), t, higher))
        for s_ in range(n_seeds):
            np.testing.assert_array_equal(
                out.per_seed_S_K[s_, k], _plain_first_crossing(budgets, curves[s_], t, higher)
            )
        legacy = metrics.acquisitions_to_threshold(budgets, curves, t, higher_is_better=higher)
        assert (legacy is None and np.isnan(out.mean_K[k])) or legacy == out.mean_K[k]


def test_window_summary_uses_first_steps_plus_one_points():
    values = [0.1, 0.2, 0.5, 0.4, 0.99]
    w = metrics.window_summary(values, 2)
    assert w.max == 0.5
    assert w.aubc == pytest.approx(metrics.aubc([0.1, 0.2, 0.5]))
    assert w.tp == pytest.approx(metrics.tp([0.1, 0.2, 0.5]))
    with pytest.raises(ValueError):
        metrics.window_summary(values, 5)
    with pytest.raises(ValueError):
        metrics.window_summary(values, 0)


def test_mean_std():
    c = np.array([[1.0, 2.0], [3.0, 6.0]])
    mean, std = metrics.mean_std(c)
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(std, [np.sqrt(2.0), np.sqrt(8.0)])
    mean1, std1 = metrics.mean_std([0.3, 0.4])
    np.testing.assert_allclose(std1, 0.0)
    with pytest.raises(ValueError):
        metrics.mean_std(np.ones((2, 2, 2)))


@pytest.mark.parametrize("bad", [[0.5], [[0.1, 0.2]], [0.1, np.nan], []])
def test_curve_validation(bad):
    with pytest.raises(ValueError):
        metrics.aubc(bad)
    with pytest.raises(ValueError):
        metrics.tp(bad)


def _calibrated(n, rng):
    """Confidence ~ U(0.5, 1), correct with exactly that probability (2 classes)."""
    conf = rng.uniform(0.5, 1.0, n)
    correct = rng.uniform(size=n) < conf
    labels = rng.integers(0, 2, n)
    pred = np.where(correct, labels, 1 - labels)
    probs = np.empty((n, 2))
    probs[np.arange(n), pred] = conf
    probs[np.arange(n), 1 - pred] = 1 - conf
    return probs, labels


def test_ece_calibrated_is_small_and_overconfident_is_not():
    rng = np.random.default_rng(0)
    probs, labels = _calibrated(200_000, rng)
    assert metrics.expected_calibration_error(probs, labels) < 0.01
    # always-correct predictions at confidence 0.6: ECE = 0.4 exactly
    p = np.tile([0.6, 0.4], (100, 1))
    assert metrics.expected_calibration_error(p, np.zeros(100, dtype=int)) == pytest.approx(0.4)


def test_reliability_curve_by_hand():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    rc = metrics.reliability_curve(probs, labels, n_bins=5)  # bins of width 0.2, right-closed
    np.testing.assert_array_equal(rc.counts_B, [0, 0, 1, 1, 2])  # 0.55 -> (0.4, 0.6]; 0.7 -> (0.6, 0.8]
    np.testing.assert_allclose(rc.accuracy_B[2:], [1.0, 1.0, 0.5])
    np.testing.assert_allclose(rc.confidence_B[2:], [0.55, 0.7, 0.925])
    assert np.isnan(rc.accuracy_B[0])
    ece = (1 * 0.45 + 1 * 0.3 + 2 * 0.425) / 4
    assert rc.ece == pytest.approx(ece)
    # a confidence exactly on an edge goes to the lower bin (right-closed)
    rc2 = metrics.reliability_curve(np.array([[0.6, 0.4]]), np.array([0]), n_bins=5)
    assert rc2.counts_B[2] == 1


@pytest.mark.parametrize(
    "probs, labels",
    [
        (np.array([[0.5, 0.6]]), np.array([0])),  # rows do not sum to 1
        (np.array([0.5, 0.5]), np.array([0])),  # 1-D
        (np.array([[0.5, 0.5]]), np.array([2])),  # label out of range
        (np.array([[0.5, 0.5]]), np.array([0, 1])),  # shape mismatch
        (np.array([[0.5, 0.5]]), np.array([0.5])),  # non-integer label
    ],
)
def test_calibration_validation(probs, labels):
    with pytest.raises(ValueError):
        metrics.expected_calibration_error(probs, labels)


def test_class_balance_by_hand():
    cb = metrics.class_balance(np.array([0, 0, 0, 1]), 2)
    np.testing.assert_array_equal(cb.counts_C, [3, 1])
    np.testing.assert_allclose(cb.fractions_C, [0.75, 0.25])
    assert cb.total_variation == pytest.approx(0.25)  # one pick of four must change class
    h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) / np.log(2)
    assert cb.normalised_entropy == pytest.approx(h)
    assert cb.min_fraction == 0.25
    balanced = metrics.class_balance(np.arange(10).repeat(3), 10)
    assert balanced.total_variation == pytest.approx(0.0) and balanced.normalised_entropy == pytest.approx(1.0)
    one = metrics.class_balance(np.full(5, 3), 4)  # all picks in one class; absent classes count 0
    np.testing.assert_array_equal(one.counts_C, [0, 0, 0, 5])
    assert one.total_variation == pytest.approx(0.75) and one.normalised_entropy == 0.0 and one.min_fraction == 0.0
    ref = metrics.class_balance(np.array([0, 0, 0, 1]), 2, reference_C=[0.75, 0.25])
    assert ref.total_variation == pytest.approx(0.0)


@pytest.mark.parametrize(
    "labels, n, ref, match",
    [
        (np.array([0, 2]), 2, None, "lie in"),
        (np.array([0.5, 1.0]), 2, None, "integer"),
        (np.zeros((2, 2), int), 2, None, "1-D"),
        (np.array([0, 1]), 1, None, "n_classes"),
        (np.array([0, 1]), 2, [0.6, 0.6], "reference_C"),
    ],
)
def test_class_balance_validation(labels, n, ref, match):
    with pytest.raises(ValueError, match=match):
        metrics.class_balance(labels, n, reference_C=ref)


def test_prediction_quality_by_hand():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], dtype=np.float32)
    labels = np.array([0, 1, 1, 0])
    q = metrics.prediction_quality(probs, labels)
    assert q.accuracy == 0.5
    conf = np.mean([0.9, 0.8, 0.6, 0.7])
    assert q.overconfidence == pytest.approx(conf - 0.5, abs=1e-6)
    assert q.nll == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.3])), rel=1e-6)
    assert q.ece == metrics.expected_calibration_error(probs, labels)
    zero = metrics.prediction_quality(np.array([[1.0, 0.0]]), np.array([1]))
    assert zero.nll == pytest.approx(-np.log(1e-12))  # clipped, not infinite
    with pytest.raises(ValueError):
        metrics.prediction_quality(probs, labels[:3])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 50), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_prediction_quality_invariants(n, c, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), size=n)
    labels = rng.integers(0, c, n)
    q = metrics.prediction_quality(probs, labels)
    assert 0.0 <= q.accuracy <= 1.0 and 0.0 <= q.ece <= 1.0 and q.nll >= 0.0
    assert -1.0 <= q.overconfidence <= 1.0
    # a perfectly confident, always-right predictor: accuracy 1, no over-confidence, no loss
    perfect = metrics.prediction_quality(np.eye(c)[labels], labels)
    assert perfect.accuracy == 1.0 and perfect.overconfidence == 0.0 and perfect.nll == pytest.approx(0.0)
