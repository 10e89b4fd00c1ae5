"""A paper-scale lockstep grid on the GPU, as many steps as fit, and the cost model of the protocol.

DEIMOS (Nagpal & Knowles) MNIST 7-vs-9, batch 1, as its paper runs it: 10 balanced initial labels,
200 acquisitions of 1, 2500 random candidates per step, J = T = 50 masks / passes, Adam 300 epochs
(batch 128, L2 0.0005 / N, final weights), test accuracy of the mean of 100 MC passes, raw pixels;
5 methods (DEIMOS, BALD, MaxEnt, Random, robust k-center with 3 s per selection) x 3 seeds = 15 runs
advanced in lockstep (:func:`mcal_utils.loop.lockstep.run_lockstep`, one population fit per step).

The grid runs until ``--budget-s`` is spent (no new step starts after it), then the measured steps
give the cost model of all 201 steps: training scales with the number of mini-batches of the step
(``ceil(n / 128)`` with n = 10 + step labels; launch-bound on a GPU), evaluation and selection
with their measured means per method. Writes ``gpu_grid.md`` (and the run directories under
``<out>/grid_runs``) to ``--out``.

    python benchmarks/gpu_grid.py --out gpu_check_out --budget-s 130
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = (("DEIMOS", "deimos", {}), ("BALD", "bald", {}), ("MaxEnt", "entropy_mc", {}), ("Random", "random", {}),
           ("Robust k-center", "kcenter_robust", {"outlier_fraction": 0.001, "time_limit": 3.0}))
N_STEPS, INITIAL, BATCH = 200, 10, 128


def paper_configs(seeds=(0, 1, 2), n_steps: int = N_STEPS, smoke: bool = False) -> list:
    """The 15 configs of the protocol; ``smoke``: the same grid, tiny (a check of this script on a CPU)."""
    from mcal_utils import loop

    base = loop.ExperimentConfig(
        task="mnist79", task_options={"pixel_scale": "raw"}, model="deimos_mnist79", strategy="random",
        initial_size=INITIAL, initial="balanced", k=1, n_steps=n_steps, val_size=0,
        T=50, n_candidates=2500, tau_inv=8.37e-5, T_eval=100,
        train=dict(optimizer="adam", lr=0.001, epochs=300, batch_size=BATCH, l2_dense=0.0005, checkpoint="last",
                   batching="even"))
    if smoke:
        base = base.replace(pool_size=400, test_size=100, T=3, n_candidates=40, T_eval=2,
                            train={**base.train, "epochs": 1})
    return [base.replace(strategy=s, label=label, strategy_options=opts, seed=seed)
            for label, s, opts in METHODS for seed in seeds]


def cost_model(records_by_run: dict, n_steps: int = N_STEPS) -> dict:
    """Seconds of the whole protocol (steps 0..n_steps) predicted from the measured records:
    ``train`` (sum over runs of their fit shares, per mini-batch, x the batches of every step),
    ``eval`` and ``select`` (measured means per run and step x the steps)."""
    measured_steps = min(len(r) for r in records_by_run.values())
    if measured_steps == 0:
        raise ValueError("no step was measured")
    per_batch, evals, selects = [], [], []
    for step in range(measured_steps):
        recs = [r[step] for r in records_by_run.values()]
        n_batches = math.ceil(recs[0]["budget"] / BATCH)
        per_batch.append(sum(r["timings"]["train_s"] for r in recs) / n_batches)
        evals.append(sum(r["timings"]["eval_s"] for r in recs))
        selects.append(sum(r["timings"]["select_s"] for r in recs))
    # step 0 includes the first population fit's warm-up: use the later steps when there are some
    use = slice(1, None) if measured_steps > 1 else slice(0, None)
    mean = lambda xs: sum(xs[use]) / len(xs[use])  # noqa: E731
    batches = sum(math.ceil((INITIAL + s) / BATCH) for s in range(n_steps + 1))
    train, ev, sel = mean(per_batch) * batches, mean(evals) * (n_steps + 1), mean(selects) * n_steps
    return dict(measured_steps=measured_steps, train_s=train, eval_s=ev, select_s=sel, total_s=train + ev + sel,
                train_per_batch_s=mean(per_batch), eval_per_step_s=mean(evals), select_per_step_s=mean(selects))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=130.0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (checks the script, times nothing useful)")
    args = parser.parse_args(argv)
    import torch

    from mcal_utils import loop
    from mcal_utils.loop.lockstep import run_lockstep

    args.out.mkdir(parents=True, exist_ok=True)
    root = args.out / "grid_runs"
    configs = paper_configs(smoke=args.smoke)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no CUDA device)"
    t0 = time.perf_counter()
    run_lockstep(configs, root, data_dir=args.data_dir, max_seconds=args.budget_s, log=True)
    wall = time.perf_counter() - t0
    records = {(c.method, c.seed): loop.read_records(loop.run_dir_for(root, c)) for c in configs}
    model = cost_model(records)
    by_method = {}
    for (method, _), recs in records.items():
        by_method.setdefault(method, []).extend(r["timings"]["select_s"] for r in recs if r["step"] > 0)
    acc = {k: recs[-1]["metrics"]["accuracy"] for k, recs in records.items() if recs}
    lines = [
        "## Paper-scale lockstep grid: DEIMOS 7-vs-9 batch 1 (15 runs)" + (" -- SMOKE sizes" if args.smoke else ""), "",
        f"{device}; {model['measured_steps']} of {N_STEPS + 1} steps of all 15 runs in {wall:.0f} s "
        f"(budget {args.budget_s:.0f} s; the run directories resume).", "",
        "| quantity | seconds |", "|---|---|",
        f"| population fit (15 runs x 300 epochs), per mini-batch of an epoch | {model['train_per_batch_s']:.3g} |",
        f"| evaluation (100 MC passes, test set), 15 runs, per step | {model['eval_per_step_s']:.3g} |",
        f"| selection, 15 runs, per step | {model['select_per_step_s']:.3g} |",
        f"| **predicted whole protocol (201 steps)**: train | {model['train_s']:.0f} |",
        f"| predicted: evaluation | {model['eval_s']:.0f} |",
        f"| predicted: selection | {model['select_s']:.0f} |",
        f"| **predicted total** | **{model['total_s']:.0f}** ({model['total_s'] / 60:.1f} min; goal <= 10 min: "
        f"{'met' if model['total_s'] <= 600 else 'not met'}) |", "",
        "Selection seconds per step and run, by method (measured, steps >= 1): "
        + (", ".join(f"{m} {sum(v) / len(v):.3g}" for m, v in by_method.items() if v) or "only step 0 ran") + ".", "",
        "Last accuracy per run: " + ", ".join(f"{m} s{s} {a:.4f}" for (m, s), a in acc.items()) + ".", "",
    ]
    (args.out / "gpu_grid.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
