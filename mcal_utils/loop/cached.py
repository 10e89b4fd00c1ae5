"""A notebook's grid, run once into its run cache and read back: the one call 02, 05 and 06 make.

:func:`run_cached_grid` = :func:`~mcal_utils.loop.storage.cache_root` (a directory keyed by the
configs, the package source and the machine's numeric kernels) + :func:`~mcal_utils.loop.grid.run_grid`
(resumes whatever is already there) + :func:`~mcal_utils.loop.storage.load_results` (methods as an
ordered categorical in the order the configs list them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import ExperimentConfig
from .grid import run_grid
from .storage import cache_root, load_results

__all__ = ["GridResults", "run_cached_grid"]


@dataclass(frozen=True)
class GridResults:
    """``results``: :func:`load_results`'s frame (one row per run and step, ``acquired`` included), sorted
    by method (in config order), seed, step; ``root``: the run cache; ``wall_s``: seconds this call spent
    running the grid; ``steps_computed``: steps computed by this call (0 when everything was cached)."""

    results: pd.DataFrame
    root: Path
    wall_s: float
    steps_computed: int

    def summary(self) -> str:
        """One line: runs, steps, what this call computed, the step time summed over every run."""
        n_runs = self.results["run_dir"].nunique()
        return (
            f"{n_runs} runs, {len(self.results)} steps; {self.steps_computed} computed now in {self.wall_s:.0f} s "
            f"wall ({self.results['step_s'].sum():.0f} s of step time summed over all runs); {self.root}"
        )


def run_cached_grid(
    notebook: str,
    label: str,
    configs: Sequence[ExperimentConfig],
    *,
    workers: int = -1,
    resume: bool = True,
    run_root=None,
    data_dir=None,
) -> GridResults:
    """Run ``configs`` in the notebook's run cache (or in ``run_root``, the caller's directory, resumed
    whatever code wrote it) and load every record.

    workers: grid processes; ``-1`` one per core, ``0`` in this process with one torch thread.
    resume: False -> a fresh cache directory (see :func:`cache_root`).
    """
    if not configs:
        raise ValueError(f"{notebook} {label}: no configs to run")
    root = (
        Path(run_root).expanduser()
        if run_root
        else cache_root(notebook, label, configs, resume=resume, data_dir=data_dir)
    )
    steps_before = len(list(root.rglob("step_*.json")))
    t0 = time.perf_counter()
    run_grid(
        configs,
        root,
        max_workers=None if workers < 0 else workers,
        torch_threads=1 if workers == 0 else None,
        data_dir=data_dir,
    )
    wall_s = time.perf_counter() - t0
    df = load_results(root)
    order = list(dict.fromkeys(c.method for c in configs))
    df = df[df["method"].isin(order)].copy()
    df["method"] = pd.Categorical(df["method"], categories=order, ordered=True)
    df = df.sort_values(["method", "seed", "step"], kind="stable").reset_index(drop=True)
    return GridResults(df, root, wall_s, len(list(root.rglob("step_*.json"))) - steps_before)
