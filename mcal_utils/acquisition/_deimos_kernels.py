r"""Compiled per-candidate kernels of :func:`mcal_utils.acquisition.deimos.deimos` (CPU).

The math is in the docstring of :mod:`mcal_utils.acquisition.deimos`. Every
kernel works on a contiguous range ``[lo, hi)`` of candidates, so a caller can
run ranges in its own threads (the kernels release the GIL); candidate ``i``'s
data (``G[i]`` (C, J), ``K[i]``, ``R[i]`` (C, C)) is read once per call and
its C x C algebra stays in L1. Shapes: ``G_n_C_J`` centred outputs of the
candidates, ``K_n_C_C`` = t I + G M G^T, ``R_n_C_C`` = G W G^T (full
symmetric matrices); ``X`` the rows [b_i | a_i] = G_i [u | m~] of a block of
candidates (:func:`product`).

``fastmath`` allows FMA contraction and reassociation (vectorised sums) only:
NaN and inf keep their IEEE meaning, so a non-finite score stays visible.
Compiled on first use and cached on disk (``cache=True``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_FASTMATH = {"contract", "reassoc"}


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _score_one(K, R, t, L, Kinv):
    """-> (tr(K^-1 (R - t^2 I)), tr R); NaN when K is not positive definite.

    Cholesky K = L L^T, then K^-1 = L^-T L^-1 (lower triangle) and
    tr(K^-1 R') = sum_pq R'_pq (K^-1)_pq with R' = R - t^2 I symmetric.
    """
    C = K.shape[0]
    for p in range(C):
        s = K[p, p]
        for k in range(p):
            s -= L[p, k] * L[p, k]
        if not s > 0.0:  # also catches NaN
            return math.nan, math.nan
        d = math.sqrt(s)
        L[p, p] = d
        for q in range(p + 1, C):
            s2 = K[q, p]
            for k in range(p):
                s2 -= L[q, k] * L[p, k]
            L[q, p] = s2 / d
    # L^-1 (lower) into the upper-left of Kinv's storage: Kinv[p, q] holds (L^-1)_pq for p >= q
    for q in range(C):
        Kinv[q, q] = 1.0 / L[q, q]
        for p in range(q + 1, C):
            s = 0.0
            for k in range(q, p):
                s += L[p, k] * Kinv[k, q]
            Kinv[p, q] = -s / L[p, p]
    # (K^-1)_pq = sum_{k >= p} Linv[k, p] Linv[k, q]  (p >= q), written into the upper triangle
    for p in range(C):
        for q in range(p + 1):
            s = 0.0
            for k in range(p, C):
                s += Kinv[k, p] * Kinv[k, q]
            Kinv[q, p] = s
    tsq = t * t
    acc = 0.0
    tr_r = 0.0
    for p in range(C):
        acc += (R[p, p] - tsq) * Kinv[p, p]
        tr_r += R[p, p]
        for q in range(p + 1, C):
            acc += (R[p, q] + R[q, p]) * Kinv[p, q]
    return acc, tr_r


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def refresh(lo, hi, G, WM, K, R, taken, t, with_K, raw, tr_r):
    """R_i = G_i W G_i^T (and K_i = t I + G_i M G_i^T if ``with_K``) exactly, then score, on [lo, hi).

    ``WM``: (J, J) = W, or (J, 2J) = [W | M] when ``with_K``.
    """
    n, C, J = G.shape
    F = np.empty((C, WM.shape[1]))
    L = np.empty((C, C))
    Kinv = np.empty((C, C))
    for i in range(lo, hi):
        if taken[i]:
            raw[i] = -math.inf
            tr_r[i] = -math.inf
            continue
        Gi = G[i]
        F[:, :] = 0.0
        for c in range(C):
            for j in range(J):
                g = Gi[c, j]
                for e in range(WM.shape[1]):
                    F[c, e] += g * WM[j, e]
        for p in range(C):
            for q in range(C):
                s = 0.0
                for j in range(J):
                    s += F[p, j] * Gi[q, j]
                R[i, p, q] = s
                if with_K:
                    s2 = 0.0
                    for j in range(J):
                        s2 += F[p, J + j] * Gi[q, j]
                    K[i, p, q] = s2 + t if p == q else s2
        raw[i], tr_r[i] = _score_one(K[i], R[i], t, L, Kinv)


@njit(nogil=True, cache=True)
def centre_rotate(lo, hi, y, idx, Q, inv, G):
    """G[k] = Q (y[:, idx[k], :] - mean over passes)^T * inv  for k in [lo, hi).

    ``y`` (J, S, C) float32 or float64; ``Q`` (C', C) orthonormal rows; ``G`` (n, C', J) float64.
    """
    J, _, C = y.shape
    Cm = Q.shape[0]
    a = np.empty((C, J))
    for k in range(lo, hi):
        s = idx[k]
        for c in range(C):
            m = 0.0
            for j in range(J):
                m += y[j, s, c]
            m /= J
            for j in range(J):
                a[c, j] = (y[j, s, c] - m) * inv
        for p in range(Cm):
            for j in range(J):
                G[k, p, j] = 0.0
            for c in range(C):
                q = Q[p, c]
                for j in range(J):
                    G[k, p, j] += q * a[c, j]


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def apply_and_score(lo, hi, X, K, R, taken, t, raw, tr_r):
    """K_i -= b_i b_i^T, R_i -= a_i b_i^T + b_i a_i^T, then score, on [lo, hi);
    ``X`` ((hi - lo) * C, 2C) holds the rows [b_i | a_i] = G_i [u | m~] of these candidates."""
    C = K.shape[1]
    XT = np.empty((2 * C, C))
    L = np.empty((C, C))
    Kinv = np.empty((C, C))
    for i in range(lo, hi):
        if taken[i]:
            raw[i] = -math.inf
            tr_r[i] = -math.inf
            continue
        Ki = K[i]
        Ri = R[i]
        r0 = (i - lo) * C
        for c in range(C):
            for e in range(2 * C):
                XT[e, c] = X[r0 + c, e]
        for p in range(C):
            for d in range(C):
                bp = XT[d, p]
                ap = XT[C + d, p]
                for q in range(C):
                    Ki[p, q] -= bp * XT[d, q]
                    Ri[p, q] -= ap * XT[d, q] + bp * XT[C + d, q]
        raw[i], tr_r[i] = _score_one(Ki, Ri, t, L, Kinv)


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _row_times(x, g, UM):
    """x += g UM  (x (2C,), g (J,), UM (J, 2C)): one candidate row times [u | m~]."""
    for j in range(UM.shape[0]):
        gj = g[j]
        for e in range(UM.shape[1]):
            x[e] += gj * UM[j, e]


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def product(lo, hi, G, UM, X):
    """X[(i - lo) C + c] = G_i[c] [u | m~] for i in [lo, hi) (no BLAS: no BLAS thread pool involved)."""
    C = G.shape[1]
    X[: (hi - lo) * C] = 0.0
    for i in range(lo, hi):
        for c in range(C):
            _row_times(X[(i - lo) * C + c], G[i, c], UM)
