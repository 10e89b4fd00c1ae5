"""The experiment config: one frozen, JSON-serialisable dataclass, its diff and its hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcal_utils.acquisition.tau import check_tau_factor
from mcal_utils.checks import check_float, check_int
from mcal_utils.training import TrainConfig

__all__ = ["ExperimentConfig", "config_diff", "config_hash", "task_key", "INIT_MODES"]

#: ``ExperimentConfig.init``: a new initialisation at every step, or one per seed (the paper's code).
INIT_MODES: tuple[str, ...] = ("per_step", "fixed")


def _plain(value: Any, name: str) -> Any:
    """A JSON round-trip of ``value`` (tuples -> lists), refusing what JSON cannot hold."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be plain JSON data (numbers, strings, lists, dicts): {err}") from None


@dataclass(frozen=True)
class ExperimentConfig:
    """One active-learning run, as plain serialisable data.

    task, task_options: a name of ``data.TASK_NAMES`` (or ``"module:factory"``) and the keyword
        options of ``load_task`` (``random_state`` among them, default 0: the task's own
        randomness, e.g. rotation angles, is not the experiment seed).
    model, model_options: a name of ``models.MODEL_NAMES`` (or ``"module:factory"``) and the
        keyword options of ``build_model``.
    strategy: a name of ``acquisition.STRATEGIES``; label: the method name in results and
        directory names (default: the strategy name).
    T: the MC-dropout passes for strategies that need them (J masks for DEIMOS,
        K for BatchBALD). n_candidates: score a seeded random subsample of this many pool points
        (None: the whole pool); for DEIMOS it is ``n_cand`` of ``deimos_sample`` (pool members
        of X_samp). strategy_options: extra keyword arguments of ``Strategy.select`` (checked
        against what the strategy accepts before training).
    tau_inv: DEIMOS's tau^-1: a number, or ``{"auto": factor}`` (DEIMOS Appendix E): factor x the
        mean MC-dropout variance of the step-0 model on the validation set (``T`` fresh
        passes seeded from ``(seed, 0, "tau")``; see ``acquisition.auto_tau_inv``), computed once
        and used unchanged at every step (read back from step 0's record on resume). Every record
        stores the value used as ``tau_inv``. ``"auto"`` needs a validation set (``val_size > 0``).
    init: ``"per_step"`` (a new initialisation at every step, seeded from ``(seed, step)``) or
        ``"fixed"`` (one initial network per seed, seeded from ``(seed, "init")`` and reused
        unchanged at every step and by every strategy: the MC-dropout-entropy paper's code calls
        ``torch.manual_seed(42)`` before building every model).
    initial_size, initial: size of the initial labelled set and how it is drawn from the pool:
        ``"balanced"`` (``initial_size / n_classes`` per class, seeded), ``"random"`` (seeded),
        ``"first"`` (the first points of the train split in file order, as the MC-dropout-entropy paper's code did).
    k, n_steps: points picked per step and number of acquisition steps (the curve has
        ``n_steps + 1`` points).
    pool_size: draw the experiment (initial set + pool) from a seeded subsample of this many
        train points (None: all of them, minus a held-out validation set).
    val_size: validation points for checkpoint selection: a seeded subsample of the task's own
        validation split when it has one (None: all of it), else held out of the train split
        (an int is then required; 0: no validation set).
    test_size: evaluate on a seeded subsample of the test set (None: all of it).
    train: the fields of ``training.TrainConfig`` (``progress`` excluded; a TrainConfig is
        accepted and converted).
    T_eval: 0 -> test metric of one deterministic pass; T > 0 -> of the mean of T
        MC-dropout passes.
    seed: the experiment seed; everything random derives from it (see the module docstring).
    """

    task: str
    model: str
    strategy: str
    seed: int = 0
    label: str = ""
    initial_size: int = 20
    initial: str = "balanced"
    k: int = 10
    n_steps: int = 10
    pool_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    T: int = 50
    n_candidates: int | None = None
    tau_inv: float | dict | None = None
    strategy_options: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    T_eval: int = 0
    task_options: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)
    init: str = "per_step"

    def __post_init__(self):
        train = self.train
        if dataclasses.is_dataclass(train) and not isinstance(train, type):
            train = {k: v for k, v in dataclasses.asdict(train).items() if k != "progress"}
        for name in ("task", "model", "strategy"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.label, str):
            raise ValueError(f"label must be a string, got {self.label!r}")
        for name in ("strategy_options", "task_options", "model_options"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"{name} must be a dict, got {type(getattr(self, name)).__name__}")
        if not isinstance(train, Mapping):
            raise ValueError(f"train must be a dict of TrainConfig fields or a TrainConfig, got {type(train).__name__}")
        if "progress" in train:
            raise ValueError("train must not set 'progress' (the loop controls progress bars)")
        object.__setattr__(self, "train", _plain(dict(train), "train"))
        for name in ("strategy_options", "task_options", "model_options"):
            object.__setattr__(self, name, _plain(dict(getattr(self, name)), name))
        if isinstance(self.tau_inv, Mapping):
            if set(self.tau_inv) != {"auto"}:
                raise ValueError(
                    f"tau_inv as a dict must be {{'auto': factor}} (DEIMOS Appendix E), got {self.tau_inv!r}"
                )
            object.__setattr__(self, "tau_inv", {"auto": check_tau_factor(self.tau_inv["auto"])})
        elif self.tau_inv is not None:
            object.__setattr__(
                self, "tau_inv", check_float(self.tau_inv, "tau_inv (a number, {'auto': factor} or None)", finite=False)
            )
        if self.init not in INIT_MODES:
            raise ValueError(
                f"init must be one of {list(INIT_MODES)} ('per_step': a new initialisation at "
                f"every step; 'fixed': one per seed), got {self.init!r}"
            )
        for name in ("seed", "initial_size", "k", "n_steps", "T", "T_eval"):
            object.__setattr__(self, name, check_int(getattr(self, name), name))
        for name in ("pool_size", "val_size", "test_size", "n_candidates"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_int(value, f"{name} (an int or None)"))

    @property
    def tau_auto(self) -> float | None:
        """The Appendix-E factor when ``tau_inv={"auto": factor}``, else None."""
        return self.tau_inv["auto"] if isinstance(self.tau_inv, Mapping) else None

    @property
    def method(self) -> str:
        """The method name in results: ``label`` or, without one, the strategy name."""
        return self.label or self.strategy

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping) -> ExperimentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ExperimentConfig field(s) {unknown}; valid: {sorted(known)}")
        return cls(**dict(d))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ExperimentConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes) -> ExperimentConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def train_config(self):
        """The ``training.TrainConfig`` of this experiment (progress off)."""
        valid = {f.name for f in dataclasses.fields(TrainConfig)} - {"progress"}
        unknown = sorted(set(self.train) - valid)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; valid: {sorted(valid)}")
        return TrainConfig(**self.train, progress=False)


def config_diff(a: ExperimentConfig | Mapping, b: ExperimentConfig | Mapping) -> dict[str, tuple]:
    """``{field: (value in a, value in b)}`` for every field where ``a`` and ``b`` differ."""
    da = a.to_dict() if isinstance(a, ExperimentConfig) else dict(a)
    db = b.to_dict() if isinstance(b, ExperimentConfig) else dict(b)
    return {k: (da.get(k), db.get(k)) for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)}


def config_hash(config: ExperimentConfig) -> str:
    """sha256 (16 hex digits) of the canonical JSON of ``config``: binds records to their config."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def task_key(config: ExperimentConfig) -> str:
    """The task and its options as one string: what the split's seed derives from."""
    return config.task + json.dumps(config.task_options, sort_keys=True)
