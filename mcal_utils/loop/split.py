"""The split of a (task, seed): validation set, pool, initial labelled set and test subsample.

It derives from the task, its options, the seed and the size options only, never from the
strategy: every strategy of a seed starts from the same initial set and checkpoints on the same
validation set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ExperimentConfig, task_key
from .seeds import derive_seed

__all__ = ["Split", "make_split", "INITIAL_MODES"]

INITIAL_MODES: tuple[str, ...] = ("balanced", "random", "first")


# ---------------------------------------------------------------------------
# split
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """The index sets of one (task, seed): identical for every strategy.

    initial: ``(n0,)`` int64 indices into ``task.x_train``: the initial labelled set.
    pool: ``(M,)`` sorted int64 indices into ``task.x_train``: the unlabelled pool at step 0.
    val: ``(V,)`` sorted indices into ``task.x_val`` (``val_from_task``) or ``task.x_train``.
    test: ``(n_test,)`` sorted indices into ``task.x_test``.
    """

    initial: np.ndarray
    pool: np.ndarray
    val: np.ndarray
    val_from_task: bool
    test: np.ndarray

    def __post_init__(self):
        for name in ("initial", "pool", "val", "test"):
            arr = np.asarray(getattr(self, name), dtype=np.int64).copy()
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


def _choice_sorted(rng: np.random.Generator, items: np.ndarray, k: int) -> np.ndarray:
    return np.sort(rng.choice(items, size=k, replace=False)).astype(np.int64)


def make_split(config: ExperimentConfig, task) -> Split:
    """Validation set, pool, initial labelled set and test subsample of ``config`` on ``task``.

    Depends only on the task (name and options), the seed and the size options; never on the
    strategy. Raises ``ValueError`` when a size does not fit the data.
    """
    rng = np.random.default_rng(derive_seed(config.seed, "split", task_key(config)))
    n_train = int(len(task.y_train))
    available = np.arange(n_train, dtype=np.int64)
    has_val = getattr(task, "x_val", None) is not None and getattr(task, "y_val", None) is not None

    # validation set
    if has_val:
        n_val_all = int(len(task.y_val))
        if config.val_size is None:
            val = np.arange(n_val_all, dtype=np.int64)
        elif config.val_size > n_val_all:
            raise ValueError(
                f"val_size={config.val_size} is larger than the validation split of "
                f"{config.task!r} ({n_val_all} points)"
            )
        else:
            val = _choice_sorted(rng, np.arange(n_val_all, dtype=np.int64), config.val_size)
    else:
        if config.val_size is None:
            raise ValueError(
                f"task {config.task!r} has no validation split: set val_size to the number of "
                f"train points to hold out (0 for none, then train.checkpoint='last')"
            )
        if config.val_size >= n_train:
            raise ValueError(f"val_size={config.val_size} leaves no train points ({n_train} in {config.task!r})")
        val = _choice_sorted(rng, available, config.val_size)
        available = np.setdiff1d(available, val)

    # the experiment's universe: initial set + pool
    if config.pool_size is not None:
        if config.pool_size > available.size:
            raise ValueError(
                f"pool_size={config.pool_size} is larger than the {available.size} train points "
                f"available in {config.task!r} (after the validation hold-out)"
            )
        universe = _choice_sorted(rng, available, config.pool_size)
    else:
        universe = available
    need = config.initial_size + config.n_steps * config.k
    if need > universe.size:
        raise ValueError(
            f"budget too large: initial_size + n_steps * k = {config.initial_size} + "
            f"{config.n_steps} * {config.k} = {need} labelled points, but the pool holds "
            f"{universe.size} (initial set included)"
        )

    # initial labelled set
    n0 = config.initial_size
    if config.initial == "first":
        initial = universe[:n0]
    elif config.initial == "random":
        initial = _choice_sorted(rng, universe, n0)
    else:  # balanced
        if getattr(task, "kind", "classification") != "classification" or not task.n_classes:
            raise ValueError(
                f"initial='balanced' needs a classification task; {config.task!r} is {task.kind}; "
                f"use initial='random' or 'first'"
            )
        c = int(task.n_classes)
        if n0 % c:
            raise ValueError(f"initial='balanced' needs initial_size divisible by n_classes={c}, got {n0}")
        y_u = np.asarray(task.y_train)[universe]
        parts = []
        for cls in range(c):
            members = universe[y_u == cls]
            if members.size < n0 // c:
                raise ValueError(
                    f"initial='balanced': class {cls} has only {members.size} pool points, {n0 // c} needed"
                )
            parts.append(_choice_sorted(rng, members, n0 // c))
        initial = np.sort(np.concatenate(parts))
    pool = np.setdiff1d(universe, initial)

    # test subsample
    n_test = int(len(task.y_test))
    if config.test_size is None:
        test = np.arange(n_test, dtype=np.int64)
    elif config.test_size > n_test:
        raise ValueError(f"test_size={config.test_size} is larger than the test set of {config.task!r} ({n_test})")
    else:
        test = _choice_sorted(rng, np.arange(n_test, dtype=np.int64), config.test_size)
    return Split(initial=initial, pool=pool, val=val, val_from_task=has_val, test=test)
