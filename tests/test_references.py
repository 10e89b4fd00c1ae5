"""docs/REFERENCES.md and mcal_utils.references list the same numbers with the same sources."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcal_utils import references

DOC = Path(__file__).resolve().parents[1] / "docs" / "REFERENCES.md"
_ROW = re.compile(r"^\|(?P<cells>.*)\|\s*$")


def _doc_rows() -> dict[str, tuple[str, str, str]]:
    """``constant -> (number, what, source)`` from every 4-column table row whose last cell is `NAME`."""
    rows: dict[str, tuple[str, str, str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = _ROW.match(line.strip())
        if not m:
            continue
        cells = [c.strip() for c in m.group("cells").split("|")]
        if len(cells) != 4 or not (cells[3].startswith("`") and cells[3].endswith("`")):
            continue
        name = cells[3][1:-1]
        assert name not in rows, f"{name} listed twice in {DOC.name}"
        rows[name] = (cells[0], cells[1], cells[2])
    return rows


DOC_ROWS = _doc_rows()
MODULE = dict(references.all_references())


def test_every_constant_is_documented_and_nothing_else():
    assert MODULE, "mcal_utils.references defines no Reference"
    assert sorted(set(MODULE) - set(DOC_ROWS)) == [], "constants missing from docs/REFERENCES.md"
    assert sorted(set(DOC_ROWS) - set(MODULE)) == [], "rows of docs/REFERENCES.md with no constant"


@pytest.mark.parametrize("name", sorted(MODULE))
def test_value_what_and_source_agree(name):
    ref = MODULE[name]
    number, what, source = DOC_ROWS[name]
    assert number == references.format_value(ref.value)
    assert what == ref.what
    assert source == ref.source


@pytest.mark.parametrize("name", sorted(MODULE))
def test_source_is_named(name):
    source = MODULE[name].source
    assert source.strip()
    # a repository number names its file; a paper number names a table, figure, section or appendix
    if "repository" in source:
        assert re.search(r"\.(ipynb|npy|py)\b", source), source
    else:
        assert re.search(r"(Table|Figure|section|Appendix)", source), source


def test_appendix_a_ratios_match_optimality_module():
    from mcal_utils import optimality

    assert references.values(references.DEIMOS_APPENDIX_A_RATIOS) == dict(optimality.PAPER_RESULTS)


def test_values_strips_sources():
    t2 = references.values(references.DEIMOS_TABLE2)
    assert t2["DEIMOS"] == (20, 24, 27, 41)
    assert references.values(references.DEIMOS_FINAL_AUBC)["b100"]["BatchBALD"] == (0.9512, 0.8923)
    with pytest.raises(TypeError):
        references.values([1, 2])
