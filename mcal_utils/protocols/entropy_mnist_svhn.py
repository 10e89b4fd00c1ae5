"""The MC-dropout-entropy paper's strategy comparison (Kirillov, 2026) as data, and what notebook 02 computes.

The paper trains a small CNN with Concrete Dropout on greyscale SVHN, retrains it from the same initial
weights after every acquisition of the top-``k`` of a score, and compares Random, VarRatio, Margin (its
code's inverted one), Entropy and EntropyD (entropy of the mean of ``T`` MC-dropout passes) by the
highest accuracy, AUBC and TP of the test-accuracy curve. We add the correct Margin, BALD, Power BALD
and several seeds.

* :data:`STRATEGIES` -- strategy name -> display label, in table order (the one home of the list);
  :func:`strategy_labels` applies a profile's ``power_beta``.
* :class:`StrategyComparison` (:func:`experiment_from` builds it from a profile's settings) -- the data
  set, the base config, the seeds, the ablation runs (the other ``init`` / regulariser scale) and the
  comparisons the notebook declares before any run (:data:`CLAIMS`, :data:`CENTRAL`); ``configs()`` is
  the grid in the order the notebook runs it.
* :data:`PAPER` -- the paper's protocol (sizes, training, ``T``) with its sources; the paper's result
  numbers live in :mod:`mcal_utils.references`.
* Reading the grid: :func:`highest_table`, :func:`window_table`, :func:`judge_claims` and
  :func:`verdict_reading`, :func:`lmm_check` (DEIMOS's LMM test beside the report's rule),
  :func:`pick_balance` (the class make-up of the picks against the pool's, from the ``acquired`` column),
  :func:`mc_noise_probe` (how much of a top-``k`` is MC noise), :func:`same_picks`,
  :func:`dropout_rates_long`, :func:`final_rates_table`; the paper's side: :func:`paper_reference_points`,
  :func:`paper_highest_table`, :func:`paper_window_table`, :func:`paper_aubc`, :func:`paper_rates_table`.
* Time: :func:`cost_estimates` (this grid and the paper's protocol from this run's timings),
  :func:`profile_cost` (another profile's grid), :func:`time_note`; text: :func:`dataset_note`,
  :func:`scaling_note`, :func:`protocol_table`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import compare, metrics, references, stats
from ..acquisition import bald, predictive_entropy, top_k
from ..checks import check_int
from ..cost import CostModel, StepPlan
from ..data import Task, data_dir
from ..loop import (
    ExperimentConfig,
    GridResults,
    Split,
    build_step_model,
    derive_seed,
    grid_configs,
    load_task_for,
    validate,
)
from ..mc import predict
from ..training import fit

__all__ = [
    "STRATEGIES",
    "STRATEGY_NAMES",
    "MC_STRATEGIES",
    "MODEL",
    "INIT_NAMES",
    "SCALE_NAMES",
    "SVHN_FILES",
    "Claim",
    "CLAIMS",
    "CENTRAL",
    "CENTRAL_STRATEGIES",
    "WARM_START_LABELS",
    "MIN_CANDIDATES",
    "claim_scale_gaps",
    "PaperProtocol",
    "PAPER",
    "StrategyComparison",
    "strategy_labels",
    "resolve_dataset",
    "experiment_from",
    "protocol_table",
    "dataset_note",
    "scaling_note",
    "verdict_reading",
    "paper_reference_points",
    "highest_table",
    "paper_highest_table",
    "window_table",
    "paper_window_table",
    "judge_claims",
    "LmmCheck",
    "lmm_check",
    "picks_by_run",
    "same_picks",
    "PickBalance",
    "pick_balance",
    "TV_NULL_SEED",
    "McNoiseProbe",
    "mc_noise_probe",
    "load_task",
    "paper_aubc",
    "PAPER_WINDOWS",
    "paper_rates_table",
    "dropout_rates_long",
    "final_rates_table",
    "CostEstimates",
    "step_plans",
    "cost_estimates",
    "ProfileCost",
    "profile_cost",
    "time_note",
]

#: strategy name -> display label, in table order (Power BALD's label gets its beta: :func:`strategy_labels`)
STRATEGIES: dict[str, str] = {
    "random": "Random",
    "var_ratio": "VarRatio",
    "margin": "Margin",
    "margin_inverted": "Margin (inverted: the paper's bug)",
    "entropy": "Entropy",
    "entropy_mc": "EntropyD",
    "bald": "BALD",
    "power_bald": "Power BALD",
}
#: the strategy names alone, in table order (what a profile's ``compare_init`` / ``compare_scale`` may name)
STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)
#: the strategies that score with T MC-dropout passes (the others need one deterministic pass or none)
MC_STRATEGIES: frozenset[str] = frozenset({"entropy_mc", "bald", "power_bald"})
#: the paper's network: its CNN with four Concrete Dropout layers
MODEL = "kirillov_cnn"
INIT_NAMES: dict[str, str] = {"fixed": "fixed init", "per_step": "per-step init"}
SCALE_NAMES: dict[str, str] = {"none": "paper's regulariser", "n_train": "1/N regulariser"}
_OTHER_INIT = {"fixed": "per_step", "per_step": "fixed"}
_OTHER_SCALE = {"none": "n_train", "n_train": "none"}
#: the two files of SVHN in the data directory (notebook 00 says how to get them)
SVHN_FILES: tuple[str, str] = ("train_32x32.mat", "test_32x32.mat")


@dataclass(frozen=True)
class Claim:
    """A comparison declared before any run: "``a`` picks better examples than ``b``" (method labels)."""

    a: str
    b: str
    text: str


#: The comparisons notebook 02 judges, in order; the first four are the central claim (:data:`CENTRAL`).
CLAIMS: tuple[Claim, ...] = (
    Claim("EntropyD", "Random", "MC-dropout entropy picks better examples than random sampling"),
    Claim("Entropy", "Random", "single-pass entropy picks better examples than random sampling"),
    Claim("VarRatio", "Random", "the variation ratio picks better examples than random sampling"),
    Claim("Margin", "Random", "the (correct) margin picks better examples than random sampling"),
    Claim("EntropyD", "Entropy", "MC-dropout entropy picks better examples than single-pass entropy"),
    Claim("BALD", "Random", "BALD picks better examples than random sampling"),
    Claim("Margin", STRATEGIES["margin_inverted"], "the correct Margin beats the paper's inverted one"),
    Claim("Power BALD", "BALD", "Power BALD (a sampled batch) beats BALD's top-k"),
)
#: the paper's central claim: the uncertainty strategies ahead of Random (EntropyD, the MC-dropout one, first)
CENTRAL: tuple[Claim, ...] = CLAIMS[:4]
#: the strategies the central claim compares (a profile may leave out the others: ``leave_out``)
CENTRAL_STRATEGIES: frozenset[str] = frozenset({"random", "entropy_mc", "entropy", "var_ratio", "margin"})
#: where the central claim is testable ("once the model is reasonably trained", top-k not diluted): at least
#: this many labels before the first acquisition, and at least this many candidates scored per step (or the
#: whole pool). Below them the comparison measures a cold start, which the paper did not ask about.
WARM_START_LABELS = 500
MIN_CANDIDATES = 2000


@dataclass(frozen=True)
class PaperProtocol:
    """The MC-dropout-entropy paper's protocol (SVHN, one run per strategy). ``n_pool``: training/pool images
    (initial set included); ``n_steps`` acquisitions of ``k`` after ``initial_size``."""

    n_pool: int
    n_val: int
    n_test: int
    initial_size: int
    k: int
    n_steps: int
    epochs: int
    lr: float  # SGD: lr, momentum, mini-batch (the order of references.KIRILLOV_SGD_SETTINGS)
    momentum: float
    batch_size: int
    T: int

    @property
    def budgets(self) -> list[int]:
        """Labelled images at each of the ``n_steps + 1`` points of a curve (1000 ... 37 000)."""
        return [self.initial_size + i * self.k for i in range(self.n_steps + 1)]


#: the paper's protocol (section 3.3 and 5; every number from mcal_utils.references)
PAPER = PaperProtocol(
    n_pool=references.KIRILLOV_N_TRAIN.value,
    n_val=references.KIRILLOV_N_VAL.value,
    n_test=references.KIRILLOV_SVHN_BALANCED.value[1],
    initial_size=references.KIRILLOV_AL_SCHEDULE.value[0],
    k=references.KIRILLOV_AL_SCHEDULE.value[1],
    n_steps=references.KIRILLOV_AL_SCHEDULE.value[2],
    epochs=references.KIRILLOV_EPOCHS.value,
    lr=references.KIRILLOV_SGD_SETTINGS.value[0],
    momentum=references.KIRILLOV_SGD_SETTINGS.value[1],
    batch_size=references.KIRILLOV_SGD_SETTINGS.value[2],
    T=references.KIRILLOV_T.value,
)


def strategy_labels(power_beta: float) -> dict[str, str]:
    """:data:`STRATEGIES` with Power BALD labelled by its beta, or left out when ``power_beta == 0``."""
    labels = dict(STRATEGIES)
    if power_beta == 0:
        del labels["power_bald"]
    else:
        labels["power_bald"] = f"Power BALD (β = {power_beta:g})"
    return labels


def resolve_dataset(requested: str, data_directory=None) -> str:
    """``"svhn"`` or ``"mnist32"`` for ``requested`` ("auto": SVHN when its files are in the data directory).

    Raises FileNotFoundError when ``"svhn"`` is asked for and its files are missing.
    """
    if requested not in ("auto", "svhn", "mnist32"):
        raise ValueError(f"dataset must be 'auto', 'svhn' or 'mnist32'; got {requested!r}")
    files = [data_dir(data_directory) / name for name in SVHN_FILES]
    have_svhn = all(f.exists() for f in files)
    if requested == "svhn" and not have_svhn:
        raise FileNotFoundError(
            f"dataset='svhn' was asked for but {[str(f) for f in files]} are missing (notebook 00 says how to get them)"
        )
    return "svhn" if requested == "svhn" or (requested == "auto" and have_svhn) else "mnist32"


@dataclass(frozen=True)
class StrategyComparison:
    """Notebook 02's experiment at one profile's sizes.

    ``labels``: strategy -> label of the main grid (table order); ``base``: the config every run shares
    (strategy ``"random"``, seed 0); ``init_runs`` / ``scale_runs``: label -> label of its rerun with the
    other ``init`` / the other Concrete Dropout regulariser scale; ``claims``: the declared comparisons whose
    methods are in the grid; ``window``: the steps the comparisons summarise (AUBC over the first ``window``).
    """

    dataset: str
    labels: dict[str, str]
    strategy_options: dict[str, dict]
    base: ExperimentConfig
    seeds: tuple[int, ...]
    init_runs: dict[str, str]
    scale_runs: dict[str, str]
    claims: tuple[Claim, ...]
    window: int

    @property
    def name(self) -> str:
        """The data set as the text says it: SVHN or MNIST-32."""
        return "SVHN" if self.dataset == "svhn" else "MNIST-32"

    @property
    def other_init(self) -> str:
        return _OTHER_INIT[self.base.init]

    @property
    def other_scale(self) -> str:
        return _OTHER_SCALE[self.base.train["concrete_scale"]]

    @property
    def central(self) -> tuple[Claim, ...]:
        """The central claim's comparisons present in this grid (:data:`CENTRAL`)."""
        return tuple(c for c in self.claims if c in CENTRAL)

    @property
    def same_budgets_as_paper(self) -> bool:
        """True when the curves have the paper's budgets (SVHN, 1000 initial, +1000 per step)."""
        return self.dataset == "svhn" and self.base.initial_size == PAPER.initial_size and self.base.k == PAPER.k

    def strategy_of(self, label: str) -> str:
        """The strategy name of a main-grid label."""
        return {lab: s for s, lab in self.labels.items()}[label]

    def _entry(self, method: str, run_label: str, **changes) -> dict:
        """Grid entry of main-grid method ``method`` run as ``run_label`` with config ``changes``."""
        s = self.strategy_of(method)
        return {"strategy": s, "label": run_label, "strategy_options": self.strategy_options.get(s, {}), **changes}

    def configs(self) -> list[ExperimentConfig]:
        """The grid: every strategy x seed, then the init reruns, then the regulariser-scale reruns."""
        main = [self._entry(label, label) for label in self.labels.values()]
        init = [self._entry(m, other, init=self.other_init) for m, other in self.init_runs.items()]
        train = {**self.base.train, "concrete_scale": self.other_scale}
        scale = [self._entry(m, other, train=train) for m, other in self.scale_runs.items()]
        seeds = list(self.seeds)
        return (
            grid_configs(self.base, main, seeds)
            + grid_configs(self.base, init, seeds)
            + grid_configs(self.base, scale, seeds)
        )

    def splits(self, task: Task) -> dict[int, Split]:
        """The split of every seed (shared by every strategy of the seed)."""
        return {seed: validate(self.base.replace(seed=seed), task=task) for seed in self.seeds}

    def main_results(self, results: pd.DataFrame) -> pd.DataFrame:
        """The main grid's rows of ``results`` (ablation reruns left out), methods in table order."""
        df = results[results["method"].astype(str).isin(self.labels.values())].copy()
        df["method"] = pd.Categorical(df["method"].astype(str), categories=list(self.labels.values()), ordered=True)
        return df.sort_values(["method", "seed", "step"]).reset_index(drop=True)

    def replace(self, **changes) -> StrategyComparison:
        return dataclasses.replace(self, **changes)


def load_task(dataset: str, data_directory=None) -> Task:
    """The task of ``dataset`` (``"svhn"``: never downloaded here; ``"mnist32"``: MNIST zero-padded to 32 x 32)."""
    config = ExperimentConfig(task=dataset, task_options=_task_options(dataset), model=MODEL, strategy="random")
    return load_task_for(config, data_directory)


def _task_options(dataset: str) -> dict:
    return {"download": False} if dataset == "svhn" else {}


def experiment_from(settings: Mapping, *, dataset: str, n_train: int) -> StrategyComparison:
    """Notebook 02's experiment from a profile's settings (its knobs by name).

    dataset: ``"svhn"`` or ``"mnist32"`` (:func:`resolve_dataset`); n_train: the task's training images (with
    ``val_size == 0`` MNIST holds out a fifth of them, as SVHN's fixed 20 % validation split).
    """
    if dataset not in ("svhn", "mnist32"):
        raise ValueError(f"dataset must be 'svhn' or 'mnist32'; got {dataset!r}")
    check_int(n_train, "n_train", ge=1)
    s = settings
    left_out = tuple(s.get("leave_out", ()))
    if set(left_out) & CENTRAL_STRATEGIES:
        raise ValueError(f"leave_out={left_out}: the central claim compares {sorted(CENTRAL_STRATEGIES)}; keep them")
    labels = {name: label for name, label in strategy_labels(s["power_beta"]).items() if name not in left_out}
    train = dict(
        optimizer="sgd",
        lr=s["lr"],
        momentum=s["momentum"],
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        checkpoint="best_val",
        concrete_scale=s["concrete_scale"],
    )
    probe = ExperimentConfig(task=dataset, task_options=_task_options(dataset), model=MODEL, strategy="random")
    val_size = s["val_size"] or (None if dataset == "svhn" else n_train // 5)
    base = probe.replace(
        initial=s["initial"],
        initial_size=s["initial_size"],
        k=s["k"],
        n_steps=s["n_steps"],
        pool_size=s["pool_size"] or None,
        val_size=val_size,
        test_size=s["test_size"] or None,
        T=s["T"],
        n_candidates=s["n_candidates"] or None,
        train=train,
        init=s["init"],
    )
    other_init, other_scale = INIT_NAMES[_OTHER_INIT[s["init"]]], SCALE_NAMES[_OTHER_SCALE[s["concrete_scale"]]]
    present = set(labels.values())
    claims = tuple(
        dataclasses.replace(c, a=labels["power_bald"]) if c.a == "Power BALD" and "power_bald" in labels else c
        for c in CLAIMS
    )
    return StrategyComparison(
        dataset=dataset,
        labels=labels,
        strategy_options={"power_bald": {"beta": s["power_beta"]}},
        base=base,
        seeds=tuple(range(s["n_seeds"])),
        init_runs={labels[m]: f"{labels[m]} · {other_init}" for m in s["compare_init"]},
        scale_runs={labels[m]: f"{labels[m]} · {other_scale}" for m in s["compare_scale"]},
        claims=tuple(c for c in claims if c.a in present and c.b in present),
        window=max(s["windows"]),
    )


def claim_scale_gaps(experiment: StrategyComparison, n_pool: int) -> list[str]:
    """Why this grid cannot test the central claim ("once the model is reasonably trained, the uncertainty
    strategies pick better examples"): ``[]`` when it starts from at least :data:`WARM_START_LABELS` labels and
    scores at least :data:`MIN_CANDIDATES` candidates per step (or the whole pool of ``n_pool`` images), else
    one phrase per missing condition."""
    base = experiment.base
    scored = min(base.n_candidates or n_pool, n_pool)
    gaps = []
    if base.initial_size < WARM_START_LABELS:
        gaps.append(f"a warm start of ≥ {WARM_START_LABELS} labels (this grid starts from {base.initial_size})")
    if scored < min(MIN_CANDIDATES, n_pool):
        paper_share = 100 * PAPER.k / (PAPER.n_pool - PAPER.initial_size)
        gaps.append(
            f"≥ {MIN_CANDIDATES} candidates per step (this grid scores {scored}: its top {base.k} is "
            f"{100 * base.k / scored:.0f} % of them, the paper's {paper_share:.1f} %)"
        )
    return gaps


def dataset_note(experiment: StrategyComparison, task: Task, data_directory=None) -> str:
    """One Markdown line: the data set used, and why MNIST-32 numbers are not comparable with the paper's."""
    why = (
        ""
        if experiment.dataset == "svhn"
        else f" The SVHN files were not found in `{data_dir(data_directory)}`, so absolute accuracies are **not** "
        "comparable with the paper's SVHN numbers (MNIST is much easier); the comparison *between strategies* is "
        "what carries over."
    )
    return f"### Data set used here: **{experiment.name}** ({task.description}).{why}"


def scaling_note(experiment: StrategyComparison, split: Split, profile: str) -> str:
    """Markdown: how a profile other than ``paper`` scales the paper's protocol down, and why."""
    base, train = experiment.base, experiment.base.train
    n_pool = len(split.initial) + len(split.pool)
    return (
        f"**Scaled down (profile `{profile}`).** The paper's protocol is one run per strategy of {PAPER.n_steps + 1} "
        f"trainings of {PAPER.epochs} epochs on up to {PAPER.budgets[-1]} images — GPU-days, not minutes on 2 CPU "
        "cores (section 9 gives the cost model). To fit the report's budget we keep the network, the optimiser "
        "family, best-validation checkpointing, T and every strategy, but shrink the sizes: a pool of "
        f"{n_pool} images, {base.initial_size} initial labels ({base.initial}, as DEIMOS and Gal et al. start "
        f"small), +{base.k} per step for {base.n_steps} steps, {len(split.val)} validation and "
        f"{len(split.test)} test images, {train['epochs']} epoch(s) with learning rate {train['lr']} (the paper: "
        f"{PAPER.lr}) and batch {train['batch_size']} so that a few epochs on a few hundred images converge, and "
        f"each step scores a seeded random subsample of {base.n_candidates or 'all'} pool images. We run "
        f"{len(experiment.seeds)} seeds instead of one, to see the spread. The `paper` profile restores the paper's "
        "protocol."
    )


def verdict_reading(comparison: compare.Comparison) -> str:
    """What ``comparison``'s verdict says in words: who picks better examples, or what these seeds can resolve."""
    c = comparison
    if c.verdict == compare.NOT_RESOLVED:
        scale = (
            f"a true AUBC difference of {c.mde:.4f} would be detected with 80 % power"
            if np.isfinite(c.mde)
            else f"fewer than {compare.min_seeds()} seeds can never resolve a comparison"
        )
        return (
            f"these {c.n_seeds} seeds cannot tell {c.a} and {c.b} apart: the difference, {c.interval()}, is within "
            f"what they resolve ({scale})"
        )
    winner, loser = (c.a, c.b) if c.verdict == compare.SUPPORTED else (c.b, c.a)
    return (
        f"{winner} picks better examples than {loser}: {c.interval()} AUBC, sign-flip p = {c.p_value:.3g} over "
        f"{c.n_seeds} seeds"
    )


def protocol_table(experiment: StrategyComparison, split: Split, profile: str) -> pd.DataFrame:
    """This run's protocol beside the paper's (:data:`PAPER`), one row per setting."""
    base, train = experiment.base, experiment.base.train
    n_pool = len(split.initial) + len(split.pool)
    init = {"fixed": "one per seed, reused at every step", "per_step": "a new one at every step"}[base.init]
    scale = {"none": "as the paper (not divided by N)", "n_train": "Gal's form: divided by N"}[train["concrete_scale"]]
    rows = [
        ("data set", experiment.name, "SVHN"),
        ("pool (initial set included)", f"{n_pool}", f"{PAPER.n_pool}"),
        (
            "initial labelled set",
            f"{base.initial_size} ({base.initial})",
            f"{PAPER.initial_size} (first of the shuffled split)",
        ),
        (
            "acquired per step x steps",
            f"{base.k} x {base.n_steps}",
            f"{PAPER.k} x {PAPER.n_steps}",
        ),
        ("validation (checkpoint choice)", f"{len(split.val)}", f"{PAPER.n_val} (fixed 20 %)"),
        ("test set", f"{len(split.test)}", f"{PAPER.n_test}"),
        (
            "training",
            f"SGD lr {train['lr']}, momentum {train['momentum']}, batch {train['batch_size']}, "
            f"{train['epochs']} epochs, best val.",
            f"SGD lr {PAPER.lr}, momentum {PAPER.momentum}, batch {PAPER.batch_size}, {PAPER.epochs} epochs, best val.",
        ),
        ("initial network", init, "the same at every step (torch.manual_seed(42))"),
        ("Concrete Dropout regulariser", scale, "not divided by N"),
        ("MC passes T (EntropyD, BALD, Power BALD)", f"{base.T}", f"{PAPER.T}"),
        ("candidates scored per step", f"{base.n_candidates or 'whole pool'}", "whole pool"),
        ("seeds", f"{len(experiment.seeds)}", "1 run per strategy"),
    ]
    return pd.DataFrame(rows, columns=["", f"this run ({profile})", "the paper"]).set_index("")


def paper_reference_points(experiment: StrategyComparison) -> dict | None:
    """``{label: ([budget], [highest accuracy])}`` of the author's repository for the curve plot, or None
    when the budgets differ from the paper's (then the points would mislead)."""
    if not experiment.same_budgets_as_paper:
        return None
    return {m: ([b], [v]) for m, (v, b) in references.values(references.KIRILLOV_HIGHEST_37).items()}


def highest_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per method: the highest test accuracy of each seed's curve (mean, ± std over seeds) and the budget
    where the seed-mean curve peaks."""
    best = df.groupby(["method", "seed"], observed=True)["accuracy"].max().groupby(level="method", observed=True)
    mean_curve = df.groupby(["method", "budget"], observed=True)["accuracy"].mean()
    peak = mean_curve.groupby(level="method", observed=True).idxmax().map(lambda ix: int(ix[1]))
    return pd.DataFrame(
        {"highest (mean)": best.mean(), "± std": best.std(ddof=1), "budget of the mean curve's max": peak}
    )


def paper_highest_table() -> pd.DataFrame:
    """The author's repository: highest test accuracy over its 37 points and the budget (SVHN, one run each)."""
    rows = [
        {"method": m, "highest": v, "budget": b}
        for m, (v, b) in references.values(references.KIRILLOV_HIGHEST_37).items()
    ]
    return pd.DataFrame(rows).set_index("method")


_WINDOW_NAMES = {"max": "max", "aubc": "AUBC", "tp": "TP"}


def window_table(df: pd.DataFrame, n_steps: int) -> pd.DataFrame:
    """Max, AUBC and TP over the first ``n_steps`` steps (``metrics.window_summary``), mean and ± std over seeds."""
    summaries = {
        (m, seed): metrics.window_summary(c.sort_values("step")["accuracy"].to_numpy(), n_steps)
        for (m, seed), c in df.groupby(["method", "seed"], observed=True)
    }
    per_seed = pd.DataFrame(
        {name: [getattr(x, key) for x in summaries.values()] for key, name in _WINDOW_NAMES.items()},
        index=pd.MultiIndex.from_tuples(list(summaries), names=["method", "seed"]),
    )
    table = per_seed.groupby(level="method", sort=False).agg(["mean", "std"])
    table.columns = [k if stat == "mean" else f"{k} ± std" for k, stat in table.columns]
    return table


#: the paper's window tables: steps -> (its table, the six-decimal values of the author's repository)
_PAPER_WINDOWS = {10: ("Table 2", references.KIRILLOV_FIRST10), 20: ("Table 3", references.KIRILLOV_FIRST20)}


def paper_window_table(n_steps: int) -> tuple[str, pd.DataFrame] | None:
    """(the paper's table name, its max / AUBC / TP per method) for 10 or 20 steps; None for other windows."""
    if n_steps not in _PAPER_WINDOWS:
        return None
    name, refs = _PAPER_WINDOWS[n_steps]
    rows = [{"method": m, "max": r[0], "AUBC": r[1], "TP": r[2]} for m, r in references.values(refs).items()]
    return name, pd.DataFrame(rows).set_index("method")


def paper_aubc(n_steps: int) -> dict[str, float]:
    """The paper's AUBC over its first ``n_steps`` (10 or 20) steps, per method (author's repository, 6 decimals)."""
    if n_steps not in _PAPER_WINDOWS:
        raise ValueError(f"the paper reports windows of {sorted(_PAPER_WINDOWS)} steps; got {n_steps!r}")
    return {m: r[1] for m, r in references.values(_PAPER_WINDOWS[n_steps][1]).items()}


#: the windows (first n steps) the paper reports
PAPER_WINDOWS: tuple[int, ...] = tuple(_PAPER_WINDOWS)


def paper_rates_table() -> pd.DataFrame:
    """The learned Concrete Dropout rates p1..p4 in the author's repository (full SVHN training set, read off a
    figure), one row named by its source."""
    ref = references.KIRILLOV_LEARNED_P
    return pd.DataFrame([list(ref.value)], columns=[f"p{i + 1}" for i in range(len(ref.value))], index=[ref.source])


def judge_claims(df: pd.DataFrame, claims: Sequence[Claim], *, upto: int) -> dict[tuple[str, str], compare.Comparison]:
    """``(a, b) -> compare.compare_curves`` of each claim: AUBC of the test accuracy over steps ``0..upto``."""
    return {
        (c.a, c.b): compare.compare_curves(df, c.a, c.b, metric="accuracy", summary="aubc", x="step", upto=upto)
        for c in claims
    }


@dataclass(frozen=True)
class LmmCheck:
    """DEIMOS's LMM test on the declared pairs (``table``) and its A/A calibration on Random (``aa``: None
    with fewer than 4 seeds)."""

    table: pd.DataFrame
    aa: stats.AACalibration | None
    n_seeds: int

    @property
    def n_significant(self) -> int:
        """Declared differences the LMM calls significant at 5 %."""
        return int((self.table["p (LMM, DEIMOS as coded)"] < 0.05).sum())

    @property
    def aa_line(self) -> str:
        """What the A/A runs measured (or why they could not run), as a clause."""
        if self.aa is None:
            return (
                f"its A/A check (Random vs Random, different seeds) needs at least 4 seeds; this run has {self.n_seeds}"
            )
        hits = int(np.sum(self.aa.p_values_R < self.aa.alpha))
        return (
            f"on A/A runs (Random vs Random, different seeds) the LMM test calls p < {self.aa.alpha:g} in "
            f"{hits} of {self.aa.n_splits} splits"
        )


def lmm_check(df: pd.DataFrame, comparisons: Mapping[tuple[str, str], compare.Comparison], *, upto: int) -> LmmCheck:
    """DEIMOS's test (Appendix C: ``metric ~ method + (1 | step)`` against ``metric ~ (1 | step)``, a likelihood
    ratio test) on each declared pair over steps ``0..upto``, beside the report's rule; A/A runs: Random
    against Random, its seeds split in two halves (needs 4 seeds)."""
    sub = df[df["step"] <= upto].assign(method=lambda d: d["method"].astype(str))
    lmm = {pair: stats.lmm_lrt(sub, *pair, metric="accuracy", group="step") for pair in comparisons}
    n_seeds = sub["seed"].nunique()
    aa = (
        stats.lmm_aa_calibration(sub, "Random", metric="accuracy", method="method", seed="seed", group="step")
        if n_seeds >= 4
        else None
    )
    table = pd.DataFrame(
        [
            {
                "A": a,
                "B": b,
                "effect A − B (accuracy)": r.effect,
                "LR statistic": r.lr_statistic,
                "p (LMM, DEIMOS as coded)": r.p_value,
                "sign-flip p over seeds": comparisons[(a, b)].p_value,
                "verdict (the report's rule)": comparisons[(a, b)].verdict,
                "points": r.n_obs,
                "fits converged": r.converged,
            }
            for (a, b), r in lmm.items()
        ]
    )
    return LmmCheck(table=table, aa=aa, n_seeds=int(n_seeds))


def picks_by_run(results: pd.DataFrame) -> dict[tuple[str, int], np.ndarray]:
    """``(method, seed) -> picks_N``: the pool indices a run acquired, all steps in order (the ``acquired`` column)."""
    out = {}
    for (m, seed), g in results.groupby(["method", "seed"], observed=True, sort=False):
        steps = g.sort_values("step")["acquired"]
        out[(str(m), int(seed))] = np.concatenate([np.asarray(a, np.int64) for a in steps])
    return out


def same_picks(results: pd.DataFrame, a: str, b: str) -> bool:
    """True when runs ``a`` and ``b`` of every seed acquired the same points in the same order."""
    picks = picks_by_run(results)
    seeds = sorted({s for m, s in picks if m == a} | {s for m, s in picks if m == b})
    return all((a, s) in picks and (b, s) in picks and np.array_equal(picks[(a, s)], picks[(b, s)]) for s in seeds)


#: seed of the chance-level TV draws of :func:`pick_balance`
TV_NULL_SEED: int = derive_seed(0, "tv-null")


@dataclass(frozen=True)
class PickBalance:
    """Class make-up of each method's picks against the pool's.

    ``table``: one row per method (TV from its seed's pool mix, mean and per seed; least- and most-picked
    class with their shares among all seeds' picks); ``fractions_C``: method -> class shares of all its picks;
    ``tv_S``: method -> TV per seed; ``null_tv_95``: the TV that ``n_picks`` labels drawn at random from the
    first seed's pool mix stay below in 95 % of draws; ``pool_fractions_C``: every seed's pool together.
    """

    table: pd.DataFrame
    fractions_C: dict[str, np.ndarray]
    tv_S: dict[str, np.ndarray]
    null_tv_95: float
    pool_fractions_C: np.ndarray
    n_picks: int


def pick_balance(
    results: pd.DataFrame,
    y_train_N: np.ndarray,
    pools: Mapping[int, np.ndarray],
    n_classes: int,
    *,
    methods: Sequence[str],
    n_null: int = 2000,
    random_state=TV_NULL_SEED,
) -> PickBalance:
    """Total variation TV = 1/2 sum_c |f_c - r_c| of each method's picks (class shares f) from its seed's pool
    (shares r), and the TV of random draws of the same size (``n_null`` draws, seeded by ``random_state``).

    pools: seed -> the pool's train indices (``Split.pool``); methods: the labels to report, in order.
    """
    check_int(n_classes, "n_classes", ge=2)
    check_int(n_null, "n_null", ge=1)
    picks = picks_by_run(results)
    seeds = sorted(pools)
    pool_ref = {seed: metrics.class_balance(y_train_N[pools[seed]], n_classes).fractions_C for seed in seeds}
    rows, fractions, tv = [], {}, {}
    for m in methods:
        labels = {seed: y_train_N[picks[(m, seed)]] for seed in seeds}
        tv_S = np.array(
            [metrics.class_balance(labels[s], n_classes, reference_C=pool_ref[s]).total_variation for s in seeds]
        )
        pooled = metrics.class_balance(np.concatenate([labels[s] for s in seeds]), n_classes)
        fractions[m], tv[m] = pooled.fractions_C, tv_S
        rows.append(
            {
                "method": m,
                "TV from the pool (mean over seeds)": np.mean(tv_S),
                "per seed": ", ".join(f"{v:.3f}" for v in tv_S),
                "least-picked class": int(np.argmin(pooled.fractions_C)),
                "least share": pooled.min_fraction,
                "most-picked class": int(np.argmax(pooled.fractions_C)),
                "most share": float(pooled.fractions_C.max()),
            }
        )
    n_picks = {len(p) for p in picks.values()}
    if len(n_picks) != 1:
        raise ValueError(f"runs acquired different numbers of points: {sorted(n_picks)}")
    size = n_picks.pop()
    rng = np.random.default_rng(random_state)
    reference_C = pool_ref[seeds[0]]
    null_tv = np.array(
        [
            metrics.class_balance(
                rng.choice(n_classes, size=size, p=reference_C), n_classes, reference_C=reference_C
            ).total_variation
            for _ in range(n_null)
        ]
    )
    pool_all = metrics.class_balance(y_train_N[np.concatenate([pools[s] for s in seeds])], n_classes).fractions_C
    return PickBalance(
        table=pd.DataFrame(rows).set_index("method"),
        fractions_C=fractions,
        tv_S=tv,
        null_tv_95=float(np.quantile(null_tv, 0.95)),
        pool_fractions_C=pool_all,
        n_picks=size,
    )


@dataclass(frozen=True)
class McNoiseProbe:
    """:func:`mc_noise_probe`'s result: ``table`` (one row per score and ``T``), the ``n_candidates`` scored,
    ``k`` (the top-``k`` compared) and ``n_labelled`` (the training set of the probed network)."""

    table: pd.DataFrame
    n_candidates: int
    k: int
    n_labelled: int

    def overlap(self, score: str, T: int) -> float:
        """Share of the top-``k`` two independent MC runs agree on."""
        row = self.table[(self.table["score"] == score) & (self.table["T"] == T)]
        return float(row["top-k overlap of two MC runs"].iloc[0])


def mc_noise_probe(
    config: ExperimentConfig, task: Task, split: Split, passes: Sequence[int], *, k: int, n_candidates: int | None
) -> McNoiseProbe:
    """How much of a top-``k`` the MC masks decide: one network trained like step 0 of ``config``'s seed scores
    the same candidates twice per ``T`` in ``passes``, with independent MC-dropout masks.

    The table has one row per (score, T), score BALD (mutual information) or EntropyD (predictive entropy):
    the overlap of the two top-``k`` sets (share of ``k``) and the Spearman rank correlation of the two
    scorings. Every random choice derives from ``(config.seed, "probe", ...)``; n_candidates: a seeded
    random subsample of the pool (None or 0: the whole pool).
    """
    check_int(k, "k", ge=1)
    seed = config.seed
    x_source, y_source = (task.x_val, task.y_val) if split.val_from_task else (task.x_train, task.y_train)
    if x_source is None or y_source is None:
        raise ValueError(f"{task.name}: the split takes its validation set from the task, which has none")
    x_val, y_val = x_source[split.val], y_source[split.val]
    model = fit(
        build_step_model(config, 0),
        task.x_train[split.initial],
        task.y_train[split.initial],
        x_val=x_val,
        y_val=y_val,
        config=config.train_config(),
        random_state=derive_seed(seed, "probe", "fit"),
    ).model
    rng = np.random.default_rng(derive_seed(seed, "probe", "candidates"))
    size = min(n_candidates or len(split.pool), len(split.pool))
    x_candidates = task.x_train[np.sort(rng.choice(split.pool, size=size, replace=False))]
    rows = []
    for T in passes:
        probs = [
            predict(model, x_candidates, T, masks="fresh", random_state=derive_seed(seed, "probe", T, r))
            for r in (0, 1)
        ]
        for score_name, score in (("BALD", bald), ("EntropyD", predictive_entropy)):
            first_N, second_N = (score(p) for p in probs)
            overlap = len(set(top_k(first_N, k).indices) & set(top_k(second_N, k).indices)) / k
            rows.append(
                {
                    "score": score_name,
                    "T": T,
                    "top-k overlap of two MC runs": overlap,
                    "rank correlation (Spearman)": float(
                        pd.Series(first_N).corr(pd.Series(second_N), method="spearman")
                    ),
                }
            )
    return McNoiseProbe(table=pd.DataFrame(rows), n_candidates=size, k=k, n_labelled=len(split.initial))


def dropout_rates_long(results: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """The learned Concrete Dropout rates of ``methods``' runs, long: method, seed, budget, layer (p1..), metric."""
    rows = [
        {"method": str(r.method), "seed": r.seed, "budget": r.budget, "layer": f"p{i + 1}", "metric": p}
        for r in results[results["method"].astype(str).isin(methods)].itertuples()
        for i, p in enumerate(r.dropout_rates)
    ]
    return pd.DataFrame(rows)


def final_rates_table(results: pd.DataFrame, runs: Mapping[str, str], names: tuple[str, str]) -> pd.DataFrame:
    """Learned rates at the last step, mean over seeds, for each ``label -> rerun label`` of ``runs``;
    ``names``: how the two runs are named in the table (this run's regulariser, the rerun's)."""
    last = results[results["step"] == results["step"].max()]
    rows = []
    for m, other in runs.items():
        for name, label in zip(names, (m, other)):
            rates = np.stack(last[last["method"].astype(str) == label]["dropout_rates"].to_list()).mean(axis=0)
            rows.append({"strategy": m, "regulariser": name, **{f"p{i + 1}": v for i, v in enumerate(rates)}})
    return pd.DataFrame(rows).set_index(["strategy", "regulariser"])


def step_plans(
    methods: Mapping[str, str], *, epochs: int, batch_size: int, n_test: int, n_candidates: int, T: int
) -> dict[str, StepPlan]:
    """``label -> StepPlan`` for ``methods`` (label -> strategy): the MC strategies score ``T`` passes per candidate."""
    return {
        m: StepPlan(
            epochs=epochs,
            batch_size=batch_size,
            n_test=n_test,
            eval_passes=0,
            n_candidates=n_candidates,
            mc_passes=T if s in MC_STRATEGIES else 0,
        )
        for m, s in methods.items()
    }


@dataclass(frozen=True)
class CostEstimates:
    """Seconds predicted by the per-step cost model fitted on this grid's records (``model``): this grid on
    ``n_workers`` workers, and the paper's protocol (one run per strategy of ``paper_methods``) on one worker."""

    model: CostModel
    n_workers: int
    grid_wall_s: float
    paper_s: float
    paper_methods: int


def _n_workers(workers: int, n_runs: int) -> int:
    return max(1, min(n_runs, os.cpu_count() or 1)) if workers < 0 else max(1, workers)


def cost_estimates(
    results: pd.DataFrame, experiment: StrategyComparison, split: Split, *, workers: int
) -> CostEstimates:
    """:class:`CostEstimates` of this grid and of :data:`PAPER`'s protocol with the rates measured here.

    The paper's plan keeps this profile's ``T`` (``T``) and scores the mean pool size of its 36
    selections; workers: the grid's ``workers`` setting (-1: one per core).
    """
    base = experiment.base
    configs = experiment.configs()
    strategy_of = {c.method: c.strategy for c in configs}
    n_candidates = min(base.n_candidates or len(split.pool), len(split.pool))
    plans = step_plans(
        {m: strategy_of[m] for m in results["method"].astype(str).unique()},
        epochs=base.train["epochs"],
        batch_size=base.train["batch_size"],
        n_test=len(split.test),
        n_candidates=n_candidates,
        T=base.T,
    )
    model = CostModel.fit(results, plans)
    budgets = [base.initial_size + i * base.k for i in range(base.n_steps + 1)]
    n_workers = _n_workers(workers, len(configs))
    _, grid_wall = model.predict_grid(plans, budgets, len(experiment.seeds), workers=n_workers)
    paper_pool = PAPER.n_pool - PAPER.initial_size
    paper_candidates = int(np.mean([paper_pool - PAPER.k * i for i in range(PAPER.n_steps)]))
    paper_plans = step_plans(
        {m: s for s, m in experiment.labels.items()},
        epochs=PAPER.epochs,
        batch_size=PAPER.batch_size,
        n_test=PAPER.n_test,
        n_candidates=paper_candidates,
        T=base.T,
    )
    _, paper_s = model.predict_grid(paper_plans, PAPER.budgets, 1, workers=1)
    return CostEstimates(
        model=model, n_workers=n_workers, grid_wall_s=grid_wall, paper_s=paper_s, paper_methods=len(paper_plans)
    )


@dataclass(frozen=True)
class ProfileCost:
    """Predicted wall seconds of another profile's grid (its main strategies x seeds, no reruns) on
    ``n_workers`` workers of this machine, from the rates measured here."""

    wall_s: float
    n_workers: int
    n_seeds: int
    n_steps: int
    epochs: int


def profile_cost(model: CostModel, settings: Mapping, *, n_pool: int, n_test: int) -> ProfileCost:
    """:class:`ProfileCost` of the grid that ``settings`` (a profile of notebook 02) would run.

    n_pool: the pool images its steps select from (initial set excluded) when ``settings`` keeps the whole
    pool; n_test: its test images when ``settings["test_size"]`` is 0 (all). Strategies whose rates were not
    measured here, and those of ``settings["leave_out"]``, are left out.
    """
    s = settings
    left_out = tuple(s.get("leave_out", ()))
    methods = {m: st for st, m in strategy_labels(s["power_beta"]).items() if m in model.rates and st not in left_out}
    pool = (s["pool_size"] - s["initial_size"]) if s["pool_size"] else n_pool
    plans = step_plans(
        methods,
        epochs=s["epochs"],
        batch_size=s["batch_size"],
        n_test=s["test_size"] or n_test,
        n_candidates=min(s["n_candidates"] or pool, pool),
        T=s["T"],
    )
    budgets = [s["initial_size"] + i * s["k"] for i in range(s["n_steps"] + 1)]
    n_workers = _n_workers(s["workers"], len(plans) * s["n_seeds"])
    _, wall = model.predict_grid(plans, budgets, s["n_seeds"], workers=n_workers)
    return ProfileCost(wall_s=wall, n_workers=n_workers, n_seeds=s["n_seeds"], n_steps=s["n_steps"], epochs=s["epochs"])


def time_note(grid: GridResults, cost: CostEstimates, *, profile: str, resume: bool) -> str:
    """Markdown: what this execution computed and how long it took, the mean time per phase, and what the
    cost model predicts for this grid and for the paper's protocol."""
    results = grid.results
    slowest = results.groupby("method", observed=True)["select_s"].mean().idxmax()
    resumed = f"; a re-run with the same settings resumes from `{grid.root}` and computes nothing" if resume else ""
    return (
        f"**Time.** This execution computed {grid.steps_computed} of the grid's {len(results)} steps in "
        f"**{grid.wall_s / 60:.1f} min** wall time (profile `{profile}`{resumed}). Mean time per step: training "
        f"{results['train_s'].mean():.1f} s, test evaluation {results['eval_s'].mean():.2f} s, scoring and "
        f"selection {results['select_s'].mean():.2f} s (highest: {slowest}). The per-step cost model "
        "(`mcal_utils.cost`: seconds per mini-batch-epoch, per test image, per candidate x MC pass, medians of these "
        f"records) gives {cost.grid_wall_s / 60:.1f} min for this grid on {cost.n_workers} worker(s), and "
        f"**{cost.paper_s / 3600:.0f} h** on one worker for the paper's protocol ({cost.paper_methods} strategies x "
        f"{PAPER.n_steps + 1} steps of {PAPER.epochs} epochs on up to {PAPER.budgets[-1]} images, one run each) — a "
        f"lower bound, since a mini-batch of {PAPER.batch_size} costs more than the small ones measured here. "
        "Timings measured while other jobs share the CPU are inflated, and so is everything predicted from them."
    )
