"""Reading the notebooks: which ones there are, and what the index takes from each.

Conventions (what a notebook author writes):

* **title** -- the first ``# heading`` of the markdown cells;
* **introduction** -- the first paragraph (not a heading, table, image, HTML or the claim) of the first
  markdown cell: the card's question for a notebook :data:`~mcal_utils.report.content.QUESTIONS` does not list;
* **central claim** -- a paragraph of the first markdown cell that starts with ``**Central claim**``, e.g.
  ``**Central claim** (the MC-dropout-entropy paper, Section 4): MC-dropout entropy picks better examples
  than random sampling once the model is reasonably trained.`` (one paragraph: no blank line inside);
* **finding** -- the markdown output (else the printed text) of the code cell tagged ``finding``; its
  **verdicts** are, in order, the bold verdicts of :data:`mcal_utils.compare.VERDICTS`
  (``**supported**``, ``**contradicted**``, ``**not resolved at this scale**``, as
  :meth:`~mcal_utils.compare.Comparison.sentence` writes them) and every
  ``not tested here: needs ..., est. ... on a GPU``; the first one is the headline;
* **key figure** -- the first PNG output of the cell tagged ``key-figure`` (else the notebook's last PNG);
* **predicted time** -- the cost model's prediction of this execution's wall time, in seconds: an
  ``application/json`` output ``{"predicted_s": <seconds>}`` of the cell tagged ``predicted-time``
  (e.g. ``display({"text/markdown": "...", "application/json": {"predicted_s": 812.0}}, raw=True)``).
"""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path
from typing import Any

import nbformat

from mcal_utils.compare import VERDICTS

__all__ = [
    "KEY_FIGURE_TAG",
    "FINDING_TAG",
    "HIDE_INPUT_TAG",
    "PREDICTED_TIME_TAG",
    "CLAIM_LABEL",
    "NOT_TESTED",
    "list_notebooks",
    "strip_outputs",
    "has_tag",
    "output_text",
    "key_figure_png",
    "finding_markdown",
    "notebook_title",
    "notebook_intro",
    "central_claim",
    "finding_verdicts",
    "predicted_seconds",
]

KEY_FIGURE_TAG = "key-figure"
FINDING_TAG = "finding"
HIDE_INPUT_TAG = "hide-input"
PREDICTED_TIME_TAG = "predicted-time"
CLAIM_LABEL = "**Central claim**"
#: the verdict of a claim the notebook does not test at this scale (with what it would need)
NOT_TESTED = "not tested here"

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_CLAIM_START = re.compile(r"\*\*\s*central claim\b", re.IGNORECASE)
# A verdict of the finding: a bold word of VERDICTS, or "not tested here" with what it needs, up to the
# next clause (";"), the end of a bold span, or the word GPU.
_VERDICT = re.compile(
    r"\*\*(?P<verdict>" + "|".join(re.escape(v) for v in VERDICTS) + r")\*\*"
    r"|(?P<not_tested>" + re.escape(NOT_TESTED) + r")(?:\*\*)?\s*(?:[:—–-]\s*(?:\*\*)?\s*"
    r"(?P<needs>needs\b(?:[^;*\n]*?\bGPUs?\b|[^;*\n]*)))?",
    re.IGNORECASE,
)


def list_notebooks(folder: Path) -> list[Path]:
    """``NN_*.ipynb`` files of ``folder`` in numeric order; FileNotFoundError when there is none."""
    found = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
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


def has_tag(cell: Any, tag: str) -> bool:
    """Whether ``cell`` carries the metadata tag ``tag``."""
    return tag in cell.get("metadata", {}).get("tags", [])


def output_text(value: Any) -> str:
    """A notebook text field (a string or the list of lines nbformat may keep) as one string."""
    return "".join(value) if isinstance(value, list) else str(value)


def key_figure_png(nb: Any) -> bytes | None:
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
            if tagged is None and has_tag(cell, KEY_FIGURE_TAG):
                tagged = png
    chosen = tagged if tagged is not None else last
    return None if chosen is None else base64.b64decode(output_text(chosen))


def finding_markdown(nb: Any) -> str:
    """The markdown output (else the printed text) of the first cell tagged ``finding``; "" if none."""
    for cell in nb.cells:
        if cell.cell_type != "code" or not has_tag(cell, FINDING_TAG):
            continue
        texts = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/markdown" in data:
                texts.append(output_text(data["text/markdown"]))
            elif out.get("output_type") == "stream" and out.get("name") == "stdout":
                texts.append(output_text(out.get("text", "")))
        return " ".join(t.strip() for t in texts if t.strip())
    return ""


def notebook_title(nb: Any, fallback: str) -> str:
    """Text of the first ``# heading`` of the notebook's markdown cells, else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+?)\s*$", cell.source, flags=re.M)
            if m:
                return m.group(1)
    return fallback


def _first_markdown_paragraphs(nb: Any) -> list[str]:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            return [p.strip() for p in _PARAGRAPH_BREAK.split(cell.source) if p.strip()]
    return []


def notebook_intro(nb: Any) -> str:
    """First paragraph (not a heading, table, image, HTML or the central claim) of the first markdown
    cell, as one line."""
    for para in _first_markdown_paragraphs(nb):
        if not para.startswith(("#", "|", "!", "<")) and not _CLAIM_START.match(para):
            return " ".join(para.split())
    return ""


def central_claim(nb: Any) -> str:
    """The paragraph of the first markdown cell that starts with ``**Central claim**`` (markdown, as one
    line, label included); "" when there is none."""
    for para in _first_markdown_paragraphs(nb):
        if _CLAIM_START.match(para):
            return " ".join(para.split())
    return ""


def finding_verdicts(finding: str) -> list[str]:
    """The verdicts a finding states, in order (module docstring): each one of
    :data:`mcal_utils.compare.VERDICTS`, or ``"not tested here"`` followed by ``": needs ..."`` when the
    finding says what a test would need."""
    found = []
    for m in _VERDICT.finditer(finding):
        if m.group("verdict"):
            found.append(m.group("verdict").lower())
        else:
            needs = " ".join((m.group("needs") or "").split()).rstrip(" ,.")
            found.append(f"{NOT_TESTED}: {needs}" if needs else NOT_TESTED)
    return found


def predicted_seconds(nb: Any) -> float | None:
    """``predicted_s`` of the ``application/json`` output of the cell tagged ``predicted-time``: the cost
    model's prediction of this execution's wall time in seconds; None without such a positive number."""
    for cell in nb.cells:
        if cell.cell_type != "code" or not has_tag(cell, PREDICTED_TIME_TAG):
            continue
        for out in cell.get("outputs", []):
            payload = out.get("data", {}).get("application/json")
            value = payload.get("predicted_s") if isinstance(payload, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
                return float(value)
    return None
