r"""The CPU backend of :func:`~mcal_utils.acquisition.deimos.deimos`: :mod:`.algebra`'s greedy with the
per-candidate work in compiled kernels (:mod:`.numba_kernels`, cached on disk).

Layout. Candidates sit in blocks of ``LANES`` = 256 SIMD lanes: G as (blocks, J, C', 256), K_i and
R_i = G_i W G_i^T (lower triangles) as (blocks, C', C', 256). Per step each worker thread takes a
contiguous range of blocks and, block by block, computes [b_i | a_i] = G_i [u | m~] with one BLAS
call ((2C' x J) x (J x 256 C')), then the rank-C' updates, Cholesky factorisations and scores of
the 256 candidates at once (lane index innermost), so a block's data is touched once per step
while it sits in L2. The thread pool is created and shut down inside the call, and BLAS is
limited to one thread per worker for the duration of the call (threadpoolctl, restored on return).

Classification: probabilities sum to one, so each point's C centred outputs sum to zero across
classes. Rotating a point's outputs by a fixed orthogonal C x C matrix whose first row is
1/sqrt(C) leaves V's trace objective unchanged and makes that row eps_s ~ 0 (the input's
rounding); it is dropped (C' = C - 1 rows per point, its own noise t counted in every score: +t)
when max_s |eps_s|^2 <= ``DROP_SUM`` t, so the scores move by <~ 1e-9 relative (second order in
eps). Otherwise, and for regression, C' = C (:func:`sum_rotation`).

Cost per pick (n candidates, C' rows each), in flop: [b_i | a_i] (4 C'^2 J per candidate), the
rank-C' updates of K_i (2 C'^3) and R_i (4 C'^3), a C' x C' Cholesky, L^-1 and K^-1 (C'^3 / 3
each) and the score (2 C'^2): about n (4 C'^2 J + 7 C'^3), 1.28e9 at n = 60000, C' = 9, J = 50,
so 1.26e11 for the 99 updates of a batch of 100 (the floor of this algorithm: 1.6 s at the
2 x 39 GFlop/s float64 peak of the 2 AVX2 cores it was written on), plus O(n C' J^2) for each
exact recomputation of R. Memory: G (n C' J float64) plus K, R (2 n C'^2): O(S C J).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np
from scipy.linalg import solve_triangular
from threadpoolctl import threadpool_limits

from ..base import CandidateBatch
from .algebra import check_scale, condition_on_block, exact_W, greedy, rounding_error
from .numba_kernels import centre_rotate, centre_rotate_lanes, refresh_blocks, update_blocks

__all__ = ["deimos_numba", "sum_rotation", "parts_of", "LANES", "MIN_PART", "DROP_SUM"]

#: Candidates per block: the SIMD lanes of the compiled kernels (a block's data stays in L2).
LANES = 256
#: Candidates per worker thread; fewer run in the calling thread.
MIN_PART = 1024
#: The sum-over-classes direction of a point's centred probabilities is dropped when
#: max_s ||eps_s||^2 <= DROP_SUM * tau_inv (eps_s: that direction's J values); the
#: scores then move by ~ ||eps||^2 / tau_inv relative (second order), i.e. <= ~1e-9.
DROP_SUM = 1e-9


def sum_rotation(y: np.ndarray, t: float) -> np.ndarray:
    """Q (C', C) with orthonormal rows for predictions ``y`` (J, S, C) and tau_inv ``t``.

    C' = C - 1 rows orthogonal to the all-ones vector when the sum-over-classes direction of the
    centred outputs is negligible (see ``DROP_SUM``), else Q = I (C' = C).
    """
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
    if not worst <= DROP_SUM * t:
        return eye
    basis, _ = np.linalg.qr(np.column_stack([np.ones(C), eye[:, : C - 1]]))
    return np.ascontiguousarray(basis[:, 1:].T)  # rows orthogonal to ones


def parts_of(n: int, threads: int, n_blocks: int | None = None) -> list[tuple[int, int]]:
    """Contiguous ranges of blocks (of ``n`` candidates in ``n_blocks`` blocks), one per worker thread.

    At most ``threads`` ranges and at least ``MIN_PART`` candidates per range.
    """
    n_blocks = n if n_blocks is None else n_blocks
    k = max(1, min(threads, n // MIN_PART, n_blocks))
    edges = [round(i * n_blocks / k) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _solve_lower(L: np.ndarray, X: np.ndarray) -> np.ndarray:
    return solve_triangular(L, X, lower=True)


class _NumbaState:
    """The :class:`~.algebra.GreedyState` of the numba backend (lane layout: module docstring).

    Built inside the caller's thread pool and BLAS limit; ``raw`` holds tr(K_i^-1 (R_i - t^2 I)),
    so a score is ``base + raw`` with ``base = 2 t C' + t (C - C')`` (a dropped direction: its
    own noise t, fully explained).
    """

    def __init__(self, y, C, t, cand, Q, parts, pool):
        J, S, _ = y.shape
        Cm = Q.shape[0]
        self.t = t
        self.base = 2.0 * t * Cm + t * (C - Cm)
        inv = 1.0 / math.sqrt(J - 1)
        n = cand.size
        self.NL = NL = LANES
        nb = -(-n // NL)
        self.parts, self.pool = parts, pool
        G = np.empty((nb, J, Cm, NL))  # G_i = A_{B_i} (rotated) of candidate i = b NL + l at G[b, :, :, l]
        self.run(centre_rotate_lanes, y, cand, Q, inv, G)
        H = np.zeros((J, J))
        for blk in G:  # padding lanes are zero
            flat = blk.reshape(J, Cm * NL)
            H += flat @ flat.T
        if n < S:  # training members of X_samp count in H only
            rest = np.setdiff1d(np.arange(S, dtype=np.int64), cand, assume_unique=True)
            for lo in range(0, rest.size, 1 << 14):
                idx = rest[lo : lo + (1 << 14)]
                other = np.empty((idx.size, Cm, J))
                centre_rotate(0, idx.size, y, idx, Q, inv, other)
                o = other.reshape(-1, J)
                H += o.T @ o
        check_scale(bool(np.isfinite(H).all()), lambda: float(np.trace(H)), t, C)
        self.G = G
        self.M = np.eye(J)  # posterior covariance of the mask weights
        self.HQ = H.copy()  # sum of a a^T over the rows not conditioned on
        self.K = np.zeros((nb, Cm, Cm, NL))  # t I + G_i M G_i^T (lower triangle)
        self.R = np.zeros((nb, Cm, Cm, NL))  # G_i W G_i^T,  W = M H_Q M (lower triangle)
        self.raw = np.empty((nb, NL))  # tr(K_i^-1 (R_i - t^2 I)); score = base + raw
        self.tr_r = np.empty((nb, NL))  # tr R_i (for the refresh rule)
        self.taken = np.zeros((nb, NL), dtype=np.bool_)
        self.taken.reshape(-1)[n:] = True  # padding lanes
        self.raw_f, self.tr_f, self.taken_f = self.raw.reshape(-1), self.tr_r.reshape(-1), self.taken.reshape(-1)
        self.eye_c = np.eye(Cm)

    def run(self, fn, *args) -> None:
        """``fn(b0, b1, *args)`` on every worker's range of blocks."""
        if self.pool is None:
            fn(*self.parts[0], *args)
        else:
            for f in [self.pool.submit(fn, lo, hi, *args) for lo, hi in self.parts]:
                f.result()

    def _exact(self, with_K: bool) -> None:
        W = exact_W(self.M, self.HQ)
        WM = np.ascontiguousarray(np.vstack([W, self.M]) if with_K else W)
        self.run(refresh_blocks, WM, self.G, self.K, self.R, self.taken, self.t, with_K, self.raw, self.tr_r)

    def start(self) -> None:
        self._exact(with_K=True)

    def refresh(self) -> None:
        self._exact(with_K=False)

    def best(self) -> tuple[int, float]:
        raw_f = self.raw_f
        j = int(np.argmax(raw_f))  # first maximum -> lowest index (cand is sorted); NaN -> first NaN
        ok = np.isfinite(raw_f) | self.taken_f
        if not (math.isfinite(raw_f[j]) and ok.all()):
            raise rounding_error(self.t, int((~ok).sum()) or 1)
        return j, self.base + float(raw_f[j])

    def top_r(self) -> float:
        return float(self.tr_f.max())

    def take(self, j: int) -> None:
        self.taken_f[j] = True

    def condition(self, j: int) -> None:
        bj, lj = divmod(j, self.NL)
        GB = self.G[bj, :, :, lj].T.copy()  # (C', J)
        KB = np.tril(self.K[bj, :, :, lj])
        LB = np.linalg.cholesky(KB + np.tril(KB, -1).T)
        upd = condition_on_block(self.M, self.HQ, GB, LB, self.t, self.eye_c, _solve_lower)
        UM = np.ascontiguousarray(np.vstack([upd.u.T, upd.m_tilde.T]))  # [u | m~]^T
        self.M, self.HQ = upd.M, upd.HQ
        self.G[bj, :, :, lj] = 0.0  # picked: parked at K = I, R = 0 (and masked)
        self.K[bj, :, :, lj] = self.eye_c
        self.R[bj, :, :, lj] = 0.0
        self.run(update_blocks, UM, self.G, self.K, self.R, self.taken, self.t, self.raw, self.tr_r)


def deimos_numba(
    y: np.ndarray, C: int, t: float, cand: np.ndarray, k: int, progress: bool, threads: int
) -> CandidateBatch:
    """k DEIMOS picks with the compiled kernels, on the CPU.

    ``y`` (J, S, C) float32 / float64 C-contiguous predictions (checked); ``C``: outputs per point;
    ``t``: tau_inv; ``cand``: sorted candidate indices into X_samp; ``threads``: worker threads.
    Returns the ``CandidateBatch`` of :func:`~mcal_utils.acquisition.deimos.deimos`.
    """
    Q = sum_rotation(y, t)
    n = cand.size
    parts = parts_of(n, threads, -(-n // LANES))
    pool_cm = ThreadPoolExecutor(len(parts), thread_name_prefix="deimos") if len(parts) > 1 else nullcontext()
    # overflow is detected explicitly (finite checks), not by numpy warnings
    with (
        pool_cm as pool,
        threadpool_limits(limits=1, user_api="blas"),
        np.errstate(over="ignore", invalid="ignore", divide="ignore"),
    ):
        return greedy(_NumbaState(y, C, t, cand, Q, parts, pool), cand, k, progress)
