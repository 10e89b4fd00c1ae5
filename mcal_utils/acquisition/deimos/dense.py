"""The reference: Algorithm 1 written literally on the (S*C)^2 covariance, float64, no explicit inverse.

``score_P(i) = tr(V_P[:, B_i] V_P[B_i, B_i]^{-1} V_P[B_i, :])`` (eq. 5 / 6) by a Cholesky solve of
each candidate's C x C block, and ``V_{P+i} = V_P - X^T X`` with ``X = L^{-1} V_P[B_i, :]``
(Algorithm 1's update by a triangular solve). Memory O((S*C)^2), time O((S*C)^2 C) per pick: for
testing the fast backends (:mod:`.algebra`) and for small problems.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from ..base import CandidateBatch
from .inputs import as_tensor, check_candidates, check_picks, check_preds, check_tau_inv

__all__ = ["deimos_dense", "deimos_from_covariance"]


def _greedy_dense(V: torch.Tensor, C: int, cand: np.ndarray, k: int, progress: bool = False) -> CandidateBatch:
    """Algorithm 1 on a float64 covariance V (S*C, S*C) (C rows per point), updated in place."""
    n = V.shape[0]
    S = n // C
    V3 = V.view(S, C, n)  # rows of point s
    remaining = torch.ones(S, dtype=torch.bool, device=V.device)
    is_cand = torch.zeros(S, dtype=torch.bool, device=V.device)
    is_cand[torch.as_tensor(cand, device=V.device)] = True
    chunk = max(1, (1 << 24) // max(1, n * C))
    picks, scores = [], []
    with tqdm(total=k, disable=not progress, desc="DEIMOS (dense)", leave=False) as bar:
        for _ in range(k):
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
            score = torch.cholesky_solve(gram, L).diagonal(dim1=-2, dim2=-1).sum(-1)  # eq. 5 / 6
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


def deimos_from_covariance(V, k: int, candidates=None, *, progress: bool = False) -> CandidateBatch:
    """Algorithm 1 (one output per point, C = 1) on a given covariance ``V`` ``(S, S)``.

    ``V`` symmetric positive definite; ``k`` points picked; ``candidates`` as in
    :func:`~mcal_utils.acquisition.deimos.deimos`. Returns the picks in greedy order with each
    pick's trace reduction tr(V[:, i] V[i, i]^{-1} V[i, :]) at pick time (eq. 5 / 6, units of
    V). Used for the paper's Appendix A example.
    """
    Vt = as_tensor(V, "V").to(torch.float64).clone()
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
    cand = check_candidates(candidates, S)
    k = check_picks(k, cand.size)
    return _greedy_dense(Vt, 1, cand, k, progress)


def _centred(y_J_S_C: torch.Tensor) -> torch.Tensor:
    """A as (S, C, J) float64: (Y - mean over the J passes) / sqrt(J - 1), built in chunks."""
    J, S, C = y_J_S_C.shape
    A = torch.empty((S, C, J), dtype=torch.float64, device=y_J_S_C.device)
    step = max(1, (1 << 22) // max(1, J * C))
    for lo in range(0, S, step):
        blk = y_J_S_C[:, lo : lo + step].to(device=y_J_S_C.device, dtype=torch.float64)
        blk = blk - blk.mean(0, keepdim=True)
        A[lo : lo + step] = blk.permute(1, 2, 0)
    A.mul_(1.0 / math.sqrt(J - 1))
    return A


def deimos_dense(preds, k: int, tau_inv: float, candidates=None, *, progress: bool = False) -> CandidateBatch:
    """Reference DEIMOS: Algorithm 1 literally, on V = t I + A A^T of size (S*C)^2 (float64).

    Same arguments and result as :func:`~mcal_utils.acquisition.deimos.deimos`; memory
    O((S*C)^2) float64 (a 20000^2 matrix is 3.2 GB), time O((S*C)^2 C) per pick.
    """
    y, C = check_preds(preds)
    t = check_tau_inv(tau_inv)
    J, S, _ = y.shape
    cand = check_candidates(candidates, S)
    k = check_picks(k, cand.size)
    A = _centred(y).reshape(S * C, J)
    V = A @ A.T
    del A
    V.diagonal().add_(t)
    return _greedy_dense(V, C, cand, k, progress)
