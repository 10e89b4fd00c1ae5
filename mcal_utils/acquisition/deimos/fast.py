"""``deimos``: the DEIMOS batch in the J-dimensional mask space (:mod:`.algebra`), on the numba or
torch backend. O(S C J) memory instead of the dense reference's O((S C)^2)."""

from __future__ import annotations

import numpy as np
import torch

from ..base import CandidateBatch
from .inputs import check_backend, check_candidates, check_picks, check_preds, check_tau_inv, check_threads
from .numba_backend import deimos_numba
from .torch_backend import deimos_torch

__all__ = ["deimos"]


def deimos(
    preds,
    k: int,
    tau_inv: float,
    candidates=None,
    *,
    progress: bool = False,
    threads: int | None = None,
    backend: str = "auto",
) -> CandidateBatch:
    """DEIMOS batch of ``k`` points (Algorithm 1) without forming the (S*C)^2 covariance.

    ``preds``: fixed-mask predictions on X_samp, ``(J, S)`` (regression) or ``(J, S, C)`` class
    probabilities (classification); numpy or torch, any float dtype (float16 / bfloat16 are
    upcast). ``k``: points picked (``1 <= k <=`` the number of candidates). ``tau_inv``: t > 0
    added to the diagonal of the sample covariance (divisor J - 1), in the units of ``preds``
    squared. ``candidates``: boolean mask ``(S,)`` or index array over X_samp (default: all); the
    other points (training members) count in the objective but are never picked or conditioned on.

    ``backend``: ``"numba"`` (compiled per-candidate kernels on the CPU), ``"torch"`` (batched
    tensor code on the tensor's device, e.g. CUDA), or ``"auto"`` (numba for numpy arrays and CPU
    tensors, torch otherwise). ``threads``: worker threads of the numba backend (default: the CPUs
    this process may use); the pool is created and shut down inside the call, and no process-wide
    setting is changed. The torch backend uses torch's own threads.

    Returns ``CandidateBatch`` with ``indices`` into X_samp in greedy order and ``scores`` = each
    pick's trace reduction at pick time (the expected improvement of eq. 5 / 6, units of
    ``preds`` squared). Ties go to the lowest index. Identical to
    :func:`~mcal_utils.acquisition.deimos.deimos_dense` up to rounding. Raises ``ValueError`` when
    the scores are not finite (overflow, or a tau_inv too small for float64).
    """
    y, C = check_preds(preds)
    t = check_tau_inv(tau_inv)
    S = y.shape[1]
    cand = check_candidates(candidates, S)
    k = check_picks(k, cand.size)
    n_threads = check_threads(threads)
    if check_backend(backend, y.device) == "numba":
        if y.dtype not in (torch.float32, torch.float64):  # float16 / bfloat16: upcast
            y = y.to(torch.float64)
        return deimos_numba(np.ascontiguousarray(y.numpy()), C, t, cand, k, progress, n_threads)
    return deimos_torch(y, C, t, cand, k, progress)
