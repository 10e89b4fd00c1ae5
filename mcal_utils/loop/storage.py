"""Run directories on disk: one atomic writer, an exclusive lock, records bound to their config.

Layout of a run directory::

    config.json              {"format": 2, "config": ExperimentConfig.to_dict(), "config_hash": ...}
    split.json               the initial labelled indices, the sizes of the split, config_hash
    steps/step_XXXX.json     one record per completed step (config_hash among its fields)
    .lock                    the lock file (``fcntl.flock``; holds the PID of the owner)

Nothing is ever adopted silently: every record and ``split.json`` carry the hash of the config
that wrote them (:func:`~mcal_utils.loop.config.config_hash`) and every read checks it; a
``steps/`` folder or ``split.json`` without ``config.json`` is refused; a second process on the
same run directory fails fast naming the PID that holds it; ``config.json`` is created
exclusively; a corrupt file is refused naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from mcal_utils.data.files import remove_stale_parts, write_text_atomic

from ..data import data_dir as _data_dir
from ..device import resolve_device
from ..environment import describe, dispatch_key, numerics_key, summary_line
from .config import ExperimentConfig, config_diff, config_hash

__all__ = [
    "atomic_write_text",
    "read_records",
    "load_results",
    "FORMAT_VERSION",
    "RunDirBusy",
    "lock_run_dir",
    "check_run_dir",
    "open_run_dir",
    "run_dir_for",
    "step_numbers",
    "read_json",
    "write_json",
    "write_record",
    "code_fingerprint",
    "cache_root",
    "RECORD_KEYS",
    "run_dir_holder",
    "wait_run_dir",
]

FORMAT_VERSION = 2
_STEP_FILE = re.compile(r"^step_(\d{4,})\.json$")
#: Fields every step record has (records may carry more, e.g. ``n_samp`` for DEIMOS).
RECORD_KEYS = (
    "step",
    "budget",
    "metrics",
    "acquired",
    "scores",
    "dropout_rates",
    "best_epoch",
    "best_val_metric",
    "n_pool",
    "timings",
    "config_hash",
    "tau_inv",
)

#: The package's atomic text writer (``mcal_utils.data.files.write_text_atomic``): a temporary
#: ``.<name>.*.part`` file, fsync, ``os.replace`` (or an exclusive link), fsync of the folder.
atomic_write_text = write_text_atomic


class RunDirBusy(RuntimeError):
    """Another process holds the run directory's lock."""


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------
def write_json(path, obj, *, exclusive: bool = False) -> None:
    """``obj`` as indented, key-sorted JSON, atomically (``exclusive``: fail if ``path`` exists)."""
    atomic_write_text(Path(path), json.dumps(obj, indent=1, sort_keys=True, allow_nan=False), exclusive=exclusive)


def read_json(path, remedy: str):
    """The JSON in ``path``; a corrupt file -> ``ValueError`` naming it and ``remedy`` (what to do)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path} is corrupt (not valid JSON: {err}); it was truncated or overwritten. {remedy}"
        ) from None


_STEP_REMEDY = "Delete it and every later step file of this run, then run the experiment again to recompute them."


def _read_record(path: Path, step: int, expected_hash: str | None) -> dict:
    rec = read_json(path, _STEP_REMEDY)
    if not isinstance(rec, dict):
        raise ValueError(f"{path} is not a step record (a JSON object expected). {_STEP_REMEDY}")
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        raise ValueError(
            f"{path} is not a complete step record: missing {missing} (an older format or an edited "
            f"file). {_STEP_REMEDY}"
        )
    if rec["step"] != step:
        raise ValueError(f"{path} holds step {rec['step']}, expected {step}. {_STEP_REMEDY}")
    if expected_hash is not None and rec["config_hash"] != expected_hash:
        raise ValueError(
            f"{path} was written by another experiment (config hash {rec['config_hash']}, this run's "
            f"config.json has {expected_hash}): refusing to mix runs. {_STEP_REMEDY}"
        )
    return rec


def read_records(run_dir, expected_hash: str | None = None) -> list[dict]:
    """The completed step records of a run, in step order (contiguous from step 0).

    Every record must carry ``config_hash`` equal to ``expected_hash`` (default: the hash of the
    run's ``config.json``);
    a record of another config, a corrupt or incomplete file, a gap, or step files without a
    ``config.json`` raise ``ValueError`` naming the file.
    """
    run_dir = Path(run_dir)
    steps = run_dir / "steps"
    if not steps.is_dir():
        return []
    found = {}
    for p in steps.iterdir():
        m = _STEP_FILE.match(p.name)
        if m:
            found[int(m.group(1))] = p
    if not found:
        return []
    if expected_hash is None:
        expected_hash = config_hash(read_config(run_dir))
    records = []
    for s in range(len(found)):
        if s not in found:
            raise ValueError(
                f"{steps}: step files are not contiguous (step {s} missing, found {sorted(found)}); "
                f"delete the step files after step {s - 1} and run again"
            )
        records.append(_read_record(found[s], s, expected_hash))
    return records


def write_record(run_dir, rec: dict) -> None:
    """Write a step record (it must have every :data:`RECORD_KEYS` field) atomically."""
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        raise ValueError(f"step record misses {missing}")
    write_json(Path(run_dir) / "steps" / f"step_{rec['step']:04d}.json", rec)


# ---------------------------------------------------------------------------
# the stored config and the run directory
# ---------------------------------------------------------------------------
def read_config(run_dir) -> ExperimentConfig:
    """The config stored in ``run_dir/config.json``; ``ValueError`` naming the file when it is missing
    (while step files exist), corrupt, of another format or not a valid config."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.exists():
        raise ValueError(
            f"{run_dir} holds step records or a split but no config.json: nothing says which experiment "
            f"wrote them, refusing to adopt them. Delete {run_dir} (or restore its config.json)."
        )
    remedy = f"Delete {run_dir} (its records cannot be attributed) and run again."
    stored = read_json(path, remedy)
    if not isinstance(stored, dict) or "config" not in stored:
        raise ValueError(f"{path} is not a run config (no 'config' field). {remedy}")
    if stored.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format {stored.get('format')!r}, this version reads format {FORMAT_VERSION} "
            f"(records bound to their config). {remedy}"
        )
    try:
        config = ExperimentConfig.from_dict(stored["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} holds an invalid config ({err}). {remedy}") from None
    if stored.get("config_hash") != config_hash(config):
        raise ValueError(
            f"{path}: its config_hash {stored.get('config_hash')!r} does not match its config "
            f"({config_hash(config)}): the file was edited. {remedy}"
        )
    return config


def _writable(run_dir: Path) -> None:
    probe = run_dir
    while not probe.exists():
        probe = probe.parent
    targets = [probe] + ([run_dir / "steps"] if (run_dir / "steps").is_dir() else [])
    for t in targets:
        if not os.access(t, os.W_OK | os.X_OK):
            raise PermissionError(
                f"cannot write results under {t} (read-only); choose a writable run directory or fix its permissions"
            )


def check_run_dir(run_dir, config: ExperimentConfig) -> None:
    """Read-only checks of ``run_dir`` for ``config``, before training: writable, and either new or
    holding this very config (not another one, not records without a config)."""
    run_dir = Path(run_dir)
    _writable(run_dir)
    has_records = (run_dir / "split.json").exists() or (
        (run_dir / "steps").is_dir() and any(_STEP_FILE.match(p.name) for p in (run_dir / "steps").iterdir())
    )
    if not (run_dir / "config.json").exists():
        if has_records:
            read_config(run_dir)  # raises: records without a config
        return
    stored = read_config(run_dir)
    diff = config_diff(stored, config)
    if diff:
        lines = "; ".join(f"{k}: stored {a!r}, given {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"run directory {run_dir} holds a different experiment, refusing to mix them. "
            f"Fields that differ: {lines}. Use another directory (or delete this one)."
        )


@contextlib.contextmanager
def lock_run_dir(run_dir) -> Iterator[Path]:
    """Hold an exclusive lock on ``run_dir`` (created if needed) for the ``with`` block.

    ``fcntl.flock`` on ``run_dir/.lock`` (released by the OS when the holder dies, SIGKILL
    included); a held lock raises :class:`RunDirBusy` at once, naming the holder's PID.
    A no-op where ``fcntl`` does not exist.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl  # POSIX only
    except ImportError:  # pragma: no cover (Windows)
        yield run_dir
        return
    path = run_dir / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirBusy(
                f"run directory {run_dir} is in use by PID {holder} (lock {path}); wait for that run "
                f"to finish or stop it, then run again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield run_dir
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def run_dir_holder(run_dir) -> str | None:
    """The PID (as text, ``"unknown"`` if unreadable) of the process holding ``run_dir``'s lock, None when free.

    Probes with a shared, non-blocking ``flock`` released at once (it never blocks the holder).
    """
    path = Path(run_dir) / ".lock"
    try:
        import fcntl  # POSIX only
    except ImportError:  # pragma: no cover (Windows: no lock)
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wait_run_dir(run_dir, *, timeout_s: float | None = None, poll_s: float = 0.5) -> None:
    """Block until no process holds ``run_dir``'s lock (a dead holder releases it at once).

    timeout_s: give up after this many seconds with :class:`RunDirBusy` naming the holder (None: no limit).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while (holder := run_dir_holder(run_dir)) is not None:
        if deadline is not None and time.monotonic() >= deadline:
            raise RunDirBusy(
                f"run directory {run_dir} is still in use by PID {holder} after waiting {timeout_s:g} s; "
                f"wait longer (a larger timeout) or stop that process, then run again"
            )
        time.sleep(poll_s)


def open_run_dir(run_dir, config: ExperimentConfig) -> str:
    """Under the lock: check ``run_dir`` (:func:`check_run_dir`), create ``config.json`` exclusively if
    new, create ``steps/``, remove temporary files left by a killed writer; returns the config hash."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir, config)
    h = config_hash(config)
    cfg_path = run_dir / "config.json"
    env = run_environment(config)
    if not cfg_path.exists():
        try:
            write_json(
                cfg_path,
                {"format": FORMAT_VERSION, "config": config.to_dict(), "config_hash": h, "environment": env},
                exclusive=True,
            )
        except FileExistsError:  # created by a writer outside the lock protocol: check it instead
            check_run_dir(run_dir, config)
    else:
        _note_resumed_environment(cfg_path, env)
    (run_dir / "steps").mkdir(exist_ok=True)
    for folder in (run_dir, run_dir / "steps"):
        remove_stale_parts(folder)
        for legacy in folder.glob(".*.tmp"):  # temporary names of earlier versions
            legacy.unlink(missing_ok=True)
    return h


def run_environment(config: ExperimentConfig) -> dict:
    """:func:`mcal_utils.environment.describe` of this process for ``config``'s device."""
    try:
        device = resolve_device(config.train_config().device)
    except ValueError:  # CUDA asked for but absent: the run itself reports it
        device = None
    return describe(device)


def _note_resumed_environment(cfg_path: Path, env: dict) -> None:
    """A run resumed in an environment whose numerics differ from the one it started in: warn (its later
    steps may differ in the last bits from an uninterrupted run) and append ``env`` to
    ``config.json``'s ``resumed_environments``."""

    stored = read_json(cfg_path, f"Delete {cfg_path.parent} and run again.")
    if not isinstance(stored, dict) or "environment" not in stored:
        return  # written before environments were recorded
    seen = [stored["environment"], *stored.get("resumed_environments", [])]
    if any(numerics_key(e) == numerics_key(env) for e in seen):
        return
    warnings.warn(
        f"{cfg_path.parent} was started in another environment ({summary_line(stored['environment'])}) "
        f"and is resumed in {summary_line(env)}: its later steps may differ in their last bits from an "
        "uninterrupted run",
        RuntimeWarning,
        stacklevel=3,
    )
    write_json(cfg_path, {**stored, "resumed_environments": [*stored.get("resumed_environments", []), env]})


def check_split(run_dir, split_info: dict, h: str) -> None:
    """Write ``split.json`` (new run) or check it against ``split_info`` and the config hash ``h``."""
    path = Path(run_dir) / "split.json"
    if not path.exists():
        write_json(path, {**split_info, "config_hash": h})
        return
    stored = read_json(path, f"Delete {path} (it is rebuilt from the config) and run again.")
    if not isinstance(stored, dict) or stored.get("config_hash") != h:
        raise ValueError(
            f"{path} was written by another experiment (config hash "
            f"{stored.get('config_hash') if isinstance(stored, dict) else None!r}, expected {h}): "
            f"refusing to mix runs. Delete {Path(run_dir)} and run again."
        )
    if {k: v for k, v in stored.items() if k != "config_hash"} != split_info:
        raise ValueError(
            f"{path} does not match the split of this config (data changed?); delete {Path(run_dir)} "
            f"to recompute the run"
        )


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
def _run_dirs(path: Path) -> list[Path]:
    if (path / "config.json").exists():
        return [path]
    return sorted(p.parent for p in path.rglob("config.json"))


def load_results(path, *, with_timings: bool = True, errors: str = "raise"):
    """Every step of one run directory or of all runs under a grid directory, as a long
    ``pandas.DataFrame``: one row per (run, step) with ``method, strategy, seed, step, budget``,
    one column per test metric (``accuracy`` or ``mse``, ``rmse``), ``n_acquired_this_step``,
    ``acquired_total`` (``budget - initial_size``: the x-axis of DEIMOS's "points acquired"),
    ``best_epoch``, ``dropout_rates`` (list), ``tau_inv``, ``acquired`` (the pool indices the step picked,
    in pick order; empty at the last step) and, with ``with_timings``, the timings
    (``train_s, eval_s, select_s, step_s``). Sorted by method, seed, step.

    errors: a run with a corrupt, foreign or incomplete file -> ``"raise"`` a ``ValueError`` naming
    the file, or ``"warn"``: skip that run with a ``RuntimeWarning`` naming it.

    Every seed of a method (same ``task``, ``model`` and ``method``) must have reached the same
    steps: a run that stopped short (killed, failed, still running) would make later steps average
    fewer seeds. ``"raise"``: ``ValueError`` naming the method, the missing steps and their seeds;
    ``"warn"``: keep only the steps every seed of that method reached (the longer runs are cut),
    with a ``RuntimeWarning`` naming the short runs and the steps dropped.
    """

    if errors not in ("raise", "warn"):
        raise ValueError(f"errors must be 'raise' or 'warn', got {errors!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}")
    rows = []
    for d in _run_dirs(path):
        try:
            cfg = read_config(d)
            records = read_records(d, config_hash(cfg))
        except ValueError as err:
            if errors == "raise":
                raise
            warnings.warn(f"skipping run {d}: {err}", RuntimeWarning, stacklevel=2)
            continue
        for rec in records:
            row = dict(
                method=cfg.method,
                strategy=cfg.strategy,
                seed=cfg.seed,
                step=rec["step"],
                budget=rec["budget"],
                **rec["metrics"],
                n_acquired_this_step=len(rec["acquired"]),
                acquired_total=rec["budget"] - cfg.initial_size,
                best_epoch=rec["best_epoch"],
                dropout_rates=rec["dropout_rates"],
                tau_inv=rec["tau_inv"],
                acquired=list(rec["acquired"]),
                task=cfg.task,
                model=cfg.model,
                run_dir=str(d),
            )
            if with_timings:
                row.update(rec["timings"])
            rows.append(row)
    rows = _common_steps(rows, path, errors)
    if not rows:
        raise FileNotFoundError(f"no completed steps under {path}")
    df = pd.DataFrame(rows)
    return df.sort_values(["method", "seed", "step"], kind="stable").reset_index(drop=True)


def _steps_text(steps: list[int]) -> str:
    return f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"


def _common_steps(rows: list[dict], path: Path, errors: str) -> list[dict]:
    """``rows`` where every seed of a method reached every step; else raise or (``"warn"``) cut the
    steps some seed lacks, naming the method, the missing steps and their seeds."""
    runs: dict[tuple, dict[str, list[int]]] = {}  # (task, model, method) -> {run_dir: steps}
    seeds: dict[str, int] = {}
    for r in rows:
        runs.setdefault((r["task"], r["model"], r["method"]), {}).setdefault(r["run_dir"], []).append(r["step"])
        seeds[r["run_dir"]] = r["seed"]
    problems, keep = [], {}
    for (task, _model, method), by_dir in runs.items():
        n_common = min(len(s) for s in by_dir.values())  # records are contiguous from step 0
        n_max = max(len(s) for s in by_dir.values())
        keep.update({d: n_common for d in by_dir})
        if n_common == n_max:
            continue
        short = "; ".join(
            f"seed {seeds[d]} misses {_steps_text(list(range(len(s), n_max)))} ({d})"
            for d, s in sorted(by_dir.items(), key=lambda kv: seeds[kv[0]])
            if len(s) < n_max
        )
        problems.append(f"method {method!r} (task {task}): {short}")
    if not problems:
        return rows
    text = (
        f"load_results({path}): runs of one method stopped at different steps, so later steps would average "
        f"fewer seeds: " + " | ".join(problems)
    )
    if errors == "raise":
        raise ValueError(
            f"{text}. Finish those runs (run the grid or run_experiment again on the same directory: "
            f"it resumes) or pass errors='warn' to keep only the steps every seed reached."
        )
    warnings.warn(f"{text}; keeping only the steps every seed of the method reached.", RuntimeWarning, stacklevel=3)
    return [r for r in rows if r["step"] < keep[r["run_dir"]]]


def cache_root(notebook: str, label: str, configs, *, resume: bool = True, data_dir=None) -> Path:
    """Where a notebook's grid keeps its runs: ``<data dir>/runs/<notebook>/<label>-<key>``.

    ``key`` hashes the configs, the package source (:func:`code_fingerprint`) and the kernels this
    machine dispatches to (:func:`mcal_utils.environment.dispatch_key`): runs of older code, or
    computed with another instruction set, BLAS or library version, are never reused; the same
    machine and code resume and reuse them. ``resume=False``: a fresh temporary folder.
    """

    if not resume:
        return Path(tempfile.mkdtemp(prefix=f"mcal-{notebook[:2]}-{label}-"))
    text = json.dumps([c.to_dict() for c in configs], sort_keys=True) + code_fingerprint() + dispatch_key(describe())
    key = hashlib.sha256(text.encode()).hexdigest()[:10]
    return _data_dir(data_dir) / "runs" / notebook / f"{label}-{key}"


def code_fingerprint() -> str:
    """sha256 (12 hex digits) of every ``.py`` source file of ``mcal_utils``, in path order.

    Key cached run directories by it (next to the config) so that results computed by an
    older version of the code are never reused after the code changed.
    """
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def run_dir_for(root, config: ExperimentConfig) -> Path:
    """``root/<method>/seed_<seed>``."""
    return Path(root) / _safe(config.method) / f"seed_{config.seed}"


def step_numbers(run_dir: Path) -> list[int]:
    """The steps written in ``run_dir/steps`` (sorted; [] when there are none)."""
    try:
        return sorted(int(m.group(1)) for p in (run_dir / "steps").iterdir() if (m := _STEP_FILE.match(p.name)))
    except FileNotFoundError:
        return []
