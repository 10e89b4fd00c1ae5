"""Maths offline: the trimmed MathJax 2 copy every page loads, its configuration, and literal dollars
kept out of its reach.

MathJax 2 is copied from the pinned ``jupyter-server-mathjax`` package into ``<out>/mathjax/`` (HTML-CSS
output with the STIX-Web fonts it ships; the SVG output, the a11y explorer and the localisations are left
out). A literal dollar is written ``\\$`` in markdown; ``$NAME_WITH_UNDERSCORE`` (an environment variable)
outside code spans is escaped automatically so that it never starts a formula.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jupyter_server_mathjax

from mcal_utils.report.notebook import output_text

__all__ = [
    "MATHJAX_CONFIG",
    "MATHJAX_FONT",
    "MATHJAX_MARKER",
    "LITERAL_DOLLAR_HTML",
    "escape_env_dollars",
    "escape_notebook_dollars",
    "install_mathjax",
    "mathjax_config",
]

MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
MATHJAX_FONT = "STIX-Web"  # the only web font jupyter-server-mathjax ships
MATHJAX_MARKER = ".mcal-complete"  # written last: a copy without it is incomplete and is redone

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
        out.append(_LITERAL_DOLLAR.sub(LITERAL_DOLLAR_HTML, markdown[last : m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(_LITERAL_DOLLAR.sub(LITERAL_DOLLAR_HTML, markdown[last:]))
    return "".join(out)


def escape_notebook_dollars(nb: Any) -> None:
    """Apply :func:`escape_env_dollars` to every markdown cell and markdown output of ``nb`` in place."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = escape_env_dollars(cell.source)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/markdown" in data:
                data["text/markdown"] = escape_env_dollars(output_text(data["text/markdown"]))


def mathjax_config() -> dict[str, Any]:
    """``MathJax.Hub.Config`` of every page: HTML-CSS output with the STIX-Web web font only, TeX and
    ``$...$`` maths, no messages."""
    return {
        "tex2jax": {
            "inlineMath": [["$", "$"], ["\\(", "\\)"]],
            "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
            "processEscapes": True,
            "processEnvironments": True,
            "skipTags": ["script", "noscript", "style", "textarea", "pre", "code"],
        },
        "TeX": {"equationNumbers": {"autoNumber": "AMS", "useLabelIds": True}},
        "HTML-CSS": {
            "availableFonts": [],
            "preferredFont": None,
            "webFont": MATHJAX_FONT,
            "imageFont": None,
            "linebreaks": {"automatic": True},
        },
        "MathMenu": {"showRenderer": False, "showFontMenu": False},
        "displayAlign": "center",
        "messageStyle": "none",
    }


def _mathjax_ignore(src: Path) -> Callable[[str, list[str]], set[str]]:
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
