"""DEIMOS's classification experiments (Nagpal & Knowles, Section 5, Table 2, Figure 3, Appendix B) as data.

Three experiments, each an :class:`Experiment` in :data:`EXPERIMENTS`:

* ``"b1"``: MNIST 7-vs-9, one point per step (Table 2: acquisitions to reach an accuracy);
* ``"b25"``: MNIST 7-vs-9, batches of 25 (Figure 3 left);
* ``"b100"``: MNIST 0-9, batches of 100 (Figure 3 centre).

From a profile's settings (notebook 05's knobs: :func:`run_sizes`, :func:`methods`, :func:`configs`) this
module builds the loop configurations of every (method, seed); the comparisons the notebook makes are here
too: Table 2 in our runs (:func:`table2`), the final accuracies and AUBCs beside the authors' (:func:`final_table`),
DEIMOS against each baseline by the report's rule with the paper's LMM test beside (:func:`verdicts`), robust
k-center at the paper's size (:func:`kcenter_check`), the cost of the paper's protocol (:func:`paper_cost`) and
the finding on the central claim (:func:`finding`). The papers' numbers come from :mod:`mcal_utils.references`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import compare, metrics, models, references, training
from ..acquisition import kcenter_robust
from ..acquisition.requirements import features_of
from ..cost import CostModel, StepPlan
from ..loop import ExperimentConfig, evaluate_step, fit_step_model, make_split, open_run
from . import picks as picks_mod

__all__ = [
    "Convergence",
    "convergence",
    "SUBJECT",
    "PAPER_EPOCHS",
    "PAPER_BATCH_SIZE",
    "PAPER_LR",
    "PAPER_MC_SAMPLES",
    "PAPER_EVAL_MC_SAMPLES",
    "PAPER_BATCHBALD_SAMPLES",
    "PAPER_RUNS",
    "TABLE2_THRESHOLDS",
    "DECLARED_THRESHOLDS",
    "Experiment",
    "EXPERIMENTS",
    "RunSizes",
    "run_sizes",
    "Method",
    "methods",
    "configs",
    "protocol_table",
    "deviations",
    "batchbald_note",
    "reference_points",
    "Table2",
    "table2",
    "table2_acquisitions_needed",
    "final_table",
    "ExperimentVerdicts",
    "verdicts",
    "lmm_paper_sentence",
    "verdict_lines",
    "batchbald_gap",
    "rule_table",
    "first_and_last_picks",
    "KCenterCheck",
    "kcenter_check",
    "kcenter_sentence",
    "step_plan",
    "PaperCost",
    "paper_cost",
    "table2_cost",
    "cost_sentence",
    "paper_cost_table",
    "profile_of",
    "finding",
]

#: the method the paper's claims are about; its variants are labelled "DEIMOS (...)".
SUBJECT = "DEIMOS"

# The authors' training and scoring protocol, every experiment (Appendix B; their notebooks in
# MNIST/Binary_7_9_AL_Scripts and MNIST/MultiClass_AL_Scripts).
PAPER_EPOCHS = 300  # Adam epochs per step (the network retrains from scratch at every step)
PAPER_BATCH_SIZE = 128  # Adam mini-batch
PAPER_LR = 0.001  # Adam learning rate (Keras default)
PAPER_MC_SAMPLES = 50  # J = T: DEIMOS masks, BALD/MaxEnt passes, BatchBALD K
PAPER_EVAL_MC_SAMPLES = 100  # MC passes of the test prediction
PAPER_BATCHBALD_SAMPLES = 10000  # BatchBALD's sampled label configurations
PAPER_RUNS = 3  # runs per method (no random seeds)

#: Table 2's test-accuracy thresholds (references.DEIMOS_TABLE2_THRESHOLDS).
TABLE2_THRESHOLDS: tuple[float, ...] = tuple(references.DEIMOS_TABLE2_THRESHOLDS.value)
#: The thresholds at which DEIMOS is compared with each method per seed (declared before any run): the two
#: that the scaled-down profiles reach (the `default` profile's DEIMOS crossed them at 14 and 16 acquisitions).
DECLARED_THRESHOLDS: tuple[float, ...] = TABLE2_THRESHOLDS[:2]


@dataclass(frozen=True)
class Experiment:
    """One classification experiment as the authors ran it.

    k: points acquired per step; n_steps: acquisition steps; n_candidates: random pool points scored per
    step; l2: L2 on the dense layers (scaled by 1/N); tau_inv: DEIMOS's tau^-1 (the authors' code);
    baseline: (label, strategy) of the BALD-family method; n_train / n_test: images of the task's splits.
    """

    name: str
    title: str
    task: str
    model: str
    initial_size: int
    k: int
    n_steps: int
    n_candidates: int
    l2: float
    tau_inv: float
    baseline: tuple[str, str]
    n_train: int
    n_test: int
    class_names: tuple[str, ...] = field(default=())

    @property
    def n_acquired(self) -> int:
        """Points acquired over the run (the last point of the paper's curve)."""
        return self.k * self.n_steps


_N79_TRAIN, _N79_TEST = references.DEIMOS_MNIST79_SIZES.value
_LAST = references.values(references.DEIMOS_LAST_ACQUIRED)

#: The 7-vs-9 set-up (b1, b25); b100 changes it.
_SEVEN_NINE: dict[str, Any] = {
    "task": "mnist79",
    "model": "deimos_mnist79",
    "initial_size": 10,
    "n_candidates": 2500,
    "l2": 0.0005,
    "tau_inv": references.DEIMOS_TAU_INV_79.value,
    "n_train": _N79_TRAIN,
    "n_test": _N79_TEST,
    "class_names": ("7", "9"),
}


def _paper_experiment(name: str, title: str, k: int, baseline: tuple[str, str], **changes: Any) -> Experiment:
    """Experiment ``name``: batches of ``k`` up to the paper's last acquisition, the 7-vs-9 set-up but ``changes``."""
    setup = {**_SEVEN_NINE, **changes}
    return Experiment(name=name, title=title, k=k, n_steps=_LAST[name] // k, baseline=baseline, **setup)


#: The three experiments, in the paper's order.
EXPERIMENTS: dict[str, Experiment] = {
    "b1": _paper_experiment("b1", "MNIST 7-vs-9, batch 1", 1, ("BALD", "bald")),
    "b25": _paper_experiment("b25", "MNIST 7-vs-9, batch 25", 25, ("BatchBALD", "batchbald")),
    "b100": _paper_experiment(
        "b100",
        "MNIST 0-9, batch 100",
        100,
        ("BatchBALD", "batchbald"),
        task="mnist",
        model="deimos_mnist10",
        initial_size=30,
        n_candidates=2000,
        l2=0.01,
        tau_inv=references.DEIMOS_TAU_INV_10.value,
        n_train=60000,
        n_test=10000,
        class_names=tuple(str(d) for d in range(10)),
    ),
}


def _experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]


@dataclass(frozen=True)
class RunSizes:
    """This run's sizes of one experiment (from a profile's settings)."""

    n_steps: int
    epochs: int
    n_candidates: int
    tau_inv: float


def run_sizes(name: str, settings: Mapping[str, Any]) -> RunSizes:
    """The steps, epochs, candidates and tau^-1 notebook 05's knobs give experiment ``name``."""
    _experiment(name)
    seven_nine = name in ("b1", "b25")
    return RunSizes(
        n_steps={"b1": settings["n_acq_b1"], "b25": settings["n_steps_b25"], "b100": settings["n_steps_b100"]}[name],
        epochs=settings["epochs"] if seven_nine else settings["epochs_b100"],
        n_candidates=settings["n_candidates_79"] if seven_nine else settings["n_candidates_10"],
        tau_inv=settings["tau_inv_79"] if seven_nine else settings["tau_inv_10"],
    )


@dataclass(frozen=True)
class Method:
    """One compared method: its label, strategy, strategy options and config changes (e.g. candidates)."""

    label: str
    strategy: str
    options: Mapping[str, Any] = field(default_factory=dict)
    changes: Mapping[str, Any] = field(default_factory=dict)


def methods(name: str, settings: Mapping[str, Any]) -> list[Method]:
    """The methods of experiment ``name``: DEIMOS, the BALD-family baseline, MaxEnt, Random, robust
    k-center (unless ``kcenter_time_limit`` is 0), and the DEIMOS variants the settings ask for (b1: over
    the whole pool; b100: another tau^-1)."""
    exp, sizes = _experiment(name), run_sizes(name, settings)
    label, strategy = exp.baseline
    out = [
        Method(SUBJECT, "deimos"),
        Method(label, strategy, {"num_samples": settings["batchbald_samples"]} if strategy == "batchbald" else {}),
        Method("MaxEnt", "entropy_mc"),
        Method("Random", "random"),
    ]
    if settings["kcenter_time_limit"] > 0:  # 0: robust k-center left out (its MILP is the costliest selection)
        out.append(
            Method(
                "Robust k-center",
                "kcenter_robust",
                {"outlier_fraction": settings["outlier_fraction"], "time_limit": settings["kcenter_time_limit"]},
            )
        )
    if name == "b1" and settings["whole_pool"]:
        n_total = min(settings["pool_size"] or exp.n_train, exp.n_train)
        last_pool = n_total - exp.initial_size - (sizes.n_steps - 1) * exp.k  # pool left at the last acquiring step
        out.append(Method(f"{SUBJECT} (whole pool)", "deimos", changes={"n_candidates": last_pool}))
    if name == "b100" and settings["tau_inv_10_alt"] > 0:
        alt = settings["tau_inv_10_alt"]
        out.append(Method(f"{SUBJECT} (tau^-1 {alt:g})", "deimos", changes={"tau_inv": alt}))
    return out


def configs(name: str, settings: Mapping[str, Any], seeds: Sequence[int]) -> list[ExperimentConfig]:
    """One config per (method of :func:`methods`, seed), method-major: Adam, batch 128, L2/N on the dense
    layers, last weights, no validation set, a balanced initial set shared by every method of a seed."""
    exp, sizes = _experiment(name), run_sizes(name, settings)
    base = ExperimentConfig(
        task=exp.task,
        task_options={"pixel_scale": settings["pixel_scale"]},
        model=exp.model,
        strategy="random",
        initial_size=exp.initial_size,
        initial="balanced",
        k=exp.k,
        n_steps=sizes.n_steps,
        pool_size=settings["pool_size"] or None,
        val_size=0,
        test_size=settings["test_size"] or None,
        T=settings["T"],
        n_candidates=sizes.n_candidates,
        tau_inv=sizes.tau_inv,
        T_eval=settings["T_eval"],
        train=dict(
            optimizer="adam",
            lr=PAPER_LR,
            epochs=sizes.epochs,
            batch_size=PAPER_BATCH_SIZE,
            l2_dense=exp.l2,
            checkpoint="last",
            batching=settings["batching"],
        ),
    )
    return [
        base.replace(strategy=m.strategy, label=m.label, strategy_options=dict(m.options), seed=seed, **dict(m.changes))
        for m in methods(name, settings)
        for seed in seeds
    ]


def _labels(exp: Experiment, n_steps: int) -> str:
    return f"{n_steps * exp.k} ({exp.initial_size} → {exp.initial_size + n_steps * exp.k})"


def protocol_table(settings: Mapping[str, Any]) -> pd.DataFrame:
    """Section 1: this run's protocol next to the authors', indexed by (experiment, setting)."""
    rows = []
    for name in settings["experiments"]:
        exp, sizes = _experiment(name), run_sizes(name, settings)
        alt = f"{references.DEIMOS_TAU_INV_10_NOTEBOOK.value:.0e}".replace("e-0", "e-")
        note = f" (authors' notebook code: {alt})" if name == "b100" else ""
        rows += [
            (exp.title, "acquisitions (labels)", _labels(exp, sizes.n_steps), _labels(exp, exp.n_steps)),
            (exp.title, f"epochs per step (Adam, batch {PAPER_BATCH_SIZE})", f"{sizes.epochs}", f"{PAPER_EPOCHS}"),
            (exp.title, "candidates per step", f"{sizes.n_candidates}", f"{exp.n_candidates}"),
            (exp.title, "DEIMOS tau^-1", f"{sizes.tau_inv:g}", f"{exp.tau_inv:g}" + note),
        ]
    pixels = {"unit": "[0, 1]", "raw": "raw 0-255"}
    batching = {"even": "near-equal sizes", "keras": "full batches + remainder (Keras)"}
    rows += [
        (
            "all",
            "MC passes J = T (DEIMOS, BALD, MaxEnt, BatchBALD K)",
            f"{settings['T']}",
            f"{PAPER_MC_SAMPLES}",
        ),
        (
            "all",
            "test prediction",
            f"mean of {settings['T_eval']} MC passes on {settings['test_size'] or 'all'} test images",
            f"mean of {PAPER_EVAL_MC_SAMPLES} MC passes, all test images",
        ),
        ("all", "BatchBALD sampled configurations", f"{settings['batchbald_samples']}", f"{PAPER_BATCHBALD_SAMPLES}"),
        ("all", "pixels", pixels[settings["pixel_scale"]], pixels["raw"]),
        ("all", "mini-batches", batching[settings["batching"]], batching["keras"]),
        ("all", "initial set", "balanced, shared by every method of a seed", "balanced, drawn per method"),
        ("all", "seeds", f"{settings['n_seeds']}", f"{PAPER_RUNS} runs, no random seeds"),
        (
            "all",
            "robust k-center solver",
            f"HiGHS MILP, exact search, {settings['kcenter_time_limit']:g} s per selection",
            "Gurobi MIP, 5 bisection steps",
        ),
    ]
    table = pd.DataFrame(
        rows, columns=["experiment", "setting", f"this run ({profile_of(settings)})", "DEIMOS paper / code"]
    )
    return table.set_index(["experiment", "setting"])


def deviations(settings: Mapping[str, Any]) -> list[str]:
    """Section 1: how this run departs from the authors' protocol (besides the sizes)."""
    out = [
        "every method of a seed starts from the same balanced initial set (the authors drew one per method, so "
        "their curves start at different accuracies)",
        "seeded runs (the authors' code sets no seeds)",
    ]
    if settings["batching"] == "even":
        out.append(
            "mini-batches of near-equal size: 130 images with batch 128 would leave a trailing batch of 2 "
            'that makes Adam\'s step diverge (a measured dip to 0.54 accuracy); `batching="keras"` restores '
            "the authors' split"
        )
    if settings["pixel_scale"] == "unit":
        out.append('pixels in [0, 1] (the authors fed raw 0-255 values; `pixel_scale="raw"` restores them)')
    out.append(
        "robust k-center with HiGHS (open source) instead of Gurobi; exact where the MILP finishes "
        "within the time limit, otherwise the best cover found (section 8)"
    )
    out.append("MaxEnt/BALD/BatchBALD score the same random candidates per step as the other methods")
    return out


def batchbald_note(settings: Mapping[str, Any]) -> str:
    """ "" when BatchBALD samples as many label configurations as the authors, else why its comparisons do
    not show that DEIMOS beats the paper's BatchBALD."""
    n = settings["batchbald_samples"]
    if n >= PAPER_BATCHBALD_SAMPLES:
        return ""
    paper = f"{PAPER_BATCHBALD_SAMPLES:,}".replace(",", " ")
    return (
        f"BatchBALD here samples {n} label configurations (the authors' code: {paper}), a crippled baseline: "
        "its comparisons with DEIMOS are measured but not judged (section 10 says what judging them needs)."
    )


def reference_points(name: str, top: float) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """The authors' 3-run means within ``top`` acquisitions, for :func:`mcal_utils.plots.curves`: every step
    of MNIST 0-9 (their result arrays), else the final accuracy at the paper's last point. None: none in range."""
    last = _LAST[_experiment(name).name]
    if name == "b100":
        ref = {
            m: (np.arange(0, last + 1, EXPERIMENTS["b100"].k), np.array(r.value))
            for m, r in references.DEIMOS_B100_CURVES.items()
        }
    else:
        ref = {m: (np.array([last]), np.array([r.value[0]])) for m, r in references.DEIMOS_FINAL_AUBC[name].items()}
    ref = {m: (b[b <= top], v[b <= top]) for m, (b, v) in ref.items()}
    return {m: bv for m, bv in ref.items() if len(bv[0])} or None


def _curves(results: pd.DataFrame, method: str, metric: str = "accuracy") -> tuple[np.ndarray, np.ndarray]:
    """(acquired_P, values_S_P) of one method."""
    wide = results[results["method"] == method].pivot_table(index="seed", columns="acquired_total", values=metric)
    return wide.columns.to_numpy(), wide.to_numpy(np.float64)


def _methods_of(results: pd.DataFrame) -> list[str]:
    return [str(m) for m in results["method"].cat.categories]


def _baselines(results: pd.DataFrame) -> list[str]:
    return [m for m in _methods_of(results) if not m.startswith(SUBJECT)]


def _count(x: float) -> str:
    return "—" if np.isnan(x) else f"{x:.0f}"


@dataclass(frozen=True)
class Table2:
    """Table 2 in our runs (b1): acquisitions until the seed-mean curve reaches each threshold (text, "—": not
    reached), every seed's own first crossing ("a / b / ..."), the paper's table, and DEIMOS against each
    method per seed at the :data:`DECLARED_THRESHOLDS` (threshold -> comparisons)."""

    seed_mean: pd.DataFrame
    per_seed: pd.DataFrame
    paper: pd.DataFrame
    comparisons: Mapping[float, list[compare.Comparison]]

    def all_comparisons(self) -> list[compare.Comparison]:
        return [c for cs in self.comparisons.values() for c in cs]


def table2(results: pd.DataFrame) -> Table2:
    """:class:`Table2` from b1's results (``method`` categorical in config order)."""
    columns = [f"{t:g}" for t in TABLE2_THRESHOLDS]
    crossings = {m: metrics.threshold_crossings(*_curves(results, m), TABLE2_THRESHOLDS) for m in _methods_of(results)}
    seed_mean = pd.DataFrame({m: [_count(v) for v in x.mean_K] for m, x in crossings.items()}, index=columns).T
    per_seed = pd.DataFrame(
        {
            m: [" / ".join(_count(v) for v in x.per_seed_S_K[:, k]) for k in range(len(columns))]
            for m, x in crossings.items()
        },
        index=columns,
    ).T
    paper = pd.DataFrame(references.values(references.DEIMOS_TABLE2), index=columns).T
    comparisons = {
        t: [compare.compare_crossings(results, SUBJECT, m, t, x="acquired_total") for m in _baselines(results)]
        for t in DECLARED_THRESHOLDS
    }
    return Table2(seed_mean=seed_mean, per_seed=per_seed, paper=paper, comparisons=comparisons)


def table2_acquisitions_needed(step: int = 10) -> int:
    """Acquisitions a b1 run needs to test Table 2 at every threshold: past the paper's crossing of DEIMOS's
    closest baseline at each threshold (where a one-sided censoring would otherwise decide), rounded up to
    ``step``."""
    paper = references.values(references.DEIMOS_TABLE2)
    closest = [min(v[k] for m, v in paper.items() if m != SUBJECT) for k in range(len(TABLE2_THRESHOLDS))]
    return int(math.ceil(max(closest) / step) * step)


def final_table(results_by_experiment: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Section 6: each method's seed-mean final accuracy (with the seeds' std) and AUBC (the mean of its
    trapezoids), beside the authors' (from their result arrays), indexed by (experiment, method)."""
    rows = []
    for name, df in results_by_experiment.items():
        last = int(df["acquired_total"].max())
        paper = references.values(references.DEIMOS_FINAL_AUBC[name])
        for m in _methods_of(df):
            _, c = _curves(df, m)
            mean = c.mean(axis=0)
            fa, au = paper.get(m, (np.nan, np.nan))
            rows.append(
                (
                    EXPERIMENTS[name].title,
                    m,
                    last,
                    mean[-1],
                    c[:, -1].std(ddof=1),
                    metrics.aubc(mean) if len(mean) > 1 else np.nan,
                    _LAST[name],
                    fa,
                    au,
                )
            )
    return pd.DataFrame(
        rows,
        columns=[
            "experiment",
            "method",
            "ours: acquired",
            "ours: final acc.",
            "ours: std (seeds)",
            "ours: AUBC",
            "paper: acquired",
            "authors' arrays: final acc.",
            "authors' arrays: AUBC",
        ],
    ).set_index(["experiment", "method"])


@dataclass(frozen=True)
class ExperimentVerdicts:
    """DEIMOS against each baseline (AUBC, then final accuracy; the paper's LMM test beside) and each DEIMOS
    variant against DEIMOS (AUBC)."""

    claim: compare.ClaimComparisons
    variants: tuple[compare.Comparison, ...]

    @property
    def comparisons(self) -> list[compare.Comparison]:
        return list(self.claim.comparisons) + list(self.variants)


def verdicts(results: pd.DataFrame) -> ExperimentVerdicts:
    """The declared comparisons of one experiment (section 7)."""
    claim = compare.compare_with_lmm(
        results, SUBJECT, _baselines(results), summaries=("aubc", "final"), x="acquired_total", group="step"
    )
    variants = tuple(
        compare.compare_curves(results, v, SUBJECT, x="acquired_total")
        for v in _methods_of(results)
        if v.startswith(SUBJECT) and v != SUBJECT
    )
    return ExperimentVerdicts(claim=claim, variants=variants)


def lmm_paper_sentence() -> str:
    """The paper's LMM p-values of Table 2 (7-vs-9, batch 1), DEIMOS against each method."""
    p = references.values(references.DEIMOS_TABLE2_P)
    return (
        "The paper's LMM p-values (Table 2) for 7-vs-9 batch 1: "
        + ", ".join(f"{m if m != 'Robust k-center' else 'robust k-center'} {v:.2g}" for m, v in p.items())
        + f" ({_LAST['b1']} acquisitions)."
    )


def batchbald_gap(results: pd.DataFrame, settings: Mapping[str, Any], *, workers: int = 2) -> str:
    """ "" when BatchBALD ran at its authors' label samples (or did not run), else the "not tested here" clause
    for DEIMOS against it: what it needs, and the extra wall time of its selections at the authors' samples,
    scaled linearly in the samples from this run's measured BatchBALD selection seconds on ``workers``."""
    n = settings["batchbald_samples"]
    rows = results[results["method"].astype(str) == "BatchBALD"]
    if n >= PAPER_BATCHBALD_SAMPLES or rows.empty:
        return ""
    extra_s = float(rows["select_s"].sum()) * (PAPER_BATCHBALD_SAMPLES / n - 1) / max(1, workers)
    paper = f"{PAPER_BATCHBALD_SAMPLES:,}".replace(",", " ")
    return (
        f"not tested here: needs BatchBALD with its authors' {paper} sampled label configurations (this run: {n}), "
        f"est. +{extra_s / 60:.0f} min of selection on {workers} CPU workers"
    )


def rule_table(verdicts: Mapping[str, ExperimentVerdicts], titles: Mapping[str, str], settings: Mapping[str, Any]):
    """Section 7's table: every experiment's comparisons (:func:`mcal_utils.compare.comparison_table`), indexed
    by experiment title, metric and B; with a BatchBALD below its authors' label samples
    (:func:`batchbald_note`) its rows say "not tested here" instead of a verdict."""
    crippled = bool(batchbald_note(settings))
    frames = []
    for name, v in verdicts.items():
        table = compare.comparison_table(v.comparisons).assign(experiment=titles[name])
        if crippled:
            table.loc[(table["A"] == "BatchBALD") | (table["B"] == "BatchBALD"), "verdict"] = "not tested here"
        frames.append(table)
    return pd.concat(frames).set_index(["experiment", "metric", "B"])


def verdict_lines(
    name: str, results: pd.DataFrame, verdict: ExperimentVerdicts, table: Table2 | None, settings: Mapping[str, Any]
) -> str:
    """Section 10: one bullet per comparison of experiment ``name`` (``Comparison.sentence``); for b1 also the
    per-seed Table 2 comparisons next to the paper's 3-run means. A comparison with a BatchBALD that samples
    fewer label configurations than its authors' is measured but not judged (:func:`batchbald_gap`)."""
    gap = batchbald_gap(results, settings)
    last = int(results["acquired_total"].max())
    lines = [
        f"**{EXPERIMENTS[name].title}** ({results['seed'].nunique()} seeds, {last} acquisitions): is DEIMOS ahead?"
    ]
    for c in verdict.comparisons:
        if gap and "BatchBALD" in (c.a, c.b):
            lines.append(
                f"- {c.a} − {c.b} {c.metric} {c.interval()}, {c.n_seeds} seeds, against a crippled BatchBALD: {gap}"
            )
        else:
            lines.append(f"- {c.sentence()}")
    if table is not None:
        paper = references.values(references.DEIMOS_TABLE2)
        lines += [
            f"- {c.sentence(digits=2)} (paper: DEIMOS {paper[SUBJECT][k]}, {c.b} {paper[c.b][k]})"
            for k, cs in enumerate(table.comparisons.values())
            for c in cs
        ]
    return "\n".join(lines)


def first_and_last_picks(
    results: pd.DataFrame, method: str = SUBJECT, n_first: int = 3, n_last: int = 2
) -> list[tuple[int, int, int]]:
    """(seed, step, train index) of each seed's first ``n_first`` and last ``n_last`` picks (all of them when
    a seed picked no more than ``n_first + n_last``)."""
    out = []
    for seed, p in picks_mod.picks_by_seed(results, method).items():
        pairs = list(zip(p.steps_N.tolist(), p.indices_N.tolist()))
        chosen = pairs[:n_first] + pairs[-n_last:] if len(pairs) > n_first + n_last else pairs
        out += [(seed, step, index) for step, index in chosen]
    return out


@dataclass(frozen=True)
class KCenterCheck:
    """One robust k-center selection at the paper's candidate count (see :func:`kcenter_check`)."""

    experiment: str
    n_points: int
    k: int
    exact: bool
    radius: float
    lower_bound: float
    greedy_radius: float
    n_solves: int
    seconds: float
    deimos_select_s: float

    def as_row(self) -> dict:
        """The fields in order, under their column labels (:data:`_KCENTER_COLUMNS`, else the field's name)."""
        return {_KCENTER_COLUMNS.get(f.name, f.name): getattr(self, f.name) for f in dataclasses.fields(self)}


#: the column labels of :meth:`KCenterCheck.as_row` that are not the field's name
_KCENTER_COLUMNS = {
    "n_points": "points (labelled + candidates)",
    "lower_bound": "lower bound",
    "greedy_radius": "greedy radius",
    "n_solves": "MILPs",
    "deimos_select_s": "DEIMOS select s (median)",
}


def kcenter_check(
    name: str, config: ExperimentConfig, task, results: pd.DataFrame, settings: Mapping[str, Any]
) -> KCenterCheck:
    """Robust k-center once at the paper's size: a network trained on ``config``'s seed-0 initial set, its
    penultimate features of [initial set; the paper's number of random candidates], one selection of the
    experiment's batch (exact, or the best cover by the time limit), next to DEIMOS's median selection time."""
    exp = _experiment(name)
    split = make_split(config, task)
    model = models.build_model(config.model, seed=0)
    training.fit(
        model, task.x_train[split.initial], task.y_train[split.initial], config=config.train_config(), random_state=0
    )
    candidates = np.random.default_rng(0).choice(split.pool, size=min(exp.n_candidates, len(split.pool)), replace=False)
    features_N_D = features_of(model, np.concatenate([task.x_train[split.initial], task.x_train[candidates]]))
    labelled_N = np.zeros(len(features_N_D), bool)
    labelled_N[: len(split.initial)] = True
    out = kcenter_robust(
        features_N_D,
        labelled_N,
        config.k,
        outlier_fraction=settings["outlier_fraction"],
        time_limit=settings["kcenter_time_limit"],
    )
    selecting = (results["method"] == SUBJECT) & (results["n_acquired_this_step"] > 0)
    deimos = results.loc[selecting, "select_s"].median()
    return KCenterCheck(
        exp.title,
        len(features_N_D),
        config.k,
        bool(out.exact),
        float(out.radius),
        float(out.lower_bound),
        float(out.greedy_radius),
        int(out.n_solves),
        float(out.seconds),
        float(deimos),
    )


def kcenter_sentence(table: pd.DataFrame, time_limit: float) -> str:
    """What the k-center checks (rows of :meth:`KCenterCheck.as_row`) show."""
    n_exact = int(table["exact"].sum())
    return (
        f"{n_exact} of {len(table)} selections were proved optimal within {time_limit:g} s"
        + (
            "."
            if n_exact == len(table)
            else "; the others stopped at the time limit with the best cover found, whose radius is at most "
            f"{(table['radius'] / table['lower bound']).max():.3f} times the proved lower bound."
        )
        + f" The k-center selections took {table['seconds'].max():.1f} s at most, DEIMOS's "
        f"{table['DEIMOS select s (median)'].max():.1f} s (median per step, this run's candidates)."
    )


def step_plan(
    name: str,
    config: ExperimentConfig,
    *,
    epochs: int,
    n_test: int,
    eval_passes: int,
    passes: int,
    n_candidates: int,
    batchbald_samples: int,
) -> StepPlan:
    """The :class:`~mcal_utils.cost.StepPlan` of one method: selection units by strategy (BatchBALD's grow
    with its samples per 1000; robust k-center scores the labelled set too)."""
    labelled = _experiment(name).initial_size + config.n_steps * config.k
    select = {
        "deimos": (n_candidates, passes),
        "bald": (n_candidates, passes),
        "entropy_mc": (n_candidates, passes),
        "batchbald": (n_candidates, passes * max(1, batchbald_samples // 1000)),
        "random": (n_candidates, 0),
        "kcenter_robust": (n_candidates + labelled, 0),
    }[config.strategy]
    return StepPlan(
        epochs=epochs,
        batch_size=PAPER_BATCH_SIZE,
        n_test=n_test,
        eval_passes=eval_passes,
        n_candidates=select[0],
        mc_passes=select[1],
    )


def _fitted_cost_model(
    name: str, results: pd.DataFrame, cfgs: Sequence[ExperimentConfig], settings: Mapping[str, Any]
) -> tuple[CostModel, dict[str, ExperimentConfig]]:
    by_method = {c.method: c for c in cfgs}
    n_test = settings["test_size"] or _experiment(name).n_test
    measured = {
        m: step_plan(
            name,
            c,
            epochs=c.train["epochs"],
            n_test=n_test,
            eval_passes=c.T_eval,
            passes=c.T,
            n_candidates=_candidates(c),
            batchbald_samples=settings["batchbald_samples"],
        )
        for m, c in by_method.items()
    }
    return CostModel.fit(results, measured), by_method


def _candidates(config: ExperimentConfig) -> int:
    if config.n_candidates is None:
        raise ValueError(f"{config.method}: the cost model needs a candidate count (n_candidates is None)")
    return int(config.n_candidates)


def _paper_plan(name: str, config: ExperimentConfig, n_candidates: int) -> StepPlan:
    return step_plan(
        name,
        config,
        epochs=PAPER_EPOCHS,
        n_test=_experiment(name).n_test,
        eval_passes=PAPER_EVAL_MC_SAMPLES,
        passes=PAPER_MC_SAMPLES,
        n_candidates=n_candidates,
        batchbald_samples=PAPER_BATCHBALD_SAMPLES,
    )


@dataclass(frozen=True)
class PaperCost:
    """Predicted hours of the paper's protocol per method (``table``: train / eval / select / total hours,
    all seeds) and the grid's wall hours on ``workers`` processes."""

    table: pd.DataFrame
    wall_h: float
    n_seeds: int
    workers: int


def paper_cost(
    name: str,
    results: pd.DataFrame,
    cfgs: Sequence[ExperimentConfig],
    settings: Mapping[str, Any],
    *,
    n_seeds: int,
    workers: int = 2,
    n_steps: int | None = None,
) -> PaperCost:
    """The authors' protocol of experiment ``name`` (300 epochs, their candidates, MC passes and test set;
    ``n_steps``: their steps unless given) predicted from this run's measured step times. In b1 a whole-pool
    DEIMOS not run here is predicted from DEIMOS's rates."""
    exp = _experiment(name)
    model, by_method = _fitted_cost_model(name, results, cfgs, settings)
    steps = exp.n_steps if n_steps is None else n_steps
    full = {m: c.replace(n_steps=steps) for m, c in by_method.items()}
    n_pool = min(settings["pool_size"] or exp.n_train, exp.n_train)
    whole = n_pool - exp.initial_size - (steps - 1) * exp.k
    plans = {m: _paper_plan(name, c, whole if "whole pool" in m else exp.n_candidates) for m, c in full.items()}
    rates_from = {}
    if name == "b1" and n_steps is None and f"{SUBJECT} (whole pool)" not in plans:  # predicted from DEIMOS
        whole_all = exp.n_train - exp.initial_size - (steps - 1) * exp.k
        plans[f"{SUBJECT} (whole pool)"] = _paper_plan(name, full[SUBJECT], whole_all)
        rates_from[f"{SUBJECT} (whole pool)"] = SUBJECT
    budgets = [exp.initial_size + s * exp.k for s in range(steps + 1)]
    table, wall = model.predict_grid(plans, budgets, n_seeds, workers=workers, rates_from=rates_from)
    hours = (table[["train_s", "eval_s", "select_s", "total_s"]] / 3600).set_axis(
        ["train h", "eval h", "select h", f"total h ({n_seeds} seeds)"], axis=1
    )
    return PaperCost(table=hours, wall_h=wall / 3600, n_seeds=n_seeds, workers=workers)


def table2_cost(
    results: pd.DataFrame,
    cfgs: Sequence[ExperimentConfig],
    settings: Mapping[str, Any],
    *,
    n_seeds: int = 8,
    workers: int = 2,
) -> PaperCost:
    """What testing Table 2 at every threshold costs here: b1 at 300 epochs to
    :func:`table2_acquisitions_needed` acquisitions, DEIMOS and the four baselines (no variants)."""
    keep = [c for c in cfgs if not (c.method.startswith(SUBJECT) and c.method != SUBJECT)]
    kept = results[results["method"].isin({c.method for c in keep})]
    return paper_cost(
        "b1",
        kept.assign(method=kept["method"].astype(str)),
        keep,
        settings,
        n_seeds=n_seeds,
        workers=workers,
        n_steps=table2_acquisitions_needed(),
    )


def cost_sentence(total_h: float, n_seeds: int, workers: int = 2) -> str:
    """The predicted wall time of the `paper` profile, with how loaded the CPU was while the rates were
    measured (a shared CPU inflates them)."""
    load1, n_cpu = os.getloadavg()[0], os.cpu_count() or 1
    load = (
        f"The CPU was shared while this ran (load average {load1:.1f} on {n_cpu} cores), so the measured "
        f"rates, and this prediction, are inflated by up to about {load1 / n_cpu:.0f}x. "
        if load1 > n_cpu
        else f"Load average {load1:.1f} on {n_cpu} cores: the rates were measured on an otherwise idle CPU. "
    )
    return (
        f"Predicted wall time of the `paper` profile on this CPU with {workers} workers: **{total_h:.1f} h** "
        f"(the experiments of this run, {n_seeds} seeds each). "
        + load
        + "The eval rate is extrapolated linearly in the MC passes although the trunk runs once per image, "
        "so the eval hours are an upper bound. No GPU timing was available to this notebook; "
        "`benchmarks/` holds the lockstep GPU check that measures one."
    )


def paper_cost_table(costs: Mapping[str, PaperCost]) -> pd.DataFrame:
    """Section 9: every experiment's :class:`PaperCost` rows plus its wall-time row, indexed by (experiment,
    method)."""
    frames = []
    for name, cost in costs.items():
        wall = pd.DataFrame(
            {cost.table.columns[-1]: [cost.wall_h]}, index=[f"all methods, wall on {cost.workers} workers"]
        )
        frames.append(pd.concat([cost.table, wall]).assign(experiment=EXPERIMENTS[name].title))
    table = pd.concat(frames).rename_axis("method").reset_index()
    return table.set_index(["experiment", "method"])


def profile_of(settings: Mapping[str, Any]) -> str:
    """The profile name of a :class:`~mcal_utils.profiles.Settings` (or a plain mapping's ``"profile"``)."""
    return str(getattr(settings, "profile", None) or settings.get("profile", "custom"))


def _tested(comparisons: Sequence[compare.Comparison]) -> bool:
    """Some seed of some method reached the threshold within the run (else every value is censored)."""
    return any(c.n_censored < 2 * c.n_seeds for c in comparisons)


def finding(results: pd.DataFrame, table: Table2, long_cost: PaperCost, settings: Mapping[str, Any]) -> str:
    """The central claim (Table 2: DEIMOS reaches each accuracy with fewer acquisitions than every baseline)
    judged by the report's rule at every declared threshold some run reached; the thresholds this run cannot
    test say what testing them needs and its predicted cost."""
    last, n_seeds = int(results["acquired_total"].max()), results["seed"].nunique()
    tested = {t: cs for t, cs in table.comparisons.items() if _tested(cs)}
    text = (
        f"Table 2 (MNIST 7-vs-9, batch 1; `{profile_of(settings)}`, {n_seeds} seeds, {last} acquisitions, "
        f"{settings['epochs']} epochs): does DEIMOS reach the accuracy in fewer acquisitions (DEIMOS − method, "
        "per seed)?"
    )
    for t, cs in tested.items():
        text += f" To {t:g}: {compare.verdict_tally(cs)}: " + "; ".join(c.short(digits=2) for c in cs) + "."
    untested = [f"{t:g}" for t in TABLE2_THRESHOLDS if t not in tested]
    if untested and last >= table2_acquisitions_needed() and settings["epochs"] >= PAPER_EPOCHS:
        text += (
            f" Threshold{'s' if len(untested) > 1 else ''} {', '.join(untested)}: no run of any method reached "
            f"{'them' if len(untested) > 1 else 'it'} within {last} acquisitions at {settings['epochs']} epochs "
            "(every value censored): nothing to compare."
        )
    elif untested:
        text += (
            f" Threshold{'s' if len(untested) > 1 else ''} {', '.join(untested)}: not tested here: needs "
            f"≥ {table2_acquisitions_needed()} acquisitions at {PAPER_EPOCHS} epochs ({len(long_cost.table)} "
            f"methods × {long_cost.n_seeds} seeds), est. {long_cost.wall_h:.1f} h on {long_cost.workers} "
            "CPU cores."
        )
    return text


@dataclass(frozen=True)
class Convergence:
    """One b1 step-0 model (the initial labelled set, seed ``seed``) fitted for each of ``table.epochs``.

    ``loss_by_epoch``: ``epoch, train_loss`` of the longest fit (the loss of the last mini-batch epoch, with
    DEIMOS's L2 term); ``table``: per epoch count, the final training loss and the test accuracy (one
    deterministic pass, as every step records)."""

    loss_by_epoch: pd.DataFrame
    table: pd.DataFrame
    seed: int

    def sentence(self) -> str:
        """What the longer training changes, computed from ``table``."""
        short, long = self.table.iloc[0], self.table.iloc[-1]
        return (
            f"One step-0 model of b1 (seed {self.seed}, the initial labelled set): after {int(short.epochs)} epochs "
            f"the training loss is {short.final_train_loss:.4f} and the test accuracy {short.test_accuracy:.4f}; after "
            f"{int(long.epochs)} epochs (the paper's) {long.final_train_loss:.4f} and {long.test_accuracy:.4f}."
        )


def convergence(settings: Mapping[str, Any], *, epochs: Sequence[int], seed: int = 0) -> Convergence:
    """Fit b1's step-0 model (Random's run of ``seed``: the split every method shares) for each of ``epochs``
    (from the same initial weights and batch order) and evaluate it: does the profile's training converge?"""
    if not epochs:
        raise ValueError("epochs must list at least one epoch count")
    config = next(c for c in configs("b1", settings, [seed]) if c.strategy == "random")
    rows, longest = [], pd.DataFrame(columns=["epoch", "train_loss"])
    with tempfile.TemporaryDirectory() as tmp, open_run(config, tmp) as state:
        for n_epochs in sorted(set(epochs)):
            state.train_config = dataclasses.replace(state.train_config, epochs=int(n_epochs))
            fitted = fit_step_model(state, 0)
            accuracy = evaluate_step(state, fitted.model, 0)["accuracy"]
            rows.append(
                dict(epochs=int(n_epochs), final_train_loss=fitted.history[-1]["train_loss"], test_accuracy=accuracy)
            )
            longest = pd.DataFrame(
                [(h["epoch"], h["train_loss"]) for h in fitted.history], columns=["epoch", "train_loss"]
            )
    return Convergence(longest, pd.DataFrame(rows), seed)
