"""DEIMOS (Nagpal & Knowles, Algorithm 1): every fast backend (numba, torch) against the dense
transcription, the mask-space block update against the dense Schur complement, the dense
transcription against a plain loop, the paper's Appendix A example, X_samp construction, and every
input error."""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.linalg import solve_triangular
from threadpoolctl import threadpool_info

from mcal_utils.acquisition.base import CandidateBatch
from mcal_utils.acquisition.deimos import (
    DeimosSample,
    deimos,
    deimos_dense,
    deimos_from_covariance,
    deimos_sample,
    numba_backend,
)
from mcal_utils.acquisition.deimos.algebra import condition_on_block, exact_W

RTOL = 1e-8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny problems: one thread avoids thread start-up costs on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- #
# helpers: problems and a plain-loop reference
# --------------------------------------------------------------------------- #
def _problem(rng, J, S, C, spread=2.0):
    """Regression (J, S) normals, or classification (J, S, C) softmax probabilities."""
    if C == 1:
        return rng.normal(size=(J, S))
    logits = rng.normal(size=(1, S, C)) * spread + rng.normal(size=(J, S, C))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def _covariance(preds, tau_inv):
    """V = sample covariance over passes (divisor J - 1) of the S*C outputs + tau_inv I."""
    y = preds if preds.ndim == 3 else preds[..., None]
    J = y.shape[0]
    flat = y.reshape(J, -1)
    return np.cov(flat, rowvar=False, ddof=1).reshape(flat.shape[1], flat.shape[1]) + tau_inv * np.eye(flat.shape[1])


def _loop_reference(V, C, candidates, k):
    """Algorithm 1 with python loops over candidates and np.linalg.solve."""
    V = np.array(V, dtype=np.float64)
    picks, scores = [], []
    for _ in range(k):
        best_s, best = None, -np.inf
        for s in candidates:
            if s in picks:
                continue
            B = slice(s * C, (s + 1) * C)
            val = np.trace(V[:, B] @ np.linalg.solve(V[B, B], V[B, :]))
            if val > best:  # strict: ties keep the lower index
                best_s, best = s, val
        B = slice(best_s * C, (best_s + 1) * C)
        V = V - V[:, B] @ np.linalg.solve(V[B, B], V[B, :])
        picks.append(best_s)
        scores.append(best)
    return np.array(picks), np.array(scores)


def _random_case(rng):
    J = int(rng.integers(2, 25))
    S = int(rng.integers(2, 20))
    C = int(rng.choice([1, 2, 3, 4, 10]))
    tau_inv = float(rng.choice([3e-5, 1e-4, 1e-2, 0.3, 2.0]))
    preds = _problem(rng, J, S, C, spread=float(rng.choice([0.3, 2.0, 5.0])))
    candidates = None
    if rng.random() < 0.5:
        mask = rng.random(S) < 0.6
        mask[rng.integers(S)] = True
        candidates = mask if rng.random() < 0.5 else np.flatnonzero(mask)[rng.permutation(mask.sum())]
    n_cand = S if candidates is None else len(np.flatnonzero(candidates) if candidates.dtype == bool else candidates)
    k = int(rng.integers(1, n_cand + 1))
    return preds, k, tau_inv, candidates


# --------------------------------------------------------------------------- #
# Appendix A
# --------------------------------------------------------------------------- #
V_APPENDIX_A = np.array([[9.0, 3.0, 2.0], [3.0, 2.0, 3.0], [2.0, 3.0, 9.0]])


def _trace_reduction(V, batch):
    B = list(batch)
    return float(np.trace(V[:, B] @ np.linalg.solve(V[np.ix_(B, B)], V[B, :])))


def test_appendix_a_greedy_vs_optimum():
    res = deimos_from_covariance(V_APPENDIX_A, 2)
    assert isinstance(res, CandidateBatch)
    assert res.indices[0] == 1  # the middle point first
    # scores by hand: |V[:,1]|^2 / V[1,1] = 22 / 2; then (4.5^2 + 2.5^2) / 4.5
    np.testing.assert_allclose(res.scores, [11.0, (4.5**2 + 2.5**2) / 4.5], rtol=1e-12)
    assert res.indices[1] == 0  # 0 and 2 tie; the lower index wins
    greedy_total = res.scores.sum()
    assert greedy_total == pytest.approx(16.9, abs=0.05)
    assert greedy_total == pytest.approx(_trace_reduction(V_APPENDIX_A, res.indices), rel=1e-12)
    pairs = {pair: _trace_reduction(V_APPENDIX_A, pair) for pair in itertools.combinations(range(3), 2)}
    best = max(pairs, key=pairs.get)
    assert best == (0, 2)
    assert pairs[best] == pytest.approx(19.6, abs=0.05)
    assert greedy_total / pairs[best] == pytest.approx(0.86, abs=0.01)


def test_appendix_a_candidates_and_loop():
    res = deimos_from_covariance(V_APPENDIX_A, 2, candidates=np.array([True, False, True]))
    assert list(res.indices) == [0, 2]
    picks, scores = _loop_reference(V_APPENDIX_A, 1, [0, 1, 2], 3)
    full = deimos_from_covariance(torch.tensor(V_APPENDIX_A), 3)
    np.testing.assert_array_equal(full.indices, picks)
    np.testing.assert_allclose(full.scores, scores, rtol=1e-12)


# --------------------------------------------------------------------------- #
# dense transcription vs plain loop; fast vs dense
# --------------------------------------------------------------------------- #
def test_dense_matches_plain_loop():
    rng = np.random.default_rng(1)
    for _ in range(25):
        J, S, C = int(rng.integers(2, 12)), int(rng.integers(2, 9)), int(rng.choice([1, 2, 3]))
        tau_inv = float(rng.choice([3e-5, 0.01, 1.0]))
        preds = _problem(rng, J, S, C)
        mask = rng.random(S) < 0.7
        mask[0] = True
        k = int(rng.integers(1, mask.sum() + 1))
        res = deimos_dense(preds, k, tau_inv, candidates=mask)
        picks, scores = _loop_reference(_covariance(preds, tau_inv), C, np.flatnonzero(mask), k)
        np.testing.assert_array_equal(res.indices, picks)
        np.testing.assert_allclose(res.scores, scores, rtol=1e-9)


@pytest.mark.parametrize("array", ["numpy", "torch"])
def test_block_update_matches_dense_schur_complement(array):
    """condition_on_block (the mask-space algebra both fast backends run) against Algorithm 1's
    dense update V - V[:, B] V[B, B]^-1 V[B, :]: the posterior M, W = M H_Q M, every other
    candidate's rank-C updated K_i and R_i, and its score (eq. 5 / 6)."""
    rng = np.random.default_rng(21)
    J, S, C, t = 7, 6, 3, 0.05
    A = rng.normal(size=(S * C, J))
    V = t * np.eye(S * C) + A @ A.T
    if array == "torch":
        to, chol, eye_C = torch.tensor, torch.linalg.cholesky, torch.eye(C, dtype=torch.float64)

        def solve(L, X):
            return torch.linalg.solve_triangular(L, X, upper=False)
    else:
        to, chol, eye_C = np.asarray, np.linalg.cholesky, np.eye(C)

        def solve(L, X):
            return solve_triangular(L, X, lower=True)

    M, HQ = to(np.eye(J)), to(A.T @ A)
    picked: list[int] = []
    for s in (2, 4):  # condition on point 2, then on point 4
        B = slice(s * C, (s + 1) * C)
        G = to(A[B])
        W = np.asarray(exact_W(M, HQ))
        M_old = np.asarray(M)
        upd = condition_on_block(M, HQ, G, chol(t * eye_C + G @ M @ G.T), t, eye_C, solve)
        M, HQ = upd.M, upd.HQ
        u, m_t = np.asarray(upd.u), np.asarray(upd.m_tilde)
        V = V - V[:, B] @ np.linalg.solve(V[B, B], V[B, :])
        picked.append(s)
        rows_Q = np.setdiff1d(np.arange(S * C), np.concatenate([np.arange(p * C, (p + 1) * C) for p in picked]))
        A_Q = A[rows_Q]  # V_P[Q, Q] = A_Q M A_Q^T + t I
        np.testing.assert_allclose(
            A_Q @ np.asarray(M) @ A_Q.T + t * np.eye(len(rows_Q)), V[np.ix_(rows_Q, rows_Q)], atol=1e-10
        )
        W_new = np.asarray(exact_W(M, HQ))
        np.testing.assert_allclose(W_new, W - m_t @ u.T - u @ m_t.T, atol=1e-10)
        for i in sorted(set(range(S)) - set(picked)):
            Gi = A[i * C : (i + 1) * C]
            b, a = Gi @ u, Gi @ m_t
            K_i = t * np.eye(C) + Gi @ np.asarray(M) @ Gi.T
            R_i = Gi @ W_new @ Gi.T
            np.testing.assert_allclose(t * np.eye(C) + Gi @ M_old @ Gi.T - b @ b.T, K_i, atol=1e-10)
            np.testing.assert_allclose(Gi @ W @ Gi.T - a @ b.T - b @ a.T, R_i, atol=1e-10)
            Bi = slice(i * C, (i + 1) * C)
            score_dense = np.trace(V[:, Bi] @ np.linalg.solve(V[Bi, Bi], V[Bi, :]))
            score = 2 * t * C + np.trace(np.linalg.solve(K_i, R_i - t * t * np.eye(C)))
            assert score == pytest.approx(score_dense, rel=1e-9)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_fast_matches_dense_many_cases(backend):
    rng = np.random.default_rng(2024)
    n_class = n_cand_subset = 0
    for _ in range(60):
        preds, k, tau_inv, candidates = _random_case(rng)
        fast = deimos(preds, k, tau_inv, candidates, backend=backend)
        dense = deimos_dense(preds, k, tau_inv, candidates)
        np.testing.assert_array_equal(fast.indices, dense.indices)
        np.testing.assert_allclose(fast.scores, dense.scores, rtol=RTOL)
        n_class += preds.ndim == 3
        n_cand_subset += candidates is not None
    assert n_class >= 20 and n_cand_subset >= 20  # the loop covers both kinds and both modes


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_fast_matches_dense_small_tau_long_batch(backend):
    """tau_inv = 3e-5 with batches that exhaust the J-dimensional mask space."""
    rng = np.random.default_rng(7)
    for J, S, C, k in [(20, 30, 10, 12), (50, 40, 10, 30), (8, 40, 1, 25), (3, 15, 1, 10), (12, 25, 3, 20)]:
        preds = _problem(rng, J, S, C)
        train = np.zeros(S, dtype=bool)
        train[: S // 5] = True  # training members of X_samp: never candidates
        fast = deimos(preds, k, 3e-5, candidates=~train, backend=backend)
        dense = deimos_dense(preds, k, 3e-5, candidates=~train)
        np.testing.assert_array_equal(fast.indices, dense.indices)
        np.testing.assert_allclose(fast.scores, dense.scores, rtol=RTOL)
        assert not train[fast.indices].any()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    J=st.integers(2, 15),
    S=st.integers(1, 12),
    C=st.sampled_from([1, 2, 5]),
    log_tau=st.floats(math.log(3e-5), math.log(3.0)),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_fast_matches_dense_property(J, S, C, log_tau, seed, data):
    preds = _problem(np.random.default_rng(seed), J, S, C)
    k = data.draw(st.integers(1, S))
    dense = deimos_dense(preds, k, math.exp(log_tau))
    for backend in ("numba", "torch"):
        fast = deimos(torch.as_tensor(preds), k, math.exp(log_tau), backend=backend)
        np.testing.assert_array_equal(fast.indices, dense.indices)
        np.testing.assert_allclose(fast.scores, dense.scores, rtol=RTOL)


def test_scores_sum_to_joint_trace_reduction_including_training_rows():
    """Sequential Schur updates = conditioning on the union; training rows count."""
    rng = np.random.default_rng(3)
    J, S, C, t = 15, 12, 3, 1e-3
    preds = _problem(rng, J, S, C)
    cand = np.arange(4, S)  # points 0..3 are training members
    res = deimos(preds, 5, t, candidates=cand)
    V = _covariance(preds, t)
    rows = np.concatenate([np.arange(s * C, (s + 1) * C) for s in res.indices])
    reduction = np.trace(V[:, rows] @ np.linalg.solve(V[np.ix_(rows, rows)], V[rows, :]))
    np.testing.assert_allclose(res.scores.sum(), reduction, rtol=1e-9)
    # dropping the training members changes the objective (they count in the trace)
    alone = deimos(preds[:, 4:], 1, t)
    first_rows = slice(res.indices[0] * C, (res.indices[0] + 1) * C)
    own = np.trace(V[:, first_rows] @ np.linalg.solve(V[first_rows, first_rows], V[first_rows, :]))
    assert res.scores[0] == pytest.approx(own, rel=1e-10)
    assert alone.scores[0] < res.scores[0]


def test_candidate_mask_and_index_array_agree():
    rng = np.random.default_rng(4)
    preds = _problem(rng, 10, 15, 4)
    mask = np.zeros(15, dtype=bool)
    mask[[1, 4, 5, 9, 14]] = True
    a = deimos(preds, 3, 1e-3, candidates=mask)
    b = deimos(preds, 3, 1e-3, candidates=np.array([14, 9, 5, 4, 1]))
    c = deimos(preds, 3, 1e-3, candidates=torch.tensor([1, 4, 5, 9, 14]))
    for other in (b, c):
        np.testing.assert_array_equal(a.indices, other.indices)
        np.testing.assert_array_equal(a.scores, other.scores)
    assert set(a.indices) <= {1, 4, 5, 9, 14}
    assert a.indices.dtype == np.int64 and a.scores.dtype == np.float64


def test_ties_go_to_the_lowest_index():
    rng = np.random.default_rng(5)
    y = rng.normal(size=(8, 5)) * 0.1
    y[:, 1] = y[:, 3] = rng.normal(size=8) * 3.0  # two identical, dominant points
    for fn in (deimos, deimos_dense):
        res = fn(y, 2, 0.01)
        assert res.indices[0] == 1
        assert res.scores[1] < 0.1 * res.scores[0]  # 3 is then explained by 1 up to noise


@pytest.mark.parametrize("threads", [2, 3])
def test_worker_ranges_match_single_range(monkeypatch, threads):
    """Large CPU runs split the candidates into one range per worker thread; no global state changes."""
    rng = np.random.default_rng(8)
    preds = _problem(rng, 12, 40, 3)
    mask = rng.random(40) < 0.8
    monkeypatch.setattr(numba_backend, "MIN_PART", 4)
    monkeypatch.setattr(numba_backend, "LANES", 4)  # several blocks per range, padding lanes
    one = deimos(preds, 8, 1e-4, candidates=mask, threads=1)
    n = int(mask.sum())
    assert len(numba_backend.parts_of(n, threads, -(-n // 4))) == threads
    torch_threads = torch.get_num_threads()
    blas_threads = [lib["num_threads"] for lib in threadpool_info()]
    many = deimos(preds, 8, 1e-4, candidates=mask, threads=threads)
    assert torch.get_num_threads() == torch_threads  # untouched
    assert [lib["num_threads"] for lib in threadpool_info()] == blas_threads  # BLAS limit restored
    assert not [th for th in threading.enumerate() if th.name.startswith("deimos")]  # pool shut down
    np.testing.assert_array_equal(one.indices, many.indices)
    np.testing.assert_allclose(one.scores, many.scores, rtol=1e-12)
    dense = deimos_dense(preds, 8, 1e-4, candidates=mask)
    np.testing.assert_array_equal(many.indices, dense.indices)
    np.testing.assert_allclose(many.scores, dense.scores, rtol=RTOL)


def test_torch_backend_leaves_torch_threads_alone():
    rng = np.random.default_rng(9)
    preds = _problem(rng, 10, 30, 4)
    before = torch.get_num_threads()
    res = deimos(torch.as_tensor(preds), 5, 1e-3, backend="torch")
    assert torch.get_num_threads() == before
    np.testing.assert_array_equal(res.indices, deimos_dense(preds, 5, 1e-3).indices)


def test_sum_direction_dropped_only_when_negligible():
    """Exact probabilities: the class-sum row is dropped (C' = C - 1); sums off by ~1e-5 keep all C rows.
    Both give the dense picks."""
    rng = np.random.default_rng(10)
    exact = _problem(rng, 20, 30, 5)
    assert numba_backend.sum_rotation(exact, 3e-5).shape == (4, 5)
    off = exact * (1.0 + 2e-5 * rng.standard_normal(exact.shape[:2]))[..., None]
    assert numba_backend.sum_rotation(off, 3e-5).shape == (5, 5)
    f32 = exact.astype(np.float32)  # float32 rounding: ~1e-15 << 1e-9 * tau_inv
    assert numba_backend.sum_rotation(f32, 3e-5).shape == (4, 5)
    for preds in (exact, off, f32):
        fast = deimos(preds, 10, 3e-5)
        dense = deimos_dense(preds.astype(np.float64), 10, 3e-5)
        np.testing.assert_array_equal(fast.indices, dense.indices)
        np.testing.assert_allclose(fast.scores, dense.scores, rtol=RTOL)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize(
    "scale, tau_inv, match",
    [(1e160, 0.1, "overflow"), (1.0, 1e300, "overflow"), (1e150, 1e-3, "not finite")],
)
def test_non_finite_scores_raise(backend, scale, tau_inv, match):
    """Overflowing predictions or tau_inv raise a ValueError instead of returning picks."""
    preds = _problem(np.random.default_rng(11), 6, 8, 1) * scale
    with pytest.raises(ValueError, match=match):
        deimos(preds, 3, tau_inv, backend=backend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_match_dense():
    rng = np.random.default_rng(12)
    preds = _problem(rng, 20, 50, 10)
    res = deimos(torch.as_tensor(preds, device="cuda"), 10, 3e-5)
    dense = deimos_dense(preds, 10, 3e-5)
    np.testing.assert_array_equal(res.indices, dense.indices)
    np.testing.assert_allclose(res.scores, dense.scores, rtol=RTOL)
    with pytest.raises(ValueError, match="backend='torch'"):
        deimos(torch.as_tensor(preds, device="cuda"), 10, 3e-5, backend="numba")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_tensors_are_upcast(dtype):
    preds = torch.as_tensor(_problem(np.random.default_rng(13), 8, 12, 1)).to(dtype)
    for backend in ("numba", "torch"):
        res = deimos(preds, 3, 1e-3, backend=backend)
        np.testing.assert_array_equal(res.indices, deimos_dense(preds.double().numpy(), 3, 1e-3).indices)


def test_float32_and_torch_inputs_give_float64_results():
    rng = np.random.default_rng(6)
    preds = _problem(rng, 12, 10, 3).astype(np.float32)
    a = deimos(preds, 4, 1e-4)
    b = deimos(torch.from_numpy(preds), 4, 1e-4)
    d = deimos_dense(preds.astype(np.float64), 4, 1e-4)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.indices, d.indices)
    np.testing.assert_allclose(a.scores, d.scores, rtol=RTOL)


# --------------------------------------------------------------------------- #
# X_samp
# --------------------------------------------------------------------------- #
def test_deimos_sample_structure_and_prefix_rule():
    n_train, n_pool, n_cand = 50, 950, 120
    res = deimos_sample(n_train, n_pool, n_cand, random_state=11)
    assert isinstance(res, DeimosSample)
    assert res.pool_indices.shape == (n_cand,)
    assert np.unique(res.pool_indices).size == n_cand and np.unique(res.train_indices).size == res.train_indices.size
    assert res.pool_indices.min() >= 0 and res.pool_indices.max() < n_pool
    assert res.train_indices.size == 0 or (res.train_indices.min() >= 0 and res.train_indices.max() < n_train)
    n_t = res.train_indices.size
    assert res.n_samp == n_t + n_cand
    np.testing.assert_array_equal(res.candidates, np.arange(res.n_samp) >= n_t)
    # the prefix of the 1.2 * n_cand draws up to the n_cand-th pool draw
    draws = np.random.default_rng(11).choice(n_train + n_pool, size=math.ceil(1.2 * n_cand), replace=False)
    assert np.count_nonzero(draws >= n_train) >= n_cand  # (no fall-back here)
    cut = np.flatnonzero(draws >= n_train)[n_cand - 1] + 1
    np.testing.assert_array_equal(res.train_indices, draws[:cut][draws[:cut] < n_train])
    np.testing.assert_array_equal(res.pool_indices, draws[:cut][draws[:cut] >= n_train] - n_train)
    # positions in X_samp -> pool indices
    np.testing.assert_array_equal(res.to_pool([n_t, n_t + 5]), res.pool_indices[[0, 5]])
    with pytest.raises(ValueError, match="pool members"):
        res.to_pool([0] if n_t else [res.n_samp])


def test_deimos_sample_train_proportion():
    n_train, n_pool, n_cand = 250, 750, 200  # train is 25 % of the union
    fractions = []
    for seed in range(300):
        res = deimos_sample(n_train, n_pool, n_cand, random_state=seed)
        assert res.pool_indices.size == n_cand
        fractions.append(res.train_indices.size / res.n_samp)
    fractions = np.asarray(fractions)
    # train members ~ NegBinomial: mean n_cand * 1/3 -> fraction ~ 0.25
    assert abs(fractions.mean() - 0.25) < 0.01
    assert fractions.std() > 0.005  # random, not a fixed quota


def test_deimos_sample_reproducible_and_generator():
    a = deimos_sample(50, 500, 100, random_state=3)
    b = deimos_sample(50, 500, 100, random_state=np.random.default_rng(3))
    c = deimos_sample(50, 500, 100, random_state=4)
    np.testing.assert_array_equal(a.pool_indices, b.pool_indices)
    np.testing.assert_array_equal(a.train_indices, b.train_indices)
    assert not np.array_equal(a.pool_indices, c.pool_indices)


def test_deimos_sample_large_train_falls_back_to_full_permutation():
    res = deimos_sample(2000, 40, 40, random_state=0)  # 48 draws rarely hold 40 pool indices
    assert sorted(res.pool_indices) == list(range(40))
    assert 1000 < res.train_indices.size <= 2000
    only_pool = deimos_sample(0, 30, 30, random_state=1)
    assert only_pool.train_indices.size == 0 and only_pool.candidates.all()


@pytest.mark.parametrize(
    "args, match",
    [
        ((10, 20, 21), "larger than the pool"),
        ((10, 20, 0), "n_cand"),
        ((-1, 20, 5), "n_train"),
        ((10, 0, 1), "n_pool"),
    ],
)
def test_deimos_sample_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        deimos_sample(*args, random_state=0)


def test_deimos_sample_wrong_types():
    with pytest.raises(TypeError, match="n_train"):
        deimos_sample(10.0, 20, 5, random_state=0)
    with pytest.raises(TypeError, match="random_state"):
        deimos_sample(10, 20, 5, random_state=None)


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #
def _probs(J=5, S=6, C=3):
    return _problem(np.random.default_rng(0), J, S, C)


@pytest.mark.parametrize("fn", [deimos, deimos_dense])
@pytest.mark.parametrize(
    "preds, k, tau_inv, candidates, match",
    [
        (np.zeros(5), 1, 0.1, None, r"shape \(J, S\)"),
        (np.zeros((2, 3, 4, 5)), 1, 0.1, None, r"shape \(J, S\)"),
        (np.zeros((1, 4)), 1, 0.1, None, "J >= 2"),
        (np.zeros((3, 0)), 1, 0.1, None, "at least one point"),
        (np.full((3, 4), np.nan), 1, 0.1, None, "finite"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), 1, 0.1, None, "finite"),
        (_probs() * 1.01, 1, 0.1, None, "sum to 1"),
        (np.log(_probs()), 1, 0.1, None, "probabilities in"),
        (np.ones((4, 3, 1)), 1, 0.1, None, "C >= 2"),
        (np.array([["a", "b"], ["c", "d"]]), 1, 0.1, None, "numeric"),
        (_probs(), 7, 0.1, None, "larger than the number of candidates"),
        (_probs(), 3, 0.1, np.array([True, False, False, True, False, False]), "larger than the number"),
        (_probs(), 0, 0.1, None, ">= 1"),
        (_probs(), 1, 0.0, None, "tau_inv"),
        (_probs(), 1, -1e-3, None, "tau_inv"),
        (_probs(), 1, float("nan"), None, "tau_inv"),
        (_probs(), 1, 0.1, np.ones(5, dtype=bool), "length S = 6"),
        (_probs(), 1, 0.1, np.array([0, 6]), r"in \[0, 6\)"),
        (_probs(), 1, 0.1, np.array([1, 1]), "distinct"),
        (_probs(), 1, 0.1, np.zeros(6, dtype=bool), "at least one candidate"),
        (_probs(), 1, 0.1, np.array([0.5, 1.0]), "integer index"),
        (_probs(), 1, 0.1, np.ones((2, 3), dtype=bool), "1-D"),
    ],
)
def test_bad_input(fn, preds, k, tau_inv, candidates, match):
    with pytest.raises(ValueError, match=match):
        fn(preds, k, tau_inv, candidates)


@pytest.mark.parametrize("fn", [deimos, deimos_dense])
@pytest.mark.parametrize(
    "k, tau_inv, match", [(1.5, 0.1, "k .* must be an int"), (True, 0.1, "k"), (1, "0.1", "tau_inv")]
)
def test_wrong_types(fn, k, tau_inv, match):
    with pytest.raises(TypeError, match=match):
        fn(_probs(), k, tau_inv)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
        ({"threads": 0}, ValueError, "threads"),
        ({"threads": 1.5}, TypeError, "threads"),
    ],
)
def test_bad_options(options, error, match):
    with pytest.raises(error, match=match):
        deimos(_probs(), 1, 0.1, **options)


@pytest.mark.parametrize(
    "V, match",
    [
        (np.ones((2, 3)), "square"),
        (np.array([[1.0, 0.5], [0.4, 1.0]]), "symmetric"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "finite"),
    ],
)
def test_from_covariance_bad_input(V, match):
    with pytest.raises(ValueError, match=match):
        deimos_from_covariance(V, 1)


def test_from_covariance_k_too_large():
    with pytest.raises(ValueError, match="larger than the number of candidates"):
        deimos_from_covariance(V_APPENDIX_A, 4)
