"""Tests of mcal_utils.optimality (DEIMOS Appendix A): greedy vs exhaustive batches."""

import importlib
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcal_utils import optimality as opt


def _plain_trace_reduction(V, S):
    """tr(V[:, S] V[S, S]^{-1} V[S, :]) the textbook way."""
    S = list(S)
    return float(np.trace(V[:, S] @ np.linalg.solve(V[np.ix_(S, S)], V[S, :])))


def _plain_best(V, b):
    return max((_plain_trace_reduction(V, S), S) for S in combinations(range(V.shape[0]), b))


def _random_cov(n, s, seed):
    return opt.simulation_covariance(np.random.default_rng(seed).standard_normal((n, s)))


def test_appendix_a_example_by_hand():
    V = opt.appendix_a_example()
    # single-point scores ||V[:, i]||^2 / V[i, i]: (81+9+4)/9, (9+4+9)/2, (4+9+81)/9
    g = opt.greedy_trace_reduction(V, 2)
    assert g.indices[0] == 1
    assert g.gains[0] == pytest.approx(22 / 2)
    # after conditioning on point 2 (index 1): V - v v^T / 2 with v = (3, 2, 3)
    # -> [[4.5, 0, -2.5], [0, 0, 0], [-2.5, 0, 4.5]]; score of 0 or 2 = (4.5^2 + 2.5^2) / 4.5
    assert g.indices[1] in (0, 2)
    assert g.gains[1] == pytest.approx((4.5**2 + 2.5**2) / 4.5)
    assert g.total == pytest.approx(11 + 26.5 / 4.5)  # 16.888...
    assert round(g.total, 1) == 16.9
    # optimum {1, 3}: A = [[9, 2], [2, 9]], A^{-1} = [[9, -2], [-2, 9]] / 77
    # rows (9, 2) and (2, 9) contribute 9 each; row (3, 3) contributes 2 * 3 * 21 / 77
    best = opt.exhaustive_best(V, 2)
    np.testing.assert_array_equal(best.indices, [0, 2])
    assert best.total == pytest.approx(18 + 126 / 77)  # 19.636...
    assert round(best.total, 1) == 19.6
    assert g.total / best.total == pytest.approx(0.86, abs=0.005)  # "around 86 %"
    assert opt.exhaustive_best(V, 2, method="cholesky").total == pytest.approx(best.total)


@pytest.mark.parametrize(
    "n, b, s", [(6, 1, 3), (6, 2, 50), (7, 3, 3), (8, 4, 2), (8, 4, 20), (9, 5, 4), (6, 6, 3), (7, 6, 5)]
)
@pytest.mark.parametrize("method", ["tree", "cholesky"])
def test_exhaustive_matches_itertools_loop(n, b, s, method):
    V = _random_cov(n, s, seed=n * 100 + b * 10 + s)
    value, S = _plain_best(V, b)
    best = opt.exhaustive_best(V, b, method=method, chunk_size=7)
    assert best.total == pytest.approx(value, rel=1e-10)
    np.testing.assert_array_equal(best.indices, S)
    assert best.n_subsets == len(list(combinations(range(n), b)))


def test_subset_values_and_trace_reduction_match_plain():
    V = _random_cov(9, 4, seed=3)
    S_k_b = np.array(list(combinations(range(9), 3)))
    plain_k = [_plain_trace_reduction(V, S) for S in S_k_b]
    np.testing.assert_allclose(opt.subset_values(V, S_k_b, chunk_size=10), plain_k, rtol=1e-10)
    assert opt.trace_reduction(V, [4, 1]) == pytest.approx(_plain_trace_reduction(V, [4, 1]))


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 8), st.integers(2, 6), st.integers(0, 10_000), st.data())
def test_greedy_total_is_f_of_its_set_and_never_beats_optimum(n, s, seed, data):
    b = data.draw(st.integers(1, n))
    V = _random_cov(n, s, seed)
    g = opt.greedy_trace_reduction(V, b)
    assert len(set(g.indices.tolist())) == b
    assert g.total == pytest.approx(_plain_trace_reduction(V, g.indices), rel=1e-9)
    best = opt.exhaustive_best(V, b)
    assert g.total <= best.total * (1 + 1e-12)
    if b == 1 or b == n:
        assert g.total == pytest.approx(best.total)


def test_greedy_first_pick_is_best_single_point():
    V = _random_cov(12, 5, seed=7)
    scores = [_plain_trace_reduction(V, [i]) for i in range(12)]
    assert opt.greedy_trace_reduction(V, 3).indices[0] == int(np.argmax(scores))


def test_simulation_covariance_construction():
    P = np.random.default_rng(0).standard_normal((5, 4))
    cov = np.cov(P)  # divisor n_samples - 1
    expected = cov + 0.1 * np.mean(np.diag(cov)) * np.eye(5)
    np.testing.assert_allclose(opt.simulation_covariance(P), expected, rtol=1e-12)


def test_simulate_ratios_and_determinism():
    r = opt.simulate(12, 3, 3, 6, random_state=1)
    assert r.n_trials == 6 and r.ratios_T.shape == (6,)
    assert np.all(r.ratios_T <= 1.0) and np.all(r.ratios_T > 0.5)
    np.testing.assert_array_equal(r.ratios_T[r.greedy_is_optimal_T], 1.0)
    r2 = opt.simulate(12, 3, 3, 6, random_state=1)
    np.testing.assert_array_equal(r.ratios_T, r2.ratios_T)
    # one sample dimension of spread (n_samples = 2): V = a a^T + tau I, greedy is exactly optimal
    r1 = opt.simulate(10, 4, 2, 5, random_state=2)
    assert np.all(r1.greedy_is_optimal_T)


def test_simulation_trial_covariance_rebuilds_each_trial():
    r = opt.simulate(8, 2, 3, 4, random_state=np.random.default_rng(7))
    for t in range(4):
        V = opt.simulation_trial_covariance(8, 3, t, 7)
        g = opt.greedy_trace_reduction(V, 2)
        best = opt.exhaustive_best(V, 2, method="cholesky")
        assert g.total == r.greedy_T[t]
        assert g.total / max(best.total, g.total) == pytest.approx(r.ratios_T[t], rel=1e-12)
    with pytest.raises(ValueError):
        opt.simulation_trial_covariance(8, 3, -1, 7)


def test_paper_tables_cover_the_nine_configurations():
    assert len(opt.PAPER_CONFIGS) == 9 and set(opt.PAPER_CONFIGS) == set(opt.PAPER_RESULTS)
    assert all(min_r > 0.97 for _, min_r in opt.PAPER_RESULTS.values())


@pytest.mark.parametrize(
    "V",
    [
        np.ones((2, 3)),
        np.array([[1.0, 2.0], [0.0, 1.0]]),
        np.array([[1.0, 2.0], [2.0, 1.0]]),
        np.array([[np.nan, 0.0], [0.0, 1.0]]),
    ],
)
def test_bad_covariance(V):
    with pytest.raises(ValueError):
        opt.greedy_trace_reduction(V, 1)
    with pytest.raises(ValueError):
        opt.exhaustive_best(V, 1)


def test_bad_arguments():
    V = opt.appendix_a_example()
    for b, error in ((0, ValueError), (4, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error):
            opt.greedy_trace_reduction(V, b)
        with pytest.raises(error):
            opt.exhaustive_best(V, b)
    with pytest.raises(ValueError):
        opt.exhaustive_best(V, 2, method="magic")
    with pytest.raises(ValueError):
        opt.simulate(10, 2, 1, 3)  # one sample has no covariance
    with pytest.raises(ValueError):
        opt.simulate(60, 30, 3, 1)  # far too many subsets
    with pytest.raises(ValueError):
        opt.simulation_covariance(np.ones(4))


def _deimos_from_covariance():
    try:
        mod = importlib.import_module("mcal_utils.acquisition")
    except ImportError:
        return None
    return getattr(mod, "deimos_from_covariance", None)


@pytest.mark.skipif(
    _deimos_from_covariance() is None,
    reason="mcal_utils.acquisition.deimos_from_covariance does not exist yet (acquisition/deimos.py)",
)
@pytest.mark.parametrize("seed", range(5))
def test_greedy_matches_acquisition_deimos(seed):
    V = _random_cov(40, 6, seed)
    batch = _deimos_from_covariance()(V, 5)
    ours = opt.greedy_trace_reduction(V, 5)
    np.testing.assert_array_equal(np.asarray(batch.indices), ours.indices)
    np.testing.assert_allclose(np.asarray(batch.scores), ours.gains, rtol=1e-9)


@pytest.mark.skipif(
    _deimos_from_covariance() is None,
    reason="mcal_utils.acquisition.deimos_from_covariance does not exist yet (acquisition/deimos.py)",
)
def test_appendix_a_example_matches_acquisition_deimos():
    V = opt.appendix_a_example()
    batch = _deimos_from_covariance()(V, 2)
    assert batch.indices[0] == 1
    assert float(np.sum(batch.scores)) == pytest.approx(opt.greedy_trace_reduction(V, 2).total)
