"""Per-step cost model: the wall time of a protocol predicted from measured step timings.

A run's step ``s`` trains from scratch on ``budget_s`` labelled points, evaluates on the test set
and (except at the last step) scores candidates and selects. Each phase is counted in a unit that
its cost grows with, and the model is ``seconds = rate x units`` per phase and method, the rate being
the median of ``measured seconds / units`` over the measured steps (run records' ``timings``):

===========  ==========================================  ======================================
phase        units of one step                           assumption
===========  ==========================================  ======================================
train        ``epochs x ceil(budget / batch_size)``      cost per mini-batch-epoch constant
eval         ``n_test x max(1, eval_passes)``            linear in the MC passes (an upper bound
                                                         when the trunk runs once per image)
select       ``n_candidates x max(1, mc_passes)``        linear in candidates x passes
===========  ==========================================  ======================================

The rates are measured on the profile that ran (small epochs, few passes) and extrapolated
linearly to the target profile: a mini-batch of 128 images costs more than one of 20, so a rate
measured on small budgets under-predicts large ones and over-predicts nothing else by much. Timings
measured while other jobs share the CPU are inflated; the model inherits that (say so where it is
used). Grid time: runs are independent, so ``sum of run times / workers`` (the grid's parallelism).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["StepPlan", "PhaseSeconds", "CostModel", "PHASES"]

PHASES: tuple[str, ...] = ("train", "eval", "select")


def _pos_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class StepPlan:
    """What one step of a method does, in the quantities the cost model counts.

    ``epochs``, ``batch_size``: training; ``n_test``, ``eval_passes`` (0: one deterministic
    pass): evaluation; ``n_candidates`` (points scored: X_samp for DEIMOS, labelled + candidates
    for k-center), ``mc_passes`` (0 for strategies that need one pass or none): selection.
    """

    epochs: int
    batch_size: int
    n_test: int
    eval_passes: int
    n_candidates: int
    mc_passes: int

    def __post_init__(self):
        for name, minimum in (
            ("epochs", 1),
            ("batch_size", 1),
            ("n_test", 1),
            ("eval_passes", 0),
            ("n_candidates", 0),
            ("mc_passes", 0),
        ):
            object.__setattr__(self, name, _pos_int(name, getattr(self, name), minimum))

    def units(self, budget: int) -> dict[str, int]:
        """Units of each phase for a step trained on ``budget`` labelled points."""
        budget = _pos_int("budget", budget, 1)
        return dict(
            train=self.epochs * -(-budget // self.batch_size),
            eval=self.n_test * max(1, self.eval_passes),
            select=self.n_candidates * max(1, self.mc_passes),
        )


@dataclass(frozen=True)
class PhaseSeconds:
    """Predicted seconds per phase (``train``, ``eval``, ``select``) and their ``total``."""

    train: float
    eval: float
    select: float

    @property
    def total(self) -> float:
        return self.train + self.eval + self.select


@dataclass(frozen=True)
class CostModel:
    """``rates[method][phase]``: seconds per unit (module docstring); ``n_steps[method]``: the
    measured steps behind them."""

    rates: Mapping[str, Mapping[str, float]]
    n_steps: Mapping[str, int]

    @classmethod
    def fit(cls, results, plans: Mapping[str, StepPlan]) -> CostModel:
        """Rates from measured steps.

        ``results``: a DataFrame with one row per measured step and columns ``method``,
        ``budget``, ``step``, ``train_s``, ``eval_s``, ``select_s`` (``loop.load_results``);
        ``plans``: the ``StepPlan`` each method ran with. Steps without a selection (the last
        step of a run, ``select_s == 0`` with no acquisition) do not enter the select rate.
        """
        missing = sorted({"method", "budget", "train_s", "eval_s", "select_s"} - set(results.columns))
        if missing:
            raise ValueError(f"results lack column(s) {missing}; pass loop.load_results(..., with_timings=True)")
        rates, n_steps = {}, {}
        for method, df in results.groupby("method", sort=True):
            if method not in plans:
                raise ValueError(f"no StepPlan for method {method!r}; plans cover {sorted(plans)}")
            plan = plans[method]
            units = [plan.units(int(b)) for b in df["budget"]]
            per = {}
            for phase in PHASES:
                seconds = df[f"{phase}_s"].to_numpy(dtype=np.float64)
                u = np.array([x[phase] for x in units], dtype=np.float64)
                keep = np.isfinite(seconds) & (u > 0)
                if phase == "select" and "n_acquired_this_step" in df:
                    keep &= df["n_acquired_this_step"].to_numpy() > 0
                per[phase] = float(np.median(seconds[keep] / u[keep])) if keep.any() else 0.0
            rates[str(method)] = per
            n_steps[str(method)] = int(len(df))
        if not rates:
            raise ValueError("results hold no measured step")
        return cls(rates=rates, n_steps=n_steps)

    def predict_run(self, method: str, budgets: Sequence[int], plan: StepPlan) -> PhaseSeconds:
        """Seconds of one run whose steps train on ``budgets`` (the last step selects nothing)."""
        if method not in self.rates:
            raise ValueError(f"no measured rates for method {method!r}; measured: {sorted(self.rates)}")
        budgets = list(budgets)
        if not budgets:
            raise ValueError("budgets must list at least one step")
        r = self.rates[method]
        total = dict.fromkeys(PHASES, 0.0)
        for i, b in enumerate(budgets):
            u = plan.units(b)
            total["train"] += r["train"] * u["train"]
            total["eval"] += r["eval"] * u["eval"]
            if i < len(budgets) - 1:
                total["select"] += r["select"] * u["select"]
        return PhaseSeconds(**total)

    def predict_grid(
        self,
        plans: Mapping[str, StepPlan],
        budgets: Sequence[int],
        n_seeds: int,
        *,
        workers: int = 1,
        rates_from: Mapping[str, str] | None = None,
    ):
        """Predicted grid time: a DataFrame (one row per method: seconds per phase for all its
        seeds) and the wall time ``sum / workers``.

        ``rates_from``: method -> measured method whose rates to use (e.g. a whole-pool DEIMOS
        predicted from the measured 2500-candidate DEIMOS).
        """
        n_seeds = _pos_int("n_seeds", n_seeds, 1)
        workers = _pos_int("workers", workers, 1)
        rates_from = dict(rates_from or {})
        rows = []
        for method, plan in plans.items():
            p = self.predict_run(rates_from.get(method, method), budgets, plan)
            rows.append(
                dict(
                    method=method,
                    train_s=n_seeds * p.train,
                    eval_s=n_seeds * p.eval,
                    select_s=n_seeds * p.select,
                    total_s=n_seeds * p.total,
                )
            )
        table = pd.DataFrame(rows).set_index("method")
        return table, float(table["total_s"].sum() / workers)
