"""Everything that can be checked before training: names, sizes, choices, strategy options,
the split's fit to the data, the strategy's size limits and the run directory."""

from __future__ import annotations

from mcal_utils.acquisition import check_passes, get_strategy

from .config import ExperimentConfig
from .registry import check_registered, load_task_for
from .split import INITIAL_MODES, Split, make_split

__all__ = ["check_static", "validate"]


def _strategy(config: ExperimentConfig):
    return get_strategy(config.strategy)


def check_static(config: ExperimentConfig) -> None:
    """Checks that need no data: names, signs, choices, strategy options and MC passes."""
    strategy = _strategy(config)
    check_registered(config.task, "task")
    check_registered(config.model, "model")
    for name in ("initial_size", "k", "T"):
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
    if config.T_eval < 0:
        raise ValueError(f"T_eval must be >= 0 (0: deterministic), got {config.T_eval}")
    if config.seed < 0:
        raise ValueError(f"seed must be >= 0, got {config.seed}")
    if config.initial not in INITIAL_MODES:
        raise ValueError(f"unknown initial={config.initial!r}; valid: {list(INITIAL_MODES)}")
    if config.n_candidates is not None and config.k > config.n_candidates:
        raise ValueError(f"k={config.k} is larger than n_candidates={config.n_candidates}")
    tc = config.train_config()
    if tc.checkpoint == "best_val" and config.val_size == 0:
        raise ValueError(
            "train checkpoint='best_val' needs a validation set; val_size=0 gives none (use checkpoint='last')"
        )
    needs = strategy.inputs
    if needs.needs_tau and config.tau_inv is None:
        raise ValueError(
            f"strategy {config.strategy!r} needs tau_inv (DEIMOS's tau^-1): a number or {{'auto': factor}}"
        )
    if needs.needs_candidates and config.n_candidates is None:
        raise ValueError(f"strategy {config.strategy!r} needs n_candidates (the pool members of X_samp)")
    if config.tau_auto is not None and config.val_size == 0:
        raise ValueError(
            "tau_inv={'auto': ...} is computed on the validation set, and val_size=0 gives none: "
            "set val_size > 0 or give tau_inv as a number"
        )
    strategy.check_options(config.strategy_options)
    if strategy.min_passes > 1 or config.tau_auto is not None:
        what = f"strategy {config.strategy!r}" if strategy.min_passes > 1 else "tau_inv={'auto': ...}"
        check_passes(config.T, what, "T")


def validate(config: ExperimentConfig, data_dir=None, task=None) -> Split:
    """Check ``config`` before any training; returns its :class:`Split`.

    Raises ``ValueError`` for unknown strategies, tasks or models (listing the valid ones),
    non-positive sizes, budgets larger than the pool, a strategy that does not fit the task
    kind, options the strategy does not take, too few MC passes for the score, problems larger
    than the strategy can solve, and training settings that ``TrainConfig`` refuses.
    """
    check_static(config)
    if task is None:
        task = load_task_for(config, data_dir)
    strategy = _strategy(config)
    needs = strategy.inputs
    if task.kind not in needs.kinds:
        raise ValueError(
            f"strategy {config.strategy!r} ({needs.name}) needs a {' or '.join(needs.kinds)} task; "
            f"{config.task!r} is a {task.kind} task"
        )
    split = make_split(config, task)
    if config.tau_auto is not None and len(split.val) == 0:
        raise ValueError(
            f"tau_inv={{'auto': ...}} is computed on the validation set, and {config.task!r} with "
            f"val_size={config.val_size} has none: set val_size > 0 or give tau_inv as a number"
        )
    if config.n_steps == 0:
        return split
    last_pool = len(split.pool) - (config.n_steps - 1) * config.k
    if needs.needs_candidates and config.n_candidates:
        # DEIMOS draws its candidates from the pool at every acquiring step; check the last one now
        if config.n_candidates > last_pool:
            raise ValueError(
                f"n_candidates={config.n_candidates} exceeds the pool left at the last acquiring "
                f"step ({last_pool} = pool {len(split.pool)} - {config.n_steps - 1} x "
                f"{config.k}); lower n_candidates or the number of steps"
            )
    if strategy.check_size is not None:
        n_labelled = len(split.initial) + (config.n_steps - 1) * config.k
        n_cand = min(config.n_candidates or last_pool, last_pool)
        strategy.check_size(n_labelled, n_cand, config.k, config.strategy_options)
    return split
