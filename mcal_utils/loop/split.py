"""Names -> objects (tasks, models, strategies), the split of a (task, seed), and input validation.

The split (validation set, pool, initial labelled set, test subsample) derives from the task, its options,
the seed and the size options only, never from the strategy."""
from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass

import numpy as np

from .config import ExperimentConfig, _task_key, derive_seed

__all__ = ["Split", "make_split", "validate", "get_strategy", "load_task_for", "REQUIRES", "INITIAL_MODES"]

#: The inputs a strategy can ask for (``Strategy.requires``), see ``mcal_utils.acquisition``.
REQUIRES: tuple[str, ...] = ("nothing", "probs_N_C", "probs_N_T_C", "log_probs_N_K_C", "preds_N_T",
                             "fixed_J_S", "features")
INITIAL_MODES: tuple[str, ...] = ("balanced", "random", "first")
_CLASSIFICATION_ONLY = ("probs_N_C", "probs_N_T_C", "log_probs_N_K_C")


# ---------------------------------------------------------------------------
# tasks, models, strategies
# ---------------------------------------------------------------------------
def _import_path(path: str, what: str):
    module, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import {what} factory {path!r}: {err}") from None
    if not callable(obj):
        raise ValueError(f"{what} factory {path!r} is not callable")
    return obj


def _check_registered(name: str, kind: str) -> None:
    """``kind`` is "task" or "model": a registered name, or an importable ``module:factory`` path."""
    if ":" in name:
        _import_path(name, kind)
        return
    from mcal_utils import data, models

    valid, label = (data.TASK_NAMES, "task/dataset") if kind == "task" else (models.MODEL_NAMES, "model")
    if name not in valid:
        raise ValueError(f"unknown {label} {name!r}; valid: {list(valid)} (or an import path 'module:factory')")


def get_strategy(name: str):
    """``acquisition.STRATEGIES[name]``; unknown names raise ``ValueError`` listing the valid ones."""
    from mcal_utils import acquisition

    if name not in acquisition.STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid: {sorted(acquisition.STRATEGIES)}")
    strategy = acquisition.STRATEGIES[name]
    if strategy.requires not in REQUIRES:
        raise ValueError(f"strategy {name!r} requires {strategy.requires!r}, which the loop does not know; "
                         f"known: {list(REQUIRES)}")
    return strategy


@functools.lru_cache(maxsize=2)
def _load_task_cached(task: str, options_json: str, data_dir: str | None):
    options = json.loads(options_json)
    random_state = options.pop("random_state", 0)
    if ":" in task:
        factory = _import_path(task, "task")
        return factory(data_dir=data_dir, random_state=random_state, **options)
    from mcal_utils import data

    return data.load_task(task, data_dir=data_dir, random_state=random_state, **options)


def load_task_for(config: ExperimentConfig, data_dir=None):
    """The ``Task`` of ``config`` (cached per process: a grid's runs share one copy)."""
    _check_registered(config.task, "task")
    return _load_task_cached(config.task, json.dumps(config.task_options, sort_keys=True),
                             None if data_dir is None else str(data_dir))


def _build_model(config: ExperimentConfig, seed: int):
    if ":" in config.model:
        return _import_path(config.model, "model")(seed=seed, **config.model_options)
    from mcal_utils import models

    return models.build_model(config.model, seed=seed, **config.model_options)


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
    rng = np.random.default_rng(derive_seed(config.seed, "split", _task_key(config)))
    n_train = int(len(task.y_train))
    available = np.arange(n_train, dtype=np.int64)
    has_val = getattr(task, "x_val", None) is not None and getattr(task, "y_val", None) is not None

    # validation set
    if has_val:
        n_val_all = int(len(task.y_val))
        if config.val_size is None:
            val = np.arange(n_val_all, dtype=np.int64)
        elif config.val_size > n_val_all:
            raise ValueError(f"val_size={config.val_size} is larger than the validation split of "
                             f"{config.task!r} ({n_val_all} points)")
        else:
            val = _choice_sorted(rng, np.arange(n_val_all, dtype=np.int64), config.val_size)
    else:
        if config.val_size is None:
            raise ValueError(f"task {config.task!r} has no validation split: set val_size to the number of "
                             f"train points to hold out (0 for none, then train.checkpoint='last')")
        if config.val_size >= n_train:
            raise ValueError(f"val_size={config.val_size} leaves no train points ({n_train} in {config.task!r})")
        val = _choice_sorted(rng, available, config.val_size)
        available = np.setdiff1d(available, val)

    # the experiment's universe: initial set + pool
    if config.pool_size is not None:
        if config.pool_size > available.size:
            raise ValueError(f"pool_size={config.pool_size} is larger than the {available.size} train points "
                             f"available in {config.task!r} (after the validation hold-out)")
        universe = _choice_sorted(rng, available, config.pool_size)
    else:
        universe = available
    need = config.initial_size + config.n_steps * config.acquisition_size
    if need > universe.size:
        raise ValueError(
            f"budget too large: initial_size + n_steps * acquisition_size = {config.initial_size} + "
            f"{config.n_steps} * {config.acquisition_size} = {need} labelled points, but the pool holds "
            f"{universe.size} (initial set included)")

    # initial labelled set
    n0 = config.initial_size
    if config.initial == "first":
        initial = universe[:n0]
    elif config.initial == "random":
        initial = _choice_sorted(rng, universe, n0)
    else:  # balanced
        if getattr(task, "kind", "classification") != "classification" or not task.n_classes:
            raise ValueError(f"initial='balanced' needs a classification task; {config.task!r} is {task.kind}; "
                             f"use initial='random' or 'first'")
        c = int(task.n_classes)
        if n0 % c:
            raise ValueError(f"initial='balanced' needs initial_size divisible by n_classes={c}, got {n0}")
        y_u = np.asarray(task.y_train)[universe]
        parts = []
        for cls in range(c):
            members = universe[y_u == cls]
            if members.size < n0 // c:
                raise ValueError(f"initial='balanced': class {cls} has only {members.size} pool points, "
                                 f"{n0 // c} needed")
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


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def _check_static(config: ExperimentConfig) -> None:
    """Checks that need no data: names, signs, choices."""
    get_strategy(config.strategy)
    _check_registered(config.task, "task")
    _check_registered(config.model, "model")
    for name in ("initial_size", "acquisition_size", "mc_samples"):
        if getattr(config, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(config, name)}")
    for name in ("pool_size", "test_size", "n_candidates"):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0 or None, got {value}")
    if config.n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {config.n_steps}")
    if config.val_size is not None and config.val_size < 0:
        raise ValueError(f"val_size must be >= 0 or None, got {config.val_size}")
    if config.eval_mc_samples < 0:
        raise ValueError(f"eval_mc_samples must be >= 0 (0: deterministic), got {config.eval_mc_samples}")
    if config.seed < 0:
        raise ValueError(f"seed must be >= 0, got {config.seed}")
    if config.initial not in INITIAL_MODES:
        raise ValueError(f"unknown initial={config.initial!r}; valid: {list(INITIAL_MODES)}")
    if config.n_candidates is not None and config.acquisition_size > config.n_candidates:
        raise ValueError(f"acquisition_size={config.acquisition_size} is larger than n_candidates="
                         f"{config.n_candidates}")
    tc = config.train_config()
    if tc.checkpoint == "best_val" and config.val_size == 0:
        raise ValueError("train checkpoint='best_val' needs a validation set; val_size=0 gives none "
                         "(use checkpoint='last')")
    strategy = get_strategy(config.strategy)
    if strategy.requires == "fixed_J_S" and config.tau_inv is None:
        raise ValueError(f"strategy {config.strategy!r} needs tau_inv (DEIMOS's tau^-1)")
    if strategy.requires == "fixed_J_S" and config.n_candidates is None:
        raise ValueError(f"strategy {config.strategy!r} needs n_candidates (the pool members of X_samp)")


def validate(config: ExperimentConfig, data_dir=None, task=None) -> Split:
    """Check ``config`` before any training; returns its :class:`Split`.

    Raises ``ValueError`` for unknown strategies, tasks or models (listing the valid ones),
    non-positive sizes, budgets larger than the pool, a strategy that does not fit the task
    kind, and training settings that ``TrainConfig`` refuses.
    """
    _check_static(config)
    if task is None:
        task = load_task_for(config, data_dir)
    strategy = get_strategy(config.strategy)
    if task.kind == "regression" and strategy.requires in _CLASSIFICATION_ONLY:
        raise ValueError(f"strategy {config.strategy!r} ({strategy.requires}) needs a classification task; "
                         f"{config.task!r} is a regression task")
    if task.kind == "classification" and strategy.requires == "preds_N_T":
        raise ValueError(f"strategy {config.strategy!r} (preds_N_T) is for regression; {config.task!r} is a "
                         f"classification task")
    split = make_split(config, task)
    if strategy.requires == "fixed_J_S" and config.n_candidates:
        # DEIMOS draws its candidates from the pool at every acquiring step; check the last one now
        last_pool = len(split.pool) - (config.n_steps - 1) * config.acquisition_size
        if config.n_candidates > last_pool:
            raise ValueError(f"n_candidates={config.n_candidates} exceeds the pool left at the last acquiring "
                             f"step ({last_pool} = pool {len(split.pool)} - {config.n_steps - 1} x "
                             f"{config.acquisition_size}); lower n_candidates or the number of steps")
    return split
