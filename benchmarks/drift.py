"""Cross-machine drift of the report's findings: two rendered reports, finding by finding.

    python benchmarks/drift.py reports /tmp/reports-avx2 --out reports/drift.md

Each report folder holds the ``run.json`` that ``python -m mcal_utils.report`` writes. For every
notebook the script sets the two findings side by side and compares

* the **verdicts** (the words of ``mcal_utils.compare.VERDICTS``, in the order they appear), which
  must be equal for the findings to survive the drift, and
* the **headline statistics**: every signed effect with a 95 % CI (``+0.0123 [95 % CI ...]``) and
  every other number of the finding, with the largest absolute difference.

The typical use: build once natively, once with ``make report ISA=avx2 REPORT_OUT=...`` (the
kernels of a CPU without AVX-512), from empty run caches, and compare. Exit status 1 when a verdict
differs.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

VERDICT_WORDS = ("supported", "contradicted", "not resolved at this scale")
_VERDICT_RE = re.compile("|".join(re.escape(w) for w in sorted(VERDICT_WORDS, key=len, reverse=True)))
_EFFECT_RE = re.compile(r"([+\-−]?\d+\.\d+) \[95 % CI ([+\-−]?\d+\.\d+), ([+\-−]?\d+\.\d+)\]")
_NUMBER_RE = re.compile(r"(?<![\w.])[+\-−]?\d+(?:\.\d+)?(?:e[+\-]?\d+)?")


def _num(text: str) -> float:
    return float(text.replace("−", "-"))


def verdicts(finding: str) -> list[str]:
    """The verdict words of a finding, in order."""
    return _VERDICT_RE.findall(finding)


def effects(finding: str) -> list[tuple[float, float, float]]:
    """Every ``effect [95 % CI lo, hi]`` of a finding, in order."""
    return [(_num(a), _num(b), _num(c)) for a, b, c in _EFFECT_RE.findall(finding)]


def numbers(finding: str) -> list[float]:
    return [_num(x) for x in _NUMBER_RE.findall(finding)]


def compare_runs(run_a: dict, run_b: dict) -> list[dict]:
    """One row per notebook present in either ``run.json``: findings, verdicts, effect differences."""
    a = {n["name"]: n for n in run_a.get("notebooks", [])}
    b = {n["name"]: n for n in run_b.get("notebooks", [])}
    rows = []
    for name in sorted(set(a) | set(b)):
        fa, fb = a.get(name, {}).get("finding", ""), b.get(name, {}).get("finding", "")
        va, vb = verdicts(fa), verdicts(fb)
        ea, eb = effects(fa), effects(fb)
        na, nb = numbers(fa), numbers(fb)
        d_eff = max((abs(x[0] - y[0]) for x, y in zip(ea, eb)), default=float("nan"))
        d_num = max((abs(x - y) for x, y in zip(na, nb)), default=float("nan")) if len(na) == len(nb) else float("nan")
        rows.append({"notebook": name, "verdicts_a": va, "verdicts_b": vb, "same_verdicts": va == vb,
                     "same_text": fa == fb, "effects_a": ea, "effects_b": eb, "max_effect_change": d_eff,
                     "max_number_change": d_num, "finding_a": fa, "finding_b": fb})
    return rows


def _records_by_run(runs_root: Path) -> dict[tuple, list]:
    """{(notebook, label without its cache key, method, seed): records without timings} under a run cache."""
    out = {}
    for cfg in sorted(runs_root.rglob("config.json")):
        run_dir = cfg.parent
        rel = run_dir.relative_to(runs_root).parts  # notebook / label-key / method / seed_s
        if len(rel) < 4:
            continue
        label = rel[1].rsplit("-", 1)[0]
        recs = []
        for step in sorted((run_dir / "steps").glob("step_*.json")):
            rec = json.loads(step.read_text(encoding="utf-8"))
            rec.pop("timings", None)
            recs.append(rec)
        out[(rel[0], label, *rel[2:])] = recs
    return out


def compare_run_caches(root_a: Path, root_b: Path) -> list[dict]:
    """Per notebook: runs in both caches, how many have identical records (timings aside), how many
    picked the same points at every step, and the largest change of a test metric."""
    a, b = _records_by_run(root_a), _records_by_run(root_b)
    rows: dict[str, dict] = {}
    for key in sorted(set(a) & set(b)):
        r = rows.setdefault(key[0], {"notebook": key[0], "runs": 0, "identical": 0, "same_picks": 0,
                                     "max_metric_change": 0.0})
        r["runs"] += 1
        ra, rb = a[key], b[key]
        r["identical"] += int(ra == rb)
        r["same_picks"] += int([x.get("acquired") for x in ra] == [x.get("acquired") for x in rb])
        for x, y in zip(ra, rb):
            for m, v in x.get("metrics", {}).items():
                if m in y.get("metrics", {}):
                    r["max_metric_change"] = max(r["max_metric_change"], abs(float(v) - float(y["metrics"][m])))
    return list(rows.values())


def runs_markdown(rows: list[dict]) -> str:
    out = ["| notebook | runs compared | identical records | same picks at every step | largest change of a "
           "test metric |", "|---|---|---|---|---|"]
    out += [f"| {r['notebook']} | {r['runs']} | {r['identical']} | {r['same_picks']} | {r['max_metric_change']:.4g} |"
            for r in rows]
    return "\n".join(out) + "\n"


def to_markdown(rows: list[dict], label_a: str, label_b: str) -> str:
    out = [f"# Findings under drift: {label_a} vs {label_b}", "",
           "| notebook | verdicts (A) | same verdicts in B | same text | largest change of an effect | "
           "largest change of any number |", "|---|---|---|---|---|---|"]
    for r in rows:
        v = ", ".join(r["verdicts_a"]) or "(no verdict word)"
        out.append(f"| {r['notebook']} | {v} | {'yes' if r['same_verdicts'] else '**NO**'} | "
                   f"{'yes' if r['same_text'] else 'no'} | {r['max_effect_change']:.4g} | {r['max_number_change']:.4g} |")
    out += ["", "## The findings", ""]
    for r in rows:
        out += [f"### {r['notebook']}", "", f"- A: {r['finding_a']}", f"- B: {r['finding_b']}", ""]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report_a", type=Path)
    ap.add_argument("report_b", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    ap.add_argument("--runs", type=Path, nargs=2, default=None, metavar=("RUNS_A", "RUNS_B"),
                    help="also compare the run caches (<data dir>/runs) of the two builds, record by record")
    args = ap.parse_args(argv)
    runs = []
    for folder in (args.report_a, args.report_b):
        path = folder / "run.json"
        if not path.exists():
            ap.error(f"{path} does not exist: build the report there first")
        runs.append(json.loads(path.read_text(encoding="utf-8")))
    rows = compare_runs(*runs)
    text = to_markdown(rows, str(args.report_a), str(args.report_b))
    if args.runs:
        text += "\n## The runs behind them\n\n" + runs_markdown(compare_run_caches(*args.runs))
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(r["same_verdicts"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
