"""Greedy and robust k-center against brute-force references."""

import importlib
import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

C = importlib.import_module("mcal_utils.acquisition.coreset")


def _brute_greedy(x, labelled, k):
    """O(N^2) farthest-first traversal on the full distance matrix."""
    d = cdist(x, x)
    centres = list(np.flatnonzero(labelled))
    picks, scores = [], []
    for _ in range(k):
        near = d[:, centres].min(axis=1) if centres else np.full(len(x), np.inf)
        near[centres] = -np.inf
        j = int(np.argmax(near))
        picks.append(j)
        scores.append(near[j])
        centres.append(j)
    return picks, scores


@pytest.mark.parametrize("seed, N, D, L, k", [(0, 50, 2, 1, 10), (1, 200, 8, 20, 25), (2, 120, 3, 60, 60)])
def test_greedy_matches_brute_force(seed, N, D, L, k):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    labelled = np.zeros(N, bool)
    labelled[rng.choice(N, L, replace=False)] = True
    ours = C.kcenter_greedy(x, labelled, k)
    ref_idx, ref_scores = _brute_greedy(x, labelled, k)
    assert ours.indices.tolist() == ref_idx
    np.testing.assert_allclose(ours.scores, ref_scores, rtol=1e-9)
    assert not labelled[ours.indices].any()
    assert np.all(np.diff(ours.scores) <= 1e-12)  # farthest-first distances never increase


def test_nearest_distance_chunked(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 5)) * 10
    m = np.zeros(300, bool)
    m[::7] = True
    ref = cdist(x, x[m]).min(axis=1)
    monkeypatch.setattr(C, "_CHUNK_ELEMENTS", 64)  # many row and column chunks
    np.testing.assert_allclose(C.nearest_centre_distance(x, m), ref, rtol=1e-9, atol=1e-9)
    assert C.covering_radius(x, m) == pytest.approx(ref.max(), rel=1e-9)
    assert C.covering_radius(x, m, n_outliers=3) == pytest.approx(np.sort(ref)[-4], rel=1e-9)


def test_greedy_torch_float32_and_no_labelled():
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(40, 3)), dtype=torch.float32)
    none = np.zeros(40, bool)
    with pytest.raises(ValueError, match="random_state"):
        C.kcenter_greedy(x, none, 3)
    a = C.kcenter_greedy(x, none, 3, random_state=5)
    b = C.kcenter_greedy(x, none, 3, random_state=5)
    assert a.indices.tolist() == b.indices.tolist() and np.isinf(a.scores[0])
    first = a.indices[0]
    d = cdist(x.double().numpy(), x.double().numpy()[[first]])[:, 0]
    assert a.indices[1] == np.argmax(d)


def test_greedy_bad_input():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="boolean"):
        C.kcenter_greedy(x, np.array([1, 0, 0, 0, 0]), 1)
    with pytest.raises(ValueError, match="larger than the number of unlabelled"):
        C.kcenter_greedy(x, np.array([True, True, False, False, False]), 4)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        C.kcenter_greedy(np.zeros(5), np.zeros(5, bool), 1)
    with pytest.raises(ValueError, match="finite"):
        C.kcenter_greedy(np.full((5, 2), np.nan), np.ones(5, bool), 0)


def _brute_robust_radius(x, labelled, k, n_outliers):
    d = cdist(x, x)
    pool = np.flatnonzero(~labelled)
    best = np.inf
    for new in itertools.combinations(pool, k):
        centres = np.concatenate([np.flatnonzero(labelled), new])
        near = np.sort(d[:, centres].min(axis=1))[::-1]
        best = min(best, near[n_outliers])
    return best


@pytest.mark.parametrize("seed, n_outliers", [(0, 0), (1, 1), (2, 3)])
def test_robust_is_optimal_on_tiny_instances(seed, n_outliers):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(14, 2)), rng.normal(size=(2, 2)) * 8])  # two far outliers
    labelled = np.zeros(16, bool)
    labelled[:2] = True
    out = C.kcenter_robust(x, labelled, 3, n_outliers=n_outliers)
    assert isinstance(out, C.CandidateBatch) and len(out) == 3
    assert not labelled[out.indices].any()
    assert out.radius == pytest.approx(_brute_robust_radius(x, labelled, 3, n_outliers), rel=1e-9)
    assert out.radius <= out.greedy_radius + 1e-12
    centres = labelled.copy()
    centres[out.indices] = True
    near = cdist(x, x[centres]).min(axis=1)
    assert out.outliers.size <= n_outliers
    assert np.all(near[np.setdiff1d(np.arange(16), out.outliers)] <= out.radius + 1e-9)
    assert np.all(near[out.outliers] > out.radius)


def test_robust_radius_not_above_greedy():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 4))
    labelled = np.zeros(80, bool)
    labelled[:5] = True
    greedy = C.kcenter_greedy(x, labelled, 6)
    g_mask = labelled.copy()
    g_mask[greedy.indices] = True
    out = C.kcenter_robust(x, labelled, 6, n_outliers=2)
    assert out.greedy_radius == pytest.approx(C.covering_radius(x, g_mask, n_outliers=2), rel=1e-9)
    assert out.radius <= out.greedy_radius + 1e-12
    assert out.outliers.size <= 2 and out.n_solves >= 1
    assert np.all(np.diff(out.scores) <= 1e-12)


def test_robust_refuses_large_and_bad_input():
    x = np.zeros((30, 2))
    m = np.zeros(30, bool)
    m[0] = True
    with pytest.raises(ValueError, match="max_points"):
        C.kcenter_robust(x, m, 2, max_points=20)
    with pytest.raises(ValueError, match="n_outliers"):
        C.kcenter_robust(x, m, 2, n_outliers=-1)
    with pytest.raises(ValueError, match="labelled point"):
        C.kcenter_robust(x, np.zeros(30, bool), 2)
    with pytest.raises(ValueError, match="larger than"):
        C.kcenter_robust(x, m, 30)
    assert len(C.kcenter_robust(np.random.default_rng(0).normal(size=(10, 2)), m[:10], 0)) == 0


def _clustered(rng, N, D=16, n_clusters=6):
    """Features shaped like a ReLU penultimate layer: a mixture of clusters, clipped at 0."""
    centres = rng.normal(size=(n_clusters, D)) * 3
    return np.maximum(centres[rng.integers(n_clusters, size=N)] + rng.normal(size=(N, D)), 0)


@pytest.mark.parametrize(
    "seed, N, L, k, n_outliers", [(10, 18, 1, 2, 0), (11, 18, 3, 3, 2), (12, 20, 2, 4, 1), (13, 16, 5, 2, 4)]
)
def test_robust_exact_matches_brute_force(seed, N, L, k, n_outliers):
    rng = np.random.default_rng(seed)
    x = _clustered(rng, N, D=3)
    labelled = np.zeros(N, bool)
    labelled[rng.choice(N, L, replace=False)] = True
    out = C.kcenter_robust(x, labelled, k, n_outliers=n_outliers)
    assert out.exact
    assert out.radius == pytest.approx(_brute_robust_radius(x, labelled, k, n_outliers), rel=1e-9)
    assert out.lower_bound == pytest.approx(out.radius, rel=1e-12)


def _brute_k1_radius(x, labelled, n_outliers):
    """Exact robust radius with one new centre: every candidate tried, vectorised."""
    d = cdist(x, x)
    near_N_J = np.minimum(d[:, labelled].min(axis=1)[:, None], d[:, ~labelled])
    return float(np.sort(near_N_J, axis=0)[-1 - n_outliers].min())


def test_robust_at_paper_size_batch_one_is_exact():
    """DEIMOS 7-vs-9 batch 1: 2500 candidates + 10 labelled, outlier fraction 0.001."""
    rng = np.random.default_rng(7)
    x = _clustered(rng, 2510, D=32)
    labelled = np.zeros(2510, bool)
    labelled[:10] = True
    out = C.kcenter_robust(x, labelled, 1, outlier_fraction=0.001, time_limit=30)
    assert out.exact and out.n_solves == 0 and out.seconds < 30
    assert out.radius == pytest.approx(_brute_k1_radius(x, labelled, 2), rel=1e-9)
    assert out.outliers.size <= 2


def test_robust_pairs_at_moderate_size_against_brute_force():
    rng = np.random.default_rng(8)
    x = _clustered(rng, 120, D=8)
    labelled = np.zeros(120, bool)
    labelled[:4] = True
    out = C.kcenter_robust(x, labelled, 2, n_outliers=1)
    assert out.exact
    assert out.radius == pytest.approx(_brute_robust_radius(x, labelled, 2, 1), rel=1e-9)


def test_robust_time_limit_keeps_a_feasible_bounded_answer():
    """A (nearly) zero time budget: no MILP finishes, the answer is the heuristic one with honest bounds."""
    rng = np.random.default_rng(9)
    x = _clustered(rng, 250, D=16)
    labelled = np.zeros(250, bool)
    labelled[:3] = True
    out = C.kcenter_robust(x, labelled, 6, n_outliers=1, time_limit=1e-6)
    full = C.kcenter_robust(x, labelled, 6, n_outliers=1, time_limit=60)
    assert out.n_solves == 0 and full.exact
    for r in (out, full):
        assert len(r) == 6 and not labelled[r.indices].any()
        assert r.lower_bound <= r.radius + 1e-12 <= r.greedy_radius + 2e-12
        centres = labelled.copy()
        centres[r.indices] = True
        assert r.radius == pytest.approx(C.covering_radius(x, centres, n_outliers=1), rel=1e-12)
    assert full.radius <= out.radius + 1e-12 and out.lower_bound <= full.radius + 1e-12


def test_robust_size_check_and_outlier_fraction():
    C.check_robust_size(3010)  # 7-vs-9 batch 25 at its last step
    with pytest.raises(ValueError, match="max_points=5000"):
        C.check_robust_size(5001)
    with pytest.raises(ValueError, match="n_points"):
        C.check_robust_size(0)
    rng = np.random.default_rng(10)
    x = rng.normal(size=(40, 2))
    m = np.zeros(40, bool)
    m[0] = True
    a = C.kcenter_robust(x, m, 2, outlier_fraction=0.05)  # floor(0.05 * 40) = 2 outliers
    b = C.kcenter_robust(x, m, 2, n_outliers=2)
    assert a.radius == b.radius and a.indices.tolist() == b.indices.tolist()
    with pytest.raises(ValueError, match="not both"):
        C.kcenter_robust(x, m, 2, n_outliers=1, outlier_fraction=0.05)
    with pytest.raises(ValueError, match="outlier_fraction"):
        C.kcenter_robust(x, m, 2, outlier_fraction=1.5)
    with pytest.raises(ValueError, match="time_limit"):
        C.kcenter_robust(x, m, 2, time_limit=0)
    C.check_robust_problem(2535, 25, outlier_fraction=0.001, time_limit=5.0)
    for bad, match in [
        (dict(outlier_fraction=2.0), "outlier_fraction"),
        (dict(n_outliers=-1), "n_outliers"),
        (dict(time_limit=-1), "time_limit"),
        (dict(max_points=100), "max_points=100"),
    ]:
        with pytest.raises(ValueError, match=match):
            C.check_robust_problem(2535, 25, **bad)
    for bad, match in [
        (dict(outlier_fraction="0.1"), "outlier_fraction"),
        (dict(n_outliers=1.5), "n_outliers"),
        (dict(time_limit="5"), "time_limit"),
    ]:
        with pytest.raises(TypeError, match=match):
            C.check_robust_problem(2535, 25, **bad)
    with pytest.raises(TypeError, match="n_points"):
        C.check_robust_size(3010.0)
    with pytest.raises(TypeError, match="k must be an int"):
        C.check_robust_problem(2535, 2.5)
    with pytest.raises(ValueError, match="k must be an int"):
        C.check_robust_problem(2535, 2535)


@pytest.mark.slow
def test_greedy_mnist_sized_memory():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(60000, 128)).astype(np.float32)
    m = np.zeros(60000, bool)
    m[:500] = True
    out = C.kcenter_greedy(x, m, 20)
    assert len(set(out.indices.tolist())) == 20 and not m[out.indices].any()
