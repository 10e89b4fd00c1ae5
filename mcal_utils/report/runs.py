"""``run.json``: what one report build computed, one row per notebook, and the long-profile runs beside it.

Schema (``run.json`` of an output folder)::

    {"profile": str, "commit": str, "total_seconds": float, "built": "YYYY-MM-DD HH:MM UTC",
     "environment": {...},                   # mcal_utils.environment.describe() of the kernels
     "notebooks": [NotebookResult, ...]}     # fields below; predicted_s only when the notebook gives it

A long-profile build renders some notebooks into ``<out>/long/`` with its own ``run.json``
(``make report PROFILE=long REPORT_OUT=reports/long``); :func:`long_runs` reads it for the main index.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from mcal_utils.data.files import write_text_atomic
from mcal_utils.report.notebook import finding_verdicts

__all__ = [
    "RUN_JSON",
    "LONG_DIR",
    "NotebookResult",
    "RunSummary",
    "LongRun",
    "read_run",
    "write_run",
    "long_runs",
    "long_predictions",
    "PREDICTIONS_JSON",
]

RUN_JSON = "run.json"
#: the sub-folder of a report that holds its long-profile build
LONG_DIR = "long"
PREDICTIONS_JSON = "predictions.json"


@dataclass
class NotebookResult:
    """One notebook of one build (a row of ``run.json``)."""

    name: str
    status: str  # "ok" | "failed"
    seconds: float  # measured wall time of the execution
    profile: str
    error: str = ""
    html: str = ""
    ipynb: str = ""
    figure: str = ""
    commit: str = ""  # the commit this notebook was executed at
    title: str = ""  # the first heading of the notebook
    finding: str = ""  # markdown: the output of the cell tagged `finding`
    claim: str = ""  # markdown: the notebook's `**Central claim**` paragraph
    predicted_s: float | None = None  # the cost model's prediction of `seconds` (cell tagged `predicted-time`)

    @property
    def verdicts(self) -> list[str]:
        """The verdicts the finding states, headline first (:func:`~mcal_utils.report.notebook.finding_verdicts`)."""
        return finding_verdicts(self.finding)

    def to_row(self) -> dict[str, Any]:
        """The ``run.json`` row: the fields, then ``verdicts`` (derived from the finding, written for readers of
        run.json); ``predicted_s`` is left out when unknown."""
        row = asdict(self)
        if self.predicted_s is None:
            del row["predicted_s"]
        row["verdicts"] = self.verdicts
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any], commit: str = "") -> NotebookResult:
        """A row of ``run.json`` (``commit`` when the row has none; keys that are no field, ``verdicts``
        included, are ignored: the verdicts are read from the finding again)."""
        known = {f.name for f in fields(cls)}
        return cls(**{"commit": commit, **{k: v for k, v in row.items() if k in known}})


@dataclass
class RunSummary:
    """The whole of a ``run.json``."""

    profile: str
    commit: str
    total_seconds: float
    environment: dict[str, Any]
    notebooks: list[NotebookResult]
    built: str = ""

    def to_json(self) -> str:
        summary = {
            "profile": self.profile,
            "commit": self.commit,
            "total_seconds": round(self.total_seconds, 1),
            "built": self.built,
            "environment": self.environment,
            "notebooks": [r.to_row() for r in self.notebooks],
        }
        return json.dumps(summary, indent=2) + "\n"


def read_run(path: Path) -> RunSummary:
    """``run.json`` at ``path`` (a file, or the output folder that holds it)."""
    path = Path(path)
    if path.is_dir():
        path = path / RUN_JSON
    data = json.loads(path.read_text(encoding="utf-8"))
    commit = str(data.get("commit", ""))
    return RunSummary(
        profile=str(data.get("profile", "")),
        commit=commit,
        total_seconds=float(data.get("total_seconds", 0.0)),
        environment=data.get("environment") or {},
        notebooks=[NotebookResult.from_row(n, commit) for n in data.get("notebooks", [])],
        built=str(data.get("built", "")),
    )


def write_run(out_dir: Path, summary: RunSummary) -> Path:
    """Write ``out_dir/run.json`` atomically."""
    return write_text_atomic(Path(out_dir) / RUN_JSON, summary.to_json())


@dataclass(frozen=True)
class LongRun:
    """A notebook's row in the long-profile build: ``href`` is its page relative to the main index;
    ``finding`` / ``verdicts`` as the long build's notebook computed them."""

    name: str
    href: str
    profile: str
    status: str
    seconds: float
    predicted_s: float | None
    commit: str
    finding: str = ""
    verdicts: tuple[str, ...] = ()


def long_predictions(long_dir: Path) -> dict[str, float]:
    """``{notebook: predicted_s}`` from ``long_dir/predictions.json`` (written before the long build by
    ``benchmarks/predict_long.py``: the cost model's forecast); empty when absent or unreadable."""
    path = Path(long_dir) / PREDICTIONS_JSON
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for name, row in raw.items() if isinstance(raw, dict) else ():
        value = row.get("predicted_s") if isinstance(row, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            out[str(name)] = float(value)
    return out


def long_runs(out_dir: Path) -> dict[str, LongRun]:
    """The notebooks of ``out_dir/long/run.json`` by name; empty when there is no such build (or it cannot
    be read)."""
    path = Path(out_dir) / LONG_DIR / RUN_JSON
    if not path.is_file():
        return {}
    try:
        run = read_run(path)
    except (OSError, ValueError, TypeError, KeyError):
        return {}
    predictions = long_predictions(Path(out_dir) / LONG_DIR)
    return {
        r.name: LongRun(
            name=r.name,
            href=f"{LONG_DIR}/{r.html}" if r.html else "",
            profile=r.profile or run.profile,
            status=r.status,
            seconds=float(r.seconds),
            predicted_s=r.predicted_s if r.predicted_s is not None else predictions.get(r.name),
            commit=r.commit or run.commit,
            finding=r.finding,
            verdicts=tuple(r.verdicts),
        )
        for r in run.notebooks
    }
