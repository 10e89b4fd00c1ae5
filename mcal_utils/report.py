"""Execute the notebooks with papermill and render the offline HTML report in ``reports/``.

``python -m mcal_utils.report --profile default --notebooks notebooks --out reports``

For every ``notebooks/NN_*.ipynb`` in order (the folder is listed, so new notebooks join by
themselves): execute it with papermill (parameter ``profile``), write the executed notebook and its
HTML page into ``reports/`` and extract its key figure (the first PNG of the cell tagged
``key-figure``) and its finding (the one-line markdown output of the cell tagged ``finding``).
Then write ``reports/index.html`` -- the report's front page: both papers, what each notebook asks,
its finding, profile, what the profile scales down against ``paper``, its figure, a glossary -- and
``reports/run.json``. ``reports/benchmarks.md`` (written by ``make benchmarks``) is rendered as
``benchmarks.html`` in the same style. A failing notebook still gets its HTML (showing the error)
and is marked failed; the command then exits non-zero.

Pages: every notebook page links back to the index, to the previous and next notebook and to its
``.ipynb`` ("download"), and has a table of contents. Cells tagged ``hide-input`` show their output;
their code sits in a closed "show code" toggle.

Maths renders offline: MathJax 2 is copied from the pinned ``jupyter-server-mathjax`` package into
``reports/mathjax/`` (HTML-CSS output with the STIX-Web fonts it ships; the SVG output, the a11y
explorer and the localisations are left out) and every page points there (no CDN). A literal dollar
is written ``\\$`` in markdown; ``$NAME_WITH_UNDERSCORE`` (an environment variable) outside code
spans is escaped automatically so that it never starts a formula.

Commit stamp: the commit of the notebooks' repository; a working tree with uncommitted changes
(outside the output folder) is recorded as ``<sha>-dirty`` and a warning is printed -- the report then
does not claim to be that commit. ``--require-clean`` refuses to build from such a tree.

Concurrency: a build holds an exclusive lock on ``<out>/.build.lock`` (a second build into the same
folder fails at once with a message); MathJax is copied under a unique temporary name, completed
with a marker file, then moved into place; every file is written through a unique temporary name
and an atomic rename.

``python -m mcal_utils.report --strip notebooks`` removes outputs and execution counts from the
notebooks (they are committed without outputs).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import nbformat

from mcal_utils import environment, profiles
from mcal_utils.data._files import atomic_write, write_text_atomic

MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
MATHJAX_FONT = "STIX-Web"  # the only web font jupyter-server-mathjax ships
MATHJAX_MARKER = ".mcal-complete"  # written last: a copy without it is incomplete and is redone
KEY_FIGURE_TAG = "key-figure"
FINDING_TAG = "finding"
HIDE_INPUT_TAG = "hide-input"
TEMPLATES = Path(__file__).parent / "templates"
LOCK_NAME = ".build.lock"

PAPERS = {
    "entropy": dict(
        short="the MC-dropout-entropy paper (Kirillov, 2026)",
        title="Can Monte Carlo dropout help you to sample better examples for Active Learning?",
        authors="Daniil Kirillov (CiMEC, University of Trento), January 2026",
        link="https://github.com/nealkafree/MonteCarloSampling",
        summary="SVHN, a small CNN with Concrete Dropout, five sampling strategies (Random, VarRatio, "
                "Margin, Entropy, EntropyD = entropy of the mean of T = 50 MC-dropout passes); "
                "accuracy-vs-budget curves, highest accuracy, AUBC and TP."),
    "deimos": dict(
        short="DEIMOS (Nagpal & Knowles)",
        title="Active Learning in CNNs via Expected Improvement Maximization",
        authors="Nagpal & Knowles",
        link="https://github.com/unagpal/Active-Learning-in-CNNs-via-Expected-Improvement-Maximization",
        summary="DEIMOS (Dropout-based Expected IMprOvementS): greedy batch-mode active learning that maximises the expected drop of the trace of a "
                "joint predictive covariance built from fixed-mask MC-dropout predictions; 1-D toy, "
                "5' splicing, UTKFace age, MNIST 7-vs-9 and 0-9; greedy-vs-optimal simulation."),
}

# What each notebook asks, and which paper it reproduces. A notebook not listed here is still
# reported: its question is the first paragraph of its first markdown cell.
QUESTIONS = {
    "00": ("Which data sets do the two papers use, and do our loaders reproduce their sizes, "
           "class counts and preprocessing?", ("entropy", "deimos")),
    "01": ("Does Concrete Dropout learn the dropout rates the MC-dropout-entropy author reports, and "
           "does it make the "
           "CNN more accurate or better calibrated than a fixed rate?", ("entropy",)),
    "02": ("Which sampling strategy reaches a given accuracy with the fewest labels "
           "(accuracy-vs-budget curves, AUBC, TP)?", ("entropy",)),
    "03": ("On the 1-D toy, does a DEIMOS batch fill the sparse region and cut the test error more "
           "than a random batch (DEIMOS Figure 1)?", ("deimos",)),
    "04": ("How far from the best possible batch is DEIMOS's greedy batch (DEIMOS Appendix A)?",
           ("deimos",)),
    "05": ("On MNIST 7-vs-9 (batch 1 and 25) and 0–9 (batch 100), does DEIMOS reach a higher accuracy "
           "with fewer labels than BALD, BatchBALD, MaxEnt, k-center and random sampling?", ("deimos",)),
    "06": ("On regression (rotated-MNIST angles offline; UTKFace age and 5' splicing when their files are "
           "present), does DEIMOS lower the test error faster than maximum variance and random sampling?",
           ("deimos",)),
    "07": ("How does one run MC-dropout active learning on one's own PyTorch model with plain nn.Dropout "
           "layers?", ("entropy", "deimos")),
}

GLOSSARY = [
    ("AUBC", "Area under the budget curve: the mean of the trapezoids under the test-accuracy vs "
             "acquisition-step curve (1 = a perfect model at every step). Higher is better."),
    ("TP", "True performance of a strategy (Reyes, Altalhi & Ventura, 2018), as in the "
           "MC-dropout-entropy paper: rewards accuracy gained between steps and penalises accuracy "
           "lost. Higher is better."),
    ("EI", "Expected improvement: DEIMOS's score of a candidate, the expected drop of the trace of "
           "the joint predictive covariance over X_samp once the candidate is labelled."),
    ("X_samp", "DEIMOS's representative sample: a random subset of the training set and the pool on "
               "which the joint predictive covariance is built; its pool members are the candidates."),
    ("J", "The number of dropout masks DEIMOS draws once and shares by every point (50 in the paper); "
          "the covariance has rank at most J."),
    ("τ", "The observation precision: τ⁻¹ (noise variance) is added to the diagonal of the "
          "predictive covariance before conditioning on a labelled point."),
]


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
    title: str = ""  # the first heading of the notebook
    finding: str = ""  # markdown: the output of the cell tagged `finding`


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


def _tagged(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def key_figure_png(nb) -> bytes | None:
    """PNG bytes of the first image output of the cell tagged ``key-figure`` (else the last image)."""
    tagged, last = None, None
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png is None:
                continue
            last = png
            if tagged is None and _tagged(cell, KEY_FIGURE_TAG):
                tagged = png
    chosen = tagged if tagged is not None else last
    return None if chosen is None else base64.b64decode(_joined(chosen))


def finding_markdown(nb) -> str:
    """The markdown output (else the printed text) of the first cell tagged ``finding``; "" if none."""
    for cell in nb.cells:
        if cell.cell_type != "code" or not _tagged(cell, FINDING_TAG):
            continue
        texts = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/markdown" in data:
                texts.append(_joined(data["text/markdown"]))
            elif out.get("output_type") == "stream" and out.get("name") == "stdout":
                texts.append(_joined(out.get("text", "")))
        return " ".join(t.strip() for t in texts if t.strip())
    return ""


def notebook_title(nb, fallback: str) -> str:
    """Text of the first ``# heading`` of the notebook's markdown cells."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+?)\s*$", cell.source, flags=re.M)
            if m:
                return m.group(1)
    return fallback


def notebook_intro(nb) -> str:
    """First paragraph (not a heading) of the first markdown cell, as one line."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for para in re.split(r"\n\s*\n", cell.source):
                if para.strip() and not para.lstrip().startswith(("#", "|", "!", "<")):
                    return " ".join(para.split())
            return ""
    return ""


# ---------------------------------------------------------------------------
# maths
# ---------------------------------------------------------------------------
# A literal dollar: written ``\$`` (the notebook convention), or ``$NAME_WITH_UNDERSCORE`` (an
# environment variable). Markdown renderers turn ``\$`` into a bare ``$`` that MathJax would pair
# with the next one, so both become a ``$`` inside an element MathJax skips.
_LITERAL_DOLLAR = re.compile(r"\\\$|(?<![\\$])\$(?=[A-Z][A-Z0-9]+_[A-Z0-9_]+)")
_CODE_SPAN = re.compile(r"(`+)[\s\S]*?\1")
LITERAL_DOLLAR_HTML = '<span class="tex2jax_ignore">&#36;</span>'


def escape_env_dollars(markdown: str) -> str:
    r"""Protect literal dollars outside code spans so that they never start a formula.

    ``\$`` and ``$MCAL_DATA_DIR`` (upper case with an underscore: an environment variable) become a
    ``$`` that MathJax ignores; ``$X_S$`` and ``$\tau$`` stay maths, code spans stay as written.
    """
    out, last = [], 0
    for m in _CODE_SPAN.finditer(markdown):
        out.append(_LITERAL_DOLLAR.sub(LITERAL_DOLLAR_HTML, markdown[last:m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(_LITERAL_DOLLAR.sub(LITERAL_DOLLAR_HTML, markdown[last:]))
    return "".join(out)


def escape_notebook_dollars(nb) -> None:
    """Apply :func:`escape_env_dollars` to every markdown cell and markdown output of ``nb`` in place."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = escape_env_dollars(cell.source)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/markdown" in data:
                data["text/markdown"] = escape_env_dollars(_joined(data["text/markdown"]))


def _mathjax_ignore(src: Path):
    keep_a11y = {"accessibility-menu.js"}  # the menu loads it; the explorer (3.6 MB) is never loaded

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(src).as_posix()
        drop = {n for n in names if n in ("localization", "__pycache__") or n.endswith(".md")}
        if rel == "jax/output":
            drop |= {n for n in names if n != "HTML-CSS"}  # SVG, CommonHTML, ... are never selected
        if rel == "extensions/a11y":
            drop |= set(names) - keep_a11y
        return drop

    return ignore


def install_mathjax(out_dir: Path) -> str:
    """Copy the parts of MathJax 2 the pages load into ``out_dir/mathjax``; return the page-relative URL.

    Safe against a concurrent or interrupted copy: a copy counts only with its marker file, and a
    new copy is built under a unique temporary name and then renamed into place.
    """
    import jupyter_server_mathjax

    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (src / "MathJax.js").is_file():
        raise FileNotFoundError(f"MathJax.js not found in {src}; is jupyter-server-mathjax installed?")
    dst = out_dir / "mathjax"
    stamp = f"jupyter-server-mathjax {getattr(jupyter_server_mathjax, '__version__', '?')}, {MATHJAX_FONT}\n"
    marker = dst / MATHJAX_MARKER
    if not (marker.is_file() and marker.read_text() == stamp):
        tmp = Path(tempfile.mkdtemp(prefix=".mathjax.", dir=out_dir))
        try:
            shutil.copytree(src, tmp / "mathjax", ignore=_mathjax_ignore(src))
            (tmp / "mathjax" / MATHJAX_MARKER).write_text(stamp)
            if dst.exists():
                old = Path(tempfile.mkdtemp(prefix=".mathjax-old.", dir=out_dir))
                os.replace(dst, old / "mathjax")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp / "mathjax", dst)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return f"mathjax/MathJax.js?config={MATHJAX_CONFIG}"


def mathjax_head(url: str) -> str:
    """The ``<script>`` tags that load and configure the local MathJax (HTML-CSS output, STIX-Web fonts)."""
    config = {
        "tex2jax": {"inlineMath": [["$", "$"], ["\\(", "\\)"]], "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
                    "processEscapes": True, "processEnvironments": True,
                    "skipTags": ["script", "noscript", "style", "textarea", "pre", "code"]},
        "TeX": {"equationNumbers": {"autoNumber": "AMS", "useLabelIds": True}},
        "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": MATHJAX_FONT,
                     "imageFont": None, "linebreaks": {"automatic": True}},
        "MathMenu": {"showRenderer": False, "showFontMenu": False},
        "displayAlign": "center",
        "messageStyle": "none",
    }
    # The hidden MathML copy for screen readers (AssistiveMML) would pull in the TeX fonts (not
    # shipped) through the NativeMML styles: it inherits the page font instead.
    return ('<style>.MJX_Assistive_MathML, .MJX_Assistive_MathML * { font-family: inherit !important; }</style>\n'
            f'<script type="text/x-mathjax-config">MathJax.Hub.Config({json.dumps(config)});</script>\n'
            f'<script src="{html.escape(url)}"></script>')


# ---------------------------------------------------------------------------
# style shared by the index, the benchmarks page and the notebook pages' navigation
# ---------------------------------------------------------------------------
SITE_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --accent: #0b5cad; --line: #d8dee4; --soft: #f6f8fa; }
.mcal-page { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
  max-width: 1180px; margin: 0 auto; padding: 1.5em 2em 3em; line-height: 1.5; }
.mcal-page h1 { font-size: 2em; margin-bottom: .2em; }
.mcal-page h2 { border-bottom: 1px solid var(--line); padding-bottom: .2em; margin-top: 1.8em; }
.mcal-page a, .mcal-nav a, .mcal-toc a { color: var(--accent); text-decoration: none; }
.mcal-page a:hover, .mcal-nav a:hover, .mcal-toc a:hover { text-decoration: underline; }
.mcal-page code { background: var(--soft); padding: 1px 4px; border-radius: 3px; }
.mcal-lead { font-size: 1.1em; color: var(--muted); }
.mcal-papers { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.mcal-card { border: 1px solid var(--line); border-radius: 8px; padding: .8em 1.1em; background: #fff; }
.mcal-card h3 { margin: .1em 0 .3em; font-size: 1.1em; }
.mcal-nb { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.15fr); gap: 1.4em;
  border: 1px solid var(--line); border-radius: 8px; padding: 1em 1.2em; margin: 1.2em 0; }
.mcal-nb h3 { margin: 0 0 .3em; font-size: 1.25em; }
.mcal-nb img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
.mcal-question { font-style: italic; }
.mcal-finding { background: #eef6ee; border-left: 4px solid #1a7f37; padding: .4em .8em; margin: .6em 0; }
.mcal-finding p { margin: 0; }
.mcal-meta { color: var(--muted); font-size: .9em; }
.mcal-scaled { font-size: .88em; color: var(--muted); }
.mcal-scaled ul { margin: .2em 0; padding-left: 1.2em; }
.ok { color: #1a7f37; font-weight: 600; } .failed { color: #cf222e; font-weight: 600; }
.mcal-error { color: #cf222e; font-size: .9em; }
.mcal-warning { background: #fff8c5; border: 1px solid #d4a72c; padding: .5em .8em; border-radius: 6px; }
.mcal-glossary dt { font-weight: 600; float: left; clear: left; width: 5.5em; }
.mcal-glossary dd { margin: 0 0 .5em 6.5em; }
.mcal-page table { border-collapse: collapse; width: 100%; font-size: .9em; }
.mcal-page td, .mcal-page th { border: 1px solid var(--line); padding: 5px 8px; vertical-align: top; text-align: left; }
.mcal-page th { background: var(--soft); }
.mcal-nav { font-family: system-ui, sans-serif; display: flex; flex-wrap: wrap; gap: .4em 1.4em;
  align-items: center; padding: .55em 1em; background: var(--soft, #f6f8fa); border: 1px solid #d8dee4;
  border-radius: 8px; margin: .6em 0 1em; font-size: 14px; }
.mcal-nav .mcal-home { font-weight: 600; }
.mcal-nav .mcal-profile { margin-left: auto; color: #59636e; }
.mcal-toc { font-family: system-ui, sans-serif; font-size: 14px; border: 1px solid #d8dee4;
  border-radius: 8px; padding: .4em 1em; margin: 0 0 1.2em; }
.mcal-toc summary { cursor: pointer; font-weight: 600; }
.mcal-toc ol { columns: 2; margin: .4em 0; }
.mcal-toc .mcal-toc-h1 { font-weight: 600; }
details.mcal-code > summary { cursor: pointer; color: #59636e; font-size: 13px; font-family: system-ui, sans-serif;
  padding: 2px 0 2px 6px; }
.mcal-page .anchor-link { opacity: 0; margin-left: .2em; } .mcal-page :hover > .anchor-link { opacity: .6; }
@media (max-width: 800px) { .mcal-papers, .mcal-nb { grid-template-columns: 1fr; } .mcal-toc ol { columns: 1; } }
"""


def _page(title: str, body: str, mathjax_url: str | None) -> str:
    head_js = mathjax_head(mathjax_url) if mathjax_url else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{SITE_CSS}</style>\n{head_js}\n</head>\n"
            f'<body><main class="mcal-page">\n{body}\n</main></body></html>\n')


def markdown_html(text: str, inline: bool = False) -> str:
    """Markdown -> HTML with nbconvert's renderer (tables; maths left intact for MathJax).

    ``inline`` drops the enclosing ``<p>`` of a one-paragraph text.
    """
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    rendered = markdown2html_mistune(escape_env_dollars(text)).strip()
    if inline and rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        rendered = rendered[3:-4]
    return rendered


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------
def render_html(ipynb: Path, html_path: Path, mathjax_url: str, nav: dict | None = None) -> None:
    """Render an executed notebook to ``html_path`` with the ``mcal_offline`` template.

    ``nav``: ``index`` (href), ``prev`` / ``next`` (``{"href", "label"}`` or None), ``ipynb`` (href),
    ``profile``.
    """
    from nbconvert import HTMLExporter

    nav = {"index": "index.html", "prev": None, "next": None, "ipynb": "", "profile": "", **(nav or {})}
    nb = nbformat.read(ipynb, as_version=4)
    escape_notebook_dollars(nb)
    exporter = HTMLExporter(template_name="mcal_offline", extra_template_basedirs=[str(TEMPLATES)])
    resources = {"mcal": {**nav, "mathjax_head": mathjax_head(mathjax_url), "css": SITE_CSS}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    write_text_atomic(html_path, body)


def git_commit(repo: Path, exclude: Path | None = None) -> str:
    """Short sha of ``repo``'s HEAD, ``<sha>-dirty`` when files (outside ``exclude``) differ from it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                             text=True, check=True).stdout.strip()
        cmd = ["git", "status", "--porcelain", "--", "."]
        if exclude is not None:
            with contextlib.suppress(ValueError):
                cmd.append(f":(exclude){Path(os.path.abspath(exclude)).relative_to(Path(repo).resolve()).as_posix()}")
        dirty = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _neighbour(path: Path | None, titles: dict[str, str]) -> dict | None:
    if path is None:
        return None
    return {"href": f"{path.stem}.html", "label": titles.get(path.stem, path.stem)}


def execute_one(path: Path, out_dir: Path, profile: str, mathjax_url: str,
                timeout: int | None = None, nav: dict | None = None) -> NotebookResult:
    """Run one notebook with papermill, render its HTML, key figure and finding; never raises on notebook errors."""
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
    if not executed.is_file():
        result.html = result.ipynb = ""
        return result
    nb = nbformat.read(executed, as_version=4)
    result.title = notebook_title(nb, name)
    result.finding = finding_markdown(nb)
    try:
        render_html(executed, out_dir / result.html, mathjax_url,
                    {**(nav or {}), "ipynb": result.ipynb, "profile": profile})
    except Exception as exc:
        result.status = "failed"
        result.error += f" | HTML rendering failed: {type(exc).__name__}: {exc}"
    png = key_figure_png(nb)
    if png is not None:
        fig_dir = out_dir / "figures"
        fig_dir.mkdir(exist_ok=True)
        atomic_write(fig_dir / f"{name}.png", lambda tmp: tmp.write_bytes(png))
        result.figure = f"figures/{name}.png"
    return result


# ---------------------------------------------------------------------------
# the index (front page) and the benchmarks page
# ---------------------------------------------------------------------------
def _format_value(key: str, value) -> str:
    """A profile value as a reader reads it: ``0`` of a "0 = all" knob is "all"."""
    rule = profiles.RULES.get(key) if hasattr(profiles, "RULES") else None
    if value == 0 and not isinstance(value, bool) and rule is not None and rule.note == "0 = all":
        return "all"
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def scaled_down(name: str, profile: str) -> list[str]:
    """``key value (`paper` profile: value)`` for every setting of ``name`` where ``profile`` differs from
    the ``paper`` profile. The ``paper`` profile is this project's full-size setting: it follows the papers
    where they fix a value, but some of its values (e.g. the number of seeds) are the project's own, so
    they are labelled as the profile's, never as "the paper's"."""
    entry = profiles.NOTEBOOKS.get(name)
    if entry is None or profile == "paper":
        return []
    ours, paper = entry[profile], entry["paper"]
    return [f"<code>{html.escape(k)}</code> {html.escape(_format_value(k, ours[k]))} "
            f"(<code>paper</code> profile: {html.escape(_format_value(k, paper[k]))})"
            for k in ours if ours[k] != paper[k]]


def _notebook_card(r: NotebookResult, intro: str) -> str:
    prefix = r.name[:2]
    question, papers = QUESTIONS.get(prefix, (intro, ()))
    title = html.escape(r.title or r.name)
    head = f'<a href="{html.escape(r.html)}">{title}</a>' if r.html else title
    paper_names = " · ".join(html.escape(PAPERS[p]["short"]) for p in papers)
    finding = (f'<div class="mcal-finding"><strong>Finding:</strong> {markdown_html(r.finding, inline=True)}'
               f'</div>' if r.finding else
               '<div class="mcal-finding"><em>No finding: the notebook has no cell tagged '
               '<code>finding</code>, or it failed before reaching it.</em></div>')
    error = f'<p class="mcal-error">{html.escape(r.error)}</p>' if r.error else ""
    download = f' · <a href="{html.escape(r.ipynb)}" download>download .ipynb</a>' if r.ipynb else ""
    scaled = scaled_down(r.name, r.profile)
    scaled_html = (f'<div class="mcal-scaled">What <code>{html.escape(r.profile)}</code> scales down:<ul>'
                   + "".join(f"<li>{s}</li>" for s in scaled) + "</ul></div>") if scaled else ""
    if r.figure:
        target = f"{html.escape(r.html)}#{KEY_FIGURE_TAG}" if r.html else html.escape(r.figure)
        figure = (f'<a href="{target}" title="open the figure in its notebook">'
                  f'<img src="{html.escape(r.figure)}" alt="key figure of {title}" loading="lazy"></a>')
    else:
        figure = '<p class="mcal-meta">(no figure)</p>'
    return (f'<section class="mcal-nb" id="nb-{html.escape(r.name)}"><div>\n<h3>{head}</h3>\n'
            f'<p class="mcal-meta">{paper_names}</p>\n'
            f'<p class="mcal-question">{html.escape(question)}</p>\n{finding}\n{error}'
            f'<p class="mcal-meta"><span class="{html.escape(r.status)}">{html.escape(r.status)}</span> · '
            f'profile <code>{html.escape(r.profile)}</code> · {r.seconds:.0f} s · '
            f'commit <code>{html.escape(r.commit)}</code>{download}</p>\n{scaled_html}</div>\n'
            f'<div>{figure}</div></section>')


def kernel_environment() -> dict:
    """What decides the bits in the notebook kernels (:func:`environment.describe`), measured in a
    fresh process with the kernels' environment variables (:func:`pin_kernel_threads` applied)."""
    code = "import json; from mcal_utils import environment as e; print(json.dumps(e.describe()))"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300,
                             env=os.environ.copy()).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        return {"error": f"could not describe the environment: {type(exc).__name__}: {exc}"}


def pin_kernel_threads() -> str:
    """Give every notebook kernel :data:`environment.REPORT_THREADS` torch/OpenMP threads (unless
    ``OMP_NUM_THREADS`` is set already): an in-notebook training then gives the same bits on any
    number of cores. Returns the value in force."""
    return os.environ.setdefault("OMP_NUM_THREADS", str(environment.REPORT_THREADS))


def write_index(out_dir: Path, results: list[NotebookResult], profile: str, commit: str, total: float,
                intros: dict[str, str] | None = None, mathjax_url: str | None = None,
                env: dict | None = None) -> None:
    """Write ``index.html`` (the front page) and ``run.json`` (with ``environment``: ``env``)."""
    intros = intros or {}
    env = env or {}
    machine = html.escape(environment.summary_line(env) if "cpu" in env else env.get("error", "an unknown machine"))
    papers = "\n".join(
        f'<div class="mcal-card"><h3><a href="{html.escape(p["link"])}">{html.escape(p["title"])}</a></h3>'
        f'<p class="mcal-meta">{html.escape(p["authors"])} — cited here as {html.escape(p["short"])}; '
        f'the link is its public code.</p><p>{html.escape(p["summary"])}</p></div>' for p in PAPERS.values())
    cards = "\n".join(_notebook_card(r, intros.get(r.name, "")) for r in results)
    glossary = "\n".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in GLOSSARY)
    dirty = (f'<p class="mcal-warning">Built from a working tree with uncommitted changes '
             f'(<code>{html.escape(commit)}</code>): the pages are not exactly any commit.</p>'
             if commit.endswith("-dirty") else "")
    benchmarks = ('<a href="benchmarks.html">the benchmarks</a> (speed and accuracy of the library '
                  'against peer implementations)' if (out_dir / "benchmarks.html").is_file() else
                  "the benchmarks (<code>make benchmarks</code>)")
    failed = [r.name for r in results if r.status != "ok"]
    status = (f'<span class="failed">{len(failed)} notebook(s) failed: {html.escape(", ".join(failed))}</span>'
              if failed else f'<span class="ok">all {len(results)} notebooks ran</span>')
    scope = ("the full-size <code>paper</code> profile (the papers' protocol where they give one)"
             if profile == "paper" else
             "scaled down to run offline on a laptop CPU — each card lists what differs from the "
             "<code>paper</code> profile (the full-size setting). Offline, <code>dataset=\"auto\"</code> "
             "uses MNIST padded to "
             "32 × 32 instead of SVHN, so those numbers are not comparable with the paper's SVHN numbers")
    body = f"""<h1>Deep active learning with MC dropout — the report</h1>
<p class="mcal-lead">This report re-runs two papers on active learning with Monte Carlo dropout, one notebook
per question. Each notebook below states what it asks and its finding, computed by the notebook itself;
click a title or a figure to read the full analysis.</p>
{dirty}
<h2>The two papers</h2>
<div class="mcal-papers">{papers}</div>
<h2>The notebooks</h2>
<p class="mcal-meta">Profile <code>{html.escape(profile)}</code>: {scope}. {status}.</p>
{cards}
<h2>Glossary</h2>
<dl class="mcal-glossary">{glossary}</dl>
<h2>How this report was made</h2>
<p class="mcal-meta">Profile <code>{html.escape(profile)}</code>, commit <code>{html.escape(commit)}</code>,
built {_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}; notebooks {total:.0f} s.</p>
<p class="mcal-meta" id="environment"><b>Execution environment</b> (what decides the last bits of every number;
also in <code>run.json</code>): {machine}. On one machine with the same settings a rebuild is bit-identical;
on a CPU with another instruction set the trained networks differ in their last bits and the numbers move
(README, "Determinism"), which is why every finding is an effect with its 95 % CI and a verdict.</p>
<p class="mcal-meta">Every notebook was executed with papermill. Reproduce with <code>make report</code> (profile
<code>default</code>), or <code>make report PROFILE=paper</code> for the papers' settings (meant for a GPU).
See also {benchmarks}.</p>"""
    write_text_atomic(out_dir / "index.html", _page("mcal — the report", body, mathjax_url))
    summary = {"profile": profile, "commit": commit, "total_seconds": round(total, 1), "environment": env,
               "notebooks": [asdict(r) for r in results]}
    write_text_atomic(out_dir / "run.json", json.dumps(summary, indent=2) + "\n")


def write_benchmarks_page(out_dir: Path, markdown_path: Path | None = None,
                          mathjax_url: str | None = None) -> bool:
    """Render ``benchmarks.md`` (default ``out_dir/benchmarks.md``) as ``benchmarks.html``; False if absent."""
    src = markdown_path or out_dir / "benchmarks.md"
    if not src.is_file():
        return False
    nav = ('<nav class="mcal-nav"><a class="mcal-home" href="index.html">&#8962; Report index</a>'
           '<a href="benchmarks.md" download>download benchmarks.md</a></nav>')
    page = _page("mcal — benchmarks", nav + markdown_html(src.read_text(encoding="utf-8")), mathjax_url)
    write_text_atomic(out_dir / "benchmarks.html", page)
    if src.resolve() != (out_dir / "benchmarks.md").resolve():
        shutil.copyfile(src, out_dir / "benchmarks.md")
    return True


@contextlib.contextmanager
def build_lock(out_dir: Path):
    """Exclusive lock on ``out_dir/.build.lock``; a second build into the same folder fails at once."""
    import fcntl

    with open(out_dir / LOCK_NAME, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another report build is writing to {out_dir.resolve()}; "
                               "wait for it to finish or choose another --out folder") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_report(notebooks: Path, out_dir: Path, profile: str, only: list[str] | None = None,
                 timeout: int | None = None, require_clean: bool = False,
                 benchmarks: Path | None = None) -> list[NotebookResult]:
    profile = profiles.profile_name(profile)
    paths = list_notebooks(notebooks)
    if only:
        unknown = [o for o in only if not any(p.stem.startswith(o) for p in paths)]
        if unknown:
            raise ValueError(f"--only {unknown} match no notebook; available: {[p.stem for p in paths]}")
    commit = git_commit(notebooks.resolve().parent, exclude=out_dir)
    if commit.endswith("-dirty"):
        if require_clean:
            raise ValueError(f"the working tree has uncommitted changes ({commit}); commit them or "
                             "drop --require-clean (the report is then stamped '-dirty')")
        print(f"warning: the working tree has uncommitted changes; the report is stamped {commit!r}, "
              "not as a commit", file=sys.stderr, flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    pin_kernel_threads()
    env = kernel_environment()
    print(f"environment: {environment.summary_line(env) if 'cpu' in env else env}", flush=True)
    with build_lock(out_dir):
        mathjax_url = install_mathjax(out_dir)
        intros, titles = {}, {}
        for p in paths:
            nb = nbformat.read(p, as_version=4)
            intros[p.stem], titles[p.stem] = notebook_intro(nb), notebook_title(nb, p.stem)
        selected = [p for p in paths if not only or any(p.stem.startswith(o) for o in only)]
        results: list[NotebookResult] = []
        previous_env: dict = {}
        t0 = time.perf_counter()
        for i, path in enumerate(selected, 1):
            k = paths.index(path)
            nav = {"prev": _neighbour(paths[k - 1] if k > 0 else None, titles),
                   "next": _neighbour(paths[k + 1] if k + 1 < len(paths) else None, titles)}
            print(f"[{i}/{len(selected)}] {path.name} (profile {profile}) ...", flush=True)
            r = execute_one(path, out_dir, profile, mathjax_url, timeout, nav)
            r.commit = commit
            print(f"    {r.status} in {r.seconds:.0f} s{(' - ' + r.error) if r.error else ''}", flush=True)
            results.append(r)
        if only and (out_dir / "run.json").is_file():
            # keep the other notebooks' rows of the previous run
            previous = json.loads((out_dir / "run.json").read_text())
            previous_env = previous.get("environment") or {}
            if previous.get("profile") == profile:
                done = {r.name for r in results}
                known = {f.name for f in fields(NotebookResult)}
                kept = [NotebookResult(**{"commit": previous.get("commit", ""),
                                          **{k: v for k, v in n.items() if k in known}})
                        for n in previous["notebooks"] if n["name"] not in done]
                results = sorted(kept + results, key=lambda r: r.name)
        total = sum(r.seconds for r in results) if only else time.perf_counter() - t0
        write_benchmarks_page(out_dir, benchmarks, mathjax_url)
        if only and previous_env and environment.numerics_key(previous_env) != environment.numerics_key(env):
            print("warning: the notebooks kept from the previous run were computed in another environment "
                  f"({environment.summary_line(previous_env)})", file=sys.stderr, flush=True)
        write_index(out_dir, results, profile, commit, total, intros, mathjax_url, env)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcal_utils.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=None, help=f"one of {list(profiles.PROFILE_NAMES)}")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 00 03")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    parser.add_argument("--benchmarks", type=Path, default=None,
                        help="benchmarks markdown to render as benchmarks.html (default: OUT/benchmarks.md)")
    parser.add_argument("--require-clean", action="store_true",
                        help="refuse to build from a working tree with uncommitted changes "
                             "(default: build, stamp the commit '<sha>-dirty' and warn)")
    parser.add_argument("--strip", type=Path, metavar="FOLDER", help="strip outputs from FOLDER's notebooks and exit")
    args = parser.parse_args(argv)
    if args.strip is not None:
        for p in list_notebooks(args.strip):
            if strip_outputs(p):
                print(f"stripped {p}")
        return 0
    try:
        results = build_report(args.notebooks, args.out, args.profile, args.only, args.timeout,
                               args.require_clean, args.benchmarks)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = [r.name for r in results if r.status != "ok"]
    print(f"report written to {args.out / 'index.html'}; "
          + (f"FAILED: {failed}" if failed else "all notebooks ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
