"""What the runs of a grid acquired: the ``acquired`` column of :func:`mcal_utils.loop.load_results`.

Every row of the results is one step of one run; its ``acquired`` holds the train indices that step picked,
in pick order (empty at the last step). :func:`picks_by_seed` strings a method's steps together per seed;
:func:`class_shares` gives the class make-up of each method's picks over all its seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Picks", "picks_by_seed", "all_picks", "class_shares"]


@dataclass(frozen=True)
class Picks:
    """One run's acquisitions in pick order: ``indices_N`` (train indices, int64) and ``steps_N`` (the step
    that picked each); ``first_batch`` is the step-0 acquisition."""

    seed: int
    steps_N: np.ndarray
    indices_N: np.ndarray

    @property
    def first_batch(self) -> np.ndarray:
        return self.indices_N[self.steps_N == self.steps_N.min()] if self.steps_N.size else self.indices_N


def picks_by_seed(results: pd.DataFrame, method: str) -> dict[int, Picks]:
    """{seed: :class:`Picks`} of ``method`` (seeds in increasing order), from the results' ``acquired`` column."""
    missing = [c for c in ("method", "seed", "step", "acquired") if c not in results.columns]
    if missing:
        raise ValueError(f"results lack column(s) {missing}; use loop.load_results / run_cached_grid")
    rows = results[results["method"].astype(str) == str(method)]
    if rows.empty:
        raise ValueError(
            f"method {method!r} is not in the results; present: {sorted(map(str, results['method'].unique()))}"
        )
    out = {}
    for seed, g in rows.sort_values(["seed", "step"], kind="stable").groupby("seed", sort=True):
        acquired = [np.asarray(a, dtype=np.int64).reshape(-1) for a in g["acquired"]]
        steps = [np.full(a.size, s, dtype=np.int64) for s, a in zip(g["step"], acquired)]
        out[int(seed)] = Picks(int(seed), np.concatenate(steps), np.concatenate(acquired))
    return out


def all_picks(results: pd.DataFrame, method: str) -> np.ndarray:
    """Every train index ``method`` acquired, seed after seed (int64, shape ``(sum of picks,)``)."""
    return np.concatenate([p.indices_N for p in picks_by_seed(results, method).values()])


def class_shares(results: pd.DataFrame, labels_N: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """{method: share of each class among all its picks, shape ``(n_classes,)``}; methods that picked nothing
    are left out. ``labels_N``: the class of every train index."""
    labels_N = np.asarray(labels_N)
    out = {}
    for m in dict.fromkeys(results["method"].astype(str)):
        counts_C = np.bincount(labels_N[all_picks(results, m)], minlength=n_classes)
        if counts_C.sum() > 0:
            out[m] = counts_C / counts_C.sum()
    return out
