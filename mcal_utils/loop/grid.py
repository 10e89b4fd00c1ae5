"""Grids (strategies x seeds) on any ``concurrent.futures.Executor``, with progress from the run directories.

The local process pool (the default) is owned by :func:`run_grid`: its workers die with the parent
(``prctl(PR_SET_PDEATHSIG)`` on Linux, a watchdog thread elsewhere), Ctrl-C cancels the queued runs
and stops the workers at once, and a worker that dies (killed, out of memory) is reported with the
run it was running while the other interrupted runs are resubmitted to a fresh pool (they resume
from their last written step).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mcal_utils.environment import RUN_THREADS
from mcal_utils.progress import log_enabled, progress_enabled

from .config import ExperimentConfig
from .lockstep import plan_units, run_group
from .registry import load_task_for
from .run import emit_step_line, run_experiment
from .storage import RunDirBusy, check_run_dir, run_dir_for, run_dir_holder, step_numbers, wait_run_dir
from .validation import validate

__all__ = ["grid_configs", "run_dir_for", "run_grid", "WorkerDied", "BUSY_MODES"]

#: ``run_grid(busy=...)``: what to do with a run whose directory another process holds.
BUSY_MODES: tuple[str, ...] = ("raise", "wait", "skip")


class WorkerDied(RuntimeError):
    """A worker process of the grid's pool died while running a run."""


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


# ---------------------------------------------------------------------------
# worker processes
# ---------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Pool initializer: end this worker when ``parent_pid`` dies (SIGKILL included)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watchdog():
        while True:
            threading.Event().wait(poll_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watchdog, name="mcal-parent-watchdog", daemon=True).start()


def _grid_job(configs: tuple, run_dirs: tuple, data_dir, torch_threads) -> tuple:
    """Worker entry point of :func:`run_grid` (module level: picklable): one run, or one lockstep
    group (``loop.lockstep.run_group``) when given several aligned runs."""
    if len(configs) == 1:
        run_experiment(
            configs[0], run_dirs[0], data_dir=data_dir, progress=False, torch_threads=torch_threads, log=False
        )
    else:
        run_group(configs, run_dirs, data_dir=data_dir, torch_threads=torch_threads, log=False)
    return run_dirs


def _unit_errors(unit, err: BaseException) -> list[tuple[Path, BaseException]]:
    """The failed runs of a unit: a lockstep group names its own; otherwise every run of the unit."""
    failures = getattr(err, "failures", None)
    if isinstance(failures, dict) and failures:
        return [(Path(d), e) for d, e in failures.items()]
    return [(Path(d), err) for d in unit[1]]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _guard_spawned_import() -> None:
    """A spawned worker re-imports the caller's script; a ``run_grid`` call at its top level would
    start a pool inside every worker: stop with one line instead of a wall of tracebacks."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(
            "mcal run_grid: a worker process imported your script and reached run_grid() again. With the default "
            'process pool, call run_grid under `if __name__ == "__main__":` in a script (not needed in a '
            "notebook), or pass max_workers=0 / your own executor."
        )


def _describe_exit(code) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _lock_holder(run_dir: Path) -> int | None:
    try:
        text = (run_dir / ".lock").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _new_pool(n_workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued runs and terminate the workers now (not after their current step)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():  # pragma: no cover - a worker ignoring SIGTERM
            p.kill()


def run_grid(
    configs: Sequence[ExperimentConfig],
    root,
    *,
    executor: Executor | None = None,
    max_workers: int | None = None,
    torch_threads: int | None = None,
    data_dir=None,
    progress: bool | None = None,
    poll_s: float = 0.5,
    log: bool | None = None,
    lockstep: bool | None = None,
    lockstep_members: int | None = None,
    busy: str = "raise",
    busy_timeout_s: float | None = None,
) -> list[Path]:
    """Run every config in ``root/<method>/seed_<seed>`` on an executor; returns the run dirs.

    Every config is validated (and its run directory checked: writable, no other experiment, no
    records without a config) before anything trains.
    executor: any ``concurrent.futures.Executor`` (e.g. Dask ``client.get_executor()``; threads of
        one process run their steps one at a time, since training seeds torch's global RNG); None ->
        a local ``ProcessPoolExecutor`` (spawn) of ``max_workers`` processes (default: one per
        core, at most one per run); ``max_workers=0`` runs everything in this process.
        **The default pool starts fresh Python processes that import your script**: in a script,
        call ``run_grid`` under ``if __name__ == "__main__":`` (notebooks need nothing).
        Its workers die with this process; Ctrl-C cancels the queued runs and stops the workers;
        a worker that dies is reported with its run, and the other interrupted runs are resumed on
        a fresh pool.
    torch_threads: torch threads per run (default :data:`mcal_utils.environment.RUN_THREADS`, 1, on
        every executor and in-process, restored afterwards there): a run's records never depend on
        how many workers or cores the grid had, nor on how many runs were left to do.
    progress: one bar for the grid and one per run, fed by polling the run directories every
        ``poll_s`` seconds (None: only in an interactive terminal).
    log: one line per completed step on stderr, ``"<method> seed <s>: step 3/10 acc=0.91 (12.3 s)"``
        (None: when no bar is shown, stderr is not a terminal and not in a notebook).
    lockstep: train aligned runs (same task, model, sizes and training settings) together, one
        population fit per step (``loop.lockstep``; identical records); None: where it pays (on a
        CUDA device). Each group (or slice of at most ``lockstep_members`` runs) is one task on the
        executor.
    busy: a run whose directory another process holds (e.g. a second ``run_grid`` on the same root):
        ``"raise"`` (default) counts it as failed (:class:`~mcal_utils.loop.storage.RunDirBusy`);
        ``"wait"``: once everything else is done, wait for that process to release it (one line on
        stderr naming the run and the PID; at most ``busy_timeout_s`` seconds each, None: no limit --
        a dead holder releases the lock at once), then take the run as done if complete, else resume it;
        ``"skip"``: leave it to the other process; at the end a ``RuntimeWarning`` names every skipped
        run and whether that process finished it, is still running it or stopped it short.
    Runs that fail do not stop the others; afterwards a ``RuntimeError`` names them (the first
    error chained).
    """
    _guard_spawned_import()
    if busy not in BUSY_MODES:
        raise ValueError(
            f"busy must be one of {list(BUSY_MODES)} (what to do with a run another process holds), got {busy!r}"
        )
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
        check_run_dir(d, c)  # refuses another experiment or orphaned records now, not later in a worker
    del tasks
    totals = [c.n_steps + 1 for c in configs]

    show = progress_enabled(progress)
    lines = log_enabled(log, show)
    grid_bar = tqdm(total=sum(totals), desc="grid", unit="step", disable=not show)
    bars = [
        tqdm(total=t, desc=f"{c.method} s{c.seed}", unit="step", disable=not show, leave=False, position=i + 1)
        for i, (c, t) in enumerate(zip(configs, totals))
    ]
    done_steps = [len(step_numbers(d)) for d in dirs]
    for i, n in enumerate(done_steps):
        bars[i].update(min(n, totals[i]))
        grid_bar.update(min(n, totals[i]))

    def refresh():
        for i, d in enumerate(dirs):
            n = min(len(step_numbers(d)), totals[i])
            if n > done_steps[i]:
                if lines:
                    for s in range(done_steps[i], n):
                        try:
                            rec = json.loads((d / "steps" / f"step_{s:04d}.json").read_text(encoding="utf-8"))
                            emit_step_line(configs[i], rec)
                        except (OSError, ValueError, KeyError):  # progress only: the run itself checks its files
                            pass
                bars[i].update(n - done_steps[i])
                grid_bar.update(n - done_steps[i])
                done_steps[i] = n

    # finished runs (config already checked above) are not resubmitted
    todo = [(c, d) for i, (c, d) in enumerate(zip(configs, dirs)) if done_steps[i] < totals[i]]
    data_arg = None if data_dir is None else str(data_dir)

    def execute(pairs) -> list[tuple[Path, BaseException]]:
        units = plan_units(pairs, lockstep, max_members=lockstep_members) if pairs else []
        if not units:
            return []
        threads = RUN_THREADS if torch_threads is None else torch_threads
        if executor is None and max_workers == 0:
            errs = []
            before = torch.get_num_threads()
            try:
                for unit in units:
                    try:
                        _grid_job(*unit, data_dir, threads)
                    except Exception as err:  # noqa: BLE001 - reported below
                        errs.extend(_unit_errors(unit, err))
                    refresh()
            finally:
                torch.set_num_threads(before)
            return errs
        if executor is None:
            n_workers = max(1, min(len(units), max_workers or _cpu_count()))
            return _run_on_own_pool(units, n_workers, data_arg, threads, refresh, poll_s)
        futures = {executor.submit(_grid_job, *unit, data_arg, threads): unit for unit in units}
        try:
            return _collect(futures, refresh, poll_s)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    index = {d: i for i, d in enumerate(dirs)}
    errors: list[tuple[Path, BaseException]] = []
    skipped: dict[Path, str] = {}  # run dir -> PID of the process that held it
    try:
        for _round in range(len(todo) + 2):  # a busy run is retried at most once per round
            round_errors = execute(todo)
            busy_now = {d: e for d, e in round_errors if isinstance(e, RunDirBusy)}
            errors.extend((d, e) for d, e in round_errors if not isinstance(e, RunDirBusy))
            if busy == "raise" or not busy_now:
                errors.extend(busy_now.items())
                break
            retry = []
            for c, d in todo:
                if d not in busy_now:
                    continue
                held_by = run_dir_holder(d)
                holder = held_by or _pid_in(busy_now[d])
                if busy == "skip" and held_by is not None:
                    skipped[d] = holder
                    continue
                if busy == "wait" and held_by is not None:
                    print(
                        f"run_grid: {c.method} seed {c.seed} ({d}) is in use by PID {holder}; waiting for it to "
                        f"release the run (busy='wait')",
                        file=sys.stderr,
                        flush=True,
                    )
                    try:
                        wait_run_dir(d, timeout_s=busy_timeout_s, poll_s=poll_s)
                    except RunDirBusy as err:
                        errors.append((d, err))
                        continue
                if len(step_numbers(d)) < totals[index[d]]:
                    retry.append((c, d))  # released unfinished (or held by a lockstep partner only): resume it here
                elif busy == "skip":
                    skipped[d] = holder  # reported as finished by that process
                else:
                    print(
                        f"run_grid: PID {holder} finished {c.method} seed {c.seed} ({d}); nothing left to do",
                        file=sys.stderr,
                        flush=True,
                    )
            todo = retry
            if not todo:
                break
        else:  # pragma: no cover - the directories kept changing hands
            errors.extend((d, RunDirBusy(f"run directory {d} kept being taken by other processes")) for _, d in todo)
    finally:
        refresh()
        for b in bars:
            b.close()
        grid_bar.close()
    if skipped:
        _warn_skipped(skipped, configs, dirs, totals)
    if errors:
        names = ", ".join(f"{d} ({type(e).__name__}: {e})" for d, e in errors)
        raise RuntimeError(f"{len(errors)} of {len(configs)} runs failed: {names}") from errors[0][1]
    return dirs


def _pid_in(err: BaseException) -> str:
    m = re.search(r"PID (\S+)", str(err))
    return m.group(1) if m else "unknown"


def _warn_skipped(skipped: dict, configs, dirs, totals) -> None:
    """One ``RuntimeWarning`` naming the runs left to other processes and what became of them."""
    lines = []
    for c, d, total in zip(configs, dirs, totals):
        if d not in skipped:
            continue
        pid, n = skipped[d], len(step_numbers(d))
        if n >= total:
            state = f"finished by the other process (PID {pid})"
        elif run_dir_holder(d) is not None:
            state = f"still running in PID {run_dir_holder(d)} ({n} of {total} steps written)"
        else:
            state = f"stopped by PID {pid} at {n} of {total} steps: run the grid again to resume it"
        lines.append(f"{c.method} seed {c.seed} ({d}): {state}")
    warnings.warn(
        f"run_grid(busy='skip') left {len(lines)} run(s) to another process: " + "; ".join(lines),
        RuntimeWarning,
        stacklevel=3,
    )


def _collect(futures: dict, refresh, poll_s: float) -> list[tuple[Path, BaseException]]:
    errors = []
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
        for fut in finished:
            err = fut.exception()
            if err is not None:
                errors.extend(_unit_errors(futures[fut], err))
        refresh()
    return errors


def _pool_failed(unit) -> list[tuple[Path, BaseException]]:
    return [
        (
            d,
            WorkerDied(
                f"the worker pool broke before running {c.method} seed {c.seed} ({d}). If you run a "
                f'script, call run_grid under `if __name__ == "__main__":` (spawned workers import '
                f"the script); otherwise see the worker output above, or use max_workers=0"
            ),
        )
        for c, d in zip(*unit)
    ]


def _run_on_own_pool(units, n_workers, data_arg, torch_threads, refresh, poll_s):
    """Run ``units`` on our own spawn pool; after a worker death, report its runs and resubmit the others."""
    errors: list[tuple[Path, BaseException]] = []
    todo = list(units)
    for _attempt in range(len(units) + 1):
        if not todo:
            break
        pool = _new_pool(min(n_workers, len(todo)))
        workers: dict = {}
        try:
            futures = {pool.submit(_grid_job, *unit, data_arg, torch_threads): unit for unit in todo}
            workers.update(getattr(pool, "_processes", None) or {})
            pending = set(futures)
            broken = []
            while pending:
                finished, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
                workers.update(getattr(pool, "_processes", None) or {})
                for fut in finished:
                    err = fut.exception()
                    if isinstance(err, BrokenProcessPool):
                        broken.append(futures[fut])
                    elif err is not None:
                        errors.extend(_unit_errors(futures[fut], err))
                refresh()
        except BaseException:  # Ctrl-C and friends: stop now, do not start queued runs
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)
        todo = []
        if not broken:
            break
        dead = {
            pid: p.exitcode
            for pid, p in workers.items()
            if p.exitcode is not None and p.exitcode not in (0, -signal.SIGTERM)
        }
        retry = []
        for unit in broken:
            holders = {_lock_holder(d) for d in unit[1]} & set(dead)
            if not holders:
                retry.append(unit)
                continue
            for c, d in zip(*unit):
                holder = _lock_holder(d)
                if holder in dead:
                    errors.append(
                        (
                            d,
                            WorkerDied(
                                f"worker process PID {holder} died ({_describe_exit(dead[holder])}) while "
                                f"running {c.method} seed {c.seed} in {d}; the run resumes from its last written "
                                f"step when the grid is run again"
                            ),
                        )
                    )
                else:  # a run of the same lockstep group not yet started: report it with its group
                    errors.append((d, WorkerDied(f"the worker running the lockstep group of {d} died")))
        if len(retry) == len(broken):  # no run was on a dead worker: the pool itself failed (e.g. at spawn)
            for unit in retry:
                errors.extend(_pool_failed(unit))
            retry = []
        todo = retry
    for unit in todo:  # pragma: no cover - retries exhausted
        errors.extend(_pool_failed(unit))
    return errors
