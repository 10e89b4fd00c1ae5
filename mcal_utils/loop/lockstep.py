"""Lockstep: advance a group of aligned runs step by step, with one population fit per step.

Within a grid every run at step ``s`` trains the same architecture with the same optimiser on the
same number of labelled points; only the data and the seeds differ. :func:`run_group` therefore
advances such a group together: at each step one :func:`mcal_utils.training.fit_population`
trains every run's model (each member exactly as the sequential ``fit`` of that run would: its
own init, data, batch order, masks, optimiser state, checkpoint and NaN guard), then each run's
own evaluation, tau^-1, scoring, acquisition and atomic record write follow exactly as in the
sequential path (:mod:`mcal_utils.loop.step`: the same functions under the same seeds). So resume,
the store format and ``load_results`` are unchanged, and a run of a lockstep grid can be resumed
sequentially and vice versa.

Aligned runs (:func:`lockstep_key`): same task and task options, model and model options,
initial size, acquisition size, number of steps, pool / validation sizes and training settings.
Runs that resumed at different steps catch up first: each iteration advances the runs of the group
with the smallest next step.

Where it pays (:func:`lockstep_pays`): on a CUDA device (one batched fit instead of M small ones,
launch-bound); on the CPU the per-member arithmetic is the same and kernels are compute-bound, so a
group costs about as much as its runs one after the other, and a process pool that runs the runs
in parallel is faster (measured: ``benchmarks/bench_lockstep.py``).

Equivalence: on the CPU the population fit runs the members' kernels on the sequential fit's
memory layouts (``vectorize=False``), so lockstep records equal sequential records exactly
(timings aside); on a GPU (``vectorize=True``) they agree up to float32 rounding of the batched
kernels (near-ties of scores can then pick differently).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mcal_utils.device import resolve_device
from mcal_utils.population import evaluate_population, fit_population

from .config import ExperimentConfig
from .registry import load_task_for
from .run import STEP_LOCK, emit_step_line
from .step import (
    build_step_model,
    commit_step,
    evaluate_step,
    make_record,
    open_run,
    run_step,
    step_seeds,
    timed_selection,
    validation_data,
)
from .storage import run_dir_for

__all__ = [
    "ALIGN_FIELDS",
    "lockstep_key",
    "group_configs",
    "lockstep_pays",
    "plan_units",
    "lockstep_step",
    "run_group",
    "run_lockstep",
    "GroupResult",
    "LockstepError",
]

#: The config fields on which runs must agree to train as one population.
ALIGN_FIELDS: tuple[str, ...] = (
    "task",
    "task_options",
    "model",
    "model_options",
    "initial_size",
    "k",
    "n_steps",
    "pool_size",
    "val_size",
    "train",
)


class LockstepError(RuntimeError):
    """Runs of a group failed (the others finished); ``failures``: ``{run_dir: exception}``."""

    def __init__(self, failures: dict):
        self.failures = dict(failures)
        names = ", ".join(f"{d} ({type(e).__name__}: {e})" for d, e in self.failures.items())
        super().__init__(f"{len(self.failures)} run(s) of a lockstep group failed: {names}")


def lockstep_key(config: ExperimentConfig) -> str:
    """The alignment key of ``config``: runs with equal keys can train as one population."""
    d = config.to_dict()
    return json.dumps({f: d[f] for f in ALIGN_FIELDS}, sort_keys=True)


def group_configs(configs: Sequence[ExperimentConfig]) -> list[list[int]]:
    """Indices of ``configs`` grouped by :func:`lockstep_key` (groups in first-seen order, indices
    in input order)."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        if not isinstance(c, ExperimentConfig):
            raise ValueError(f"configs[{i}] must be an ExperimentConfig, got {type(c).__name__}")
        groups.setdefault(lockstep_key(c), []).append(i)
    return list(groups.values())


def lockstep_pays(device="auto") -> bool:
    """Whether lockstep is the default: on a CUDA device only (see the module docstring)."""
    return resolve_device(device).type == "cuda"


def plan_units(
    todo: Sequence[tuple[ExperimentConfig, Path]], lockstep: bool | None = None, *, max_members: int | None = None
) -> list[tuple[tuple, tuple]]:
    """Tasks for an executor: ``[(configs, run_dirs), ...]``, one per lockstep group (split into
    slices of at most ``max_members`` runs, so that a large grid still spreads over workers), or
    one per run when ``lockstep`` is False. None: lockstep for the groups whose training device
    (``train["device"]``, default ``"auto"``) is a CUDA device (:func:`lockstep_pays`)."""
    if max_members is not None and (
        isinstance(max_members, bool) or not isinstance(max_members, int) or max_members < 1
    ):
        raise ValueError(f"max_members must be None or an int >= 1, got {max_members!r}")
    todo = list(todo)
    if lockstep is False:
        return [((c,), (Path(d),)) for c, d in todo]
    units: list[tuple[tuple[ExperimentConfig, ...], tuple[Path, ...]]] = []
    for idx in group_configs([c for c, _ in todo]):
        if lockstep is None and not lockstep_pays(todo[idx[0]][0].train.get("device", "auto")):
            units += [((todo[i][0],), (Path(todo[i][1]),)) for i in idx]
            continue
        size = max_members or len(idx)
        for s in range(0, len(idx), size):
            part = idx[s : s + size]
            units.append((tuple(todo[i][0] for i in part), tuple(Path(todo[i][1]) for i in part)))
    return units


# ---------------------------------------------------------------------------
# one step of a group
# ---------------------------------------------------------------------------
def _rng_state(cuda_devices: list[int]):
    return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in cuda_devices]


def _set_rng_state(state, cuda_devices: list[int]) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    for d, s in zip(cuda_devices, cuda):
        torch.cuda.set_rng_state(s, d)


def _shared(arrays: dict, key, make):
    """One object per ``key`` (so that runs with the same validation rows share one copy)."""
    if key not in arrays:
        arrays[key] = make()
    return arrays[key]


def lockstep_step(states: list, step: int, *, vectorize: bool | None = None) -> list:
    """Step ``step`` of every run in ``states`` (``RunState`` objects at that step, one lockstep key):
    one population fit, then each run's evaluation, tau^-1 and selection as :func:`run_step` does
    them. Returns each run's record (not yet written) or the exception its fit raised.

    On the vectorised (GPU) path the MC test evaluations of runs that share a test set run as one
    population too (:func:`mcal_utils.training.evaluate_population`: the same masks).

    Timings: ``train_s`` is the run's share (1/M) of the population fit's wall time (``eval_s``
    likewise for a batched evaluation)."""
    if not states:
        return []
    if len({lockstep_key(st.config) for st in states}) != 1 or any(st.next_step != step for st in states):
        raise ValueError("lockstep_step needs runs with one lockstep key, all at the given step")
    M = len(states)
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    seeds = [step_seeds(st.config, step) for st in states]
    t_step = time.perf_counter()
    with torch.random.fork_rng(devices=cuda_devices):
        # each model is built right after its run's global seed, as run_step does; the RNG state
        # after the build is what that run's evaluation and selection start from
        models, after_build = [], []
        for st, sd in zip(states, seeds):
            torch.manual_seed(sd("global"))
            models.append(build_step_model(st.config, step))
            after_build.append(_rng_state(cuda_devices))
        cache: dict = {}
        vals = [
            _shared(
                cache, (id(st.task), st.split.val_from_task, st.split.val.tobytes()), lambda st=st: validation_data(st)
            )
            for st in states
        ]
        has_val = vals[0][0] is not None
        t0 = time.perf_counter()
        population = fit_population(
            models,
            [st.task.x_train[st.labelled] for st in states],
            [st.task.y_train[st.labelled] for st in states],
            xs_val=[v[0] for v in vals] if has_val else None,
            ys_val=[v[1] for v in vals] if has_val else None,
            config=states[0].train_config,
            random_states=[sd("fit") for sd in seeds],
            vectorize=vectorize,
        )
        train_share = (time.perf_counter() - t0) / M
        build_share = (t0 - t_step) / M

        # batched MC test evaluation (GPU path): runs with one test set and one number of passes
        evaluated: dict[int, tuple[dict, float]] = {}
        vectorized = resolve_device(states[0].train_config.device).type == "cuda" if vectorize is None else vectorize
        by_test: dict = {}
        for i, (st, member) in enumerate(zip(states, population.members)):
            if vectorized and st.config.T_eval > 0 and not isinstance(member, BaseException):
                by_test.setdefault((id(st.task), st.split.test.tobytes(), st.config.T_eval), []).append(i)
        for idx in (idx for idx in by_test.values() if len(idx) > 1):
            t0 = time.perf_counter()
            st = states[idx[0]]
            results = evaluate_population(
                [population.members[i].model for i in idx],
                st.task.x_test[st.split.test],
                st.task.y_test[st.split.test],
                T=st.config.T_eval,
                random_states=[seeds[i]("eval") for i in idx],
            )
            share = (time.perf_counter() - t0) / len(idx)
            for i, r in zip(idx, results):
                evaluated[i] = ({k: float(v) for k, v in r.items() if k in ("accuracy", "mse", "rmse")}, share)

        out: list[dict | BaseException] = []
        for i, (st, member, rng) in enumerate(zip(states, population.members, after_build)):
            if isinstance(member, BaseException):
                out.append(member)
                continue
            t_run = time.perf_counter()
            _set_rng_state(rng, cuda_devices)
            if i in evaluated:
                metrics, t_eval = evaluated[i]
            else:
                metrics = evaluate_step(st, member.model, step)
                t_eval = time.perf_counter() - t_run
            selection, t_select = timed_selection(st, member.model, step)
            batched_eval = t_eval if i in evaluated else 0.0
            timings = dict(
                train_s=build_share + train_share,
                eval_s=t_eval,
                select_s=t_select,
                step_s=build_share + train_share + batched_eval + time.perf_counter() - t_run,
            )
            out.append(make_record(st, step, member, metrics, selection, timings))
    return out


# ---------------------------------------------------------------------------
# a group of runs
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupResult:
    """``run_dirs``; ``steps_written`` (records written by this call, per run); ``finished``
    (whether every run reached its last step); ``seconds`` (wall time of the call)."""

    run_dirs: tuple
    steps_written: tuple = field(repr=False)
    finished: bool
    seconds: float


def run_group(
    configs: Sequence[ExperimentConfig],
    run_dirs: Sequence,
    *,
    data_dir=None,
    torch_threads: int | None = None,
    log: bool | None = None,
    vectorize: bool | None = None,
    max_seconds: float | None = None,
) -> GroupResult:
    """Run (or resume) aligned ``configs`` in ``run_dirs`` in lockstep (see the module docstring).

    A run whose fit fails (``FloatingPointError``) stops; the others go on, and a
    :class:`LockstepError` names the failed runs at the end. ``max_seconds``: start no new step
    after this many seconds (the call returns with ``finished=False``; calling again resumes).
    log: one line per written record on stderr (None: off).
    """
    configs, run_dirs = list(configs), [Path(d) for d in run_dirs]
    if not configs or len(configs) != len(run_dirs):
        raise ValueError(
            f"run_group needs equally many configs and run_dirs (>= 1), got {len(configs)} and {len(run_dirs)}"
        )
    if len(group_configs(configs)) != 1:
        raise ValueError("run_group needs aligned configs (one lockstep_key); split them with group_configs")
    if len(set(run_dirs)) != len(run_dirs):
        raise ValueError("run_group: two configs share a run directory")
    if torch_threads is not None:
        torch.set_num_threads(int(torch_threads))
    t_start = time.perf_counter()
    written = [0] * len(configs)
    failures: dict = {}
    with contextlib.ExitStack() as stack:
        states = [
            stack.enter_context(open_run(c, d, data_dir=data_dir, task=load_task_for(c, data_dir)))
            for c, d in zip(configs, run_dirs)
        ]
        while True:
            alive = [i for i, st in enumerate(states) if not st.done and run_dirs[i] not in failures]
            if not alive or (max_seconds is not None and time.perf_counter() - t_start > max_seconds):
                break
            step = min(states[i].next_step for i in alive)
            members = [i for i in alive if states[i].next_step == step]
            with STEP_LOCK:
                if len(members) == 1:
                    results = [_sequential_step(states[members[0]], step)]
                else:
                    results = lockstep_step([states[i] for i in members], step, vectorize=vectorize)
            for i, rec in zip(members, results):
                if isinstance(rec, BaseException):
                    failures[run_dirs[i]] = rec
                    continue
                commit_step(states[i], rec)
                written[i] += 1
                if log:
                    emit_step_line(configs[i], rec)
        finished = all(st.done for st in states)
    if failures:
        raise LockstepError(failures)
    return GroupResult(
        run_dirs=tuple(run_dirs), steps_written=tuple(written), finished=finished, seconds=time.perf_counter() - t_start
    )


def _sequential_step(state, step: int):
    """A lone run's step: the sequential path (its fit's exception returned, not raised)."""
    try:
        return run_step(state, step)
    except FloatingPointError as err:
        return err


def run_lockstep(
    configs: Sequence[ExperimentConfig],
    root,
    *,
    data_dir=None,
    torch_threads: int | None = None,
    log: bool | None = None,
    vectorize: bool | None = None,
    max_seconds: float | None = None,
    max_members: int | None = None,
) -> list[Path]:
    """Every config in ``root/<method>/seed_<seed>`` (as :func:`~mcal_utils.loop.run_grid`), in this
    process, group after group in lockstep; returns the run dirs. ``max_seconds`` bounds the whole
    call (no new step starts after it; calling again resumes)."""
    configs = list(configs)
    dirs = [run_dir_for(root, c) for c in configs]
    if len(set(dirs)) != len(dirs):
        raise ValueError("two configs map to the same run directory: give them distinct labels")
    t_start = time.perf_counter()
    errors = []
    for cs, ds in plan_units(list(zip(configs, dirs)), True, max_members=max_members):
        left = None if max_seconds is None else max_seconds - (time.perf_counter() - t_start)
        if left is not None and left <= 0:
            break
        try:
            run_group(
                cs, ds, data_dir=data_dir, torch_threads=torch_threads, log=log, vectorize=vectorize, max_seconds=left
            )
        except LockstepError as err:
            errors.append(err)
    if errors:
        raise LockstepError({d: e for err in errors for d, e in err.failures.items()}) from errors[0]
    return dirs
