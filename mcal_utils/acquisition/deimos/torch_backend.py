"""The torch backend of :func:`~mcal_utils.acquisition.deimos.deimos` (any device, e.g. CUDA):
:mod:`.algebra`'s greedy as batched tensor code.

Per step: one (2C, J) x (J, n C) product gives every candidate's [b_i | a_i], then batched rank-C
updates of K_i and D_i, a batched C x C Cholesky and triangular inverse and the scores (full C, no
class-sum rotation). The J x J and C x C algebra runs on the CPU (tiny), the O(n) work on the
predictions' device; on the CPU it runs in cache-sized blocks of ``BLOCK`` / C^2 candidates.
Memory O(n C J).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..base import CandidateBatch
from .algebra import check_scale, condition_on_block, exact_W, greedy, rounding_error

__all__ = ["deimos_torch", "BLOCK"]

#: Candidates * C^2 per cache-sized block (CPU).
BLOCK = 1 << 17


def _centred_T(y_J_S_C: torch.Tensor, cand: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (A_cand^T as (J, n_cand * C) float64, H = A^T A over all S*C rows as (J, J) on the CPU).

    Column k*C + c of A_cand^T is the centred output c of candidate k over the J passes, divided
    by sqrt(J - 1). Built in chunks of points, in place, to keep the peak memory at A_cand^T plus a
    few MB.
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


def _solve_lower(L: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    return torch.linalg.solve_triangular(L, X, upper=False)


class _TorchState:
    """The :class:`~.algebra.GreedyState` of the torch backend.

    Per candidate i (on the device): K_i = t I + G_i M G_i^T and D_i with (D_i + D_i^T) / 2 =
    G_i W G_i^T - t^2 I, so that score_i = 2 t C + tr(K_i^{-1} D_i) (K_i^{-1} symmetric sees only
    the symmetric part).
    """

    def __init__(self, y: torch.Tensor, C: int, t: float, cand: np.ndarray):
        J = y.shape[0]
        device = y.device
        f64 = torch.float64
        GT, H = _centred_T(y, cand)  # (J, n*C): candidate rows of A, transposed; (J, J)
        check_scale(bool(torch.isfinite(H).all()), lambda: float(H.trace()), t, C)
        n = cand.size
        self.J, self.C, self.t, self.n = J, C, t, n
        self.GT = GT
        self.G = GT.view(J, n, C).permute(1, 2, 0)  # (n, C, J) view: G_i = A_{B_i}
        self.M = torch.eye(J, dtype=f64)  # posterior covariance of the mask weights (CPU)
        self.HQ = H.clone()  # sum of a a^T over the rows not conditioned on (CPU)
        self.eye_c = torch.eye(C, dtype=f64)
        self.K = torch.empty((n, C, C), dtype=f64, device=device)
        self.D = torch.empty((n, C, C), dtype=f64, device=device)
        self.L = torch.empty_like(self.K)
        self.info = torch.empty(n, dtype=torch.int32, device=device)
        self.raw = torch.empty(n, dtype=f64, device=device)
        self.trD = torch.zeros(n, dtype=f64, device=device)  # tr D_i at the last scoring (for top_r)
        self.diag_CC = torch.eye(C, dtype=f64, device=device).reshape(C * C)
        self.eyeC = torch.eye(C, dtype=f64, device=device)
        self.eye_n = self.eyeC.expand(n, C, C)
        self.taken = torch.zeros(n, dtype=torch.bool, device=device)
        self.neg_inf = torch.tensor(-math.inf, dtype=f64, device=device)
        self.chunk = max(1, (1 << 18) // (C * J))
        self.block = max(64, BLOCK // (C * C)) if device.type == "cpu" else n
        self.device = device

    def _exact(self, W_t: torch.Tensor, with_K: bool) -> None:
        """D (and K) of every candidate from W (and M) directly: resets the rounding of the updates."""
        J, t, G, D, K = self.J, self.t, self.G, self.D, self.K
        for a in range(0, self.n, self.chunk):
            z = min(a + self.chunk, self.n)
            g = G[a:z].contiguous()  # (k, C, J)
            f = (g.view(-1, J) @ W_t).view(z - a, self.C, -1)
            torch.bmm(f[:, :, :J], g.transpose(1, 2), out=D[a:z])
            D[a:z].diagonal(dim1=1, dim2=2).sub_(t * t)
            if with_K:
                torch.bmm(f[:, :, J:], g.transpose(1, 2), out=K[a:z])
                K[a:z].diagonal(dim1=1, dim2=2).add_(t)

    def _refresh(self, with_K: bool) -> None:
        """K only at the start: K_i = t I + P_i keeps ~1e-16 |P_i(0)| / t relative accuracy."""
        W = exact_W(self.M, self.HQ)
        mats = [W, self.M] if with_K else [W]
        self._exact(torch.cat(mats, dim=1).to(self.device), with_K)
        if bool(self.taken.any()):  # picked: G_i = 0, park at K = I, D = 0 (masked anyway)
            self.K[self.taken] = self.eyeC
            self.D[self.taken] = 0.0

    def _update(self, lo: int, hi: int, umT: torch.Tensor) -> None:
        """K_i -= b_i b_i^T, D_i -= 2 b_i a_i^T for the candidates in [lo, hi)."""
        C = self.C
        ba = (umT @ self.GT[:, lo * C : hi * C]).view(2, C, hi - lo, C)  # ba[0, d, k, a] = (G_k u)_ad
        bi, ai = ba[0].permute(1, 2, 0), ba[1].permute(1, 2, 0)  # (k, C, C) views
        self.K[lo:hi].baddbmm_(bi, bi.transpose(1, 2), alpha=-1.0)
        self.D[lo:hi].baddbmm_(bi, ai.transpose(1, 2), alpha=-2.0)

    def _score(self, lo: int, hi: int) -> None:
        """score - 2tC = tr(K^-1 D) = tr(L^-1 D L^-T) = sum_ab (L^-1 D)_ab (L^-1)_ab on [lo, hi)."""
        C, K, D, L = self.C, self.K, self.D, self.L
        torch.linalg.cholesky_ex(K[lo:hi], out=(L[lo:hi], self.info[lo:hi]))
        k = hi - lo
        LinvT = torch.linalg.solve_triangular(L[lo:hi], self.eye_n[lo:hi], upper=False).mT  # (L^-1)^T
        XT = torch.bmm(D[lo:hi].mT, LinvT)  # (L^-1 D)^T
        self.raw[lo:hi] = torch.linalg.vecdot(XT.reshape(k, C * C), LinvT.reshape(k, C * C))
        torch.mv(D[lo:hi].view(hi - lo, C * C), self.diag_CC, out=self.trD[lo:hi])  # tr D_i, while in cache

    def _update_and_score(self, umT: torch.Tensor | None) -> None:
        for a in range(0, self.n, self.block):  # cache-sized blocks: each block's data is touched once
            z = min(a + self.block, self.n)
            if umT is not None:
                self._update(a, z, umT)
            self._score(a, z)

    def start(self) -> None:
        self._refresh(with_K=True)
        self._update_and_score(None)

    def refresh(self) -> None:
        self._refresh(with_K=False)
        self._score(0, self.n)

    def best(self) -> tuple[int, float]:
        bad = int(((self.info != 0) | ~torch.isfinite(self.raw)).logical_and_(~self.taken).sum())
        if bad:
            raise rounding_error(self.t, bad)
        score = torch.where(self.taken, self.neg_inf, self.raw + (2.0 * self.t * self.C))
        j = int(torch.argmax(score))  # first maximum -> lowest index (cand is sorted)
        return j, float(score[j])

    def top_r(self) -> float:  # largest tr(G_i W G_i^T) (picked ones hold D = 0)
        return float(self.trD.max()) + self.t * self.t * self.C

    def take(self, j: int) -> None:
        self.taken[j] = True

    def condition(self, j: int) -> None:
        GB = self.G[j].to("cpu", copy=True)  # (C, J)
        LB = self.L[j].cpu()  # (C, C)
        upd = condition_on_block(self.M, self.HQ, GB, LB, self.t, self.eye_c, _solve_lower)
        self.G[j] = 0.0  # picked: no more updates; parked at K = I, D = 0
        self.K[j] = self.eyeC
        self.D[j] = 0.0
        umT = torch.cat([upd.u, upd.m_tilde], dim=1).T.contiguous().to(self.device)  # (2C, J)
        self.M, self.HQ = upd.M, upd.HQ
        self._update_and_score(umT)


def deimos_torch(y: torch.Tensor, C: int, t: float, cand: np.ndarray, k: int, progress: bool) -> CandidateBatch:
    """k DEIMOS picks as batched tensor code on ``y``'s device.

    ``y`` (J, S, C) predictions (checked); ``C``: outputs per point; ``t``: tau_inv; ``cand``:
    sorted candidate indices into X_samp. Returns the ``CandidateBatch`` of
    :func:`~mcal_utils.acquisition.deimos.deimos`.
    """
    return greedy(_TorchState(y, C, t, cand), cand, k, progress)
