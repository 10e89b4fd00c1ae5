"""Predict the wall time of the ``long`` profiles (notebooks 02 and 05) before running them, from measured steps.

    python benchmarks/predict_long.py [--notebook 02|05|all] [--run-cache DIR] --out reports/long/predictions.json

The rates of :class:`mcal_utils.cost.CostModel` (seconds per mini-batch-epoch, per test image x pass, per
candidate x pass) are fitted on the records of the notebook's grid at the ``default`` profile -- by default the
run cache ``make report`` left on this machine for this code (``loop.cache_root``; refused when absent) -- and
applied to the ``long`` profile's step plans and seeds on 2 workers. 05: its b1 experiment (300 epochs, 60
acquisitions); 02: its strategies from a warm start (``profiles.py`` says the sizes). The JSON holds the
prediction per notebook (other notebooks' entries are kept); the report builder copies ``predicted_s`` beside
the measured wall time of the long build (its index card).
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from mcal_utils import loop, profiles
from mcal_utils.cost import CostModel
from mcal_utils.protocols import deimos_mnist
from mcal_utils.protocols import entropy_mnist_svhn as entropy

NOTEBOOK = "05_deimos_mnist"
NOTEBOOK_02 = "02_strategy_comparison"


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


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def _experiment_02(profile: str):
    """Notebook 02's experiment at ``profile`` on the data set ``auto`` resolves to here, with its task."""
    settings = profiles.resolve(NOTEBOOK_02, profile)
    dataset = entropy.resolve_dataset(settings["dataset"])
    task = entropy.load_task(dataset)
    return settings, entropy.experiment_from(settings, dataset=dataset, n_train=len(task.y_train)), task


def default_cache_02() -> Path:
    """Where ``make report`` (default profile, this code, this machine) keeps 02's grid."""
    _, experiment, _ = _experiment_02("default")
    return loop.cache_root(NOTEBOOK_02, f"default-{experiment.dataset}", experiment.configs())


def predict_02(run_cache: Path, workers: int = 2) -> dict:
    """Notebook 02's ``long`` grid from the rates of its measured ``default`` grid."""
    measured = loop.load_results(run_cache)
    default, experiment, task = _experiment_02("default")
    split = experiment.splits(task)[experiment.seeds[0]]
    strategy_of = {c.method: c.strategy for c in experiment.configs()}
    plans = entropy.step_plans(
        {m: strategy_of[m] for m in measured["method"].astype(str).unique() if m in strategy_of},
        epochs=default["epochs"],
        batch_size=default["batch_size"],
        n_test=len(split.test),
        n_candidates=min(default["n_candidates"] or len(split.pool), len(split.pool)),
        T=default["T"],
    )
    model = CostModel.fit(measured[measured["method"].astype(str).isin(plans)], plans)
    long = dict(profiles.resolve(NOTEBOOK_02, "long"))
    long["workers"] = workers
    cost = entropy.profile_cost(model, long, n_pool=len(split.pool), n_test=len(task.y_test))
    return {NOTEBOOK_02: {"predicted_s": round(float(cost.wall_s), 1), "workers": cost.n_workers, "profile": "long",
                          "fitted_on": f"{len(measured)} measured steps of the default grid ({run_cache.name})",
                          "commit": _commit()}}


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
    commit = _commit()
    return {NOTEBOOK: {"predicted_s": round(float(wall_s), 1), "workers": workers, "profile": "long",
                       "fitted_on": f"{len(measured)} measured steps of the default b1 grid ({run_cache.name})",
                       "commit": commit,
                       "per_method_s": {str(k): round(float(v), 1) for k, v in table.sum(axis=1).items()}}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebook", choices=("02", "05", "all"), default="all")
    ap.add_argument("--run-cache", type=Path, default=None, help="the default grid's run cache (one notebook only)")
    ap.add_argument("--out", type=Path, default=Path("reports/long/predictions.json"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    if args.run_cache is not None and args.notebook == "all":
        ap.error("--run-cache names one notebook's grid: pass --notebook 02 or 05 with it")
    pred: dict = {}
    for nb, find, run in (("02", default_cache_02, predict_02), ("05", default_cache, predict)):
        if args.notebook not in (nb, "all"):
            continue
        run_cache = args.run_cache.expanduser() if args.run_cache else find()
        if not run_cache.is_dir():
            ap.error(f"no default run cache of notebook {nb} at {run_cache}: run `make report` first, or pass one")
        pred.update(run(run_cache, args.workers))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**old, **pred}, indent=1, sort_keys=True) + "\n")
    print(json.dumps(pred, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
