"""One step of one run, as reusable pieces (the lockstep engine calls them for many runs at once).

``with open_run(config, run_dir) as state:`` validates, locks the run directory, checks or writes
``config.json`` / ``split.json`` and replays the records on disk into :class:`RunState` (the
labelled set, the pool and tau^-1 after the last written step). Then, for ``step = state.next_step``:

* :func:`fit_step_model` -- build the model (:func:`build_step_model`) and fit it on ``L_s``;
* :func:`evaluate_step` -- test metrics;
* :func:`resolve_tau_inv` -- tau^-1 (``{"auto": f}``: from the step-0 model, once);
* :func:`select_step` -- the strategy's inputs (its ``Requirement``), the picks, as pool indices;
* :func:`make_record` and :func:`commit_step` -- the record, written atomically, and the state advanced.

:func:`run_step` chains them under one ``torch.random.fork_rng`` seeded from ``(seed, step)``;
every random choice inside derives from :func:`step_seeds`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mcal_utils import mc
from mcal_utils.acquisition import AcquisitionContext, Strategy, auto_tau_inv, get_strategy
from mcal_utils.data import Task
from mcal_utils.training import TrainConfig, evaluate, fit

from .config import ExperimentConfig
from .registry import build_model, load_task_for
from .seeds import step_seeds as _step_seeds
from .split import Split
from .storage import check_run_dir, check_split, lock_run_dir, open_run_dir, read_records, write_record
from .validation import validate

__all__ = [
    "RunState",
    "Selection",
    "open_run",
    "step_seeds",
    "validation_data",
    "build_step_model",
    "fit_step_model",
    "evaluate_step",
    "resolve_tau_inv",
    "select_step",
    "timed_selection",
    "make_record",
    "commit_step",
    "run_step",
]


def step_seeds(config: ExperimentConfig, step: int):
    """``seeds(name) -> int`` of ``config`` at ``step`` (``init="fixed"``: one ``"init"`` seed per run seed)."""
    return _step_seeds(config.seed, step, init=config.init)


@dataclass
class RunState:
    """A run between steps: its config, data, split, strategy, the records written so far, the
    labelled set ``labelled`` and pool ``pool`` (train indices) after them, and ``tau_inv`` (the
    value every step uses; None until step 0 computes it for ``{"auto": f}``, or when unused)."""

    config: ExperimentConfig
    run_dir: Path
    task: Task
    split: Split
    strategy: Strategy
    train_config: TrainConfig
    config_hash: str
    records: list[dict] = field(default_factory=list)
    labelled: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pool: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tau_inv: float | None = None

    @property
    def next_step(self) -> int:
        return len(self.records)

    @property
    def done(self) -> bool:
        return self.next_step > self.config.n_steps

    def advance(self, rec: dict) -> None:
        """Append ``rec`` and move its acquired points from the pool to the labelled set."""
        acquired = np.asarray(rec["acquired"], dtype=np.int64)
        if rec["budget"] != len(self.labelled) or not np.all(np.isin(acquired, self.pool)):
            raise ValueError(
                f"{self.run_dir}: record of step {rec['step']} does not continue the split "
                f"(budget {rec['budget']} vs {len(self.labelled)} labelled)"
            )
        self.records.append(rec)
        self.labelled = np.concatenate([self.labelled, acquired])
        self.pool = np.setdiff1d(self.pool, acquired)
        if self.tau_inv is None and rec.get("tau_inv") is not None:
            self.tau_inv = float(rec["tau_inv"])


@contextlib.contextmanager
def open_run(config: ExperimentConfig, run_dir, *, data_dir=None, task=None) -> Iterator[RunState]:
    """Validate ``config`` (before any training), lock ``run_dir`` and yield its :class:`RunState`."""
    if not isinstance(config, ExperimentConfig):
        raise ValueError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    if task is None:
        task = load_task_for(config, data_dir)
    split = validate(config, data_dir, task=task)
    run_dir = Path(run_dir)
    check_run_dir(run_dir, config)
    with lock_run_dir(run_dir):
        h = open_run_dir(run_dir, config)
        check_split(
            run_dir,
            dict(
                initial=split.initial.tolist(),
                n_pool=int(len(split.pool)),
                n_val=int(len(split.val)),
                val_from_task=split.val_from_task,
                n_test=int(len(split.test)),
            ),
            h,
        )
        records = read_records(run_dir, h)
        if len(records) > config.n_steps + 1:
            raise ValueError(f"{run_dir} holds {len(records)} steps, more than n_steps + 1 = {config.n_steps + 1}")
        tau = None if isinstance(config.tau_inv, dict) else config.tau_inv
        state = RunState(
            config=config,
            run_dir=run_dir,
            task=task,
            split=split,
            strategy=get_strategy(config.strategy),
            train_config=config.train_config(),
            config_hash=h,
            labelled=split.initial.copy(),
            pool=split.pool.copy(),
            tau_inv=tau,
        )
        for rec in records:
            state.advance(rec)
        yield state


def validation_data(state: RunState):
    """``(x_val, y_val)`` of the run's split, or ``(None, None)`` without a validation set."""
    split, task = state.split, state.task
    if len(split.val) == 0:
        return None, None
    if split.val_from_task:
        assert task.x_val is not None and task.y_val is not None  # val_from_task means the task has one
        return task.x_val[split.val], task.y_val[split.val]
    return task.x_train[split.val], task.y_train[split.val]


def build_step_model(config: ExperimentConfig, step: int):
    """The untrained model of ``step``: initialised from ``step_seeds(config, step)("init")``."""
    return build_model(config, step_seeds(config, step)("init"))


def fit_step_model(state: RunState, step: int):
    """Build the step's model and fit it on the labelled set -> ``training.FitResult``."""
    seeds = step_seeds(state.config, step)
    x_val, y_val = validation_data(state)
    model = build_step_model(state.config, step)
    return fit(
        model,
        state.task.x_train[state.labelled],
        state.task.y_train[state.labelled],
        x_val=x_val,
        y_val=y_val,
        config=state.train_config,
        random_state=seeds("fit"),
    )


def evaluate_step(state: RunState, model, step: int) -> dict:
    """Test metrics of ``model`` (``accuracy`` or ``mse``, ``rmse``) as floats."""
    split = state.split
    metrics = evaluate(
        model,
        state.task.x_test[split.test],
        state.task.y_test[split.test],
        T=state.config.T_eval,
        random_state=step_seeds(state.config, step)("eval"),
    )
    return {k: float(v) for k, v in metrics.items() if k in ("accuracy", "mse", "rmse")}


def resolve_tau_inv(state: RunState, model) -> float | None:
    """tau^-1 of the run: the config's number; for ``{"auto": f}`` computed once from ``model`` (the
    step-0 model) on the validation set with ``T`` fresh passes seeded from ``(seed, 0, "tau")``
    and kept in ``state.tau_inv``."""
    factor = state.config.tau_auto
    if state.tau_inv is not None or factor is None:
        return state.tau_inv
    x_val, _ = validation_data(state)
    preds = mc.predict(model, x_val, state.config.T, masks="fresh", random_state=step_seeds(state.config, 0)("tau"))
    state.tau_inv = auto_tau_inv(preds, factor)
    return state.tau_inv


@dataclass(frozen=True)
class Selection:
    """``acquired``: train indices picked (pick order); ``scores``: their scores; ``info``: record fields."""

    acquired: np.ndarray
    scores: np.ndarray
    info: dict


def select_step(state: RunState, model, step: int) -> Selection:
    """The strategy's inputs from its ``Requirement`` (model, candidates, the step's seeds), its picks."""
    config, strategy = state.config, state.strategy
    seeds = step_seeds(config, step)
    context = AcquisitionContext(
        model=model,
        x_train=state.task.x_train,
        labelled=state.labelled,
        pool=state.pool,
        n_candidates=config.n_candidates,
        T=config.T,
        tau_inv=state.tau_inv,
        seed=seeds,
    )
    inputs = strategy.inputs(context)
    batch = strategy.select(config.k, random_state=seeds("select"), **inputs.arrays, **config.strategy_options)
    positions = inputs.pool_positions(batch.indices, config.k, config.strategy)
    return Selection(acquired=state.pool[positions], scores=np.asarray(batch.scores, np.float64), info=inputs.info)


def make_record(
    state: RunState, step: int, fit_result, metrics: dict, selection: Selection | None, timings: dict
) -> dict:
    """The record of ``step`` (see :func:`mcal_utils.loop.run_experiment`)."""
    model = fit_result.model
    rates = model.dropout_rates() if callable(getattr(model, "dropout_rates", None)) else []
    sel = selection or Selection(np.zeros(0, np.int64), np.zeros(0), {})
    return dict(
        step=step,
        budget=int(len(state.labelled)),
        metrics=metrics,
        acquired=[int(i) for i in sel.acquired],
        scores=[float(s) for s in sel.scores],
        dropout_rates=[float(p) for p in rates],
        best_epoch=int(fit_result.best_epoch),
        best_val_metric=None if fit_result.best_val_metric is None else float(fit_result.best_val_metric),
        n_pool=int(len(state.pool)),
        **sel.info,
        tau_inv=state.tau_inv,
        config_hash=state.config_hash,
        timings=timings,
    )


def commit_step(state: RunState, rec: dict) -> None:
    """Write ``rec`` atomically and advance ``state`` past it."""
    if rec["step"] != state.next_step:
        raise ValueError(f"record of step {rec['step']} does not follow step {state.next_step - 1}")
    write_record(state.run_dir, rec)
    state.advance(rec)


def timed_selection(state: RunState, model, step: int) -> tuple[Selection | None, float]:
    """tau^-1 (once per run) and the step's selection (None at the last step), with their seconds."""
    t0 = time.perf_counter()
    resolve_tau_inv(state, model)
    selection = select_step(state, model, step) if step < state.config.n_steps else None
    return selection, time.perf_counter() - t0


def run_step(state: RunState, step: int) -> dict:
    """Train from scratch, evaluate, (tau^-1,) select: the record of ``step`` (not yet written)."""
    seeds = step_seeds(state.config, step)
    t_step = time.perf_counter()
    # torch.manual_seed also reseeds every CUDA device: fork (and so restore) their RNGs too
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seeds("global"))  # anything that still uses the global RNG is seeded too
        t0 = time.perf_counter()
        result = fit_step_model(state, step)
        t_train = time.perf_counter() - t0

        t0 = time.perf_counter()
        metrics = evaluate_step(state, result.model, step)
        t_eval = time.perf_counter() - t0

        selection, t_select = timed_selection(state, result.model, step)
    timings = dict(train_s=t_train, eval_s=t_eval, select_s=t_select, step_s=time.perf_counter() - t_step)
    return make_record(state, step, result, metrics, selection, timings)
