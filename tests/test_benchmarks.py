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


def test_drift_compares_verdicts_and_effects(tmp_path):
    drift = _load(BENCH / "drift.py")
    a = {"notebooks": [{"name": "02", "finding": "EntropyD − Entropy AUBC +0.0121 [95 % CI −0.0030, +0.0272], 8 seeds: "
                                                 "**not resolved at this scale**; BALD: **contradicted**."},
                       {"name": "03", "finding": "ratio 0.61 (95 % CI 0.50–0.74): **supported**"}]}
    b = {"notebooks": [{"name": "02", "finding": "EntropyD − Entropy AUBC +0.0063 [95 % CI −0.0100, +0.0226], 8 seeds: "
                                                 "**not resolved at this scale**; BALD: **contradicted**."},
                       {"name": "03", "finding": "ratio 0.97 (95 % CI 0.80–1.10): **not resolved at this scale**"}]}
    rows = {r["notebook"]: r for r in drift.compare_runs(a, b)}
    assert rows["02"]["verdicts_a"] == ["not resolved at this scale", "contradicted"]
    assert rows["02"]["same_verdicts"] and not rows["02"]["same_text"]
    assert rows["02"]["max_effect_change"] == pytest.approx(0.0058)
    assert not rows["03"]["same_verdicts"]
    for name, run in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(__import__("json").dumps(run))
    assert drift.main([str(tmp_path / "a"), str(tmp_path / "a")]) == 0
    assert drift.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "d.md")]) == 1
    assert "**NO**" in (tmp_path / "d.md").read_text()


def test_makefile_isa_avx2_matches_the_drift_settings():
    from mcal_utils.environment import DRIFT_SETTINGS

    text = (BENCH.parent / "Makefile").read_text()
    block = text.split("ifeq ($(ISA),avx2)")[1].split("else")[0]
    exported = dict(line.removeprefix("export ").split(" := ", 1) for line in block.strip().splitlines())
    assert exported == DRIFT_SETTINGS


def test_drift_compares_run_caches_record_by_record(tmp_path):
    import json

    drift = _load(BENCH / "drift.py")

    def write(root, key, metric, acquired):
        d = root / "02_x" / f"default-mnist32-{key}" / "random" / "seed_0"
        (d / "steps").mkdir(parents=True)
        (d / "config.json").write_text("{}")
        for s, (m, a) in enumerate(zip(metric, acquired)):
            (d / "steps" / f"step_{s:04d}.json").write_text(json.dumps(
                {"metrics": {"accuracy": m}, "acquired": a, "timings": {"step_s": s * 1.5 + len(key)}}))

    write(tmp_path / "a", "aaaa", [0.5, 0.6], [[1], []])
    write(tmp_path / "b", "bbbbbb", [0.5, 0.6], [[1], []])  # other cache key, other timings: same records
    write(tmp_path / "c", "cccc", [0.5, 0.625], [[2], []])
    same = drift.compare_run_caches(tmp_path / "a", tmp_path / "b")
    assert same == [{"notebook": "02_x", "runs": 1, "identical": 1, "same_picks": 1, "max_metric_change": 0.0}]
    moved = drift.compare_run_caches(tmp_path / "a", tmp_path / "c")[0]
    assert moved["identical"] == 0 and moved["same_picks"] == 0
    assert moved["max_metric_change"] == pytest.approx(0.025)
    assert "| 02_x | 1 | 0 | 0 |" in drift.runs_markdown([moved])
