"""Run a small grid of every strategy on the test suite's tiny tasks; dump records (no timings) as JSON."""
import json, sys, torch
torch.set_num_threads(1)
import test_loop as tl
from mcal_utils import loop, acquisition
out = {}
root = sys.argv[1]
names = sorted(acquisition.STRATEGIES)
for s in names:
    req = acquisition.STRATEGIES[s].requires
    kind = "regression" if s in ("max_variance",) else "classification"
    changes = dict(strategy=s, seed=5, n_steps=2)
    if s in ("deimos", "max_variance"):
        changes.update(task=f"{tl.MOD}:tiny_task", task_options={"kind": "regression"},
                       model=f"{tl.MOD}:tiny_regression_model", train={**tl.FAST, "epochs": 2, "checkpoint": "last"},
                       val_size=20, n_candidates=40, tau_inv=1e-3, initial="random")
    try:
        c = tl.cfg(**changes)
        res = loop.run_experiment(c, f"{root}/{s}")
        recs = [{k: v for k, v in r.items() if k != "timings"} for r in res.records]
        out[s] = recs
    except Exception as e:
        out[s] = f"ERROR {type(e).__name__}: {e}"
json.dump(out, open(sys.argv[2], "w"), sort_keys=True, default=str)
print({k: (v if isinstance(v, str) else len(v)) for k, v in out.items()})
