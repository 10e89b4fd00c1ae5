"""The report's HTML pages, every one rendered from a Jinja2 template of ``templates/``.

* ``templates/site/``: the index (``index.html.j2``, one ``card.html.j2`` per notebook), the benchmarks
  page, the page skeleton they extend and the MathJax ``<head>``; their style is ``static/report.css``
  (package data), inlined so that every page opens offline on its own.
* ``templates/mcal_offline/``: the nbconvert template of the notebook pages (JupyterLab's, with navigation
  back to the index, previous / next notebook, download link, table of contents; cells tagged
  ``hide-input`` show their output with their code in a closed "show code" toggle).

Markdown (findings, claims, ``benchmarks.md``) is rendered with nbconvert's renderer, maths left for MathJax.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from mcal_utils import environment
from mcal_utils.compare import CONTRADICTED, NOT_RESOLVED, SUPPORTED
from mcal_utils.data.files import write_text_atomic
from mcal_utils.report.content import GLOSSARY, PAPERS, Paper, ScaledSetting, question, scaled_down
from mcal_utils.report.mathjax import escape_env_dollars, escape_notebook_dollars, mathjax_config
from mcal_utils.report.notebook import FINDING_TAG, KEY_FIGURE_TAG, NOT_TESTED
from mcal_utils.report.runs import LongRun, NotebookResult, RunSummary, long_runs

__all__ = [
    "TEMPLATES",
    "CSS_PATH",
    "NOTEBOOK_TEMPLATE",
    "Badge",
    "Card",
    "site_css",
    "markdown_html",
    "mathjax_head",
    "render_page",
    "verdict_badge",
    "verdict_badges",
    "format_duration",
    "make_card",
    "index_html",
    "write_index",
    "write_benchmarks_page",
    "render_html",
    "utc_now",
]

TEMPLATES = Path(__file__).parent / "templates"
CSS_PATH = Path(__file__).parent / "static" / "report.css"
NOTEBOOK_TEMPLATE = "mcal_offline"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES / "site"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def site_css() -> str:
    """The style of every page (``static/report.css``)."""
    return CSS_PATH.read_text(encoding="utf-8")


def markdown_html(text: str, inline: bool = False) -> str:
    """Markdown -> HTML with nbconvert's renderer (tables; maths left intact for MathJax; literal dollars
    protected by :func:`~mcal_utils.report.mathjax.escape_env_dollars`).

    ``inline`` drops the enclosing ``<p>`` of a one-paragraph text.
    """
    rendered = markdown2html_mistune(escape_env_dollars(text)).strip()
    if inline and rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        rendered = rendered[3:-4]
    return rendered


def mathjax_head(url: str) -> str:
    """The ``<head>`` tags that load and configure the local MathJax at ``url`` (HTML-CSS output,
    STIX-Web fonts)."""
    return _ENV.get_template("mathjax_head.html.j2").render(config=mathjax_config(), url=url).strip()


def _page_context(title: str, mathjax_url: str | None) -> dict[str, Any]:
    return {"title": title, "css": site_css(), "mathjax_head": mathjax_head(mathjax_url) if mathjax_url else ""}


def render_page(title: str, body_html: str, mathjax_url: str | None) -> str:
    """A standalone page of the report's style around ``body_html`` (trusted HTML)."""
    return _ENV.get_template("page.html.j2").render(body_html=body_html, **_page_context(title, mathjax_url))


# ---------------------------------------------------------------------------
# the index: one card per notebook
# ---------------------------------------------------------------------------
_VERDICT_KINDS = {SUPPORTED: "supported", CONTRADICTED: "contradicted", NOT_RESOLVED: "not-resolved"}
_SHORT_LABELS = {NOT_RESOLVED: "not resolved"}


@dataclass(frozen=True)
class Badge:
    """A verdict as a coloured badge: ``kind`` picks the colour (``supported``, ``contradicted``,
    ``not-resolved``, ``not-tested``, ``none``), ``detail`` is its tooltip, ``count`` how many it stands for."""

    kind: str
    label: str
    detail: str = ""
    count: int = 1


def verdict_badge(verdict: str, short: bool = False) -> Badge:
    """The badge of one verdict of :func:`~mcal_utils.report.notebook.finding_verdicts` (``short``: "not
    resolved" for "not resolved at this scale")."""
    key = verdict.lower()
    if key in _VERDICT_KINDS:
        return Badge(_VERDICT_KINDS[key], _SHORT_LABELS.get(key, key) if short else key)
    if key.startswith(NOT_TESTED):
        return Badge("not-tested", NOT_TESTED, detail=verdict)
    return Badge("none", verdict)


def verdict_badges(verdicts: Sequence[str]) -> tuple[Badge, list[Badge]]:
    """The headline badge (the finding's first verdict; "no verdict" when it states none) and the others,
    one small badge per kind with its count, in the order of :data:`mcal_utils.compare.VERDICTS` then
    "not tested here"."""
    if not verdicts:
        return Badge("none", "no verdict", detail="the finding states no verdict (or the notebook failed)"), []
    rest = [verdict_badge(v, short=True) for v in verdicts[1:]]
    order = [*_VERDICT_KINDS.values(), "not-tested", "none"]
    counts = Counter(b.kind for b in rest)
    first: dict[str, Badge] = {}
    for b in rest:
        first.setdefault(b.kind, b)
    details = {k: "; ".join(dict.fromkeys(b.detail for b in rest if b.kind == k and b.detail)) for k in counts}
    others = [Badge(kind, first[kind].label, details[kind], counts[kind]) for kind in order if kind in counts]
    return verdict_badge(verdicts[0]), others


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3.4 h"``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_ENV.filters["duration"] = format_duration
_ENV.globals.update(KEY_FIGURE_TAG=KEY_FIGURE_TAG, FINDING_TAG=FINDING_TAG)


@dataclass(frozen=True)
class Card:
    """What the index shows of one notebook (``card.html.j2``)."""

    result: NotebookResult
    question: str
    papers: tuple[Paper, ...]
    finding_html: str
    claim_html: str  # "" when the notebook states no central claim: then no verdict badges either
    headline: Badge
    others: list[Badge]
    scaled: list[ScaledSetting]
    long: LongRun | None
    long_finding_html: str = ""  # the long build's finding ("" without one)
    long_headline: Badge | None = None
    long_others: tuple[Badge, ...] = ()


def make_card(result: NotebookResult, intro: str = "", claim: str = "", long: LongRun | None = None) -> Card:
    """The card of ``result``; ``intro`` is the question of a notebook :data:`~content.QUESTIONS` does not
    list, ``claim`` the central claim when the result has none (a row of an older ``run.json``)."""
    text, papers = question(result.name, intro)
    claim = result.claim or claim
    headline, others = verdict_badges(result.verdicts)
    return Card(
        result=result,
        question=text,
        papers=papers,
        finding_html=markdown_html(result.finding, inline=True) if result.finding else "",
        claim_html=markdown_html(claim, inline=True) if claim else "",
        headline=headline,
        others=others,
        scaled=scaled_down(result.name, result.profile),
        long=long,
        long_finding_html=markdown_html(long.finding, inline=True) if long and long.finding else "",
        long_headline=verdict_badges(long.verdicts)[0] if long and long.verdicts else None,
        long_others=tuple(verdict_badges(long.verdicts)[1]) if long and long.verdicts else (),
    )


def utc_now() -> str:
    """The build time as the index prints it."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def index_html(
    run: RunSummary, cards: Iterable[Card], mathjax_url: str | None = None, has_benchmarks: bool = False
) -> str:
    """The front page of ``run``."""
    cards = list(cards)
    env = run.environment
    machine = environment.summary_line(env) if "cpu" in env else env.get("error", "an unknown machine")
    return _ENV.get_template("index.html.j2").render(
        run=run,
        cards=cards,
        papers=list(PAPERS.values()),
        glossary=GLOSSARY,
        machine=machine,
        failed=[c.result.name for c in cards if c.result.status != "ok"],
        has_benchmarks=has_benchmarks,
        **_page_context("mcal — the report", mathjax_url),
    )


def write_index(
    out_dir: Path,
    run: RunSummary,
    intros: Mapping[str, str] | None = None,
    claims: Mapping[str, str] | None = None,
    mathjax_url: str | None = None,
) -> Path:
    """Write ``out_dir/index.html`` for ``run``; cards link to the long-profile build of ``out_dir/long/``
    where it has the notebook. ``intros`` / ``claims``: by notebook name, from the notebooks' sources."""
    intros, claims = intros or {}, claims or {}
    longs = long_runs(out_dir)
    cards = [make_card(r, intros.get(r.name, ""), claims.get(r.name, ""), longs.get(r.name)) for r in run.notebooks]
    page = index_html(run, cards, mathjax_url, has_benchmarks=(out_dir / "benchmarks.html").is_file())
    return write_text_atomic(out_dir / "index.html", page)


def write_benchmarks_page(out_dir: Path, markdown_path: Path | None = None, mathjax_url: str | None = None) -> bool:
    """Render ``benchmarks.md`` (default ``out_dir/benchmarks.md``) as ``benchmarks.html`` (a copy of the
    markdown beside it); False if there is none."""
    src = markdown_path or out_dir / "benchmarks.md"
    if not src.is_file():
        return False
    page = _ENV.get_template("benchmarks.html.j2").render(
        markdown_html=markdown_html(src.read_text(encoding="utf-8")), **_page_context("mcal — benchmarks", mathjax_url)
    )
    write_text_atomic(out_dir / "benchmarks.html", page)
    if src.resolve() != (out_dir / "benchmarks.md").resolve():
        write_text_atomic(out_dir / "benchmarks.md", src.read_text(encoding="utf-8"))
    return True


# ---------------------------------------------------------------------------
# the notebook pages
# ---------------------------------------------------------------------------
def render_html(ipynb: Path, html_path: Path, mathjax_url: str, nav: Mapping[str, Any] | None = None) -> None:
    """Render an executed notebook to ``html_path`` with the ``mcal_offline`` nbconvert template.

    ``nav``: ``index`` (href), ``prev`` / ``next`` (``{"href", "label"}`` or None), ``ipynb`` (href),
    ``profile``.
    """
    nav = {"index": "index.html", "prev": None, "next": None, "ipynb": "", "profile": "", **(nav or {})}
    nb = nbformat.read(ipynb, as_version=4)
    escape_notebook_dollars(nb)
    exporter = HTMLExporter(template_name=NOTEBOOK_TEMPLATE, extra_template_basedirs=[str(TEMPLATES)])
    resources = {"mcal": {**nav, "mathjax_head": mathjax_head(mathjax_url), "css": site_css()}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    write_text_atomic(html_path, body)
