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

__all__ = [
    "CandidateBatch",
    "as_numpy",
    "as_generator",
    "check_probs",
    "check_log_probs",
    "check_finite",
    "check_k",
    "top_k",
    "random_batch",
    "PROB_ATOL",
]

#: Tolerance on ``|sum_c p_c - 1|`` along the class axis.
PROB_ATOL = 1e-4


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
                f"CandidateBatch expects 1-D indices and scores, got shapes "
                f"{indices.shape} and {scores.shape}"
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
    """numpy array or torch tensor (any device, with or without grad) -> float64 numpy."""
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


def as_generator(random_state) -> np.random.Generator:
    """int seed, ``numpy.random.Generator`` or ``numpy.random.SeedSequence`` -> Generator.

    ``None`` is refused: randomness is always explicit.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        raise ValueError("random_state is required (an int seed or a numpy.random.Generator), got None")
    if isinstance(random_state, (bool, np.bool_)):
        raise ValueError(f"random_state must be an int seed or a numpy.random.Generator, got {random_state!r}")
    if isinstance(random_state, (int, np.integer, np.random.SeedSequence)):
        return np.random.default_rng(random_state)
    raise ValueError(
        f"random_state must be an int seed or a numpy.random.Generator, got {type(random_state).__name__}"
    )


def check_finite(x: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name} must be finite, found {bad} NaN or inf values")
    return x


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
    in [0, 1] and sum to 1 within ``PROB_ATOL`` along the last axis.
    """
    layout = {2: "(N, C)", 3: "(N, T, C)"}.get(ndim, f"{ndim}-D")
    p = as_numpy(x, name)
    _check_ndim(p, ndim, name, layout)
    check_finite(p, name)
    if p.min() < 0.0 or p.max() > 1.0 + PROB_ATOL:
        raise ValueError(f"{name} must be probabilities in [0, 1], got values in [{p.min():g}, {p.max():g}]")
    sums = p.sum(axis=-1).ravel()
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > PROB_ATOL:
        raise ValueError(
            f"{name} must sum to 1 along the class axis (last axis, shape {layout}) within "
            f"{PROB_ATOL:g}; a row sums to {sums[worst]:.6g}"
            " (did you pass logits, or put the class axis elsewhere?)"
        )
    return p


def check_log_probs(x, ndim: int, name: str = "log_probs") -> np.ndarray:
    """Validate log-probabilities (natural log, class axis last) -> float64 numpy.

    ``-inf`` (probability exactly 0) is allowed; NaN, ``+inf`` and positive
    values are not; ``exp`` must sum to 1 within ``PROB_ATOL``.
    """
    layout = {2: "(N, C)", 3: "(N, K, C)"}.get(ndim, f"{ndim}-D")
    lp = as_numpy(x, name)
    _check_ndim(lp, ndim, name, layout)
    if np.isnan(lp).any() or np.isposinf(lp).any():
        raise ValueError(f"{name} must be log-probabilities (finite or -inf), found NaN or +inf")
    if lp.max() > PROB_ATOL:
        raise ValueError(f"{name} must be log-probabilities (<= 0), got a maximum of {lp.max():g}")
    err = np.abs(np.exp(lp).sum(axis=-1) - 1.0)
    if err.max() > PROB_ATOL:
        raise ValueError(
            f"{name} must be natural-log probabilities whose exp sums to 1 along the last axis "
            f"(shape {layout}) within {PROB_ATOL:g}; the worst row is off by {err.max():.3g}"
            " (did you pass logits, or base-2 logs?)"
        )
    return lp


def check_k(k, n: int, what: str = "candidates") -> int:
    """``k`` must be an int with ``0 <= k <= n``."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"batch size k must be an int, got {k!r}")
    k = int(k)
    if k < 0:
        raise ValueError(f"batch size k must be >= 0, got {k}")
    if k > n:
        raise ValueError(f"batch size k={k} is larger than the number of {what} ({n})")
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
    """k distinct indices drawn uniformly from ``range(n)``; scores are all 0."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    k = check_k(k, int(n))
    rng = as_generator(random_state)
    idx = rng.choice(int(n), size=k, replace=False).astype(np.int64)
    return CandidateBatch(indices=idx, scores=np.zeros(k))
