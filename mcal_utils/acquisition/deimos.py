r"""DEIMOS: greedy batch acquisition that maximises the expected drop of the
trace of the joint predictive covariance on a representative sample X_samp
(Nagpal & Knowles, "Active learning in CNNs via expected improvement
maximization", Sec. 3-4, Algorithm 1, Appendix D).

Inputs are fixed-mask MC-dropout predictions on X_samp: mask j is shared by
every point on pass j, so predictions of different points are correlated
across passes.

* regression: ``preds_J_S`` (J passes, S points), C = 1 output;
* classification: ``probs_J_S_C`` (probabilities, not logits), C classes.

The S*C outputs are flattened point-major: row r = s*C + c. Definitions
(paper eq. 3, 4, 6 and Algorithm 1), with t = tau_inv:

    A   = (Y - mean_J Y) / sqrt(J - 1)          (S*C, J), centred predictions
    V   = t I + A A^T                           (S*C, S*C), sample cov (divisor J-1) + t I
    B_i = the C rows of point i
    score_P(i) = tr( V_P[:, B_i] V_P[B_i, B_i]^{-1} V_P[B_i, :] )      (eq. 5 / 6)
    V_{P + i}  = V_P - V_P[:, B_i] V_P[B_i, B_i]^{-1} V_P[B_i, :]       (Alg. 1 update)

The trace runs over ALL of X_samp (training members and the candidate's own
block included). Greedy: b times, pick the not-yet-picked candidate with the
largest score (ties -> lowest index), condition V on it. Training members of
X_samp are never candidates and are never conditioned on. Unlike the authors'
classification code we add no extra 1e-15 I: t I (t > 0) already makes every
block invertible.

``deimos_dense`` / ``deimos_from_covariance`` transcribe this literally on the
(S*C)^2 matrix (float64, Cholesky of the C x C blocks, no inverse). ``deimos``
never forms that matrix; it works in the J-dimensional mask space.

Derivation of the fast form (Bayesian linear regression on mask weights)
-----------------------------------------------------------------------
V is the covariance of  y = A w + e,  w ~ N(0, I_J),  e ~ N(0, t I).
Conditioning V on the blocks picked so far one at a time (Schur complements)
equals conditioning once on their union P (Gaussian conditioning). Observing
y_P = A_P w + e_P gives the posterior of the mask weights

    M = Cov(w | y_P) = (I + A_P^T A_P / t)^{-1}      (J, J), M = I when P is empty,

and, because e_r of an unobserved row r is independent of y_P,

    V_P[r, k] = a_r^T M a_k + t [r = k]    for r, k not in P (Q = rows not in P),
    V_P[r, :] = 0                          for r in P (observed exactly, noise included).

For a candidate block B (inside Q) with G = A_B (C, J):

    K = V_P[B, B] = t I_C + G M G^T                              (C, C)
    V_P[Q, B]     = A_Q M G^T + t E_B       (E_B: the columns of I_Q at B)
    V_P[Q, B]^T V_P[Q, B] = G M H_Q M G^T + 2 t G M G^T + t^2 I_C,   H_Q = A_Q^T A_Q
                          = G W G^T + 2 t K - t^2 I_C,               W = M H_Q M

so, with the rows of P contributing nothing,

    score(i) = tr(K^{-1} G W G^T) + 2 t C - t^2 tr(K^{-1}).

The t-terms are the candidate's own observation noise: it counts in its own
score. Per candidate we keep the C x C matrices K_i = t I + P_i, P_i = G_i M G_i^T,
and D_i whose symmetric part is R_i - t^2 I, R_i = G_i W G_i^T, so that

    score(i) = 2 t C + tr(K_i^{-1} D_i) = 2 t C + sum_ab (L_i^{-1} D_i)_ab (L_i^{-1})_ab,
    K_i = L_i L_i^T (batched C x C Cholesky).

Picking B (Cholesky K_B = L L^T) updates, exactly:

    u   = M G_B^T L^{-T}                 (J, C)     M'   = M - u u^T   (Woodbury, rank C)
    H_Q' = H_Q - G_B^T G_B
    M' G_B^T = u Z,  Z = L^T - u^T G_B^T = t L^{-1}   (no cancellation for small t)
    W'  = M' H_Q' M' = W - m u^T - u m^T + u T u^T,   m = M H_Q u,  T = u^T H_Q u - Z Z^T
        = W - m~ u^T - u m~^T,                         m~ = m - u T / 2
    K_i' = K_i - b_i b_i^T,   D_i' = D_i - 2 b_i a_i^T,   b_i = G_i u,  a_i = G_i m~
                               (R_i' = R_i - a_i b_i^T - b_i a_i^T)

Rounding: R_i shrinks from O(|H|) to O(t^2 |H|) while the rank-C updates
subtract O(|H|) quantities, so once the top score (or the top tr R_i) has
fallen below 1e-4 of its value at the last exact evaluation, D is recomputed
exactly from W = M H_Q M (O(n_cand C J^2), a few times per batch); the
relative error of the scores then stays ~1e-11 (it grows like 1e-16 / that
fraction). K_i = t I + P_i needs no such reset: K_i >= t I, so the absolute
rounding ~1e-16 |P_i(0)| of its updates stays ~1e-16 |P_i(0)| / t relative.
M itself is accurate to ~1e-16 absolute, which is enough. Checked against
the dense form to 1e-8, tau_inv down to 3e-5.

Classification: probabilities sum to one, so each point's C centred outputs
sum to zero across classes. Rotating a point's outputs by a fixed orthogonal
C x C matrix whose first row is 1/sqrt(C) leaves V's trace objective
unchanged and makes that row eps_s ~ 0 (the input's rounding); it is then
dropped (C' = C - 1 rows per point), its own noise t counted in every score
(+t), when max_s |eps_s|^2 <= 1e-9 t, so the scores move by <~ 1e-9 relative
(second order in eps). Otherwise, and for regression, C' = C.

Cost per pick (n candidates, C' rows each), in flop: the product [b_i | a_i]
= G_i [u | m~] (4 C'^2 J per candidate), the rank-C' updates of K_i (2 C'^3)
and R_i (4 C'^3), a C' x C' Cholesky, L^-1 and K^-1 (C'^3 / 3 each) and the
score (2 C'^2): about n (4 C'^2 J + 7 C'^3), 1.28e9 at n = 60000, C' = 9,
J = 50, so 1.26e11 for the 99 updates of a batch of 100 (the floor of this
algorithm: 1.6 s at the 2 x 39 GFlop/s float64 peak of the 2 AVX2 cores it
was written on), plus O(n C' J^2) for each exact recomputation of R.
Memory: G (n C' J float64) plus K, R (2 n C'^2): O(S C J).

Backends. ``numba`` (CPU): candidates sit in blocks of 256 SIMD lanes (G as
(blocks, J, C', 256), K and R as (blocks, C', C', 256)); per step each worker
thread takes a contiguous range of blocks and, block by block, computes the
product [b_i | a_i] with one BLAS call ((2C' x J) x (J x 256 C')) and then the
rank-C' updates, Cholesky factorisations and scores of the 256 candidates at
once in compiled kernels (:mod:`._deimos_kernels`, lane index innermost), so
each block's data is touched once per step while it sits in L2. The thread
pool is created and shut down inside the call, and BLAS is limited to one
thread per worker for the duration of the call (threadpoolctl, restored on
return), so the workers do not oversubscribe the cores.
``torch`` (any device, e.g. CUDA): one (2C, J) x (J, n C) product per step,
batched rank-C updates, batched Cholesky and triangular inverse (full C, no
rotation); O(n C J) memory.
The dense form costs O((S C)^2 C) per step and O((S C)^2) memory.

X_samp (``deimos_sample``) is documented at that function.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from .base import PROB_ATOL, CandidateBatch, as_generator, check_k

#: Recompute the per-candidate D_i exactly once the top score (or the top
#: tr R_i) fell below this fraction of its value at the last recomputation,
#: so the rounding of the rank-C updates stays relative ~1e-11.
_REFRESH = 1e-4

__all__ = [
    "deimos",
    "deimos_dense",
    "deimos_from_covariance",
    "deimos_sample",
    "DeimosSample",
]


# --------------------------------------------------------------------------- #
# input handling
# --------------------------------------------------------------------------- #
def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        a = np.asarray(x)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"{name} must be a numeric array, got dtype {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a))
    if t.is_complex():
        raise ValueError(f"{name} must be real, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def _check_preds(preds) -> tuple[torch.Tensor, int]:
    """-> (preds_J_S_C tensor, C). Regression (J, S) becomes (J, S, 1)."""
    y = _as_tensor(preds, "preds")
    if y.ndim not in (2, 3):
        raise ValueError(
            "preds must have shape (J, S) for regression or (J, S, C) for classification "
            f"(J fixed-mask passes, S points of X_samp), got shape {tuple(y.shape)}"
        )
    if y.shape[0] < 2:
        raise ValueError(f"preds needs J >= 2 fixed-mask passes (axis 0) for a sample covariance, got J = {y.shape[0]}")
    if y.shape[1] < 1:
        raise ValueError(f"preds needs at least one point of X_samp (axis 1), got shape {tuple(y.shape)}")
    lo, hi = (float(v) for v in torch.aminmax(y))  # NaN propagates; inf shows at an end
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(y)).sum())
        raise ValueError(f"preds must be finite, found {bad} NaN or inf values")
    if y.ndim == 2:
        return y.unsqueeze(-1), 1
    C = y.shape[2]
    if C < 2:
        raise ValueError(
            f"classification preds (J, S, C) need C >= 2 classes, got C = {C}; pass a (J, S) array for regression"
        )
    if lo < -PROB_ATOL or hi > 1.0 + PROB_ATOL:
        raise ValueError(
            f"classification preds (J, S, C) must be probabilities in [0, 1], got values in [{lo:g}, {hi:g}]"
            " (did you pass logits?)"
        )
    err = (y.sum(-1, dtype=torch.float64) - 1.0).abs()
    if float(err.max()) > PROB_ATOL:
        raise ValueError(
            f"classification preds (J, S, C) must sum to 1 over the class axis (last) within {PROB_ATOL:g}; "
            f"the worst (pass, point) is off by {float(err.max()):.3g} (logits, or class axis elsewhere?)"
        )
    return y, C


def _check_tau_inv(tau_inv) -> float:
    if isinstance(tau_inv, (bool, np.bool_)) or not isinstance(tau_inv, (int, float, np.integer, np.floating)):
        raise ValueError(f"tau_inv must be a positive finite number, got {tau_inv!r}")
    t = float(tau_inv)
    if not (math.isfinite(t) and t > 0.0):
        raise ValueError(f"tau_inv must be a positive finite number (the model's inverse precision), got {t!r}")
    return t


def _check_candidates(candidates, S: int) -> np.ndarray:
    """Boolean mask (S,) or index array over X_samp -> sorted unique int64 indices."""
    if candidates is None:
        return np.arange(S, dtype=np.int64)
    if isinstance(candidates, torch.Tensor):
        candidates = candidates.detach().cpu().numpy()
    c = np.asarray(candidates)
    if c.ndim != 1:
        raise ValueError(
            f"candidates must be a 1-D boolean mask of length S = {S} or an index array, got shape {c.shape}"
        )
    if c.dtype == bool:
        if c.shape[0] != S:
            raise ValueError(f"a boolean candidates mask must have length S = {S}, got {c.shape[0]}")
        idx = np.flatnonzero(c).astype(np.int64)
    elif c.size == 0 or np.issubdtype(c.dtype, np.integer):
        idx = c.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= S):
            raise ValueError(f"candidate indices must lie in [0, {S}), got values in [{idx.min()}, {idx.max()}]")
        if np.unique(idx).size != idx.size:
            raise ValueError("candidate indices must be distinct")
        idx = np.sort(idx)
    else:
        raise ValueError(f"candidates must be a boolean mask or an integer index array, got dtype {c.dtype}")
    if idx.size == 0:
        raise ValueError("there must be at least one candidate")
    return idx


def _check_batch(batch_size, n_cand: int) -> int:
    b = check_k(batch_size, n_cand, "candidates")
    if b < 1:
        raise ValueError(f"batch_size must be >= 1, got {b}")
    return b


def _progress(total: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not progress, desc=desc, leave=False)


# --------------------------------------------------------------------------- #
# dense reference: Algorithm 1 on the (S*C)^2 matrix
# --------------------------------------------------------------------------- #
def _greedy_dense(V: torch.Tensor, C: int, cand: np.ndarray, batch_size: int, progress: bool = False) -> CandidateBatch:
    """Algorithm 1 on a float64 covariance V (S*C, S*C), updated in place."""
    n = V.shape[0]
    S = n // C
    V3 = V.view(S, C, n)  # rows of point s
    remaining = torch.ones(S, dtype=torch.bool, device=V.device)
    is_cand = torch.zeros(S, dtype=torch.bool, device=V.device)
    is_cand[torch.as_tensor(cand, device=V.device)] = True
    chunk = max(1, (1 << 24) // max(1, n * C))
    picks, scores = [], []
    with _progress(batch_size, progress, "DEIMOS (dense)") as bar:
        for _ in range(batch_size):
            live = torch.nonzero(is_cand & remaining).squeeze(1)
            # K_s = V[B_s, B_s]; Gram_s = V[B_s, :] V[:, B_s]  (V symmetric)
            K = V.view(S, C, S, C)[live, :, live, :]  # (n_live, C, C)
            gram = torch.empty((S, C, C), dtype=V.dtype, device=V.device)
            for lo in range(0, S, chunk):  # views of row blocks, no copy of V
                Vb = V3[lo : lo + chunk]
                torch.bmm(Vb, Vb.transpose(1, 2), out=gram[lo : lo + chunk])
            gram = gram[live]
            L, info = torch.linalg.cholesky_ex(K)
            if bool((info != 0).any()):
                raise ValueError(
                    "a candidate's covariance block V[B, B] is not positive definite; "
                    "V must be symmetric positive definite (increase tau_inv?)"
                )
            score = torch.cholesky_solve(gram, L).diagonal(dim1=-2, dim2=-1).sum(-1)
            j = int(torch.argmax(score))  # first maximum -> lowest index (live is sorted)
            s = int(live[j])
            picks.append(s)
            scores.append(float(score[j]))
            remaining[s] = False
            # V <- V - V[:, B] V[B, B]^{-1} V[B, :] = V - X^T X,  X = L^{-1} V[B, :]
            X = torch.linalg.solve_triangular(L[j], V3[s].clone(), upper=False)
            V.addmm_(X.T, X, alpha=-1.0)
            bar.update()
    return CandidateBatch(indices=np.asarray(picks, dtype=np.int64), scores=np.asarray(scores, dtype=np.float64))


def deimos_from_covariance(V, batch_size: int, candidates=None, *, progress: bool = False) -> CandidateBatch:
    """Algorithm 1 (one output per point, C = 1) on a given covariance ``V_S_S``.

    ``V`` symmetric positive definite (S, S); returns picks in greedy order with
    each pick's trace reduction tr(V[:, i] V[i, i]^{-1} V[i, :]) at pick time.
    Used for the paper's Appendix A example.
    """
    Vt = _as_tensor(V, "V").to(torch.float64).clone()
    if Vt.ndim != 2 or Vt.shape[0] != Vt.shape[1] or Vt.shape[0] < 1:
        raise ValueError(f"V must be a square (S, S) covariance matrix, got shape {tuple(Vt.shape)}")
    if not bool(torch.isfinite(Vt).all()):
        raise ValueError("V must be finite, found NaN or inf values")
    scale = float(Vt.abs().max())
    if float((Vt - Vt.T).abs().max()) > 1e-10 * max(scale, 1e-300):
        raise ValueError("V must be symmetric (|V - V^T| <= 1e-10 max|V|)")
    if int(torch.linalg.cholesky_ex(Vt).info) != 0:
        raise ValueError("V must be positive definite (its Cholesky factorisation failed)")
    S = Vt.shape[0]
    cand = _check_candidates(candidates, S)
    b = _check_batch(batch_size, cand.size)
    return _greedy_dense(Vt, 1, cand, b, progress)


def _centred(y_J_S_C: torch.Tensor, device=None) -> torch.Tensor:
    """A as (S, C, J) float64: (Y - mean over passes) / sqrt(J - 1), built in chunks."""
    J, S, C = y_J_S_C.shape
    device = y_J_S_C.device if device is None else device
    A = torch.empty((S, C, J), dtype=torch.float64, device=device)
    step = max(1, (1 << 22) // max(1, J * C))
    for lo in range(0, S, step):
        blk = y_J_S_C[:, lo : lo + step].to(device=device, dtype=torch.float64)
        blk = blk - blk.mean(0, keepdim=True)
        A[lo : lo + step] = blk.permute(1, 2, 0)
    A.mul_(1.0 / math.sqrt(J - 1))
    return A


def _centred_T(y_J_S_C: torch.Tensor, cand: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (A_cand^T as (J, n_cand * C) float64, H = A^T A over all S*C rows as (J, J) on the CPU).

    Column k*C + c of A_cand^T is the centred output c of candidate k over the
    J passes. Built in chunks of points, in place, to keep the peak memory at
    A_cand^T plus a few MB.
    """
    J, S, C = y_J_S_C.shape
    device = y_J_S_C.device
    inv = 1.0 / math.sqrt(J - 1)
    n = cand.size
    AT = torch.empty((J, n, C), dtype=torch.float64, device=device)
    H = torch.zeros((J, J), dtype=torch.float64, device=device)
    step = max(1, (1 << 18) // max(1, J * C))

    def centre_(a):  # (J, s, C) float64, in place
        return a.sub_(a.mean(0, keepdim=True)).mul_(inv)

    if n == S:
        for lo in range(0, S, step):
            a = centre_(AT[:, lo : lo + step].copy_(y_J_S_C[:, lo : lo + step]))
            flat = a.reshape(J, -1)  # a view: (J, s*C) with row stride n*C
            H.addmm_(flat, flat.T)
    else:
        for lo in range(0, S, step):
            flat = centre_(y_J_S_C[:, lo : lo + step].to(torch.float64, copy=True)).reshape(J, -1)
            H.addmm_(flat, flat.T)
        cand_t = torch.as_tensor(cand, device=device)
        for lo in range(0, n, step):
            centre_(AT[:, lo : lo + step].copy_(y_J_S_C[:, cand_t[lo : lo + step]]))
    return AT.view(J, n * C), H.cpu()


def deimos_dense(preds, batch_size: int, tau_inv: float, candidates=None, *, progress: bool = False) -> CandidateBatch:
    """Reference DEIMOS: Algorithm 1 literally, on V = t I + A A^T of size (S*C)^2.

    Same arguments and result as :func:`deimos`; memory O((S*C)^2) float64
    (a 20000^2 matrix is 3.2 GB), time O((S*C)^2 C) per pick.
    """
    y, C = _check_preds(preds)
    t = _check_tau_inv(tau_inv)
    J, S, _ = y.shape
    cand = _check_candidates(candidates, S)
    b = _check_batch(batch_size, cand.size)
    A = _centred(y).reshape(S * C, J)
    V = A @ A.T
    del A
    V.diagonal().add_(t)
    return _greedy_dense(V, C, cand, b, progress)


# --------------------------------------------------------------------------- #
# fast DEIMOS in the J-dimensional mask space
# --------------------------------------------------------------------------- #
_MIN_PART = 1024  # candidates per worker thread (numba path); fewer run in the calling thread
_BACKENDS = ("auto", "numba", "torch")
#: The sum-over-classes direction of a point's centred probabilities is dropped when
#: max_s ||eps_s||^2 <= _DROP_SUM * tau_inv (eps_s: that direction's J values); the
#: scores then move by ~ ||eps||^2 / tau_inv relative (second order), i.e. <= ~1e-9.
_DROP_SUM = 1e-9


def _check_threads(threads) -> int:
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be None (all CPUs of this process) or an int >= 1, got {threads!r}")
    return int(threads)


def _check_backend(backend, y: torch.Tensor) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "numba" if y.device.type == "cpu" else "torch"
    if backend == "numba" and y.device.type != "cpu":
        raise ValueError(
            f"backend='numba' runs on the CPU, but preds live on {y.device}; use backend='torch' (or 'auto') "
            "for tensors on an accelerator"
        )
    return backend


def _overflow_error(t: float) -> ValueError:
    return ValueError(
        f"DEIMOS scores overflow float64: the predictions or tau_inv = {t:g} are too large "
        "(the covariance of the outputs is not finite); rescale the predictions or tau_inv"
    )


def _rounding_error(t: float, bad: int) -> ValueError:
    return ValueError(
        f"DEIMOS scores of {bad} candidate(s) are not finite: with tau_inv = {t:g} a candidate's block "
        "V[B, B] lost positive definiteness to float64 rounding, or the scores overflowed; "
        "increase tau_inv (or rescale the predictions)"
    )


def deimos(
    preds,
    batch_size: int,
    tau_inv: float,
    candidates=None,
    *,
    progress: bool = False,
    threads: int | None = None,
    backend: str = "auto",
) -> CandidateBatch:
    """DEIMOS batch (Algorithm 1) without forming the (S*C)^2 covariance.

    ``preds``: fixed-mask predictions on X_samp, ``(J, S)`` (regression) or
    ``(J, S, C)`` class probabilities (classification); numpy or torch.
    ``tau_inv``: t > 0 added to the diagonal of the sample covariance
    (divisor J - 1). ``candidates``: boolean mask ``(S,)`` or index array over
    X_samp (default: all); the other points (training members) count in the
    objective but are never picked or conditioned on.

    ``backend``: ``"numba"`` (compiled per-candidate kernels on the CPU),
    ``"torch"`` (batched tensor code on the tensor's device, e.g. CUDA), or
    ``"auto"`` (numba for numpy arrays and CPU tensors, torch otherwise).
    ``threads``: worker threads of the numba backend (default: the CPUs this
    process may use); the pool is created and shut down inside the call, and
    no process-wide setting is changed. The torch backend uses torch's own
    threads.

    Returns ``CandidateBatch`` with ``indices`` into X_samp in greedy order and
    ``scores`` = each pick's trace reduction at pick time (the expected
    improvement of eq. 5 / 6). Ties go to the lowest index. Identical to
    :func:`deimos_dense` up to rounding (see the module docstring for the math).
    Raises ``ValueError`` when the scores are not finite (overflow, or a
    tau_inv too small for float64).
    """
    y, C = _check_preds(preds)
    t = _check_tau_inv(tau_inv)
    S = y.shape[1]
    cand = _check_candidates(candidates, S)
    b = _check_batch(batch_size, cand.size)
    n_threads = _check_threads(threads)
    if _check_backend(backend, y) == "numba":
        if y.dtype not in (torch.float32, torch.float64):  # float16 / bfloat16: upcast
            y = y.to(torch.float64)
        return _deimos_numba(np.ascontiguousarray(y.numpy()), C, t, cand, b, progress, n_threads)
    return _deimos_torch(y, C, t, cand, b, progress)


# ---- numba backend -------------------------------------------------------- #
def _sum_rotation(y: np.ndarray, t: float) -> np.ndarray:
    """Q (C', C) with orthonormal rows: C' = C - 1 rows orthogonal to the all-ones vector when
    the sum-over-classes direction of the centred outputs is negligible (see ``_DROP_SUM``),
    else Q = I (C' = C)."""
    J, S, C = y.shape
    eye = np.eye(C)
    if C == 1:
        return eye
    worst = 0.0
    step = max(1, (1 << 20) // (J * C))
    for lo in range(0, S, step):  # eps_s = centred sum of the C outputs / sqrt(C (J - 1))
        tot = y[:, lo : lo + step].sum(-1, dtype=np.float64)
        tot -= tot.mean(0)
        worst = max(worst, float((tot * tot).sum(0).max()) / (C * (J - 1)))
    if not worst <= _DROP_SUM * t:
        return eye
    basis, _ = np.linalg.qr(np.column_stack([np.ones(C), eye[:, : C - 1]]))
    return np.ascontiguousarray(basis[:, 1:].T)  # rows orthogonal to ones


def _parts_of(n: int, threads: int, n_blocks: int | None = None) -> list[tuple[int, int]]:
    """Contiguous ranges of blocks (of ``n`` candidates in ``n_blocks`` blocks), one per worker thread."""
    n_blocks = n if n_blocks is None else n_blocks
    k = max(1, min(threads, n // _MIN_PART, n_blocks))
    edges = [round(i * n_blocks / k) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


_LANES = 256  # candidates per block: the SIMD lanes of the compiled kernels (a block's data stays in L2)


def _deimos_numba(y, C, t, cand, b, progress, threads) -> CandidateBatch:
    """The greedy loop of :func:`deimos` with compiled kernels (math: module docstring).

    Candidates sit in blocks of ``_LANES`` lanes (:mod:`._deimos_kernels`). Per
    step each worker thread runs one kernel over its range of blocks: the BLAS
    product [b_i | a_i] = G_i [u | m~] of a block, the rank-C' updates of K_i and
    R_i, the C' x C' Cholesky and the score, lane-wise, with a block's data
    touched once. BLAS is limited to one thread per worker for the duration of
    the call (threadpoolctl; restored on return).
    """
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import nullcontext

    from scipy.linalg import solve_triangular
    from threadpoolctl import threadpool_limits

    from . import _deimos_kernels as kern

    J, S, _ = y.shape
    Q = _sum_rotation(y, t)
    Cm = Q.shape[0]
    base = 2.0 * t * Cm + t * (C - Cm)  # a dropped direction: its own noise t, fully explained
    inv = 1.0 / math.sqrt(J - 1)
    n = cand.size
    NL = _LANES
    nb = -(-n // NL)
    parts = _parts_of(n, threads, nb)
    pool_cm = ThreadPoolExecutor(len(parts), thread_name_prefix="deimos") if len(parts) > 1 else nullcontext()
    # overflow is detected explicitly (finite checks below), not by numpy warnings
    with pool_cm as pool, threadpool_limits(limits=1, user_api="blas"), np.errstate(
        over="ignore", invalid="ignore", divide="ignore"
    ):

        def run(fn, *args):
            if pool is None:
                fn(*parts[0], *args)
            else:
                for f in [pool.submit(fn, lo, hi, *args) for lo, hi in parts]:
                    f.result()

        G = np.empty((nb, J, Cm, NL))  # G_i = A_{B_i} (rotated) of candidate i = b NL + l at G[b, :, :, l]
        run(kern.centre_rotate_lanes, y, cand, Q, inv, G)
        H = np.zeros((J, J))
        for blk in G:  # padding lanes are zero
            flat = blk.reshape(J, Cm * NL)
            H += flat @ flat.T
        if n < S:  # training members of X_samp count in H only
            rest = np.setdiff1d(np.arange(S, dtype=np.int64), cand, assume_unique=True)
            for lo in range(0, rest.size, 1 << 14):
                idx = rest[lo : lo + (1 << 14)]
                other = np.empty((idx.size, Cm, J))
                kern.centre_rotate(0, idx.size, y, idx, Q, inv, other)
                o = other.reshape(-1, J)
                H += o.T @ o
        if not (np.isfinite(H).all() and math.isfinite(t * t * C) and math.isfinite(float(np.trace(H)) + t)):
            raise _overflow_error(t)
        M = np.eye(J)  # posterior covariance of the mask weights
        HQ = H.copy()  # sum of a a^T over the rows not conditioned on
        K = np.zeros((nb, Cm, Cm, NL))  # t I + G_i M G_i^T (lower triangle)
        R = np.zeros((nb, Cm, Cm, NL))  # G_i W G_i^T,  W = M H_Q M (lower triangle)
        raw = np.empty((nb, NL))  # tr(K_i^-1 (R_i - t^2 I)); score = base + raw
        tr_r = np.empty((nb, NL))  # tr R_i (for the refresh rule)
        taken = np.zeros((nb, NL), dtype=np.bool_)
        taken.reshape(-1)[n:] = True  # padding lanes
        raw_f, tr_f, taken_f = raw.reshape(-1), tr_r.reshape(-1), taken.reshape(-1)

        def refresh(with_K):
            W = M @ HQ @ M
            W = 0.5 * (W + W.T)
            run(kern.refresh, np.ascontiguousarray(np.vstack([W, M]) if with_K else W), G, K, R, taken, t,
                with_K, raw, tr_r)

        def best():
            j = int(np.argmax(raw_f))  # first maximum -> lowest index (cand is sorted); NaN -> first NaN
            ok = np.isfinite(raw_f) | taken_f
            if not (math.isfinite(raw_f[j]) and ok.all()):
                raise _rounding_error(t, int((~ok).sum()) or 1)
            return j, base + float(raw_f[j])

        refresh(with_K=True)
        ref_score = ref_R = None
        picks, scores = [], []
        eye_c = np.eye(Cm)
        with _progress(b, progress, "DEIMOS") as bar:
            for step in range(b):
                j, top = best()
                if ref_score is None:
                    ref_score, ref_R = top, float(tr_f.max())
                elif top < _REFRESH * ref_score or float(tr_f.max()) < _REFRESH * ref_R:
                    refresh(with_K=False)  # the scale dropped: rounding of the updates would dominate
                    j, top = best()
                    ref_score, ref_R = top, float(tr_f.max())
                picks.append(int(cand[j]))
                scores.append(top)
                taken_f[j] = True
                bar.update()
                if step == b - 1:
                    break
                # ---- condition on block B = G_j (see module docstring) ----
                bj, lj = divmod(j, NL)
                GB = G[bj, :, :, lj].T.copy()  # (C', J)
                KB = np.tril(K[bj, :, :, lj])
                LB = np.linalg.cholesky(KB + np.tril(KB, -1).T)
                u = solve_triangular(LB, GB @ M, lower=True).T  # (J, C') = M G^T L^{-T}
                HQu = HQ @ u
                Z = solve_triangular(LB, t * eye_c, lower=True)  # t L^{-1}
                T = u.T @ HQu - Z @ Z.T
                T = 0.5 * (T + T.T)
                UM = np.ascontiguousarray(np.vstack([u.T, (M @ HQu - 0.5 * (u @ T)).T]))  # [u | m~]^T
                M = M - u @ u.T
                M = 0.5 * (M + M.T)
                HQ = HQ - GB.T @ GB
                G[bj, :, :, lj] = 0.0  # picked: parked at K = I, R = 0 (and masked)
                K[bj, :, :, lj] = eye_c
                R[bj, :, :, lj] = 0.0
                run(kern.update, UM, G, K, R, taken, t, raw, tr_r)
    return CandidateBatch(indices=np.asarray(picks, dtype=np.int64), scores=np.asarray(scores, dtype=np.float64))


# ---- torch backend (any device) ------------------------------------------- #
_BLOCK = 1 << 17  # candidates * C^2 per cache-sized block (CPU)


def _deimos_torch(y, C, t, cand, b, progress) -> CandidateBatch:
    """The greedy loop of :func:`deimos` as batched tensor code on ``y``'s device (math: module docstring)."""
    J = y.shape[0]
    device = y.device
    f64 = torch.float64
    GT, H = _centred_T(y, cand)  # (J, n*C): candidate rows of A, transposed; (J, J)
    if not (bool(torch.isfinite(H).all()) and math.isfinite(t * t * C) and math.isfinite(float(H.trace()) + t)):
        raise _overflow_error(t)
    n = cand.size
    G = GT.view(J, n, C).permute(1, 2, 0)  # (n, C, J) view: G_i = A_{B_i}
    # J x J and C x C algebra on the CPU (tiny); O(n_cand) work on `device`, per range.
    M = torch.eye(J, dtype=f64)  # posterior covariance of the mask weights
    HQ = H.clone()  # sum of a a^T over the rows not conditioned on
    eye_c = torch.eye(C, dtype=f64)
    # K_i = t I + G_i M G_i^T;  D_i with (D_i + D_i^T) / 2 = G_i W G_i^T - t^2 I, so that
    # score_i = 2 t C + tr(K_i^{-1} D_i)   (K_i^{-1} symmetric sees only the symmetric part)
    K = torch.empty((n, C, C), dtype=f64, device=device)
    D = torch.empty((n, C, C), dtype=f64, device=device)
    L = torch.empty_like(K)
    info = torch.empty(n, dtype=torch.int32, device=device)
    raw = torch.empty(n, dtype=f64, device=device)
    trD = torch.zeros(n, dtype=f64, device=device)  # tr D_i at the last scoring (for top_r)
    diag_CC = torch.eye(C, dtype=f64, device=device).reshape(C * C)
    eyeC = torch.eye(C, dtype=f64, device=device)
    eye_n = eyeC.expand(n, C, C)
    taken = torch.zeros(n, dtype=torch.bool, device=device)
    neg_inf = torch.tensor(-math.inf, dtype=f64, device=device)
    chunk = max(1, (1 << 18) // (C * J))
    block = max(64, _BLOCK // (C * C)) if device.type == "cpu" else n

    def in_parts(fn, *args):
        fn(0, n, *args)

    def refresh_part(lo, hi, W_t, with_K):
        """D (and K) from M and W directly: resets the rounding of the rank-C updates."""
        for a in range(lo, hi, chunk):
            z = min(a + chunk, hi)
            g = G[a:z].contiguous()  # (k, C, J)
            f = (g.view(-1, J) @ W_t).view(z - a, C, -1)
            torch.bmm(f[:, :, :J], g.transpose(1, 2), out=D[a:z])
            D[a:z].diagonal(dim1=1, dim2=2).sub_(t * t)
            if with_K:
                torch.bmm(f[:, :, J:], g.transpose(1, 2), out=K[a:z])
                K[a:z].diagonal(dim1=1, dim2=2).add_(t)

    def refresh(with_K=False):
        """K only at the start: K_i = t I + P_i keeps ~1e-16 |P_i(0)| / t relative accuracy."""
        W = M @ HQ @ M
        mats = [0.5 * (W + W.T), M] if with_K else [0.5 * (W + W.T)]
        in_parts(refresh_part, torch.cat(mats, dim=1).to(device), with_K)
        if bool(taken.any()):  # picked: G_i = 0, park at K = I, D = 0 (masked anyway)
            K[taken] = eyeC
            D[taken] = 0.0

    def update_part(lo, hi, umT):
        """K_i -= b_i b_i^T, D_i -= 2 b_i a_i^T for the candidates in [lo, hi)."""
        ba = (umT @ GT[:, lo * C : hi * C]).view(2, C, hi - lo, C)  # ba[0, d, k, a] = (G_k u)_ad
        bi, ai = ba[0].permute(1, 2, 0), ba[1].permute(1, 2, 0)  # (k, C, C) views
        K[lo:hi].baddbmm_(bi, bi.transpose(1, 2), alpha=-1.0)
        D[lo:hi].baddbmm_(bi, ai.transpose(1, 2), alpha=-2.0)

    def score_part(lo, hi):
        """score - 2tC = tr(K^-1 D) = tr(L^-1 D L^-T) = sum_ab (L^-1 D)_ab (L^-1)_ab on [lo, hi)."""
        torch.linalg.cholesky_ex(K[lo:hi], out=(L[lo:hi], info[lo:hi]))
        k = hi - lo
        LinvT = torch.linalg.solve_triangular(L[lo:hi], eye_n[lo:hi], upper=False).mT  # (L^-1)^T
        XT = torch.bmm(D[lo:hi].mT, LinvT)  # (L^-1 D)^T
        raw[lo:hi] = torch.linalg.vecdot(XT.reshape(k, C * C), LinvT.reshape(k, C * C))
        torch.mv(D[lo:hi].view(hi - lo, C * C), diag_CC, out=trD[lo:hi])  # tr D_i, while in cache

    def update_and_score_part(lo, hi, umT):
        for a in range(lo, hi, block):  # cache-sized blocks: each block's data is touched once
            z = min(a + block, hi)
            if umT is not None:
                update_part(a, z, umT)
            score_part(a, z)

    def best():
        bad = int(((info != 0) | ~torch.isfinite(raw)).logical_and_(~taken).sum())
        if bad:
            raise _rounding_error(t, bad)
        score = torch.where(taken, neg_inf, raw + (2.0 * t * C))
        j = int(torch.argmax(score))  # first maximum -> lowest index (cand is sorted)
        return j, float(score[j])

    def top_r():  # largest tr(G_i W G_i^T) (picked ones hold D = 0)
        return float(trD.max()) + t * t * C

    refresh(with_K=True)
    umT = None
    ref_score = ref_R = None
    picks, scores = [], []
    with _progress(b, progress, "DEIMOS") as bar:
        for step in range(b):
            in_parts(update_and_score_part, umT)
            j, top = best()
            if ref_score is None:
                ref_score, ref_R = top, top_r()
            elif top < _REFRESH * ref_score or top_r() < _REFRESH * ref_R:
                refresh()  # the scale dropped: rounding of the updates would dominate
                in_parts(score_part)
                j, top = best()
                ref_score, ref_R = top, top_r()
            picks.append(int(cand[j]))
            scores.append(top)
            taken[j] = True
            bar.update()
            if step == b - 1:
                break
            # ---- condition on block B = G[j] (see module docstring) ----
            GB = G[j].to("cpu", copy=True)  # (C, J)
            LB = L[j].cpu()  # (C, C)
            u = torch.linalg.solve_triangular(LB, GB @ M, upper=False).T  # (J, C) = M G^T L^{-T}
            HQu = HQ @ u
            Z = torch.linalg.solve_triangular(LB, t * eye_c, upper=False)  # t L^{-1}
            T = u.T @ HQu - Z @ Z.T
            T = 0.5 * (T + T.T)
            m_t = M @ HQu - 0.5 * (u @ T)  # m~
            G[j] = 0.0  # picked: no more updates; parked at K = I, D = 0
            K[j] = eyeC
            D[j] = 0.0
            umT = torch.cat([u, m_t], dim=1).T.contiguous().to(device)  # (2C, J)
            M = M - u @ u.T
            M = 0.5 * (M + M.T)
            HQ = HQ - GB.T @ GB
    return CandidateBatch(indices=np.asarray(picks, dtype=np.int64), scores=np.asarray(scores, dtype=np.float64))


# --------------------------------------------------------------------------- #
# X_samp
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class DeimosSample:
    """X_samp = [x_train[train_indices]; x_pool[pool_indices]] (train members first).

    ``train_indices``: int64 (S_train,) into the training set, in draw order.
    ``pool_indices``: int64 (n_cand,) into the pool, in draw order.
    ``candidates``: bool (S,) over X_samp, True on the pool members.
    """

    train_indices: np.ndarray
    pool_indices: np.ndarray
    candidates: np.ndarray

    @property
    def n_samp(self) -> int:
        return int(self.candidates.shape[0])

    def to_pool(self, samp_indices) -> np.ndarray:
        """Positions in X_samp of pool members (e.g. ``deimos(...).indices``) -> pool indices."""
        idx = np.asarray(samp_indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_samp or not self.candidates[idx].all()):
            raise ValueError("samp_indices must be positions of pool members (candidates) of X_samp")
        return self.pool_indices[idx - self.train_indices.shape[0]]


def _check_count(x, name: str, minimum: int) -> int:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {x!r}")
    return int(x)


def deimos_sample(n_train: int, n_pool: int, n_cand: int, random_state) -> DeimosSample:
    """X_samp of DEIMOS (paper App. D; the authors' code's oversampling by 1.2).

    Index the union as [train; pool] (N = n_train + n_pool). Draw
    m = min(N, ceil(1.2 n_cand)) indices uniformly without replacement, in
    order; X_samp is the prefix of that draw sequence up to and including its
    n_cand-th pool draw, i.e. "sample from train and pool until the candidate
    set X_samp minus X_train reaches n_cand" (App. D). So the pool members are
    the first n_cand pool draws and the train members are the train draws that
    came before the last of them: in expectation n_train / N of X_samp, the
    proportion of the union. If the m draws hold fewer than n_cand pool
    indices (only when n_train is large against n_pool), the sequence goes on
    with a uniform permutation of the undrawn indices.

    ``n_cand`` <= ``n_pool``. Returns :class:`DeimosSample`.
    """
    n_train = _check_count(n_train, "n_train", 0)
    n_pool = _check_count(n_pool, "n_pool", 1)
    n_cand = _check_count(n_cand, "n_cand", 1)
    if n_cand > n_pool:
        raise ValueError(f"n_cand = {n_cand} is larger than the pool (n_pool = {n_pool})")
    rng = as_generator(random_state)
    N = n_train + n_pool
    m = min(N, math.ceil(1.2 * n_cand))
    draws = rng.choice(N, size=m, replace=False).astype(np.int64)
    if np.count_nonzero(draws >= n_train) < n_cand:
        rest = np.setdiff1d(np.arange(N, dtype=np.int64), draws, assume_unique=True)
        draws = np.concatenate([draws, rng.permutation(rest)])
    is_pool = draws >= n_train
    cut = int(np.flatnonzero(is_pool)[n_cand - 1]) + 1
    prefix, is_pool = draws[:cut], is_pool[:cut]
    train_indices = prefix[~is_pool]
    pool_indices = prefix[is_pool] - n_train
    candidates = np.zeros(cut, dtype=bool)
    candidates[train_indices.shape[0] :] = True
    for a in (train_indices, pool_indices, candidates):
        a.setflags(write=False)
    return DeimosSample(train_indices=train_indices, pool_indices=pool_indices, candidates=candidates)
