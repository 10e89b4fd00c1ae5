"""Predict the wall time of notebook 05's ``long`` profile before running it, from measured steps.

    python benchmarks/predict_long.py [RUN_CACHE] --out reports/long/predictions.json

``RUN_CACHE``: a run cache of notebook 05's b1 experiment at the ``default`` profile (any seeds); default:
the one ``make report`` left on this machine for this code (``loop.cache_root``; refused when absent).
The rates of :class:`mcal_utils.cost.CostModel` (seconds per mini-batch-epoch, per test image x pass, per
candidate x pass) are fitted on its records and applied to the ``long`` profile's step plans (300 epochs,
60 acquisitions, the profile's seeds, 2 workers). The JSON holds the prediction per notebook; the report
builder copies ``predicted_s`` beside the measured wall time of the long build (its index card).
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from mcal_utils import loop, profiles
from mcal_utils.cost import CostModel
from mcal_utils.protocols import deimos_mnist

NOTEBOOK = "05_deimos_mnist"


def plans_for(settings, cfgs):
    n_test = settings["test_size"]
    return {c.method: deimos_mnist.step_plan("b1", c, epochs=c.train["epochs"], n_test=n_test, eval_passes=c.T_eval,
                                             passes=c.T, n_candidates=int(c.n_candidates),
                                             batchbald_samples=settings["batchbald_samples"]) for c in cfgs}


def default_cache() -> Path:
    """Where ``make report`` (default profile, this code, this machine) keeps 05's b1 grid."""
    default = profiles.resolve(NOTEBOOK, "default")
    cfgs = deimos_mnist.configs("b1", default, list(range(default.n_seeds)))
    return loop.cache_root(NOTEBOOK, "default-b1", cfgs)


def predict(run_cache: Path, workers: int = 2) -> dict:
    measured = loop.load_results(run_cache)
    default = profiles.resolve(NOTEBOOK, "default")
    long = profiles.resolve(NOTEBOOK, "long")
    default_cfgs = deimos_mnist.configs("b1", default, [0])
    long_cfgs = deimos_mnist.configs("b1", long, [0])
    model = CostModel.fit(measured[measured["method"].isin({c.method for c in default_cfgs})],
                          plans_for(default, default_cfgs))
    first = long_cfgs[0]
    budgets = [first.initial_size + s * first.k for s in range(first.n_steps + 1)]
    table, wall_s = model.predict_grid(plans_for(long, long_cfgs), budgets, long.n_seeds, workers=workers)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {NOTEBOOK: {"predicted_s": round(float(wall_s), 1), "workers": workers, "profile": "long",
                       "fitted_on": f"{len(measured)} measured steps of the default b1 grid ({run_cache.name})",
                       "commit": commit,
                       "per_method_s": {str(k): round(float(v), 1) for k, v in table.sum(axis=1).items()}}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_cache", type=Path, nargs="?", default=None)
    ap.add_argument("--out", type=Path, default=Path("reports/long/predictions.json"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    run_cache = args.run_cache.expanduser() if args.run_cache else default_cache()
    if not run_cache.is_dir():
        ap.error(f"no default b1 run cache at {run_cache}: run `make report` first, or pass a run cache")
    pred = predict(run_cache, args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**old, **pred}, indent=1, sort_keys=True) + "\n")
    print(json.dumps(pred, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
