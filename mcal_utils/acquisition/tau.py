"""DEIMOS's tau^-1 from the data (Nagpal & Knowles, Appendix E).

DEIMOS adds tau^-1 to the MC-dropout covariance of the predictions (regression: the model's
noise variance; classification: tau_s^-1, a smoothing term for a stable solve). Appendix E sets
it from the initial model: a ``factor`` times the average MC-dropout variance the step-0 model
predicts on the validation set,

* regression: ``tau^-1 = factor * mean_n Var_t[y_nt]`` (factor 0.1 -- 0.2 in the paper);
* classification: ``tau_s^-1 = factor * mean_{n,c} Var_t[p_ntc]`` (factor 0.001 -- 0.01).

Variances are over the T passes with divisor T (``ddof=0``); the mean is over points (and
classes). The loop computes it once, at step 0, and keeps it for the whole run (the paper keeps
tau constant by scaling the L2 penalty with 1/N).
"""

from __future__ import annotations

import math

from mcal_utils.checks import check_finite, check_float

from .base import as_numpy, check_passes

__all__ = ["auto_tau_inv", "check_tau_factor"]


def check_tau_factor(factor) -> float:
    """A positive finite ``factor`` as a float: ``TypeError`` if not a number, else ``ValueError``."""
    factor = check_float(factor, "tau_inv 'auto' factor")
    if not factor > 0:
        raise ValueError(f"tau_inv 'auto' factor must be a positive finite number (e.g. 0.15), got {factor!r}")
    return factor


def auto_tau_inv(preds, factor: float) -> float:
    """``factor`` x the mean MC-dropout variance of ``preds`` (DEIMOS Appendix E).

    preds: ``(N, T)`` regression outputs or ``(N, T, C)`` class probabilities of the validation
        points under T fresh dropout masks (T >= 2).
    Returns ``factor * mean(Var_t)`` over points (and classes), float. A variance of exactly 0
    (no dropout, or a collapsed model) gives tau^-1 = 0, which DEIMOS cannot use: refused.
    """
    factor = check_tau_factor(factor)
    y = as_numpy(preds, "preds")
    if y.ndim not in (2, 3) or y.shape[0] == 0:
        raise ValueError(
            f"preds must have shape (N, T) (regression) or (N, T, C) (class probabilities) with "
            f"N >= 1, got shape {y.shape}"
        )
    check_passes(int(y.shape[1]), "tau_inv={'auto': ...}", name="T")
    check_finite(y, "preds")
    tau_inv = factor * float(y.var(axis=1, ddof=0).mean())
    if not (math.isfinite(tau_inv) and tau_inv > 0):
        raise ValueError(
            f"tau_inv from the data is {tau_inv!r}: the step-0 model's MC-dropout variance on the "
            f"validation set is 0 or not finite (no active dropout?). Give tau_inv as a number."
        )
    return tau_inv
