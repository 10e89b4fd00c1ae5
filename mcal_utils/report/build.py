"""Building a report: execute the notebooks with papermill and render every page into one folder.

For every ``notebooks/NN_*.ipynb`` in order (the folder is listed, so new notebooks join by themselves):
execute it with papermill (parameter ``profile``), write the executed notebook and its HTML page into the
output folder, extract its key figure, finding, central claim, verdicts and predicted time
(:mod:`~mcal_utils.report.notebook`). Then write ``index.html`` and ``run.json``
(:mod:`~mcal_utils.report.runs`). A failing notebook still gets its HTML (showing the error) and is marked
failed.

Concurrency: a build holds an exclusive lock on ``<out>/.build.lock`` (a second build into the same folder
fails at once with a message); MathJax is copied under a unique temporary name, completed with a marker
file, then moved into place; every file is written through a unique temporary name and an atomic rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nbformat
import papermill

from mcal_utils import environment, profiles
from mcal_utils.checks import check_int
from mcal_utils.data.files import atomic_write
from mcal_utils.report.mathjax import install_mathjax
from mcal_utils.report.notebook import (
    central_claim,
    finding_markdown,
    key_figure_png,
    list_notebooks,
    notebook_intro,
    notebook_title,
    predicted_seconds,
)
from mcal_utils.report.pages import render_html, utc_now, write_benchmarks_page, write_index
from mcal_utils.report.provenance import git_commit, kernel_environment, pin_kernel_threads
from mcal_utils.report.runs import RUN_JSON, NotebookResult, RunSummary, read_run, write_run

__all__ = ["LOCK_NAME", "build_lock", "execute_one", "build_report", "rebuild_index", "source_texts"]

LOCK_NAME = ".build.lock"


def _path_arg(value: Any, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__} {value!r}")
    return Path(value)


@contextlib.contextmanager
def build_lock(out_dir: Path) -> Iterator[None]:
    """Exclusive lock on ``out_dir/.build.lock``; a second build into the same folder fails at once."""
    with open(Path(out_dir) / LOCK_NAME, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"another report build is writing to {Path(out_dir).resolve()}; "
                "wait for it to finish or choose another --out folder"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _neighbour(path: Path | None, titles: dict[str, str]) -> dict[str, str] | None:
    if path is None:
        return None
    return {"href": f"{path.stem}.html", "label": titles.get(path.stem, path.stem)}


def execute_one(
    path: Path,
    out_dir: Path,
    profile: str,
    mathjax_url: str,
    timeout: int | None = None,
    nav: dict[str, Any] | None = None,
) -> NotebookResult:
    """Run one notebook with papermill, render its HTML and key figure, read its finding, claim, verdicts and
    predicted time; never raises on notebook errors."""
    name = path.stem
    executed = out_dir / f"{name}.ipynb"
    result = NotebookResult(
        name=name, status="ok", seconds=0.0, profile=profile, html=f"{name}.html", ipynb=f"{name}.ipynb"
    )
    t0 = time.perf_counter()
    # Figures must be captured inline: a non-interactive MPLBACKEND (e.g. Agg, as the test
    # suite sets) inherited by the kernel would drop every image from the report.
    saved_backend = os.environ.pop("MPLBACKEND", None)
    try:
        papermill.execute_notebook(
            str(path),
            str(executed),
            parameters={"profile": profile},
            kernel_name="python3",
            cwd=str(path.parent),
            progress_bar=False,
            log_output=False,
            execution_timeout=timeout,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError; keep going, mark failed
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    finally:
        if saved_backend is not None:
            os.environ["MPLBACKEND"] = saved_backend
    result.seconds = round(time.perf_counter() - t0, 1)
    if not executed.is_file():
        result.html = result.ipynb = ""
        return result
    nb = nbformat.read(executed, as_version=4)
    result.title = notebook_title(nb, name)
    result.finding = finding_markdown(nb)
    result.claim = central_claim(nb)
    result.predicted_s = predicted_seconds(nb)
    try:
        render_html(
            executed, out_dir / result.html, mathjax_url, {**(nav or {}), "ipynb": result.ipynb, "profile": profile}
        )
    except Exception as exc:
        result.status = "failed"
        result.error += f" | HTML rendering failed: {type(exc).__name__}: {exc}"
    png = key_figure_png(nb)
    if png is not None:
        fig_dir = out_dir / "figures"
        fig_dir.mkdir(exist_ok=True)
        atomic_write(fig_dir / f"{name}.png", lambda tmp: _write_bytes(tmp, png))
        result.figure = f"figures/{name}.png"
    return result


def source_texts(paths: Sequence[Path]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Introductions, titles and central claims of the (unexecuted) notebooks, by name."""
    intros, titles, claims = {}, {}, {}
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        intros[p.stem], titles[p.stem] = notebook_intro(nb), notebook_title(nb, p.stem)
        claims[p.stem] = central_claim(nb)
    return intros, titles, claims


def build_report(
    notebooks: Path,
    out_dir: Path,
    profile: str | None,
    only: Sequence[str] | None = None,
    timeout: int | None = None,
    require_clean: bool = False,
    benchmarks: Path | None = None,
) -> list[NotebookResult]:
    """Execute the notebooks of ``notebooks`` (those whose name starts with one of ``only``; all when
    None) under ``profile`` and render the report into ``out_dir``; returns the index's rows.

    ``timeout``: per-cell seconds; ``require_clean``: refuse (ValueError) a working tree with uncommitted
    changes instead of stamping it ``-dirty``; ``benchmarks``: markdown rendered as ``benchmarks.html``.
    With ``only``, the other notebooks' rows of the previous ``run.json`` (same profile) are kept.
    """
    notebooks, out_dir = _path_arg(notebooks, "notebooks"), _path_arg(out_dir, "out_dir")
    if profile is not None and not isinstance(profile, str):
        raise TypeError(f"profile must be a str or None, got {type(profile).__name__} {profile!r}")
    if only is not None and (isinstance(only, str) or not all(isinstance(o, str) for o in only)):
        raise TypeError(f"only must be a list of notebook prefixes (str), got {only!r}")
    if timeout is not None:
        timeout = check_int(timeout, "timeout", ge=1)
    if not isinstance(require_clean, bool):
        raise TypeError(f"require_clean must be a bool, got {type(require_clean).__name__} {require_clean!r}")
    benchmarks = None if benchmarks is None else _path_arg(benchmarks, "benchmarks")
    profile = profiles.profile_name(profile)
    paths = list_notebooks(notebooks)
    if only:
        unknown = [o for o in only if not any(p.stem.startswith(o) for p in paths)]
        if unknown:
            raise ValueError(f"--only {unknown} match no notebook; available: {[p.stem for p in paths]}")
    commit = git_commit(notebooks.resolve().parent, exclude=out_dir)
    if commit.endswith("-dirty"):
        if require_clean:
            raise ValueError(
                f"the working tree has uncommitted changes ({commit}); commit them or "
                "drop --require-clean (the report is then stamped '-dirty')"
            )
        print(
            f"warning: the working tree has uncommitted changes; the report is stamped {commit!r}, not as a commit",
            file=sys.stderr,
            flush=True,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    pin_kernel_threads()
    env = kernel_environment()
    print(f"environment: {environment.summary_line(env) if 'cpu' in env else env}", flush=True)
    with build_lock(out_dir):
        mathjax_url = install_mathjax(out_dir)
        intros, titles, claims = source_texts(paths)
        selected = [p for p in paths if not only or any(p.stem.startswith(o) for o in only)]
        results: list[NotebookResult] = []
        previous_env: dict[str, Any] = {}
        t0 = time.perf_counter()
        for i, path in enumerate(selected, 1):
            k = paths.index(path)
            nav = {
                "prev": _neighbour(paths[k - 1] if k > 0 else None, titles),
                "next": _neighbour(paths[k + 1] if k + 1 < len(paths) else None, titles),
            }
            print(f"[{i}/{len(selected)}] {path.name} (profile {profile}) ...", flush=True)
            r = execute_one(path, out_dir, profile, mathjax_url, timeout, nav)
            r.commit = commit
            print(f"    {r.status} in {r.seconds:.0f} s{(' - ' + r.error) if r.error else ''}", flush=True)
            results.append(r)
        if only and (out_dir / RUN_JSON).is_file():
            # keep the other notebooks' rows of the previous run
            previous = read_run(out_dir)
            previous_env = previous.environment
            if previous.profile == profile:
                done = {r.name for r in results}
                kept = [r for r in previous.notebooks if r.name not in done]
                results = sorted(kept + results, key=lambda r: r.name)
        total = sum(r.seconds for r in results) if only else time.perf_counter() - t0
        write_benchmarks_page(out_dir, benchmarks, mathjax_url)
        if only and previous_env and environment.numerics_key(previous_env) != environment.numerics_key(env):
            print(
                "warning: the notebooks kept from the previous run were computed in another environment "
                f"({environment.summary_line(previous_env)})",
                file=sys.stderr,
                flush=True,
            )
        run = RunSummary(
            profile=profile, commit=commit, total_seconds=total, environment=env, notebooks=results, built=utc_now()
        )
        write_index(out_dir, run, intros, claims, mathjax_url)
        write_run(out_dir, run)
    return results


def rebuild_index(out_dir: Path, notebooks: Path | None = None, benchmarks: Path | None = None) -> RunSummary:
    """Re-render ``out_dir/index.html`` (and ``benchmarks.html``) from ``out_dir/run.json`` without executing
    anything: e.g. after a long-profile build into ``out_dir/long/``, or after a change of the templates.
    ``notebooks``: the sources whose introductions and central claims fill what ``run.json`` lacks."""
    out_dir = _path_arg(out_dir, "out_dir")
    benchmarks = None if benchmarks is None else _path_arg(benchmarks, "benchmarks")
    if not (out_dir / RUN_JSON).is_file():
        raise FileNotFoundError(f"no {RUN_JSON} in {out_dir.resolve()}: build the report first")
    intros: dict[str, str] = {}
    claims: dict[str, str] = {}
    if notebooks is not None and any(_path_arg(notebooks, "notebooks").glob("[0-9][0-9]_*.ipynb")):
        intros, _, claims = source_texts(list_notebooks(Path(notebooks)))
    with build_lock(out_dir):
        run = read_run(out_dir)
        mathjax_url = install_mathjax(out_dir)
        write_benchmarks_page(out_dir, benchmarks, mathjax_url)
        write_index(out_dir, run, intros, claims, mathjax_url)
    return run
