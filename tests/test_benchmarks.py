"""The benchmark scripts load and expose the runner contract; the table renders (no timing here)."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(BENCH.glob("bench_*.py")), ids=lambda p: p.stem)
def test_benchmark_module_exposes_run(path):
    module = _load(path)
    assert callable(module.run)
    assert "quick" in module.run.__code__.co_varnames


def test_run_all_table_and_unknown_name(capsys):
    run_all = _load(BENCH / "run_all.py")
    rows = [dict(benchmark="b", case="c|d", ours_s=0.5, baseline="x", baseline_s=2.0, ratio=4.0,
                 target=">= 2x", met=True, notes="n"), dict(benchmark="b", case="e", ours_s=12345.0, met=False)]
    text = run_all.markdown(rows, "# T")
    lines = text.splitlines()
    assert lines[0] == "# T" and lines[2].startswith("| benchmark | case |")
    assert "| b | c\\|d | 0.5 | x | 2 | 4 | >= 2x | yes | n |" in text
    assert "12,345" in text and "**NO**" in text and "| — |" in text
    with pytest.raises(SystemExit):
        run_all.main(["--only", "no_such_benchmark"])
    assert "matches none of" in capsys.readouterr().err
