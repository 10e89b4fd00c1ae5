"""Run directories on disk: atomic writes, the stored config, step records, and results loading.

Layout of a run directory::

    config.json              {"format": 1, "config": ExperimentConfig.to_dict()}
    split.json               the initial labelled indices and the sizes of the split
    steps/step_XXXX.json     one record per completed step"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .config import ExperimentConfig, config_diff

__all__ = ["atomic_write_text", "read_records", "load_results", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step_(\d{4,})\.json$")


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------
def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part.

    tmp file in the same directory + flush + fsync + ``os.replace`` (+ fsync of the directory).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True))


def read_records(run_dir) -> list[dict]:
    """The completed step records of a run, in step order (contiguous from step 0)."""
    steps = Path(run_dir) / "steps"
    if not steps.is_dir():
        return []
    found = {}
    for p in steps.iterdir():
        m = _STEP_FILE.match(p.name)
        if m:
            found[int(m.group(1))] = p
    records = []
    for s in range(len(found)):
        if s not in found:
            raise ValueError(f"{steps}: step files are not contiguous (step {s} missing, "
                             f"found {sorted(found)})")
        with open(found[s], encoding="utf-8") as fh:
            rec = json.load(fh)
        if rec.get("step") != s:
            raise ValueError(f"{found[s]} holds step {rec.get('step')}, expected {s}")
        records.append(rec)
    return records


def _prepare_run_dir(run_dir: Path, config: ExperimentConfig) -> None:
    """Create ``run_dir`` with ``config.json``, or check that the stored config is ``config``."""
    cfg_path = run_dir / "config.json"
    if cfg_path.exists():
        with open(cfg_path, encoding="utf-8") as fh:
            stored = json.load(fh)
        stored_cfg = stored.get("config", {})
        diff = config_diff(stored_cfg, config)
        if diff:
            lines = "; ".join(f"{k}: stored {a!r}, given {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"run directory {run_dir} holds a different experiment, refusing to mix them. "
                             f"Fields that differ: {lines}. Use another directory (or delete this one).")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(cfg_path, {"format": FORMAT_VERSION, "config": config.to_dict()})
    (run_dir / "steps").mkdir(exist_ok=True)


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
def _run_dirs(path: Path) -> list[Path]:
    if (path / "config.json").exists():
        return [path]
    return sorted(p.parent for p in path.rglob("config.json"))


def load_results(path, *, with_timings: bool = True):
    """Every step of one run directory or of all runs under a grid directory, as a long
    ``pandas.DataFrame``: one row per (run, step) with ``method, strategy, seed, step, budget``,
    one column per test metric (``accuracy`` or ``mse``, ``rmse``), ``n_acquired_this_step``,
    ``acquired_total`` (``budget - initial_size``: the x-axis of DEIMOS's "points acquired"),
    ``best_epoch``, ``dropout_rates`` (list) and, with ``with_timings``, the timings
    (``train_s, eval_s, select_s, step_s``). Sorted by method, seed, step.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}")
    rows = []
    for d in _run_dirs(path):
        with open(d / "config.json", encoding="utf-8") as fh:
            cfg = ExperimentConfig.from_dict(json.load(fh)["config"])
        for rec in read_records(d):
            row = dict(method=cfg.method, strategy=cfg.strategy, seed=cfg.seed, step=rec["step"],
                       budget=rec["budget"], **rec["metrics"], n_acquired_this_step=len(rec["acquired"]),
                       acquired_total=rec["budget"] - cfg.initial_size,
                       best_epoch=rec["best_epoch"], dropout_rates=rec["dropout_rates"], task=cfg.task,
                       model=cfg.model, run_dir=str(d))
            if with_timings:
                row.update(rec["timings"])
            rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no completed steps under {path}")
    df = pd.DataFrame(rows)
    return df.sort_values(["method", "seed", "step"], kind="stable").reset_index(drop=True)


def code_fingerprint() -> str:
    """sha256 (12 hex digits) of every ``.py`` source file of ``mcal_utils``, in path order.

    Key cached run directories by it (next to the config) so that results computed by an
    older version of the code are never reused after the code changed.
    """
    import hashlib

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
