"""The report: execute the notebooks with papermill and render the offline HTML report in ``reports/``.

``python -m mcal_utils.report --profile default --notebooks notebooks --out reports`` (``make report``)
executes every ``notebooks/NN_*.ipynb`` and writes, per notebook, the executed ``.ipynb``, its HTML page
and its key figure, then ``index.html`` -- the front page: both papers, what each notebook asks, its
central claim with the computed verdicts, its finding, profile, what the profile scales down against
``paper``, its figure, its long-profile run, a glossary -- and ``run.json``. ``benchmarks.md`` (written by
``make benchmarks``) is rendered as ``benchmarks.html``. A failing notebook still gets its HTML and is
marked failed; the command then exits 1. ``--index-only`` re-renders the index from ``run.json``;
``--strip notebooks`` removes outputs and execution counts from the notebooks.

One job per module:

* :mod:`~mcal_utils.report.build` -- execute notebooks (papermill), the build lock, :func:`build_report`,
  :func:`rebuild_index`;
* :mod:`~mcal_utils.report.notebook` -- reading a notebook: title, introduction, central claim, finding and
  its verdicts, key figure, predicted time (the conventions a notebook author follows are there);
* :mod:`~mcal_utils.report.runs` -- ``run.json`` (its schema, reading, writing) and the long-profile build
  in ``<out>/long/``;
* :mod:`~mcal_utils.report.pages` -- every HTML page, rendered from the Jinja2 templates of ``templates/``
  with the style ``static/report.css``;
* :mod:`~mcal_utils.report.content` -- the texts: the papers, each notebook's question, the glossary, what a
  profile scales down;
* :mod:`~mcal_utils.report.mathjax` -- the offline MathJax copy, its configuration, literal dollars;
* :mod:`~mcal_utils.report.provenance` -- the commit stamp (``<sha>-dirty`` for a working tree with
  uncommitted changes; ``--require-clean`` refuses it) and the kernels' execution environment;
* :mod:`~mcal_utils.report.cli` -- the command line (``__main__`` runs it).
"""

from mcal_utils.report.build import build_report, rebuild_index
from mcal_utils.report.cli import main
from mcal_utils.report.content import GLOSSARY, PAPERS, QUESTIONS
from mcal_utils.report.runs import NotebookResult, RunSummary, read_run

__all__ = [
    "main",
    "build_report",
    "rebuild_index",
    "NotebookResult",
    "RunSummary",
    "read_run",
    "PAPERS",
    "QUESTIONS",
    "GLOSSARY",
]
