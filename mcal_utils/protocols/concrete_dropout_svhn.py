"""The MC-dropout-entropy paper's CNN with learned Concrete Dropout vs fixed dropout, as data (notebook 01).

The paper (Kirillov, 2026) trains one CNN (its Table 1) with Concrete Dropout before block 2, block 3,
fc1 and fc2: every rate p = sigmoid(p_logit) is learned with the weights. Its author's repository
(``2.Refining_the_model.ipynb``; not the paper) trains it on the full balanced SVHN training split for
100 epochs and reports a higher test accuracy than the same net with fixed p = 0.2
(``references.KIRILLOV_ACC_CONCRETE`` against ``KIRILLOV_ACC_FIXED_SOL``, the like-for-like twin
without dropout before the last layer, and ``KIRILLOV_ACC_FIXED``), one run each, and the learned
rates ``KIRILLOV_LEARNED_P``.

The experiment: twin nets, one with Concrete Dropout and one with fixed p, built from the same
initialisation seed and trained identically (same batch order, optimiser, epochs), one twin pair per
seed. The claim "Concrete Dropout reaches a higher test accuracy (MC mean) than fixed p" is judged by
:func:`mcal_utils.compare.paired` over the pairs (:func:`accuracy_comparison`); the effect of MC
averaging on each net's calibration likewise (:func:`calibration_comparisons`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import checks, compare, cost, data, mc, metrics, references, stats
from ..models import build_model
from ..training import KIRILLOV_SGD, FitResult, TrainConfig, fit
from .greedy_optimality import format_duration, hardware

__all__ = [
    "DATASETS",
    "INITIAL_P",
    "LAYER_NAMES",
    "CONCRETE",
    "DETERMINISTIC",
    "PAPER_N_TEST",
    "DigitTask",
    "load_digit_task",
    "dataset_text",
    "twin_specs",
    "train_config",
    "TwinRuns",
    "train_twins",
    "rate_history",
    "rates_table",
    "paper_rates_table",
    "quality_table",
    "paper_accuracy_table",
    "first_pair_mcnemar",
    "accuracy_comparison",
    "calibration_comparisons",
    "what_ran_text",
    "accuracy_text",
    "rates_text",
    "calibration_text",
    "paper_scale_seconds",
    "finding",
]

DATASETS: tuple[str, ...] = ("auto", "svhn", "mnist32")
#: every Concrete Dropout rate starts here (``models.ConcreteDropout``'s ``init_p``)
INITIAL_P: float = 0.1
#: the four Concrete Dropout layers of the paper's CNN, in order
LAYER_NAMES: tuple[str, ...] = ("CD1 (before block 2)", "CD2 (before block 3)", "CD3 (before fc1)", "CD4 (before fc2)")
CONCRETE = "Concrete Dropout"
DETERMINISTIC = "deterministic"
#: balanced SVHN test images (the smallest class, digit 9, x 10); the MC-dropout-entropy paper's
#: preprocessing (sections 2 and 3.3), used for the paper-scale time estimate
PAPER_N_TEST: int = references.KIRILLOV_SVHN_BALANCED.value[1]
#: learned rates after full training, the author's repository (read off a figure)
PAPER_P: tuple[float, ...] = references.KIRILLOV_LEARNED_P.value
#: epochs of the repository's full-training runs behind its accuracies and learned rates
PAPER_FULL_EPOCHS: int = references.KIRILLOV_FULL_TRAINING_EPOCHS.value


def mc_label(T: int) -> str:
    """The prediction label of the MC mean of ``T`` passes, e.g. ``"MC mean, T = 50"``."""
    return f"MC mean, T = {T}"


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DigitTask:
    """The task trained on, its display name (``"SVHN"`` / ``"MNIST-32"``) and why SVHN was not used."""

    task: data.Task
    name: str
    why_not_svhn: str | None


def load_digit_task(dataset: str, *, n_train: int, n_val: int, n_test: int, seed: int) -> DigitTask:
    """SVHN with the paper's preprocessing when its files are here (``"auto"``, ``"svhn"``), else MNIST-32.

    MNIST-32 (MNIST 0-9 zero-padded to 32 x 32): ``n_train + n_val`` images drawn (all when either is
    0), then a seeded split with ``n_val`` validation images (the paper's 20 % when 0). ``"svhn"``
    raises ``FileNotFoundError`` when the files are missing; ``"auto"`` falls back to MNIST-32.
    """
    checks.check_choice(dataset, "dataset", DATASETS)
    why = None
    if dataset in ("auto", "svhn"):
        try:
            task = data.load_task(
                "svhn", random_state=seed, n_train=n_train, n_val=n_val, n_test=n_test, download=dataset == "svhn"
            )
            return DigitTask(task=task, name="SVHN", why_not_svhn=None)
        except FileNotFoundError as e:
            if dataset == "svhn":
                raise
            why = str(e).splitlines()[0]
    n_sub = n_train + n_val if n_train and n_val else 0  # 0 = the whole MNIST training set
    task = data.load_task("mnist32", random_state=seed, n_train=n_sub, n_test=n_test)
    perm = np.random.default_rng(seed).permutation(len(task.y_train))
    n_val = n_val or int(round(0.2 * len(perm)))  # the paper's 80/20 when n_val is 0
    val, train = perm[:n_val], perm[n_val:]
    if n_train:
        train = train[:n_train]
    task = dataclasses.replace(
        task,
        x_train=task.x_train[train],
        y_train=task.y_train[train],
        x_val=task.x_train[val],
        y_val=task.y_train[val],
        description=f"MNIST 0-9 zero-padded to 32x32: {len(train)} train, {n_val} validation, {len(task.y_test)} test.",
    )
    return DigitTask(task=task, name="MNIST-32", why_not_svhn=why)


def dataset_text(digits: DigitTask) -> str:
    """Which data set this run used, and why not SVHN (markdown)."""
    text = f"### Dataset used in this run: **{digits.name}**\n\n{digits.task.description}"
    if digits.why_not_svhn is not None:
        text += (
            f"\n\n> SVHN was not used: {digits.why_not_svhn.replace('$', chr(92) + '$')} — the numbers below "
            "are **MNIST** numbers and are *not* directly comparable with the paper's SVHN figures (MNIST is a "
            "much easier task)."
        )
    return text


# ------------------------------------------------------------------------------------------------
# the twins
# ------------------------------------------------------------------------------------------------
def twin_specs(fixed_p: float) -> dict[str, dict]:
    """Display name -> ``build_model`` options of the two twins: Concrete Dropout first, then fixed p."""
    fixed_p = checks.check_float(fixed_p, "fixed_p", gt=0.0, lt=1.0)
    return {CONCRETE: dict(dropout="concrete"), f"fixed p = {fixed_p:g}": dict(dropout="fixed", p=fixed_p)}


def train_config(*, epochs: int, batch_size: int, lr: float, momentum: float) -> TrainConfig:
    """The paper's optimiser (:data:`training.KIRILLOV_SGD`: SGD, best-validation checkpoint) at these sizes."""
    return KIRILLOV_SGD.with_(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum)


@dataclass(frozen=True)
class TwinRuns:
    """Every twin pair, trained and evaluated.

    ``per_seed``: one row per (seed, model): accuracy and ECE of the MC mean, ECE of the
    deterministic prediction, best epoch, fit and prediction seconds; ``first``: the fits of the
    first seed (model name -> FitResult); ``probs``: the first seed's test probabilities
    ``(model, prediction) -> probs_N_C``; ``T``: MC passes.
    """

    seeds: tuple[int, ...]
    names: tuple[str, str]
    T: int
    per_seed: pd.DataFrame
    first: Mapping[str, FitResult]
    probs: Mapping[tuple[str, str], np.ndarray]

    @property
    def mc_key(self) -> str:
        return mc_label(self.T)


def train_twins(
    task: data.Task, *, fixed_p: float, config: TrainConfig, T: int, seeds: Sequence[int], log=print
) -> TwinRuns:
    """Train both twins for each seed (initialisation, batch order and MC masks from that seed) and
    predict the test set deterministically and as the mean of ``T`` fresh-mask MC passes.

    ``log``: called with one line per trained net (``None``: silent).
    """
    T = checks.check_int(T, "T", ge=1)
    specs = twin_specs(fixed_p)
    seeds = tuple(checks.check_int(s, "seed", ge=0) for s in seeds)
    first, probs, rows = {}, {}, []
    for s in seeds:
        for name, kwargs in specs.items():
            r = fit(
                build_model("kirillov_cnn", seed=s, **kwargs),
                task.x_train,
                task.y_train,
                x_val=task.x_val,
                y_val=task.y_val,
                config=config,
                random_state=s,
            )
            t0 = time.perf_counter()
            p_det = mc.deterministic(r.model, task.x_test).numpy()
            p_mc = mc.predict(r.model, task.x_test, T, masks="fresh", random_state=s).mean(dim=1).numpy()
            predict_s = time.perf_counter() - t0
            rows.append(
                {
                    "seed": s,
                    "model": name,
                    "accuracy (MC mean)": float((p_mc.argmax(1) == task.y_test).mean()),
                    "ECE deterministic": metrics.expected_calibration_error(p_det, task.y_test),
                    "ECE MC mean": metrics.expected_calibration_error(p_mc, task.y_test),
                    "best epoch": r.best_epoch,
                    "seconds": r.seconds,
                    "predict seconds": predict_s,
                }
            )
            if s == seeds[0]:
                first[name] = r
                probs[(name, DETERMINISTIC)] = p_det
                probs[(name, mc_label(T))] = p_mc
            if log is not None:
                log(
                    f"seed {s} {name:>18}: {r.seconds:6.1f} s, best epoch {r.best_epoch}/{config.epochs}, "
                    f"test accuracy (MC mean) {rows[-1]['accuracy (MC mean)']:.4f}"
                )
    names = tuple(specs)
    return TwinRuns(seeds=seeds, names=(names[0], names[1]), T=T, per_seed=pd.DataFrame(rows), first=first, probs=probs)


# ------------------------------------------------------------------------------------------------
# learned dropout rates
# ------------------------------------------------------------------------------------------------
def rate_history(fit_result: FitResult) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs_E, rates_E_L)``: the Concrete Dropout rates of the L layers after every epoch."""
    epochs_E = np.array([h["epoch"] for h in fit_result.history])
    rates_E_L = np.array([h["dropout_rates"] for h in fit_result.history])
    return epochs_E, rates_E_L


def rates_table(runs: TwinRuns, digits: DigitTask, epochs: int) -> pd.DataFrame:
    """Our rates per layer: at the start, after the last epoch and in the restored (best) epoch."""
    r = runs.first[CONCRETE]
    _, rates_E_L = rate_history(r)
    restored: Any = r.model  # an mcal_utils.models net: dropout_rates() lists its Concrete Dropout rates
    table = pd.DataFrame(
        {
            "start": [INITIAL_P] * len(LAYER_NAMES),
            f"after {epochs} epoch(s)": rates_E_L[-1].round(4),
            f"restored epoch {r.best_epoch}": np.round(restored.dropout_rates(), 4),
        },
        index=list(LAYER_NAMES),
    )
    table.columns = pd.MultiIndex.from_product(
        [[f"ours ({digits.name}, {len(digits.task.y_train)} images)"], table.columns]
    )
    return table


def paper_rates_table() -> pd.DataFrame:
    """The author's repository's learned rates after full training (``references.KIRILLOV_LEARNED_P``)."""
    epochs = PAPER_FULL_EPOCHS
    table = pd.DataFrame({f"after {epochs} epochs": PAPER_P}, index=list(LAYER_NAMES))
    table.columns = pd.MultiIndex.from_product(
        [["author's repository (full SVHN, 2.Refining_the_model.ipynb)"], table.columns]
    )
    return table


# ------------------------------------------------------------------------------------------------
# accuracy and calibration
# ------------------------------------------------------------------------------------------------
def quality_table(runs: TwinRuns, y_test: np.ndarray) -> pd.DataFrame:
    """The first pair's test accuracy, ECE, confidence − accuracy and NLL per (model, prediction)."""
    rows = []
    for (name, how), p_N_C in runs.probs.items():
        q = metrics.prediction_quality(p_N_C, y_test)
        rows.append(
            {
                "model": name,
                "prediction": how,
                "test accuracy": q.accuracy,
                "ECE": q.ece,
                "confidence − accuracy": q.overconfidence,
                "NLL": q.nll,
            }
        )
    return pd.DataFrame(rows).set_index(["model", "prediction"])


QUALITY_FORMATS = {"test accuracy": "{:.4f}", "ECE": "{:.4f}", "NLL": "{:.4f}", "confidence − accuracy": "{:+.4f}"}


def paper_accuracy_table(runs: TwinRuns) -> pd.DataFrame:
    """The author's repository's full-training test accuracies, one run each."""
    return pd.DataFrame(
        {"test accuracy": [references.KIRILLOV_ACC_CONCRETE.value, references.KIRILLOV_ACC_FIXED.value]},
        index=list(runs.names),
    )


def first_pair_mcnemar(runs: TwinRuns, y_test: np.ndarray) -> stats.McNemarTest:
    """Exact McNemar test of the first pair's MC-mean predictions on the same test images."""
    concrete, fixed = runs.names
    right = {m: runs.probs[(m, runs.mc_key)].argmax(1) == y_test for m in runs.names}
    return stats.mcnemar_exact(right[concrete], right[fixed])


def _wide(runs: TwinRuns) -> pd.DataFrame:
    return runs.per_seed.pivot(index="seed", columns="model")


def accuracy_comparison(runs: TwinRuns) -> compare.Comparison:
    """The report's rule on the claim: Concrete Dropout − fixed p test accuracy (MC mean), paired by seed."""
    concrete, fixed = runs.names
    wide = _wide(runs)
    return compare.paired(
        wide[("accuracy (MC mean)", concrete)],
        wide[("accuracy (MC mean)", fixed)],
        a=concrete,
        b=fixed,
        metric="test accuracy (MC mean)",
        seeds=runs.seeds,
    )


def calibration_comparisons(runs: TwinRuns) -> dict[str, compare.Comparison]:
    """Per net: ECE of the MC mean − ECE of the deterministic prediction (lower is better), paired by seed."""
    wide = _wide(runs)
    return {
        m: compare.paired(
            wide[("ECE MC mean", m)],
            wide[("ECE deterministic", m)],
            a="MC mean",
            b=DETERMINISTIC,
            metric=f"ECE of the {m} net",
            seeds=runs.seeds,
            higher_is_better=False,
        )
        for m in runs.names
    }


# ------------------------------------------------------------------------------------------------
# the texts (every judgement computed from the numbers it judges)
# ------------------------------------------------------------------------------------------------
def _steps_and_data_fraction(n_train: int, epochs: int) -> tuple[float, float]:
    """This run's share of the paper's optimisation steps (AL-model epochs) and of its training images."""
    n_paper = references.KIRILLOV_N_TRAIN.value
    return epochs * n_train / (references.KIRILLOV_EPOCHS.value * n_paper), n_train / n_paper


def what_ran_text(runs: TwinRuns, digits: DigitTask, config: TrainConfig) -> str:
    frac_steps, frac_data = _steps_and_data_fraction(len(digits.task.y_train), config.epochs)
    concrete, fixed = runs.names
    n_paper = f"{references.KIRILLOV_N_TRAIN.value:,}".replace(",", " ")
    return (
        f"**What ran:** {digits.name}, {len(digits.task.y_train)} training images ({frac_data:.0%} of the paper's "
        f"{n_paper}), {config.epochs} epoch(s) (the paper: {references.KIRILLOV_EPOCHS.value}), batch "
        f"{config.batch_size}, "
        f"SGD {config.lr:g} / momentum {config.momentum:g}: {frac_steps:.2%} of the paper's optimisation steps. "
        f"Best validation epochs: {runs.first[concrete].best_epoch} (Concrete), {runs.first[fixed].best_epoch} "
        "(fixed p)."
    )


def accuracy_text(
    runs: TwinRuns,
    quality: pd.DataFrame,
    mcnemar: stats.McNemarTest,
    digits: DigitTask,
    fixed_p: float,
    config: TrainConfig,
) -> str:
    """The first pair's accuracies against the repository's, the McNemar test, then the rule over all pairs."""
    concrete, fixed = runs.names
    acc, key = quality["test accuracy"], runs.mc_key
    d_acc = acc[(concrete, key)] - acc[(fixed, key)]
    n_test = len(digits.task.y_test)
    se = np.sqrt(acc[(concrete, key)] * (1 - acc[(concrete, key)]) / n_test)
    paper_c, paper_f = references.KIRILLOV_ACC_CONCRETE.value, references.KIRILLOV_ACC_FIXED.value
    paper_sol = references.KIRILLOV_ACC_FIXED_SOL.value
    paper_d = paper_c - paper_f
    sign = (
        "Our gap has the same sign as the paper's."
        if d_acc > 0
        else "Our gap has the opposite sign to the paper's."
        if d_acc < 0
        else "Our twins tie."
    )
    noise = (
        f"The first pair (seed {runs.seeds[0]}) disagrees on {mcnemar.n_discordant} test images "
        f"({mcnemar.n_only_a} only Concrete gets right, {mcnemar.n_only_b} only fixed p): an exact McNemar test "
        f"gives p = {mcnemar.p_value:.3f}, so our gap is "
        + ("**more than test-set noise**." if mcnemar.p_value < compare.ALPHA else "**within test-set noise**.")
        + f" Training noise adds to this, hence the pairs over seeds below; the {paper_d * 100:+.2f} % of the "
        "author's repository rests on one run of each."
    )
    frac_steps, _ = _steps_and_data_fraction(len(digits.task.y_train), config.epochs)
    level = (
        "On MNIST the absolute level is far higher than on SVHN (clean, centred digits), so only the "
        "*difference* between the twins is comparable, not the level."
        if digits.name != "SVHN"
        else f"Like the paper we use SVHN, with {frac_steps:.2%} of its optimisation steps."
    )
    epochs_full = PAPER_FULL_EPOCHS
    return (
        f"**Accuracy.** MC mean: Concrete Dropout {acc[(concrete, key)]:.2%}, fixed p = {fixed_p:g} "
        f"{acc[(fixed, key)]:.2%} (difference {d_acc:+.2%}; one test accuracy on {n_test} images has a standard "
        f"error of about {se:.2%}); deterministic: {acc[(concrete, DETERMINISTIC)]:.2%} vs "
        f"{acc[(fixed, DETERMINISTIC)]:.2%}. The author's repository (`2.Refining_the_model.ipynb`, not the paper): "
        f"{paper_c * 100:.2f} % vs {paper_f * 100:.2f} % ({paper_d * 100:+.2f} %) on full SVHN after {epochs_full} "
        f"epochs, one run each ({paper_sol * 100:.2f} % for plain dropout without dropout before the last layer, as "
        f"in our twin). {sign} {noise}\n\n"
        f"**Over {len(runs.seeds)} twin pairs** (the seeds are the independent units): "
        f"{accuracy_comparison(runs).sentence()}.\n{level}"
    )


def rates_text(runs: TwinRuns, config: TrainConfig, n_train: int) -> str:
    """Where the learned rates went, against the repository's, and why fc1's moves fastest."""
    _, rates_E_L = rate_history(runs.first[CONCRETE])
    p_end = rates_E_L[-1]
    fast = int(np.argmax(np.abs(p_end - INITIAL_P)))
    same_dir = int((np.sign(p_end - INITIAL_P) == np.sign(np.array(PAPER_P) - INITIAL_P)).sum())
    frac_steps, _ = _steps_and_data_fraction(n_train, config.epochs)
    moved = (
        "Accordingly the fc1 rate rises fastest here."
        if fast == 2 and p_end[2] > INITIAL_P
        else f"In this short run the rates have barely left {INITIAL_P:g}."
    )
    short = (
        f" With {frac_steps:.2%} of the paper's steps the slowly moving layers cannot have reached those values."
        if frac_steps < 0.5
        else ""
    )
    return (
        f"**Learned p.** After {config.epochs} epoch(s): {', '.join(f'{v:.3f}' for v in p_end)} (all start at "
        f"{INITIAL_P:g}); the author's repository after {PAPER_FULL_EPOCHS} epochs (read "
        f"off a figure): ≈ {', '.join(f'{v:g}' for v in PAPER_P)}. {same_dir} of the {len(p_end)} layers moved in the "
        f"same direction. The fastest is {LAYER_NAMES[fast]} ({p_end[fast]:.3f}): the regulariser's entropy term "
        "dr·K·(p log p + (1−p) log(1−p)) pulls every p towards 0.5 with a strength proportional to the layer's input "
        "count K — K = 1024 before fc1 against 32 channels for the conv layers and 128 before fc2 — while the data "
        f"term pushes p down wherever dropping units hurts the fit. {moved}{short}"
    )


def calibration_text(runs: TwinRuns, quality: pd.DataFrame) -> str:
    """Does MC averaging help exactly the over-confident nets? Computed from the first pair's ECEs."""
    concrete, fixed = runs.names
    ece, gap, key = quality["ECE"], quality["confidence − accuracy"], runs.mc_key
    ece_better = {m: ece[(m, key)] < ece[(m, DETERMINISTIC)] for m in runs.names}
    over = {m: gap[(m, DETERMINISTIC)] > 0 for m in runs.names}
    lowers = all(gap[(m, key)] < gap[(m, DETERMINISTIC)] for m in runs.names)
    consistent = all(ece_better[m] == over[m] for m in runs.names)
    effect = {m: ("improves" if ece_better[m] else "worsens") for m in runs.names}
    effect_both = (
        f"{effect[concrete]} the ECE of both nets"
        if effect[concrete] == effect[fixed]
        else f"{effect[concrete]} the ECE of the Concrete net and {effect[fixed]} that of the fixed-p net"
    )
    story = (
        f"MC averaging {effect_both}. "
        + (
            f"Averaging {runs.T} dropout passes lowers the confidence of both "
            f"(to {gap[(concrete, key)]:+.3f} and {gap[(fixed, key)]:+.3f}), "
            if lowers
            else "Averaging does not lower the confidence of both nets, "
        )
        + (
            "and in this run the ECE improved for exactly the net(s) whose deterministic predictions were "
            "over-confident. That is what these two nets show, not a rule they test."
            if lowers and consistent
            else "and the ECE changes do not follow the over/under-confidence of the deterministic nets in this "
            "run, so no general rule can be read from it."
        )
    )
    confidence = "over-confident" if gap[(concrete, DETERMINISTIC)] > 0 else "under-confident"
    return (
        f"**Calibration.** ECE deterministic → MC mean: Concrete {ece[(concrete, DETERMINISTIC)]:.4f} → "
        f"{ece[(concrete, key)]:.4f}, fixed p {ece[(fixed, DETERMINISTIC)]:.4f} → {ece[(fixed, key)]:.4f}. The "
        f"deterministic nets are {confidence} (mean confidence − accuracy {gap[(concrete, DETERMINISTIC)]:+.3f} and "
        f"{gap[(fixed, DETERMINISTIC)]:+.3f}). {story} The paper reports no calibration numbers; its EntropyD "
        "strategy uses the MC mean only to rank pool points by uncertainty, where a uniform shift of confidence does "
        "not matter."
    )


# ------------------------------------------------------------------------------------------------
# the finding
# ------------------------------------------------------------------------------------------------
def paper_scale_seconds(runs: TwinRuns, config: TrainConfig, n_train: int, n_test: int) -> float:
    """Wall seconds of the claim's test at the repository's scale on this machine, one net after another.

    :class:`mcal_utils.cost.CostModel` rates (seconds per mini-batch-epoch; per test image and pass, the
    deterministic pass counted as one) measured on this run, applied to ``max(S, compare.min_seeds())``
    twin pairs trained on the paper's training split for the repository's epochs and evaluated on the
    balanced SVHN test set.
    """
    plan = cost.StepPlan(
        epochs=config.epochs,
        batch_size=config.batch_size,
        n_test=n_test,
        eval_passes=runs.T + 1,
        n_candidates=0,
        mc_passes=0,
    )
    measured = runs.per_seed.assign(
        method=runs.per_seed["model"],
        budget=n_train,
        train_s=runs.per_seed["seconds"],
        eval_s=runs.per_seed["predict seconds"],
        select_s=0.0,
    )
    model = cost.CostModel.fit(measured, {m: plan for m in runs.names})
    paper_plan = dataclasses.replace(plan, epochs=PAPER_FULL_EPOCHS, n_test=PAPER_N_TEST)
    n_pairs = max(len(runs.seeds), compare.min_seeds())
    return n_pairs * sum(
        model.predict_run(m, [references.KIRILLOV_N_TRAIN.value], paper_plan).total for m in runs.names
    )


def at_paper_scale(digits: DigitTask, config: TrainConfig, n_train: int) -> bool:
    """SVHN, the whole training split and at least the repository's epochs."""
    return digits.name == "SVHN" and n_train == 0 and config.epochs >= PAPER_FULL_EPOCHS


def finding(runs: TwinRuns, digits: DigitTask, config: TrainConfig, fixed_p: float, n_train: int) -> str:
    """The claim's verdict by the report's rule, where this run can test it, and the calibration effect.

    ``n_train``: the profile's value (0 = the whole training split).
    """
    c = accuracy_comparison(runs)
    c_ece = calibration_comparisons(runs)[CONCRETE]
    n_images, epochs = len(digits.task.y_train), config.epochs
    source = "**Central claim** (the author's repository, 2.Refining_the_model.ipynb; the paper's CNN, its Table 1): "
    if len(runs.seeds) < compare.min_seeds() or not at_paper_scale(digits, config, n_train):
        est = paper_scale_seconds(runs, config, n_images, len(digits.task.y_test))
        source += (
            f"not tested here: needs SVHN, its {references.KIRILLOV_N_TRAIN.value} training images, "
            f"{PAPER_FULL_EPOCHS} epochs and ≥ {compare.min_seeds()} twin pairs, "
            f"est. {format_duration(est)} on {hardware()}. "
        )
    return (
        source
        + f"On {digits.name} ({n_images} images, {epochs} epochs), Concrete Dropout vs fixed p = {fixed_p:g} (the "
        f"author's repository: higher with Concrete): {c.sentence(digits=4)}; MC averaging changes the ECE of the "
        f"Concrete net by {c_ece.interval(4)} (**{c_ece.verdict}** for 'MC averaging calibrates better')."
    )
