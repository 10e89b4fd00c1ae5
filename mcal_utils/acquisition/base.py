"""Shared pieces of every acquisition strategy: the result object, input
conversion and validation, and the two basic selection rules.

Arrays come in as numpy arrays or torch tensors and leave as float64 numpy
arrays. Names carry shapes: ``probs_N_C`` (one deterministic pass),
``probs_N_T_C`` (T MC passes), ``log_probs_N_K_C`` (K shared-mask passes),
``preds_N_T`` (regression), ``scores_N``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcal_utils.checks import check_finite, check_int, check_random_state

__all__ = [
    "CandidateBatch",
    "as_numpy",
    "check_probs",
    "check_log_probs",
    "check_k",
    "check_passes",
    "check_scores",
    "top_k",
    "random_batch",
    "PROB_ATOL",
]

#: Tolerance on ``|sum_c p_c - 1|`` along the class axis (float32/float64 inputs; float16 and
#: bfloat16 inputs get ``2 C eps`` of their own dtype, see :func:`check_probs`).
PROB_ATOL = 1e-4
_LOW_PRECISION_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


@dataclass(frozen=True)
class CandidateBatch:
    """The points picked by a strategy.

    ``indices``: int64 ``(k,)``, in pick order (the first is picked first).
    ``scores``: float64 ``(k,)``, the score of each pick when it was picked
    (top-k strategies: the point's own score; greedy strategies: the value
    their docstring names, e.g. the batch's joint score so far for BatchBALD).
    """

    indices: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        indices = np.asarray(self.indices)
        scores = np.asarray(self.scores, dtype=np.float64)
        if indices.ndim != 1 or scores.ndim != 1:
            raise ValueError(
                f"CandidateBatch expects 1-D indices and scores, got shapes {indices.shape} and {scores.shape}"
            )
        if indices.shape != scores.shape:
            raise ValueError(
                f"CandidateBatch expects as many scores as indices, got "
                f"{scores.shape[0]} scores for {indices.shape[0]} indices"
            )
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            if not np.all(np.equal(np.mod(indices, 1), 0)):
                raise ValueError(f"CandidateBatch expects integer indices, got {indices.dtype}")
        indices = indices.astype(np.int64)
        if indices.size and indices.min() < 0:
            raise ValueError("CandidateBatch expects non-negative indices")
        if np.unique(indices).size != indices.size:
            raise ValueError("CandidateBatch expects distinct indices (a point is picked at most once)")
        indices.setflags(write=False)
        scores = scores.copy()
        scores.setflags(write=False)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def as_numpy(x, name: str = "array") -> np.ndarray:
    """numpy array or torch tensor (any device, with or without grad) -> float64 numpy.

    float16 / bfloat16 inputs are upcast like every other float (see :func:`check_probs` for
    the tolerance they get).
    """
    if x is None:
        raise ValueError(f"{name} is required, got None")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu()
        if hasattr(x, "double"):
            x = x.double()
        x = x.numpy()
    out = np.asarray(x)
    if out.dtype == object or not (np.issubdtype(out.dtype, np.number) or out.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {out.dtype}")
    return out.astype(np.float64, copy=False)


def _low_precision_eps(x) -> float:
    """Machine epsilon of ``x``'s dtype when it is float16 / bfloat16 (numpy or torch), else 0."""
    dtype = str(getattr(x, "dtype", "")).removeprefix("torch.")
    return _LOW_PRECISION_EPS.get(dtype, 0.0)


def _check_ndim(x: np.ndarray, ndim: int, name: str, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {layout} ({ndim}-D), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one point, got shape {x.shape}")
    if ndim >= 2 and x.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one class/output, got shape {x.shape}")


def check_probs(x, ndim: int, name: str = "probs") -> np.ndarray:
    """Validate probabilities with the class axis last -> float64 numpy.

    ``ndim`` is 2 for ``(N, C)`` and 3 for ``(N, T, C)``. Values must be finite,
    in [0, 1] and sum to 1 within ``PROB_ATOL`` along the last axis. float16 / bfloat16
    inputs are upcast, checked within ``2 C eps`` of their dtype and renormalised to sum to 1.
    """
    layout = {2: "(N, C)", 3: "(N, T, C)"}.get(ndim, f"{ndim}-D")
    eps = _low_precision_eps(x)
    p = as_numpy(x, name)
    _check_ndim(p, ndim, name, layout)
    check_finite(p, name)
    atol = max(PROB_ATOL, 2 * p.shape[-1] * eps)
    if p.min() < 0.0 or p.max() > 1.0 + atol:
        raise ValueError(f"{name} must be probabilities in [0, 1], got values in [{p.min():g}, {p.max():g}]")
    sums = p.sum(axis=-1)
    worst = int(np.argmax(np.abs(sums.ravel() - 1.0)))
    if abs(sums.ravel()[worst] - 1.0) > atol:
        raise ValueError(
            f"{name} must sum to 1 along the class axis (last axis, shape {layout}) within "
            f"{atol:g}; a row sums to {sums.ravel()[worst]:.6g}"
            " (did you pass logits, or put the class axis elsewhere?)"
        )
    if eps:
        p = p / sums[..., None]
    return p


def check_log_probs(x, ndim: int, name: str = "log_probs") -> np.ndarray:
    """Validate log-probabilities (natural log, class axis last) -> float64 numpy.

    ``-inf`` (probability exactly 0) is allowed; NaN, ``+inf`` and positive
    values are not; ``exp`` must sum to 1 within ``PROB_ATOL`` (float16 / bfloat16 inputs:
    within ``2 C eps`` of their dtype, then renormalised).
    """
    layout = {2: "(N, C)", 3: "(N, K, C)"}.get(ndim, f"{ndim}-D")
    eps = _low_precision_eps(x)
    lp = as_numpy(x, name)
    _check_ndim(lp, ndim, name, layout)
    atol = max(PROB_ATOL, 2 * lp.shape[-1] * eps)
    if np.isnan(lp).any() or np.isposinf(lp).any():
        raise ValueError(f"{name} must be log-probabilities (finite or -inf), found NaN or +inf")
    if lp.max() > atol:
        raise ValueError(f"{name} must be log-probabilities (<= 0), got a maximum of {lp.max():g}")
    sums = np.exp(lp).sum(axis=-1)
    err = np.abs(sums - 1.0)
    if err.max() > atol:
        raise ValueError(
            f"{name} must be natural-log probabilities whose exp sums to 1 along the last axis "
            f"(shape {layout}) within {atol:g}; the worst row is off by {err.max():.3g}"
            " (did you pass logits, or base-2 logs?)"
        )
    if eps:
        lp = lp - np.log(sums)[..., None]
    return lp


def check_passes(T: int, what: str, name: str = "T") -> int:
    """Refuse fewer than 2 MC passes for a score built from the spread between passes.

    BALD, BatchBALD, the MC variation ratio, the per-class std, the MC variance and DEIMOS's
    covariance are exactly 0 for every point when ``T = 1`` (``K = 1``, ``J = 1``): the top-k
    would be a tie broken by index. ``what`` names the score in the message, ``name`` the passes.
    Not an int -> ``TypeError``; ``T < 2`` -> ``ValueError``.
    """
    T = check_int(T, f"{name} (MC passes)")
    if T < 2:
        raise ValueError(
            f"{what} needs at least 2 MC-dropout passes ({name} >= 2), got {name} = {T}: with one pass "
            f"it scores 0 for every point and the picks are a tie broken by index. Use {name} >= 2 "
            f"(e.g. T=20 or more)."
        )
    return T


def check_scores(scores, what: str) -> np.ndarray:
    """float64 scores of a selection; NaN or inf -> ``ValueError`` naming ``what`` (a strategy)."""
    s = as_numpy(scores, f"scores of {what}")
    if not np.all(np.isfinite(s)):
        bad = int(s.size - np.count_nonzero(np.isfinite(s)))
        raise ValueError(
            f"{what} produced {bad} non-finite score(s) (NaN or inf) out of {s.size}: its inputs are "
            f"degenerate (a diverged model, or predictions/tau_inv out of floating-point range). Check the "
            f"model's predictions and the strategy's options."
        )
    return s


def check_k(k, n: int, what: str = "candidates") -> int:
    """``k`` (points picked per step) as an int with ``0 <= k <= n``: ``TypeError`` if not an int,
    ``ValueError`` out of range."""
    k = check_int(k, "k (points picked per step)", ge=0)
    if k > n:
        raise ValueError(f"k={k} (points picked per step) is larger than the number of {what} ({n})")
    return k


def top_k(scores_N, k: int, *, largest: bool = True) -> CandidateBatch:
    """The k highest (``largest=True``) or lowest scores, best first.

    Stable: among equal scores the lowest index comes first.
    """
    s = as_numpy(scores_N, "scores_N")
    if s.ndim != 1:
        raise ValueError(f"scores_N must be 1-D (N,), got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores_N must not contain NaN")
    k = check_k(k, s.shape[0])
    key = -s if largest else s
    order = np.argsort(key, kind="stable")[:k]
    return CandidateBatch(indices=order.astype(np.int64), scores=s[order])


def random_batch(n: int, k: int, random_state) -> CandidateBatch:
    """k distinct indices drawn uniformly from ``range(n)``; scores are all 0.

    ``random_state``: int seed or numpy Generator (:func:`mcal_utils.checks.check_random_state`).
    """
    n = check_int(n, "n", ge=0)
    k = check_k(k, n)
    rng = check_random_state(random_state)
    idx = rng.choice(n, size=k, replace=False).astype(np.int64)
    return CandidateBatch(indices=idx, scores=np.zeros(k))
