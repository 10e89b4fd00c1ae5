"""Names -> objects: tasks and models (a registered name or an import path ``"module:factory"``).

Strategies are named in ``mcal_utils.acquisition.STRATEGIES`` (``acquisition.get_strategy``).
"""

from __future__ import annotations

import functools
import importlib
import json

from mcal_utils import data, models
from mcal_utils.data import data_dir as resolve_data_dir

from .config import ExperimentConfig

__all__ = ["check_registered", "load_task_for", "build_model"]


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


def check_registered(name: str, kind: str) -> None:
    """``kind`` is "task" or "model": a registered name, or an importable ``module:factory`` path."""
    if ":" in name:
        _import_path(name, kind)
        return
    valid, label = (data.TASK_NAMES, "task/dataset") if kind == "task" else (models.MODEL_NAMES, "model")
    if name not in valid:
        raise ValueError(f"unknown {label} {name!r}; valid: {list(valid)} (or an import path 'module:factory')")


@functools.lru_cache(maxsize=2)
def _load_task_cached(task: str, options_json: str, data_dir: str | None):
    options = json.loads(options_json)
    random_state = options.pop("random_state", 0)
    if ":" in task:
        factory = _import_path(task, "task")
        return factory(data_dir=data_dir, random_state=random_state, **options)
    return data.load_task(task, data_dir=data_dir, random_state=random_state, **options)


def load_task_for(config: ExperimentConfig, data_dir=None):
    """The ``Task`` of ``config`` (cached per process: a grid's runs share one copy).

    The cache key holds the resolved data directory (``data_dir``, else ``$MCAL_DATA_DIR``, else the
    default), so a changed ``$MCAL_DATA_DIR`` never returns the task of another directory."""
    check_registered(config.task, "task")
    return _load_task_cached(
        config.task, json.dumps(config.task_options, sort_keys=True), str(resolve_data_dir(data_dir))
    )


def build_model(config: ExperimentConfig, seed: int):
    """A fresh model of ``config`` initialised from ``seed``."""
    if ":" in config.model:
        return _import_path(config.model, "model")(seed=seed, **config.model_options)
    return models.build_model(config.model, seed=seed, **config.model_options)
