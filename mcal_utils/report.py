"""Execute the notebooks with papermill and render the report in ``reports/``.

``python -m mcal_utils.report --profile default --notebooks notebooks --out reports``

For every ``notebooks/NN_*.ipynb`` in order: execute it with papermill (parameter
``profile``), write the executed notebook and its HTML into ``reports/``, and
extract its key figure (the first PNG of the cell tagged ``key-figure``). Then
write ``reports/index.html`` (status, run time, profile, commit, key figure of
each notebook) and ``reports/run.json``. A failing notebook still gets its HTML
(showing the error) and is marked failed; the command then exits non-zero.

LaTeX renders offline: MathJax 2 is copied from the pinned ``jupyter-server-mathjax``
package into ``reports/mathjax/`` and the HTML points there (no CDN).

``python -m mcal_utils.report --strip notebooks`` removes outputs and execution
counts from the notebooks (they are committed without outputs).
"""
from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from mcal_utils import profiles

MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
KEY_FIGURE_TAG = "key-figure"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class NotebookResult:
    name: str
    status: str  # "ok" | "failed"
    seconds: float
    profile: str
    error: str = ""
    html: str = ""
    ipynb: str = ""
    figure: str = ""
    commit: str = ""  # the commit this notebook was executed at


# ---------------------------------------------------------------------------
# notebooks on disk
# ---------------------------------------------------------------------------
def list_notebooks(folder: Path) -> list[Path]:
    """``NN_*.ipynb`` files of ``folder`` in numeric order."""
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebooks named NN_*.ipynb in {Path(folder).resolve()}")
    return found


def strip_outputs(path: Path) -> bool:
    """Remove outputs and execution counts of ``path`` in place; return True if it changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            changed = True
        cell["outputs"] = []
        cell["execution_count"] = None
        for key in ("execution", "papermill"):
            if key in cell.get("metadata", {}):
                del cell["metadata"][key]
                changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def key_figure_png(nb) -> bytes | None:
    """PNG bytes of the first image output of the cell tagged ``key-figure`` (else the last image)."""
    tagged, last = None, None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {}) if isinstance(out, dict) else {}
            png = data.get("image/png")
            if png is None:
                continue
            last = png
            if tagged is None and KEY_FIGURE_TAG in cell.get("metadata", {}).get("tags", []):
                tagged = png
    chosen = tagged if tagged is not None else last
    if chosen is None:
        return None
    if isinstance(chosen, list):
        chosen = "".join(chosen)
    return base64.b64decode(chosen)


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------
def install_mathjax(out_dir: Path) -> str:
    """Copy MathJax 2 into ``out_dir/mathjax`` (once) and return the relative URL for nbconvert."""
    import jupyter_server_mathjax

    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (src / "MathJax.js").is_file():
        raise FileNotFoundError(f"MathJax.js not found in {src}; is jupyter-server-mathjax installed?")
    dst = out_dir / "mathjax"
    if not (dst / "MathJax.js").is_file():
        tmp = out_dir / ".mathjax.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("localization", "*.md", "__pycache__"))
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp, dst)
    return f"mathjax/MathJax.js?config={MATHJAX_CONFIG}"


def render_html(ipynb: Path, html_path: Path, mathjax_url: str) -> None:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="mcal_offline", extra_template_basedirs=[str(TEMPLATES)],
                            mathjax_url=mathjax_url)
    body, _ = exporter.from_filename(str(ipynb))
    _atomic_write_text(html_path, body)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def git_commit(repo: Path) -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def execute_one(path: Path, out_dir: Path, profile: str, mathjax_url: str,
                timeout: int | None = None) -> NotebookResult:
    """Run one notebook with papermill, render its HTML and key figure; never raises on notebook errors."""
    import papermill

    name = path.stem
    executed = out_dir / f"{name}.ipynb"
    result = NotebookResult(name=name, status="ok", seconds=0.0, profile=profile,
                            html=f"{name}.html", ipynb=f"{name}.ipynb")
    t0 = time.perf_counter()
    # Figures must be captured inline: a non-interactive MPLBACKEND (e.g. Agg, as the test
    # suite sets) inherited by the kernel would drop every image from the report.
    saved_backend = os.environ.pop("MPLBACKEND", None)
    try:
        papermill.execute_notebook(
            str(path), str(executed), parameters={"profile": profile}, kernel_name="python3",
            cwd=str(path.parent), progress_bar=False, log_output=False, execution_timeout=timeout,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError; keep going, mark failed
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    finally:
        if saved_backend is not None:
            os.environ["MPLBACKEND"] = saved_backend
    result.seconds = round(time.perf_counter() - t0, 1)
    if executed.is_file():
        try:
            render_html(executed, out_dir / result.html, mathjax_url)
        except Exception as exc:
            result.status = "failed"
            result.error += f" | HTML rendering failed: {type(exc).__name__}: {exc}"
        png = key_figure_png(nbformat.read(executed, as_version=4))
        if png is not None:
            fig_dir = out_dir / "figures"
            fig_dir.mkdir(exist_ok=True)
            (fig_dir / f"{name}.png").write_bytes(png)
            result.figure = f"figures/{name}.png"
    else:
        result.html = result.ipynb = ""
    return result


INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mcal report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 8px; vertical-align: top; text-align: left; }}
.ok {{ color: #1a7f37; font-weight: bold; }} .failed {{ color: #cf222e; font-weight: bold; }}
img {{ max-width: 420px; border: 1px solid #eee; }}
code {{ background: #f6f8fa; padding: 1px 4px; }}
</style></head><body>
<h1>mcal: deep active learning with MC dropout — report</h1>
<p>Profile <code>{profile}</code>, latest commit <code>{commit}</code>, built {when}; notebooks {total:.0f} s
on {machine}. Notebooks executed with papermill; each links to its rendered HTML and executed notebook.</p>
<p>Reproduce: <code>make report</code> (profile <code>default</code>); <code>make report PROFILE=paper</code>
for the papers' own settings (GPU). Benchmarks: <a href="benchmarks.md">benchmarks.md</a>.</p>
<table><tr><th>notebook</th><th>status</th><th>run time</th><th>commit</th><th>key figure</th></tr>
{rows}
</table></body></html>
"""


def write_index(out_dir: Path, results: list[NotebookResult], profile: str, commit: str, total: float) -> None:
    rows = []
    for r in results:
        link = f'<a href="{html.escape(r.html)}">{html.escape(r.name)}</a>' if r.html else html.escape(r.name)
        if r.ipynb:
            link += f' <small>(<a href="{html.escape(r.ipynb)}">ipynb</a>)</small>'
        err = f"<br><small>{html.escape(r.error)}</small>" if r.error else ""
        fig = f'<img src="{html.escape(r.figure)}" alt="key figure of {html.escape(r.name)}">' if r.figure else "—"
        rows.append(f'<tr><td>{link}</td><td class="{r.status}">{r.status}{err}</td>'
                    f"<td>{r.seconds:.0f} s</td><td><code>{html.escape(r.commit)}</code></td><td>{fig}</td></tr>")
    machine = f"{os.cpu_count()} CPU cores"
    try:
        import torch
        if torch.cuda.is_available():
            machine += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    page = INDEX_TEMPLATE.format(profile=html.escape(profile), commit=html.escape(commit),
                                 when=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                                 total=total, machine=machine, rows="\n".join(rows))
    _atomic_write_text(out_dir / "index.html", page)
    summary = {"profile": profile, "commit": commit, "total_seconds": round(total, 1),
               "notebooks": [asdict(r) for r in results]}
    _atomic_write_text(out_dir / "run.json", json.dumps(summary, indent=2) + "\n")


def build_report(notebooks: Path, out_dir: Path, profile: str, only: list[str] | None = None,
                 timeout: int | None = None) -> list[NotebookResult]:
    profile = profiles.profile_name(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    mathjax_url = install_mathjax(out_dir)
    paths = list_notebooks(notebooks)
    if only:
        unknown = [o for o in only if not any(p.stem.startswith(o) for p in paths)]
        if unknown:
            raise ValueError(f"--only {unknown} match no notebook; available: {[p.stem for p in paths]}")
        paths = [p for p in paths if any(p.stem.startswith(o) for o in only)]
    commit = git_commit(notebooks.resolve().parent)
    results: list[NotebookResult] = []
    t0 = time.perf_counter()
    for i, path in enumerate(paths, 1):
        print(f"[{i}/{len(paths)}] {path.name} (profile {profile}) ...", flush=True)
        r = execute_one(path, out_dir, profile, mathjax_url, timeout)
        r.commit = commit
        print(f"    {r.status} in {r.seconds:.0f} s{(' - ' + r.error) if r.error else ''}", flush=True)
        results.append(r)
    if only and (out_dir / "run.json").is_file():
        # keep the other notebooks' rows of the previous run
        previous = json.loads((out_dir / "run.json").read_text())
        if previous.get("profile") == profile:
            done = {r.name for r in results}
            kept = [NotebookResult(**{"commit": previous.get("commit", ""), **n})
                    for n in previous["notebooks"] if n["name"] not in done]
            results = sorted(kept + results, key=lambda r: r.name)
    total = sum(r.seconds for r in results) if only else time.perf_counter() - t0
    write_index(out_dir, results, profile, commit, total)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcal_utils.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=None, help=f"one of {list(profiles.PROFILE_NAMES)}")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 00 03")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    parser.add_argument("--strip", type=Path, metavar="FOLDER", help="strip outputs from FOLDER's notebooks and exit")
    args = parser.parse_args(argv)
    if args.strip is not None:
        for p in list_notebooks(args.strip):
            if strip_outputs(p):
                print(f"stripped {p}")
        return 0
    try:
        results = build_report(args.notebooks, args.out, args.profile, args.only, args.timeout)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = [r.name for r in results if r.status != "ok"]
    print(f"report written to {args.out / 'index.html'}; "
          + (f"FAILED: {failed}" if failed else "all notebooks ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
