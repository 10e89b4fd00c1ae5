r"""DEIMOS's greedy (Algorithm 1) in the J-dimensional mask space, written once for every fast backend.

The equations of the package docstring, without forming the (S*C)^2 covariance. Notation: J
fixed-mask passes, t = tau_inv, A (S*C, J) the centred predictions / sqrt(J - 1), P the rows
conditioned on so far, Q the rows not in P, G_i = A_{B_i} (C, J) the rows of candidate i.

Derivation (Bayesian linear regression on the mask weights)
------------------------------------------------------------
V is the covariance of  y = A w + e,  w ~ N(0, I_J),  e ~ N(0, t I).  Conditioning V on the
picked blocks one at a time (Schur complements, Algorithm 1) equals conditioning once on their
union P (Gaussian conditioning). Observing y_P = A_P w + e_P gives the posterior of the weights

    M = Cov(w | y_P) = (I + A_P^T A_P / t)^{-1}        (J, J), M = I when P is empty,

and, since e_r of an unobserved row r is independent of y_P,

    V_P[r, k] = a_r^T M a_k + t [r = k]    for r, k in Q,      V_P[r, :] = 0 for r in P.

For a candidate block B (in Q) with G = A_B:

    K = V_P[B, B] = t I_C + G M G^T                                         (C, C)
    V_P[Q, B]     = A_Q M G^T + t E_B                     (E_B: the columns of I_Q at B)
    V_P[Q, B]^T V_P[Q, B] = G M H_Q M G^T + 2 t G M G^T + t^2 I_C,          H_Q = A_Q^T A_Q
                          = G W G^T + 2 t K - t^2 I_C,                      W = M H_Q M

so (eq. 5 / 6, the rows of P contributing nothing)

    score(i) = tr(K_i^{-1} G_i W G_i^T) + 2 t C - t^2 tr(K_i^{-1}) = 2 t C + tr(K_i^{-1} D_i),

with D_i any C x C matrix whose symmetric part is R_i - t^2 I, R_i = G_i W G_i^T; the t-terms
are the candidate's own observation noise. A backend keeps K_i and D_i (or R_i) per candidate
and scores with a batched C x C Cholesky K_i = L_i L_i^T:
tr(K_i^{-1} D_i) = sum_ab (L_i^{-1} D_i)_ab (L_i^{-1})_ab.

Block update (:func:`condition_on_block`)
-----------------------------------------
Picking B (K_B = L L^T) updates, exactly:

    u    = M G_B^T L^{-T}                  (J, C)      M'  = M - u u^T   (Woodbury, rank C)
    H_Q' = H_Q - G_B^T G_B
    M' G_B^T = u Z,  Z = L^T - u^T G_B^T = t L^{-1}  (no cancellation for small t)
    W'   = M' H_Q' M' = W - m u^T - u m^T + u T u^T,   m = M H_Q u,  T = u^T H_Q u - Z Z^T
         = W - m~ u^T - u m~^T,                         m~ = m - u T / 2
    K_i' = K_i - b_i b_i^T,   D_i' = D_i - 2 b_i a_i^T,   b_i = G_i u,  a_i = G_i m~
                               (R_i' = R_i - a_i b_i^T - b_i a_i^T)

Rounding (:func:`greedy`)
-------------------------
R_i shrinks from O(|H|) to O(t^2 |H|) while the rank-C updates subtract O(|H|) quantities, so
once the top score (or the top tr R_i) has fallen below ``REFRESH`` = 1e-4 of its value at the
last exact evaluation, D (R) is recomputed exactly from W = M H_Q M (:func:`exact_W`); the
relative error of the scores then stays ~1e-11. K_i = t I + G_i M G_i^T needs no such reset
(K_i >= t I: its absolute rounding ~1e-16 |K_i(0)| stays ~1e-16 |K_i(0)| / t relative), and M
is accurate to ~1e-16 absolute. Checked against the dense form to 1e-8, tau_inv down to 3e-5.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
from tqdm.auto import tqdm

from ..base import CandidateBatch

__all__ = [
    "REFRESH",
    "BlockUpdate",
    "GreedyState",
    "condition_on_block",
    "exact_W",
    "check_scale",
    "overflow_error",
    "rounding_error",
    "greedy",
]

#: Recompute D_i (R_i) exactly once the top score (or the top tr R_i) fell below this fraction
#: of its value at the last exact evaluation, so the rounding of the rank-C updates stays ~1e-11.
REFRESH = 1e-4


class BlockUpdate(NamedTuple):
    """What conditioning on one picked block changes (module docstring, "Block update").

    ``u`` (J, C) and ``m_tilde`` (J, C): b_i = G_i u, a_i = G_i m~ give every candidate's rank-C
    update; ``M`` (J, J): the new posterior covariance of the mask weights; ``HQ`` (J, J): the new
    sum of a a^T over the rows not conditioned on.
    """

    u: Any
    m_tilde: Any
    M: Any
    HQ: Any


def condition_on_block(M, HQ, G_B, L_B, t: float, eye_C, solve_lower: Callable) -> BlockUpdate:
    """Algorithm 1's update V_{P+B} = V_P - V_P[:, B] V_P[B, B]^{-1} V_P[B, :] in mask space.

    ``M``, ``HQ`` (J, J) float64; ``G_B`` (C, J): the picked candidate's centred rows;
    ``L_B`` (C, C): the lower Cholesky factor of its K_B = t I + G_B M G_B^T; ``eye_C``: I_C;
    ``solve_lower(L, X)``: L^{-1} X for lower-triangular L. numpy arrays or torch tensors (the
    operations are those of both). Returns :class:`BlockUpdate` (Woodbury, rank C; no inverse).
    """
    u = solve_lower(L_B, G_B @ M).T  # (J, C) = M G^T L^{-T}
    HQu = HQ @ u
    Z = solve_lower(L_B, t * eye_C)  # t L^{-1} = L^T - u^T G^T
    T = u.T @ HQu - Z @ Z.T
    T = 0.5 * (T + T.T)
    m_tilde = M @ HQu - 0.5 * (u @ T)
    M_new = M - u @ u.T
    M_new = 0.5 * (M_new + M_new.T)
    return BlockUpdate(u=u, m_tilde=m_tilde, M=M_new, HQ=HQ - G_B.T @ G_B)


def exact_W(M, HQ):
    """W = M H_Q M (J, J), symmetrised: R_i = G_i W G_i^T recomputed without the updates' rounding."""
    W = M @ HQ @ M
    return 0.5 * (W + W.T)


def overflow_error(t: float) -> ValueError:
    return ValueError(
        f"DEIMOS scores overflow float64: the predictions or tau_inv = {t:g} are too large "
        "(the covariance of the outputs is not finite); rescale the predictions or tau_inv"
    )


def rounding_error(t: float, bad: int) -> ValueError:
    return ValueError(
        f"DEIMOS scores of {bad} candidate(s) are not finite: with tau_inv = {t:g} a candidate's block "
        "V[B, B] lost positive definiteness to float64 rounding, or the scores overflowed; "
        "increase tau_inv (or rescale the predictions)"
    )


def check_scale(H_is_finite: bool, trace_H: Callable[[], float], t: float, C: int) -> None:
    """``ValueError`` (:func:`overflow_error`) unless H = A^T A (J, J), t^2 C and tr H + t are finite.

    ``trace_H`` is called only when H is finite.
    """
    if not (H_is_finite and math.isfinite(t * t * C) and math.isfinite(trace_H() + t)):
        raise overflow_error(t)


class GreedyState(Protocol):
    """A backend's per-candidate state (K_i, D_i or R_i, scores) and the J x J state (M, H_Q)."""

    def start(self) -> None:
        """Exact K_i, D_i (R_i) and scores of every candidate (P empty)."""

    def refresh(self) -> None:
        """Exact D_i (R_i) from :func:`exact_W` (K_i kept), then every score."""

    def best(self) -> tuple[int, float]:
        """(position in the candidates, score) of the best unpicked candidate, first on ties;
        ``ValueError`` (:func:`rounding_error`) if an unpicked score is not finite."""
        ...

    def top_r(self) -> float:
        """The largest tr R_i over the candidates (for the refresh rule)."""
        ...

    def take(self, j: int) -> None:
        """Mark candidate j as picked (never scored again)."""

    def condition(self, j: int) -> None:
        """Condition on candidate j's block (:func:`condition_on_block`), update and rescore the rest."""


def greedy(state: GreedyState, cand: Sequence[int] | np.ndarray, k: int, progress: bool) -> CandidateBatch:
    """Algorithm 1 in mask space: k picks from ``cand`` (sorted indices into X_samp) on ``state``.

    Each step picks the best score, refreshing D_i exactly first when the scale dropped below
    ``REFRESH`` of the last exact evaluation (module docstring, "Rounding"), then conditions on the
    pick. Returns the picks (indices into X_samp) and each pick's score when picked.
    """
    state.start()
    ref_score: float | None = None
    ref_R: float | None = None
    picks: list[int] = []
    scores: list[float] = []
    with tqdm(total=k, disable=not progress, desc="DEIMOS", leave=False) as bar:
        for step in range(k):
            j, top = state.best()
            if ref_score is None or ref_R is None:
                ref_score, ref_R = top, state.top_r()
            elif top < REFRESH * ref_score or state.top_r() < REFRESH * ref_R:
                state.refresh()  # the scale dropped: rounding of the updates would dominate
                j, top = state.best()
                ref_score, ref_R = top, state.top_r()
            picks.append(int(cand[j]))
            scores.append(top)
            state.take(j)
            bar.update()
            if step == k - 1:
                break
            state.condition(j)
    return CandidateBatch(indices=np.asarray(picks, dtype=np.int64), scores=np.asarray(scores, dtype=np.float64))
