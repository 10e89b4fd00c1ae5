r"""Compiled kernels of the numba backend (:mod:`.numba_backend`), candidates as SIMD lanes.

The math is in :mod:`.algebra`. Candidates are stored in blocks of NL lanes: ``G``
(n_blocks, J, C', NL) holds G_i = A_{B_i} (C', J) of candidate i = b NL + l at ``G[b, :, :, l]``,
and ``K``, ``R`` (n_blocks, C', C', NL) hold K_i = t I + G_i M G_i^T and R_i = G_i W G_i^T (lower
triangles only), float64. Every C' x C' operation (the rank-C' updates, the Cholesky
factorisation, L^-1, the score) then runs on NL candidates at once with the lane index innermost,
so the compiler vectorises it; the (2C' x J) x (J x C' NL) product of a block goes to BLAS
(``np.dot``), whose thread count the caller limits to one per worker thread. Every kernel works on
a contiguous range ``[b0, b1)`` of blocks, so a caller can run ranges in its own threads (the
kernels release the GIL); a block's data (a few hundred kB) stays in L2 while it is updated and
scored.

``fastmath`` allows FMA contraction and reassociation (vectorised sums) only: NaN and inf keep
their IEEE meaning, so a non-finite score stays visible. Compiled on first use and cached on disk
(``cache=True``: ``__pycache__`` next to this file, or ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["refresh_blocks", "update_blocks", "centre_rotate_lanes", "centre_rotate"]

_FASTMATH = {"contract", "reassoc"}


@njit(nogil=True, cache=True, fastmath=_FASTMATH, inline="always")
def _cholesky_entry(K, Lf, q, p, NL):
    """``Lf[q, p] = K[q, p] - sum_{k < p} Lf[q, k] Lf[p, k]`` lane-wise (before the root or the division
    by L_pp); returns ``Lf[q, p]``."""
    lqp = Lf[q, p]
    kqp = K[q, p]
    for l in range(NL):
        lqp[l] = kqp[l]
    for k in range(p):
        lqk = Lf[q, k]
        lpk = Lf[p, k]
        for l in range(NL):
            lqp[l] -= lqk[l] * lpk[l]
    return lqp


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _score_block(K, R, taken, tsq, raw, tr_r, Lf, Li):
    """raw_l = tr(K_l^-1 (R_l - t^2 I)), tr_r_l = tr R_l for the NL lanes of one block.

    K, R (C, C, NL) lower triangles; Cholesky K = L L^T lane-wise (NaN where K is
    not positive definite), L^-1 by forward substitution, then
    tr(K^-1 R') = sum_pq R'_pq (K^-1)_pq with (K^-1)_pq = sum_{k >= p} (L^-1)_kp (L^-1)_kq.
    Taken lanes get -inf.
    """
    C = K.shape[0]
    NL = K.shape[2]
    for p in range(C):
        lpp = _cholesky_entry(K, Lf, p, p, NL)
        lipp = Li[p, p]
        for l in range(NL):
            s = lpp[l]
            lpp[l] = math.sqrt(s) if s > 0.0 else math.nan  # also NaN in, NaN out
            lipp[l] = 1.0 / lpp[l]  # (L^-1)_pp
        for q in range(p + 1, C):
            lqp = _cholesky_entry(K, Lf, q, p, NL)
            for l in range(NL):
                lqp[l] *= lipp[l]
    for q in range(C):  # Li = L^-1 (lower; its diagonal is set above)
        for p in range(q + 1, C):
            lipq = Li[p, q]
            for l in range(NL):
                lipq[l] = 0.0
            for k in range(q, p):
                lpk = Lf[p, k]
                likq = Li[k, q]
                for l in range(NL):
                    lipq[l] += lpk[l] * likq[l]
            lipp = Li[p, p]
            for l in range(NL):
                lipq[l] = -lipq[l] * lipp[l]
    for l in range(NL):
        raw[l] = 0.0
        tr_r[l] = 0.0
    for p in range(C):
        rpp = R[p, p]
        for l in range(NL):
            tr_r[l] += rpp[l]
        for k in range(p, C):
            likp = Li[k, p]
            for l in range(NL):
                raw[l] += (rpp[l] - tsq) * likp[l] * likp[l]
        for q in range(p):
            rpq = R[p, q]
            for k in range(p, C):
                likp = Li[k, p]
                likq = Li[k, q]
                for l in range(NL):
                    raw[l] += 2.0 * rpq[l] * likp[l] * likq[l]
    for l in range(NL):
        if taken[l]:
            raw[l] = -math.inf
            tr_r[l] = -math.inf


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def refresh_blocks(b0, b1, WM, G, K, R, taken, t, with_K, raw, tr_r):
    """R_i = G_i W G_i^T (and K_i = t I + G_i M G_i^T if ``with_K``) exactly, then scores, on blocks [b0, b1).

    ``WM``: (J, J) = W, or (2J, J) = [W; M] stacked when ``with_K`` (both symmetric).
    """
    nb, J, C, NL = G.shape
    F = np.empty((WM.shape[0], C, NL))
    Ff = F.reshape(WM.shape[0], C * NL)
    Lf = np.zeros((C, C, NL))
    Li = np.zeros((C, C, NL))
    for b in range(b0, b1):
        Gb = G[b]
        np.dot(WM, Gb.reshape(J, C * NL), Ff)  # F[e, p, l] = (W or M  G_l^T)[e, p]
        for p in range(C):
            for q in range(p + 1):
                r = R[b, p, q]
                for l in range(NL):
                    r[l] = 0.0
                for j in range(J):
                    fjp = F[j, p]
                    gjq = Gb[j, q]
                    for l in range(NL):
                        r[l] += fjp[l] * gjq[l]
                if with_K:
                    k = K[b, p, q]
                    for l in range(NL):
                        k[l] = t if p == q else 0.0
                    for j in range(J):
                        fjp = F[J + j, p]
                        gjq = Gb[j, q]
                        for l in range(NL):
                            k[l] += fjp[l] * gjq[l]
        _score_block(K[b], R[b], taken[b], t * t, raw[b], tr_r[b], Lf, Li)


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def update_blocks(b0, b1, UM, G, K, R, taken, t, raw, tr_r):
    """K_i -= b_i b_i^T, R_i -= a_i b_i^T + b_i a_i^T, then scores, on blocks [b0, b1).

    ``UM`` (2C, J) = [u | m~]^T; per block X = UM G_b (BLAS) holds
    X[d, p, l] = (G_l u)_pd = (b_l)_pd and X[C + d, p, l] = (a_l)_pd.
    """
    nb, J, C, NL = G.shape
    X = np.empty((2 * C, C, NL))
    Xf = X.reshape(2 * C, C * NL)
    Lf = np.zeros((C, C, NL))
    Li = np.zeros((C, C, NL))
    for b in range(b0, b1):
        np.dot(UM, G[b].reshape(J, C * NL), Xf)
        for p in range(C):
            for q in range(p + 1):
                kpq = K[b, p, q]
                rpq = R[b, p, q]
                for d in range(C):
                    bp = X[d, p]
                    bq = X[d, q]
                    ap = X[C + d, p]
                    aq = X[C + d, q]
                    for l in range(NL):
                        kpq[l] -= bp[l] * bq[l]
                        rpq[l] -= ap[l] * bq[l] + bp[l] * aq[l]
        _score_block(K[b], R[b], taken[b], t * t, raw[b], tr_r[b], Lf, Li)


@njit(nogil=True, cache=True)
def _centred_point(y, s, Q, inv, a, g):
    """g (C', J) = Q (y[:, s, :] - mean over passes)^T * inv; ``a`` (C, J) scratch."""
    J, _, C = y.shape
    for c in range(C):
        m = 0.0
        for j in range(J):
            m += y[j, s, c]
        m /= J
        for j in range(J):
            a[c, j] = (y[j, s, c] - m) * inv
    for p in range(Q.shape[0]):
        for j in range(J):
            g[p, j] = 0.0
        for c in range(C):
            q = Q[p, c]
            for j in range(J):
                g[p, j] += q * a[c, j]


@njit(nogil=True, cache=True)
def centre_rotate_lanes(b0, b1, y, idx, Q, inv, G):
    """G[b, :, :, l] = (Q (y[:, idx[k], :] - mean over passes)^T * inv)^T, k = b NL + l, on blocks [b0, b1);
    lanes with k >= len(idx) (padding) are zero. ``G`` (n_blocks, J, C', NL) float64."""
    J, _, C = y.shape
    NL = G.shape[3]
    Cm = Q.shape[0]
    n = idx.shape[0]
    a = np.empty((C, J))
    g = np.empty((Cm, J))
    for b in range(b0, b1):
        for l in range(NL):
            k = b * NL + l
            if k < n:
                _centred_point(y, idx[k], Q, inv, a, g)
            else:
                g[:, :] = 0.0
            for j in range(J):
                for p in range(Cm):
                    G[b, j, p, l] = g[p, j]


@njit(nogil=True, cache=True)
def centre_rotate(lo, hi, y, idx, Q, inv, G):
    """G[k] = Q (y[:, idx[k], :] - mean over passes)^T * inv  for k in [lo, hi).

    ``y`` (J, S, C) float32 or float64; ``Q`` (C', C) orthonormal rows; ``G`` (n, C', J) float64.
    """
    a = np.empty((y.shape[2], y.shape[0]))
    for k in range(lo, hi):
        _centred_point(y, idx[k], Q, inv, a, G[k])
