"""Grids (strategies x seeds) on any ``concurrent.futures.Executor``, with progress from the run directories."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import Executor, FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from .config import ExperimentConfig
from .run import _progress_enabled, run_experiment
from .split import load_task_for, validate
from .storage import _STEP_FILE, _prepare_run_dir

__all__ = ["grid_configs", "run_dir_for", "run_grid"]


# ---------------------------------------------------------------------------
# grids
# ---------------------------------------------------------------------------
def grid_configs(base: ExperimentConfig, strategies: Sequence, seeds: Sequence[int]) -> list[ExperimentConfig]:
    """``base`` for every (strategy, seed). A strategy is a name or a dict of config changes
    (e.g. ``{"strategy": "margin_inverted", "label": "Margin (inverted)"}``)."""
    out = []
    for s in strategies:
        changes = {"strategy": s} if isinstance(s, str) else dict(s)
        for seed in seeds:
            out.append(base.replace(**changes, seed=int(seed)))
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def run_dir_for(root, config: ExperimentConfig) -> Path:
    """``root/<method>/seed_<seed>``."""
    return Path(root) / _safe(config.method) / f"seed_{config.seed}"


def _count_steps(run_dir: Path) -> int:
    try:
        return sum(1 for p in (run_dir / "steps").iterdir() if _STEP_FILE.match(p.name))
    except FileNotFoundError:
        return 0


def _grid_job(config: ExperimentConfig, run_dir: str, data_dir, torch_threads) -> str:
    """Worker entry point of :func:`run_grid` (module level: picklable)."""
    run_experiment(config, run_dir, data_dir=data_dir, progress=False, torch_threads=torch_threads)
    return run_dir


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def run_grid(configs: Sequence[ExperimentConfig], root, *, executor: Executor | None = None,
             max_workers: int | None = None, torch_threads: int | None = None, data_dir=None,
             progress: bool | None = None, poll_s: float = 0.5) -> list[Path]:
    """Run every config in ``root/<method>/seed_<seed>`` on an executor; returns the run dirs.

    Every config is validated (and its run directory checked) before anything trains.
    executor: any ``concurrent.futures.Executor`` (e.g. Dask ``client.get_executor()``; threads of
        one process run their steps one at a time, since training seeds torch's global RNG); None ->
        a local ``ProcessPoolExecutor`` (spawn) of ``max_workers`` processes (default: one per
        core, at most one per run); ``max_workers=0`` runs everything in this process.
    torch_threads: torch threads per run (default: cores // workers for the local pool, 1 for a
        foreign executor, unchanged in-process).
    progress: one bar for the grid and one per run, fed by polling the run directories every
        ``poll_s`` seconds (None: only in an interactive terminal).
    Runs that fail do not stop the others; afterwards a ``RuntimeError`` names them (the first
    error chained).
    """
    configs = list(configs)
    if not configs:
        raise ValueError("run_grid needs at least one config")
    dirs = [run_dir_for(root, c) for c in configs]
    if len(set(dirs)) != len(dirs):
        dup = sorted({str(d) for d in dirs if dirs.count(d) > 1})
        raise ValueError(f"two configs map to the same run directory {dup}: give them distinct labels")
    tasks = {}
    for c, d in zip(configs, dirs):
        key = (c.task, json.dumps(c.task_options, sort_keys=True))
        if key not in tasks:
            tasks[key] = load_task_for(c, data_dir)
        validate(c, data_dir, task=tasks[key])
        if (d / "config.json").exists():
            _prepare_run_dir(d, c)  # refuses a different stored config now, not later in a worker
    del tasks
    totals = [c.n_steps + 1 for c in configs]

    from tqdm.auto import tqdm

    show = _progress_enabled(progress)
    grid_bar = tqdm(total=sum(totals), desc="grid", unit="step", disable=not show)
    bars = [tqdm(total=t, desc=f"{c.method} s{c.seed}", unit="step", disable=not show, leave=False,
                 position=i + 1) for i, (c, t) in enumerate(zip(configs, totals))]
    done_steps = [0] * len(configs)

    def refresh():
        for i, d in enumerate(dirs):
            n = min(_count_steps(d), totals[i])
            if n > done_steps[i]:
                bars[i].update(n - done_steps[i])
                grid_bar.update(n - done_steps[i])
                done_steps[i] = n

    refresh()
    # finished runs (config already checked above) are not resubmitted
    todo = [(c, d) for i, (c, d) in enumerate(zip(configs, dirs)) if done_steps[i] < totals[i]]
    errors: list[tuple[Path, BaseException]] = []
    own = None
    try:
        if not todo:
            pass
        elif executor is None and max_workers == 0:
            for c, d in todo:
                try:
                    run_experiment(c, d, data_dir=data_dir, progress=False, torch_threads=torch_threads)
                except Exception as err:  # noqa: BLE001 - reported below
                    errors.append((d, err))
                refresh()
        else:
            if executor is None:
                import multiprocessing

                n_workers = max(1, min(len(todo), max_workers or _cpu_count()))
                if torch_threads is None:
                    torch_threads = max(1, _cpu_count() // n_workers)
                own = executor = ProcessPoolExecutor(max_workers=n_workers,
                                                     mp_context=multiprocessing.get_context("spawn"))
            elif torch_threads is None:
                torch_threads = 1
            futures = {executor.submit(_grid_job, c, str(d), None if data_dir is None else str(data_dir),
                                       torch_threads): d for c, d in todo}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
                for fut in finished:
                    err = fut.exception()
                    if err is not None:
                        errors.append((futures[fut], err))
                refresh()
    finally:
        if own is not None:
            own.shutdown(wait=True, cancel_futures=True)
        refresh()
        for b in bars:
            b.close()
        grid_bar.close()
    if errors:
        names = ", ".join(f"{d} ({type(e).__name__}: {e})" for d, e in errors)
        raise RuntimeError(f"{len(errors)} of {len(configs)} runs failed: {names}") from errors[0][1]
    return dirs
