"""The per-step cost model against hand-computed predictions."""
import numpy as np
import pandas as pd
import pytest

from mcal_utils.cost import CostModel, StepPlan


def _records(method, plan, budgets, rate_train, rate_eval, rate_select):
    rows = []
    for i, b in enumerate(budgets):
        u = plan.units(b)
        last = i == len(budgets) - 1
        rows.append(dict(method=method, step=i, budget=b, train_s=rate_train * u["train"],
                         eval_s=rate_eval * u["eval"], select_s=0.0 if last else rate_select * u["select"],
                         n_acquired_this_step=0 if last else 1))
    return rows


def test_units_by_hand():
    plan = StepPlan(epochs=300, batch_size=128, n_test=2037, eval_passes=100, n_candidates=3000, mc_passes=50)
    assert plan.units(10) == dict(train=300, eval=203700, select=150000)
    assert plan.units(129) == dict(train=600, eval=203700, select=150000)   # two mini-batches
    assert StepPlan(1, 128, 5, 0, 7, 0).units(3) == dict(train=1, eval=5, select=7)
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        StepPlan(epochs=0, batch_size=128, n_test=1, eval_passes=0, n_candidates=1, mc_passes=0)
    with pytest.raises(ValueError, match="budget"):
        plan.units(0)


def test_fit_recovers_rates_and_extrapolates_linearly():
    small = StepPlan(epochs=20, batch_size=128, n_test=500, eval_passes=10, n_candidates=600, mc_passes=10)
    rows = _records("deimos", small, [10, 11, 12, 13], 1e-3, 2e-5, 3e-6)
    rows += _records("random", StepPlan(20, 128, 500, 10, 600, 0), [10, 11, 12, 13], 1e-3, 2e-5, 1e-7)
    model = CostModel.fit(pd.DataFrame(rows), {"deimos": small, "random": StepPlan(20, 128, 500, 10, 600, 0)})
    assert model.rates["deimos"] == pytest.approx(dict(train=1e-3, eval=2e-5, select=3e-6))
    assert model.n_steps == {"deimos": 4, "random": 4}
    paper = StepPlan(epochs=300, batch_size=128, n_test=2037, eval_passes=100, n_candidates=3000, mc_passes=50)
    budgets = list(range(10, 211))                        # 200 acquisitions of 1 point
    run = model.predict_run("deimos", budgets, paper)
    n_two = sum(b > 128 for b in budgets)
    assert run.train == pytest.approx(1e-3 * 300 * (len(budgets) + n_two))
    assert run.eval == pytest.approx(2e-5 * 2037 * 100 * len(budgets))
    assert run.select == pytest.approx(3e-6 * 3000 * 50 * (len(budgets) - 1))   # the last step selects nothing
    assert run.total == pytest.approx(run.train + run.eval + run.select)
    table, wall = model.predict_grid({"deimos": paper, "deimos_pool": paper}, budgets, 3, workers=2,
                                     rates_from={"deimos_pool": "deimos"})
    assert table.loc["deimos", "total_s"] == pytest.approx(3 * run.total)
    assert wall == pytest.approx(table["total_s"].sum() / 2)


def test_fit_and_predict_refuse_what_they_cannot_model():
    plan = StepPlan(1, 1, 1, 0, 1, 0)
    with pytest.raises(ValueError, match="lack column"):
        CostModel.fit(pd.DataFrame(dict(method=["a"], budget=[1])), {"a": plan})
    with pytest.raises(ValueError, match="no StepPlan for method 'a'"):
        CostModel.fit(pd.DataFrame(_records("a", plan, [1, 2], 1, 1, 1)), {"b": plan})
    model = CostModel.fit(pd.DataFrame(_records("a", plan, [1, 2], 1, 1, 1)), {"a": plan})
    with pytest.raises(ValueError, match="no measured rates for method 'b'"):
        model.predict_run("b", [1], plan)
    with pytest.raises(ValueError, match="workers"):
        model.predict_grid({"a": plan}, [1, 2], 1, workers=0)
    assert np.isfinite(model.predict_run("a", [1, 2, 3], plan).total)
