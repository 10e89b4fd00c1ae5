"""One resumable run: the steps of :mod:`~mcal_utils.loop.step` in order, with progress."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mcal_utils.progress import log_enabled, progress_enabled

from .config import ExperimentConfig
from .step import commit_step, open_run, run_step

__all__ = ["RunResult", "run_experiment", "step_line"]

logger = logging.getLogger("mcal_utils.loop")

# Training seeds torch's process-global RNG (under fork_rng), so two steps must not train at the
# same time in one process: thread-based executors run steps one at a time (use processes).
STEP_LOCK = threading.Lock()


def step_line(config: ExperimentConfig, rec: dict) -> str:
    """``"<method> seed <s>: step 3/10 acc=0.9100 (12.3 s)"`` for a completed step record."""
    metrics = " ".join(f"{'acc' if k == 'accuracy' else k}={v:.4f}" for k, v in rec["metrics"].items())
    return (
        f"{config.method} seed {config.seed}: step {rec['step']}/{config.n_steps} {metrics} "
        f"({rec['timings']['step_s']:.1f} s)"
    )


def emit_step_line(config: ExperimentConfig, rec: dict) -> None:
    """One line on stderr (flushed) and at INFO on the ``mcal_utils.loop`` logger."""
    line = step_line(config, rec)
    logger.info(line)
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunResult:
    """``run_dir``, ``config``, ``records`` (every step's record), ``resumed_from`` (the number of
    steps found on disk when the call started), ``seconds`` (wall time of this call)."""

    run_dir: Path
    config: ExperimentConfig
    records: list = field(repr=False)
    resumed_from: int
    seconds: float


def run_experiment(
    config: ExperimentConfig,
    run_dir,
    *,
    data_dir=None,
    progress: bool | None = None,
    torch_threads: int | None = None,
    log: bool | None = None,
) -> RunResult:
    """Run (or resume) ``config`` in ``run_dir``; returns every record.

    Each record (``steps/step_XXXX.json``): ``step``, ``budget`` (labelled points the model was
    trained on), ``metrics`` (``accuracy`` or ``mse``/``rmse`` on the test set), ``acquired``
    (train indices picked at this step, in pick order; empty at the last step), ``scores`` (their
    scores), ``dropout_rates`` (learned p per layer, Concrete Dropout), ``best_epoch``,
    ``best_val_metric``, ``n_pool``, ``n_candidates``, ``tau_inv`` (DEIMOS's tau^-1 used, None when
    unused), ``config_hash`` (binds the record to ``config.json``), ``timings`` (seconds:
    ``train_s``, ``eval_s``, ``select_s``, ``step_s``).

    Everything checkable is checked before training (``validate``, the run directory). The run
    directory is locked for the call: a second process on it fails at once with
    :class:`~mcal_utils.loop.storage.RunDirBusy` naming the PID that holds it.
    torch_threads: ``torch.set_num_threads`` for this process (None: leave it).
    log: one line per completed step on stderr (None: only without a progress bar, when stderr is
    not a terminal and not in a notebook).
    """
    t_start = time.perf_counter()
    if torch_threads is not None:
        torch.set_num_threads(int(torch_threads))
    show = progress_enabled(progress)
    lines = log_enabled(log, show)
    with open_run(config, run_dir, data_dir=data_dir) as state:
        resumed_from = state.next_step

        bar = tqdm(
            total=config.n_steps + 1,
            initial=resumed_from,
            desc=f"{config.method} seed {config.seed}",
            unit="step",
            disable=not show,
            leave=False,
        )
        try:
            while not state.done:
                with STEP_LOCK:
                    rec = run_step(state, state.next_step)
                commit_step(state, rec)
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in rec["metrics"].items()})
                if lines:
                    emit_step_line(config, rec)
        finally:
            bar.close()
        records = list(state.records)
    return RunResult(
        run_dir=Path(run_dir),
        config=config,
        records=records,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - t_start,
    )
