"""The index's cards: a notebook's central claim and the verdicts of its finding, the predicted time, the
link to a long-profile build, ``run.json``'s rows -- on tiny notebooks and run.json files written here."""

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mcal_utils import compare
from mcal_utils.report import build, cli, notebook, pages, runs

CLAIM = (
    "**Central claim** (the MC-dropout-entropy paper, Section 4): MC-dropout entropy picks better examples\n"
    "than random sampling once the model is reasonably trained."
)
CLAIM_LINE = " ".join(CLAIM.split())
GPU = "not tested here: needs 37 steps of 200 epochs on SVHN, est. 9 h on a GPU"


def _finding_cell(markdown: str):
    cell = new_code_cell(
        "display(Markdown(finding))",
        outputs=[new_output("display_data", {"text/markdown": markdown, "text/plain": "<md>"})],
    )
    cell.metadata["tags"] = ["finding"]
    return cell


def _nb(intro: str, finding: str = "", predicted=None):
    cells = [new_markdown_cell(intro), new_markdown_cell("## Later\n\n**Central claim**: not in the first cell.")]
    if finding:
        cells.append(_finding_cell(finding))
    if predicted is not None:
        cell = new_code_cell("display(...)", outputs=[new_output("display_data", predicted)])
        cell.metadata["tags"] = ["predicted-time"]
        cells.append(cell)
    return new_notebook(cells=cells)


# ---------------------------------------------------------------------------
# reading the notebook
# ---------------------------------------------------------------------------
def test_the_central_claim_is_the_paragraph_of_the_first_markdown_cell_that_starts_with_the_label():
    nb = _nb(f"# 02 — Title\n\nWhat this notebook does,\nover two lines.\n\n{CLAIM}\n\n| a | b |\n|---|---|")
    assert notebook.central_claim(nb) == CLAIM_LINE
    assert notebook.notebook_intro(nb) == "What this notebook does, over two lines."
    # the claim first: the introduction skips it
    first = _nb(f"# Title\n\n{CLAIM}\n\nThe introduction.")
    assert notebook.central_claim(first) == CLAIM_LINE and notebook.notebook_intro(first) == "The introduction."
    # an older notebook: no claim paragraph (a claim in a later cell, or mid-paragraph, does not count)
    older = _nb("# Title\n\nThe introduction mentions the **Central claim** in passing.")
    assert notebook.central_claim(older) == ""
    assert notebook.central_claim(new_notebook(cells=[new_code_cell("1")])) == ""


def test_verdicts_are_the_bold_verdict_words_of_the_finding_in_order():
    finding = (
        "On MNIST: A − B AUBC +0.0100 [95 % CI +0.0020, +0.0180], 8 seeds, p = 0.0078: **supported**; "
        "supported against 1, contradicted against 0, not resolved against 2 of 3 methods; "
        "vs C -0.0050 [95 % CI -0.02, +0.01], p = 0.469: **not resolved at this scale**; "
        "ECE (**contradicted** for 'MC averaging calibrates better'); vs D: **Not resolved at this scale**."
    )
    assert notebook.finding_verdicts(finding) == [
        compare.SUPPORTED,
        compare.NOT_RESOLVED,
        compare.CONTRADICTED,
        compare.NOT_RESOLVED,
    ]
    assert notebook.finding_verdicts("Greedy reaches 99.88 % of the best batch; the claim fails in 2.") == []
    assert notebook.finding_verdicts("") == []


def test_verdicts_of_the_decision_rule_are_read_back_from_its_sentences():
    """compare writes the verdicts; the report reads them from its very sentences."""
    better = compare.paired(
        np.array([0.3, 0.2, 0.25, 0.31, 0.22, 0.27, 0.24, 0.29]), np.zeros(8), a="A", b="B", metric="AUBC"
    )
    tie = compare.paired(np.array([0.1, -0.1, 0.2, -0.2]), np.zeros(4), a="A", b="C", metric="AUBC")
    finding = f"{better.sentence()}; {tie.short()}."
    assert notebook.finding_verdicts(finding) == [better.verdict, tie.verdict]
    assert better.verdict == compare.SUPPORTED and tie.verdict == compare.NOT_RESOLVED


@pytest.mark.parametrize(
    "text, expected",
    [
        (f"The paper's claim: {GPU}.", [GPU]),
        (f"**{GPU}**", [GPU]),
        (
            "**not tested here**: needs the whole pool, est. 2 h on one GPU; the rest **supported**.",
            ["not tested here: needs the whole pool, est. 2 h on one GPU", compare.SUPPORTED],
        ),
        ("Batch 25: not tested here.", ["not tested here"]),
    ],
)
def test_a_claim_not_tested_at_this_scale_is_a_verdict_with_what_it_needs(text, expected):
    assert notebook.finding_verdicts(text) == expected


def test_predicted_seconds_come_from_the_json_output_of_the_predicted_time_cell():
    nb = _nb("# T", predicted={"text/markdown": "**Predicted**: 14 min", "application/json": {"predicted_s": 812.5}})
    assert notebook.predicted_seconds(nb) == 812.5
    assert notebook.predicted_seconds(_nb("# T")) is None
    for bad in ({"predicted_s": "soon"}, {"predicted_s": -1}, {"predicted_s": True}, {"other": 1.0}):
        assert notebook.predicted_seconds(_nb("# T", predicted={"application/json": bad})) is None


# ---------------------------------------------------------------------------
# run.json
# ---------------------------------------------------------------------------
def test_run_json_rows_round_trip_and_older_rows_get_their_verdicts(tmp_path):
    row = runs.NotebookResult("02_x", "ok", 12.0, "default", finding="A: **contradicted**", claim=CLAIM_LINE)
    assert "predicted_s" not in row.to_row()  # absent, not null, when the notebook does not give it
    assert row.to_row()["verdicts"] == row.verdicts == [compare.CONTRADICTED]
    timed = runs.NotebookResult("03_y", "ok", 30.0, "default", predicted_s=25.0)
    summary = runs.RunSummary("default", "abc1234", 42.0, {"cpu": "x"}, [row, timed], built="2026-01-01 00:00 UTC")
    runs.write_run(tmp_path, summary)
    data = json.loads((tmp_path / "run.json").read_text())
    assert set(data) == {"profile", "commit", "total_seconds", "built", "environment", "notebooks"}
    assert data["notebooks"][1]["predicted_s"] == 25.0
    back = runs.read_run(tmp_path)
    assert back.notebooks == [row, timed] and back.built == summary.built
    # a row of an older run.json: no claim, verdicts, commit or predicted time; unknown keys ignored
    old = {
        "name": "05_z",
        "status": "ok",
        "seconds": 3.0,
        "profile": "default",
        "finding": "x: **supported**",
        "from_the_future": 1,
        "verdicts": ["stale"],
    }
    r = runs.NotebookResult.from_row(old, commit="old1234")
    assert (r.verdicts, r.claim, r.commit, r.predicted_s) == ([compare.SUPPORTED], "", "old1234", None)


# ---------------------------------------------------------------------------
# the cards
# ---------------------------------------------------------------------------
def _card_html(index: str, name: str) -> str:
    m = re.search(rf'<section class="mcal-nb" id="nb-{name}">.*?</section>', index, flags=re.S)
    assert m, f"no card for {name}"
    return m.group(0)


def _write_run(folder: Path, profile: str, rows: list[runs.NotebookResult]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    runs.write_run(folder, runs.RunSummary(profile, "abc1234", sum(r.seconds for r in rows), {}, rows))


def test_a_card_shows_the_claim_and_the_headline_verdict_and_counts_the_others(tmp_path):
    finding = (
        f"vs A: **contradicted**; vs B: **not resolved at this scale**; vs C: **supported**; "
        f"vs D: **not resolved at this scale**; batch 25: {GPU}."
    )
    rows = [
        runs.NotebookResult(
            "02_claimed", "ok", 10.0, "default", finding=finding, claim=CLAIM_LINE, html="02_claimed.html"
        ),
        runs.NotebookResult("03_older", "ok", 5.0, "default", finding="x: **supported**", html="03_older.html"),
    ]
    _write_run(tmp_path, "default", rows)
    pages.write_index(tmp_path, runs.read_run(tmp_path))
    index = (tmp_path / "index.html").read_text()

    claimed = _card_html(index, "02_claimed")
    assert "<strong>Central claim</strong> (the MC-dropout-entropy paper, Section 4): MC-dropout entropy" in claimed
    badges = re.findall(r'<span class="mcal-badge mcal-v-([a-z-]+)( mcal-badge-sm)?"[^>]*>([^<]*)</span>', claimed)
    assert badges == [
        ("contradicted", "", "contradicted"),  # the headline: the finding's first verdict
        ("supported", " mcal-badge-sm", "supported"),
        ("not-resolved", " mcal-badge-sm", "2 × not resolved"),
        ("not-tested", " mcal-badge-sm", "not tested here"),
    ]
    assert f'title="{GPU}"' in claimed  # what the untested claim needs, on the badge
    assert "<strong>Finding:</strong> vs A: <strong>contradicted</strong>" in claimed  # the finding is kept
    # an older notebook (no claim paragraph): nothing extra, although its finding states a verdict
    older = _card_html(index, "03_older")
    assert "mcal-claim" not in older and "mcal-badge" not in older and "<strong>Finding:</strong>" in older


def test_a_claim_from_the_notebook_source_fills_an_older_row_and_no_verdict_is_said(tmp_path):
    _write_run(tmp_path, "default", [runs.NotebookResult("04_failed", "failed", 1.0, "default", error="boom")])
    pages.write_index(tmp_path, runs.read_run(tmp_path), claims={"04_failed": CLAIM_LINE})
    card = _card_html((tmp_path / "index.html").read_text(), "04_failed")
    assert "mcal-claim" in card and 'mcal-v-none"' in card and ">no verdict<" in card


def test_the_main_index_links_the_long_profile_run_of_a_notebook(tmp_path):
    main_rows = [runs.NotebookResult(n, "ok", 60.0, "default", html=f"{n}.html") for n in ("02_a", "05_b", "06_c")]
    _write_run(tmp_path, "default", main_rows)
    _write_run(
        tmp_path / "long",
        "long",
        [
            runs.NotebookResult("02_a", "ok", 7300.0, "long", html="02_a.html", predicted_s=6480.0,
                                finding="At 300 epochs: vs A **supported**; vs B **not resolved at this scale**."),
            runs.NotebookResult("05_b", "failed", 95.0, "long", html="05_b.html"),
        ],
    )
    pages.write_index(tmp_path, runs.read_run(tmp_path))
    index = (tmp_path / "index.html").read_text()

    a = _card_html(index, "02_a")
    assert '<a href="long/02_a.html">profile <code>long</code></a>' in a
    assert "2.0 h measured" in a and "108 min predicted by the cost model" in a
    assert "<strong>Long-run finding</strong>" in a and "At 300 epochs: vs A <strong>supported</strong>" in a
    assert 'mcal-v-supported"' in a.split("Long-run finding")[1]  # its own headline badge
    b = _card_html(index, "05_b")
    assert 'href="long/05_b.html"' in b and '<span class="failed">failed</span>' in b
    assert "95 s measured" in b and "predicted" not in b  # no predicted_s in its row: none shown
    assert "Long-run finding" not in b  # the failed long run has no finding
    assert "mcal-long" not in _card_html(index, "06_c")  # not in the long build
    # the long build's own index does not look for a long/long/
    pages.write_index(tmp_path / "long", runs.read_run(tmp_path / "long"))
    assert "mcal-meta mcal-long" not in (tmp_path / "long" / "index.html").read_text()


def test_the_forecast_in_predictions_json_fills_a_long_row_without_its_own(tmp_path):
    _write_run(tmp_path / "long", "long", [runs.NotebookResult("05_b", "ok", 3900.0, "long", html="05_b.html"),
                                            runs.NotebookResult("02_a", "ok", 10.0, "long", predicted_s=12.0)])
    (tmp_path / "long" / "predictions.json").write_text(
        '{"05_b": {"predicted_s": 3561.0, "workers": 2}, "02_a": {"predicted_s": 99.0}, "07": {"predicted_s": "x"}}')
    long = runs.long_runs(tmp_path)
    assert long["05_b"].predicted_s == 3561.0
    assert long["02_a"].predicted_s == 12.0  # the notebook's own value wins
    assert runs.long_predictions(tmp_path / "long") == {"05_b": 3561.0, "02_a": 99.0}
    (tmp_path / "long" / "predictions.json").write_text("{broken")
    assert runs.long_predictions(tmp_path / "long") == {}


def test_an_unreadable_long_run_is_ignored(tmp_path):
    _write_run(tmp_path, "default", [runs.NotebookResult("02_a", "ok", 1.0, "default")])
    (tmp_path / "long").mkdir()
    (tmp_path / "long" / "run.json").write_text("{not json")
    assert runs.long_runs(tmp_path) == {}
    assert runs.long_runs(tmp_path / "nowhere") == {}


@pytest.mark.parametrize("seconds, text", [(45.4, "45 s"), (119, "119 s"), (600, "10 min"), (7300, "2.0 h")])
def test_durations_read_naturally(seconds, text):
    assert pages.format_duration(seconds) == text


# ---------------------------------------------------------------------------
# arguments and the command line
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(notebooks=3), TypeError),
        (dict(profile=1), TypeError),
        (dict(only="02"), TypeError),
        (dict(only=[2]), TypeError),
        (dict(timeout="60"), TypeError),
        (dict(timeout=0), ValueError),
        (dict(require_clean="yes"), TypeError),
        (dict(out_dir=None), TypeError),
    ],
)
def test_build_report_checks_its_arguments_before_running_anything(tmp_path, kwargs, error):
    args = {**dict(notebooks=tmp_path, out_dir=tmp_path / "out", profile="smoke"), **kwargs}
    with pytest.raises(error):
        build.build_report(**args)
    assert not (tmp_path / "out").exists()


def test_index_only_re_renders_from_run_json_and_links_the_long_run(tmp_path, capsys):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    nbformat.write(_nb(f"# 02 — A\n\nIntro.\n\n{CLAIM}"), nbs / "02_a.ipynb")
    out = tmp_path / "reports"
    _write_run(
        out,
        "default",
        [runs.NotebookResult("02_a", "ok", 60.0, "default", html="02_a.html", finding="x: **supported**")],
    )
    _write_run(out / "long", "long", [runs.NotebookResult("02_a", "ok", 900.0, "long", html="02_a.html")])
    assert cli.main(["--index-only", "--notebooks", str(nbs), "--out", str(out)]) == 0
    card = _card_html((out / "index.html").read_text(), "02_a")
    assert "<strong>Central claim</strong>" in card and 'mcal-v-supported"' in card  # claim from the source
    assert 'href="long/02_a.html"' in card and "15 min measured" in card
    assert (out / "mathjax" / "MathJax.js").is_file()
    assert json.loads((out / "run.json").read_text())["notebooks"][0]["claim"] == ""  # run.json is left as it was
    assert "re-rendered" in capsys.readouterr().out
