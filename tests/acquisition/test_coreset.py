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


@pytest.mark.slow
def test_greedy_mnist_sized_memory():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(60000, 128)).astype(np.float32)
    m = np.zeros(60000, bool)
    m[:500] = True
    out = C.kcenter_greedy(x, m, 20)
    assert len(set(out.indices.tolist())) == 20 and not m[out.indices].any()
