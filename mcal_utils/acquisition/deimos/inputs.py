"""Argument checks shared by every DEIMOS entry point (dense reference and fast backends).

Wrong types raise ``TypeError``, bad values ``ValueError`` (see :mod:`mcal_utils.checks`).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from mcal_utils.checks import check_choice, check_float, check_int

from ..base import PROB_ATOL, check_k

__all__ = [
    "BACKENDS",
    "as_tensor",
    "check_preds",
    "check_tau_inv",
    "check_candidates",
    "check_picks",
    "check_threads",
    "check_backend",
]

#: ``backend`` values of :func:`mcal_utils.acquisition.deimos.deimos`.
BACKENDS = ("auto", "numba", "torch")


def as_tensor(x, name: str) -> torch.Tensor:
    """numpy array or torch tensor -> real floating tensor (no copy where possible; ints -> float64)."""
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


def check_preds(preds) -> tuple[torch.Tensor, int]:
    """Fixed-mask predictions ``(J, S)`` (regression) or ``(J, S, C)`` probabilities -> ``(J, S, C)`` tensor, C.

    J >= 2 passes, S >= 1 points, finite; probabilities in [0, 1] summing to 1 over the last axis
    within ``PROB_ATOL``. A regression ``(J, S)`` array becomes ``(J, S, 1)``.
    """
    y = as_tensor(preds, "preds")
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


def check_tau_inv(tau_inv) -> float:
    """t = tau^-1 > 0, finite: the model's inverse precision added to the covariance's diagonal."""
    return check_float(tau_inv, "tau_inv", gt=0.0)


def check_candidates(candidates, S: int) -> np.ndarray:
    """Boolean mask ``(S,)`` or index array over X_samp (None: all S points) -> sorted unique int64 indices."""
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


def check_picks(k, n_cand: int) -> int:
    """k, the points picked per step: an int with ``1 <= k <= n_cand``."""
    k = check_k(k, n_cand, "candidates")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return k


def check_threads(threads) -> int:
    """Worker threads of the numba backend: an int >= 1, or None for every CPU this process may use."""
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    return check_int(threads, "threads (None: all CPUs of this process)", ge=1)


def check_backend(backend, device: torch.device) -> str:
    """``"auto"`` -> ``"numba"`` for CPU data, ``"torch"`` otherwise; ``"numba"`` refused off the CPU."""
    check_choice(backend, "backend", BACKENDS)
    if backend == "auto":
        return "numba" if device.type == "cpu" else "torch"
    if backend == "numba" and device.type != "cpu":
        raise ValueError(
            f"backend='numba' runs on the CPU, but preds live on {device}; use backend='torch' (or 'auto') "
            "for tensors on an accelerator"
        )
    return backend
