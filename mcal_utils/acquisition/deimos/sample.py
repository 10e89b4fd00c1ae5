"""X_samp, the representative sample DEIMOS scores on (paper Appendix D)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mcal_utils.checks import check_int, check_random_state

__all__ = ["DeimosSample", "deimos_sample"]


@dataclass(frozen=True)
class DeimosSample:
    """X_samp = [x_train[train_indices]; x_pool[pool_indices]] (train members first).

    ``train_indices``: int64 (S_train,) into the training set, in draw order.
    ``pool_indices``: int64 (n_cand,) into the pool, in draw order.
    ``candidates``: bool (S,) over X_samp, True on the pool members.
    """

    train_indices: np.ndarray
    pool_indices: np.ndarray
    candidates: np.ndarray

    @property
    def n_samp(self) -> int:
        """S, the number of points of X_samp."""
        return int(self.candidates.shape[0])

    def to_pool(self, samp_indices) -> np.ndarray:
        """Positions in X_samp of pool members (e.g. ``deimos(...).indices``) -> pool indices."""
        idx = np.asarray(samp_indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_samp or not self.candidates[idx].all()):
            raise ValueError("samp_indices must be positions of pool members (candidates) of X_samp")
        return self.pool_indices[idx - self.train_indices.shape[0]]


def deimos_sample(n_train: int, n_pool: int, n_cand: int, random_state) -> DeimosSample:
    """X_samp of DEIMOS (paper App. D; the authors' code's oversampling by 1.2).

    Index the union as [train; pool] (N = n_train + n_pool). Draw m = min(N, ceil(1.2 n_cand))
    indices uniformly without replacement, in order; X_samp is the prefix of that draw sequence up
    to and including its n_cand-th pool draw, i.e. "sample from train and pool until the candidate
    set X_samp minus X_train reaches n_cand" (App. D). So the pool members are the first n_cand
    pool draws and the train members are the train draws that came before the last of them: in
    expectation n_train / N of X_samp, the proportion of the union. If the m draws hold fewer than
    n_cand pool indices (only when n_train is large against n_pool), the sequence goes on with a
    uniform permutation of the undrawn indices.

    ``n_train >= 0``, ``1 <= n_cand <= n_pool``; ``random_state``: int seed or numpy Generator.
    Returns :class:`DeimosSample`.
    """
    n_train = check_int(n_train, "n_train", ge=0)
    n_pool = check_int(n_pool, "n_pool", ge=1)
    n_cand = check_int(n_cand, "n_cand", ge=1)
    if n_cand > n_pool:
        raise ValueError(f"n_cand = {n_cand} is larger than the pool (n_pool = {n_pool})")
    rng = check_random_state(random_state)
    N = n_train + n_pool
    m = min(N, math.ceil(1.2 * n_cand))
    draws = rng.choice(N, size=m, replace=False).astype(np.int64)
    if np.count_nonzero(draws >= n_train) < n_cand:
        rest = np.setdiff1d(np.arange(N, dtype=np.int64), draws, assume_unique=True)
        draws = np.concatenate([draws, rng.permutation(rest)])
    is_pool = draws >= n_train
    cut = int(np.flatnonzero(is_pool)[n_cand - 1]) + 1
    prefix, is_pool = draws[:cut], is_pool[:cut]
    train_indices = prefix[~is_pool]
    pool_indices = prefix[is_pool] - n_train
    candidates = np.zeros(cut, dtype=bool)
    candidates[train_indices.shape[0] :] = True
    for a in (train_indices, pool_indices, candidates):
        a.setflags(write=False)
    return DeimosSample(train_indices=train_indices, pool_indices=pool_indices, candidates=candidates)
