"""DEIMOS's regression experiments (Nagpal & Knowles, section 5.2 and Appendices D--E) as loop configs.

A :class:`Protocol` is one data set's experiment: task, network, training, initial set, batch
sizes, acquisitions, candidates, MC passes and tau^-1. :data:`PAPER_PROTOCOLS` holds the paper's
two regression data sets as its authors ran them; :func:`rotated_mnist_protocol` builds the
offline stand-in (rotated-MNIST angle regression on the UTKFace-shaped network; from a profile's
settings: :func:`rotated_mnist_protocol_from`), and :func:`file_protocol` scales a paper protocol
down for a smaller run. :meth:`Protocol.configs`
gives one ``ExperimentConfig`` per (method, seed) of one batch size, all of a seed sharing the
initial set (the loop derives the split from the task and the seed only).

Reading the curves: :func:`choose_thresholds` picks error levels from the data's own range and
:func:`crossings_table` counts the acquisitions needed to fall to each (the form of the paper's
Table 1: seed-mean curve, plus every seed's own first crossing).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import compare, metrics, references
from ..cost import CostModel, StepPlan
from ..data.splicing import splicing_missing
from ..data.utkface import utkface_missing
from ..loop import ExperimentConfig, grid_configs, run_cached_grid
from . import picks

__all__ = [
    "METHODS",
    "Protocol",
    "PAPER_PROTOCOLS",
    "rotated_mnist_protocol",
    "rotated_mnist_protocol_from",
    "file_protocol",
    "missing_data",
    "choose_thresholds",
    "crossings_table",
    "PAPER_RUNS",
    "UTKFACE_IMAGES",
    "UTKFACE_TEST_FRACTION",
    "UTKFACE_VAL_SIZE",
    "SUBJECT",
    "BASELINES",
    "protocol_table",
    "scaled_down_note",
    "BatchResults",
    "run_batches",
    "tau_sentence",
    "CrossingTable",
    "crossing_tables",
    "claims",
    "lmm_markdown",
    "claims_markdown",
    "paper_claims_sentence",
    "utk_rmse_table",
    "AngleQueries",
    "angle_queries",
    "angle_sentence",
    "cost_plans",
    "predict_cost",
    "StandInCost",
    "stand_in_cost",
    "time_sentence",
    "finding",
]

#: strategy name -> method label, in the paper's order (DEIMOS, max variance, random).
METHODS: dict[str, str] = {"deimos": "DEIMOS", "max_variance": "Max variance", "random": "Random"}


@dataclass(frozen=True)
class Protocol:
    """One regression experiment; ``configs(b, seeds)`` runs it at batch size ``b``.

    tau_inv: a number, or ``{"auto": factor}`` (Appendix E: factor x the mean MC-dropout variance
    of the step-0 model on the validation set). val_size: validation points (None: the task's own
    split). n_acquired: points acquired per run (the same for every batch size).
    """

    name: str
    title: str
    task: str
    model: str
    train: dict
    initial_size: int
    k_values: tuple[int, ...]
    n_acquired: int
    n_candidates: int
    T: int
    T_eval: int
    tau_inv: float | dict
    val_size: int | None = None
    task_options: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)

    def __post_init__(self):
        sizes = tuple(int(b) for b in self.k_values)
        if not sizes or min(sizes) < 1:
            raise ValueError(f"{self.name}: k_values must be >= 1, got {self.k_values!r}")
        bad = [b for b in sizes if self.n_acquired % b]
        if bad:
            raise ValueError(f"{self.name}: n_acquired={self.n_acquired} is not a multiple of the batch size(s) {bad}")
        object.__setattr__(self, "k_values", sizes)

    @property
    def metric(self) -> str:
        """The test error its results are judged on: MSE for splicing (Table 1), RMSE otherwise (Figure 2)."""
        return "mse" if self.task == "splicing" else "rmse"

    def n_steps(self, k: int) -> int:
        """Acquisition steps at batch size ``k`` (the curve has one point more)."""
        if k not in self.k_values:
            raise ValueError(f"{self.name}: batch size {k} is not one of {self.k_values}")
        return self.n_acquired // k

    def replace(self, **changes) -> Protocol:
        return dataclasses.replace(self, **changes)

    def configs(self, k: int, seeds) -> list[ExperimentConfig]:
        """One config per (method of :data:`METHODS`, seed): labels are the method names."""
        base = ExperimentConfig(
            task=self.task,
            task_options=dict(self.task_options),
            model=self.model,
            model_options=dict(self.model_options),
            strategy="random",
            initial="random",
            initial_size=self.initial_size,
            k=k,
            n_steps=self.n_steps(k),
            val_size=self.val_size,
            T=self.T,
            n_candidates=self.n_candidates,
            tau_inv=self.tau_inv,
            train=dict(self.train),
            T_eval=self.T_eval,
        )
        return grid_configs(base, [{"strategy": s, "label": m} for s, m in METHODS.items()], seeds)


def _deimos_adam(epochs: int, l2: float, *, lr: float = 1e-3, batch_size: int = 128, optimizer: str = "adam") -> dict:
    """DEIMOS's training: Keras-default optimiser, L2 on the dense layers scaled by 1/N, last weights."""
    return dict(optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size, l2_dense=l2, checkpoint="last")


#: The paper's protocols (Appendix D; tau^-1 from Appendix E). UTKFace: tau^-1 = 0.1 x the initial
#: mean dropout variance on the validation set (the authors' value: 5.5477 years^2).
PAPER_PROTOCOLS: dict[str, Protocol] = {
    "utkface": Protocol(
        name="utkface",
        title="UTKFace age (years)",
        task="utkface",
        task_options=dict(size=200),
        model="image_regression_cnn",
        model_options=dict(in_channels=3, image_size=200, p=0.5),
        train=_deimos_adam(250, 2.0),
        initial_size=150,
        k_values=(100, 200),
        n_acquired=2000,
        n_candidates=5000,
        T=50,
        T_eval=300,
        tau_inv={"auto": 0.1},
    ),
    "splicing": Protocol(
        name="splicing",
        title="5' splicing (SD1 usage)",
        task="splicing",
        model="splicing_cnn",
        model_options=dict(p=0.15),
        train=_deimos_adam(300, 0.025, optimizer="rmsprop"),
        initial_size=75,
        k_values=(1,),
        n_acquired=600,
        n_candidates=5000,
        T=50,
        T_eval=200,
        tau_inv=2.5e-4,
    ),
}


def rotated_mnist_protocol(
    *,
    pool_size: int,
    val_size: int,
    test_size: int,
    rotated_max_angle: float,
    initial_size: int,
    k_values,
    n_acquired: int,
    n_candidates: int,
    epochs: int,
    batch_size: int,
    lr: float,
    p: float,
    l2: float,
    T: int,
    T_eval: int,
    tau_factor: float,
) -> Protocol:
    """The offline stand-in: predict the rotation angle (degrees) of an MNIST digit with DEIMOS's
    UTKFace network (one channel, 28 x 28). ``pool_size`` (initial set included) and ``test_size``
    subsample MNIST before the rotation (0 = all); ``val_size`` points are held out of the train split."""
    return Protocol(
        name="rotated_mnist",
        title="Rotated-MNIST angle (degrees)",
        task="rotated_mnist",
        task_options=dict(
            n_train=pool_size + val_size if pool_size else 0, n_test=test_size, max_angle=float(rotated_max_angle)
        ),
        model="image_regression_cnn",
        model_options=dict(in_channels=1, image_size=28, p=float(p)),
        train=_deimos_adam(epochs, float(l2), lr=float(lr), batch_size=batch_size),
        initial_size=initial_size,
        k_values=tuple(k_values),
        n_acquired=n_acquired,
        n_candidates=n_candidates,
        T=T,
        T_eval=T_eval,
        tau_inv={"auto": float(tau_factor)},
        val_size=val_size,
    )


def rotated_mnist_protocol_from(settings: Mapping) -> Protocol:
    """:func:`rotated_mnist_protocol` from a notebook's profile settings (the knobs of the same names)."""
    names = inspect.signature(rotated_mnist_protocol).parameters
    missing = sorted(set(names) - set(settings))
    if missing:
        raise ValueError(f"settings lack {missing}; they need every argument of rotated_mnist_protocol")
    return rotated_mnist_protocol(**{k: settings[k] for k in names})


def file_protocol(
    name: str,
    *,
    n_steps: int = 0,
    epochs: int = 0,
    pool_size: int = 0,
    test_size: int = 0,
    n_candidates: int = 0,
    T_eval: int = 0,
    image_size: int = 200,
) -> Protocol:
    """The paper's protocol for ``name`` ("utkface" or "splicing"); every argument 0 keeps the paper's
    value, else: ``n_steps`` acquisition steps at the first batch size only, ``epochs``, a train/pool
    subsample of ``pool_size`` and a test subsample of ``test_size`` (drawn when the task loads),
    ``n_candidates``, ``T_eval``. ``image_size``: UTKFace pixels (the paper: 200)."""
    if name not in PAPER_PROTOCOLS:
        raise ValueError(f"unknown file protocol {name!r}; valid: {sorted(PAPER_PROTOCOLS)}")
    sizes = (n_steps, epochs, pool_size, test_size, n_candidates, T_eval)
    for arg, v in zip(("n_steps", "epochs", "pool_size", "test_size", "n_candidates", "T_eval"), sizes):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{arg} must be an int >= 0 (0 = the paper's value), got {v!r}")
    proto = PAPER_PROTOCOLS[name]
    changes: dict = {}
    if n_steps:
        b = proto.k_values[0]
        changes.update(k_values=(b,), n_acquired=n_steps * b)
    if epochs:
        changes["train"] = {**proto.train, "epochs": int(epochs)}
    options = dict(proto.task_options)
    if pool_size:
        options["n_train"] = int(pool_size)
    if test_size:
        options["n_test"] = int(test_size)
    if name == "utkface":
        options["size"] = int(image_size)
        changes["model_options"] = {**proto.model_options, "image_size": int(image_size)}
    changes["task_options"] = options
    if n_candidates:
        changes["n_candidates"] = int(n_candidates)
    if T_eval:
        changes["T_eval"] = int(T_eval)
    return proto.replace(**changes)


def missing_data(name: str, data_dir=None) -> str | None:
    """``None`` when the files of data set ``name`` are in the data directory, else what is missing
    and how to get it. MNIST (``"rotated_mnist"``) ships with the package world: always ``None``."""
    checks: dict[str, Callable[[Any], str | None]] = {
        "utkface": utkface_missing,
        "splicing": splicing_missing,
        "rotated_mnist": lambda _: None,
    }
    if name not in checks:
        raise ValueError(f"unknown data set {name!r}; valid: {sorted(checks)}")
    return checks[name](data_dir)


def _seed_mean_curves(df: pd.DataFrame, metric: str, x: str) -> dict[str, pd.DataFrame]:
    """{method: seeds x x-values table of ``metric``}; every seed of a method shares the x-values."""
    missing = [c for c in ("method", "seed", x, metric) if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; has {list(df.columns)}")
    out = {}
    for m, g in df.groupby("method", sort=False, observed=True):
        wide = g.pivot_table(index="seed", columns=x, values=metric, aggfunc="first")
        if wide.isna().any().any():
            raise ValueError(f"method {m!r}: its seeds do not share the same {x!r} values")
        out[str(m)] = wide
    return out


def choose_thresholds(
    df: pd.DataFrame, metric: str, *, fractions=(0.5, 0.7, 0.85, 0.95), x: str = "acquired_total", digits: int = 3
) -> np.ndarray:
    """Error levels from the data's own range, for a lower-is-better ``metric``.

    With ``start`` the seed-mean error at the first point (shared by all methods: same initial
    sets) averaged over methods and ``end`` the lowest seed-mean error any method reaches at its
    last point, threshold ``f`` is ``start - f (start - end)``: ``f = 1`` is reached only by the
    best method at the end, smaller fractions by more methods sooner. Rounded to ``digits``
    significant digits (as the paper's 0.11, 0.10, 0.095, 0.09); distinct levels, in decreasing order.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or fr.size == 0 or np.any(fr <= 0) or np.any(fr > 1):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1], got {fractions!r}")
    curves = _seed_mean_curves(df, metric, x)
    start = float(np.mean([w.mean(axis=0).iloc[0] for w in curves.values()]))
    end = float(min(w.mean(axis=0).iloc[-1] for w in curves.values()))
    if not end < start:
        raise ValueError(
            f"no method lowers the seed-mean {metric} below its starting value {start:.4g} "
            f"(best final {end:.4g}): there is no range to choose thresholds from"
        )
    levels = {float(f"{v:.{digits}g}") for v in start - fr * (start - end)}
    return np.array(sorted(levels, reverse=True))


def crossings_table(df: pd.DataFrame, metric: str, thresholds, *, x: str = "acquired_total") -> pd.DataFrame:
    """Acquisitions needed to fall to each threshold (the paper's Table 1 form), lower-is-better ``metric``.

    One row per threshold; per method two columns: the first ``x`` where the seed-mean curve is
    ``<= threshold`` (NaN: not reached), and every seed's own first crossing as text
    ("12 / 30 / —", "—" = not reached within the run).
    """
    t_K = np.asarray(thresholds, dtype=np.float64)
    table = pd.DataFrame(index=pd.Index(t_K, name="threshold"))
    for m, wide in _seed_mean_curves(df, metric, x).items():
        tc = metrics.threshold_crossings(
            wide.columns.to_numpy(), wide.to_numpy(np.float64), t_K, higher_is_better=False
        )
        table[m] = tc.mean_K
        table[f"{m}: per seed"] = [
            " / ".join("—" if np.isnan(h) else f"{h:g}" for h in tc.per_seed_S_K[:, k]) for k in range(t_K.size)
        ]
    return table


# ---------------------------------------------------------------------------------------------------------
# Notebook 06: the stand-in's protocol, its runs, and the comparisons it makes
# ---------------------------------------------------------------------------------------------------------
#: runs per method in the paper (3, no random seeds).
PAPER_RUNS = 3
#: UTKFace as DEIMOS split it (Appendix D): images, the share held out for testing, validation points.
UTKFACE_IMAGES = 23708
UTKFACE_TEST_FRACTION = 0.1
UTKFACE_VAL_SIZE = 50
#: the method DEIMOS's claims are about, and the methods it is compared with.
SUBJECT = "DEIMOS"
BASELINES: tuple[str, ...] = tuple(m for m in METHODS.values() if m != SUBJECT)


def _train_text(train: Mapping) -> str:
    return f"{train['epochs']} epochs, batch {train['batch_size']}, L2 {train['l2_dense']}/N, last weights"


def protocol_table(settings: Mapping, protocol: Protocol, n_seeds: int) -> pd.DataFrame:
    """Section 1: this run's stand-in protocol next to DEIMOS's UTKFace protocol (Appendix D)."""
    utk = PAPER_PROTOCOLS["utkface"]
    utk_net = (
        f"{utk.model_options['in_channels']} x {utk.model_options['image_size']} x {utk.model_options['image_size']}"
    )
    test_pct = f"{UTKFACE_TEST_FRACTION:.0%}".replace("%", " %")
    rows = [
        ("data", "rotated MNIST, angle in degrees (stand-in)", "UTKFace, age in years"),
        (
            "train/pool (initial set included)",
            f"{settings['pool_size'] or 'all'}",
            f"all ({1 - UTKFACE_TEST_FRACTION:.0%} of {UTKFACE_IMAGES:,} minus {UTKFACE_VAL_SIZE})".replace(
                "%", " %"
            ).replace(",", " "),
        ),
        ("initial labelled set", f"{protocol.initial_size} (random)", f"{utk.initial_size}"),
        ("batch sizes", ", ".join(map(str, protocol.k_values)), ", ".join(map(str, utk.k_values))),
        ("acquired per run", f"{protocol.n_acquired}", f"{utk.n_acquired}"),
        ("candidates per step", f"{protocol.n_candidates}", f"{utk.n_candidates}"),
        (
            "network",
            f"UTKFace CNN, 1 x 28 x 28, p = {settings['p']}",
            f"UTKFace CNN, {utk_net}, p = {utk.model_options['p']}",
        ),
        ("training", f"Adam lr {settings['lr']}, " + _train_text(protocol.train), "Adam, " + _train_text(utk.train)),
        ("J masks / T passes", f"{protocol.T}", f"{utk.T}"),
        ("MC passes for the test prediction", f"{protocol.T_eval}", f"{utk.T_eval}"),
        (
            "τ⁻¹",
            f"{settings['tau_factor']} × initial mean MC variance on {settings['val_size']} validation points",
            f"{_tau_factor(utk)} × initial mean MC variance on {UTKFACE_VAL_SIZE} validation points "
            f"({references.DEIMOS_TAU_INV_UTK.value})",
        ),
        ("test set", f"{settings['test_size'] or 'all 10000'}", f"{test_pct} of the data"),
        ("seeds", f"{n_seeds}", f"{PAPER_RUNS}"),
    ]
    return pd.DataFrame(rows, columns=["", f"this run ({_profile(settings)})", "DEIMOS, UTKFace"]).set_index("")


def _tau_factor(protocol: Protocol) -> float:
    tau = protocol.tau_inv
    if not isinstance(tau, dict):
        raise ValueError(f"{protocol.name}: tau_inv is the constant {tau}, not {{'auto': factor}}")
    return float(tau["auto"])


def _profile(settings: Mapping) -> str:
    return str(getattr(settings, "profile", None) or settings.get("profile", "custom"))


def scaled_down_note(settings: Mapping) -> str:
    """What the profile shrinks against the paper's UTKFace protocol ("" under the `paper` profile)."""
    if _profile(settings) == "paper":
        return ""
    utk = PAPER_PROTOCOLS["utkface"]
    return (
        f"**Scaled down (profile `{_profile(settings)}`).** The paper's protocol retrains the network from "
        f"scratch {utk.n_steps(utk.k_values[0]) + 1} times per run for {utk.train['epochs']} epochs on up "
        f"to {utk.initial_size + utk.n_acquired} images — hours per run on a CPU (section 9 predicts it). To fit "
        "the report's budget we keep the network, the optimiser, L2/N, the last-weights rule, the J masks and "
        "τ⁻¹'s rule, and shrink the pool, the number of acquisitions, the batch size, the epochs (with a "
        f"mini-batch of {settings['batch_size']}, so that small labelled sets still get enough Adam steps), "
        "the candidates and the test-time MC passes."
    )


@dataclass(frozen=True)
class BatchResults:
    """Every batch size's grid of one section: ``results`` (long, column ``batch``; sorted by batch, method,
    seed, step), the run caches ``roots`` (batch -> directory) and the seconds this call spent running."""

    results: pd.DataFrame
    roots: Mapping[int, Path]
    wall_s: float

    def summary(self) -> str:
        """One line: runs, steps, this call's wall time, the step time summed over every run."""
        runs, step_s = self.results["run_dir"].nunique(), self.results["step_s"].sum()
        return (
            f"{runs} runs, {len(self.results)} steps in {self.wall_s:.0f} s wall "
            f"({step_s:.0f} s of step time summed over runs, incl. earlier sessions)"
        )


def run_batches(
    grids: Mapping[int, Sequence[ExperimentConfig]], *, section: str, profile: str, workers: int, resume: bool
) -> BatchResults:
    """Run each batch size's grid in notebook 06's run cache (label ``"<profile>-<section>-b<batch>"``) and
    read them back as one frame."""
    frames, roots, wall = [], {}, 0.0
    for b, cfgs in grids.items():
        grid = run_cached_grid(
            "06_deimos_regression", f"{profile}-{section}-b{b}", cfgs, workers=workers, resume=resume
        )
        frames.append(grid.results.assign(batch=b))
        roots[b], wall = grid.root, wall + grid.wall_s
    df = pd.concat(frames, ignore_index=True)
    df["method"] = pd.Categorical(df["method"].astype(str), categories=list(METHODS.values()), ordered=True)
    return BatchResults(df.sort_values(["batch", "method", "seed", "step"]).reset_index(drop=True), roots, wall)


def tau_sentence(results: pd.DataFrame, settings: Mapping, y_train_N: np.ndarray) -> str:
    """The tau^-1 DEIMOS's runs computed at step 0 (Appendix E), next to the variance of the target."""
    tau = results.loc[(results["method"] == SUBJECT) & (results["step"] == 0), "tau_inv"].astype(np.float64)
    return (
        f"**τ⁻¹ from the data.** DEIMOS's runs used τ⁻¹ = {tau.mean():.3g} deg² on average "
        f"(from {tau.min():.3g} to {tau.max():.3g} over {len(tau)} runs): {settings['tau_factor']} × the "
        f"step-0 model's mean MC-dropout variance on the {settings['val_size']} validation images. For scale, "
        f"the variance of the angle itself is {np.var(y_train_N):.0f} deg² (the DEIMOS authors' UTKFace value, "
        f"{references.DEIMOS_TAU_INV_UTK.value} years², is in other units)."
    )


@dataclass(frozen=True)
class CrossingTable:
    """One batch size's error levels (from the data's range) and :func:`crossings_table` at them."""

    batch: int
    thresholds: np.ndarray
    table: pd.DataFrame
    start: float

    def caption(self, metric: str) -> str:
        return (
            f"batch {self.batch}: points acquired until the seed-mean test {metric.upper()} first falls to each "
            f"level (levels from this run's range: start {self.start:.4g}, best final {self.thresholds[-1]:.4g}); "
            "blank = not reached"
        )


def crossing_tables(results: pd.DataFrame, metric: str) -> dict[int, CrossingTable | str]:
    """Per batch size: the :class:`CrossingTable`, or why there is none (no method improved on the start)."""
    out: dict[int, CrossingTable | str] = {}
    for b, g in results.groupby("batch"):
        g = g.assign(method=g["method"].astype(str))
        try:
            th = choose_thresholds(g, metric)
        except ValueError as err:
            out[int(b)] = f"*Batch {b}: no crossing table — {err}.*"
            continue
        out[int(b)] = CrossingTable(int(b), th, crossings_table(g, metric, th), float(g[g["step"] == 0][metric].mean()))
    return out


def claims(results: pd.DataFrame, metric: str) -> dict[int, compare.ClaimComparisons]:
    """Per batch size, the declared comparisons: DEIMOS against each baseline on the test error at the last
    point and its AUBC (lower is better), DEIMOS's LMM test and its A/A rate beside."""
    return {
        int(b): compare.compare_with_lmm(
            g,
            SUBJECT,
            BASELINES,
            summaries=("final", "aubc"),
            metric=metric,
            x="acquired_total",
            higher_is_better=False,
            group="step",
        )
        for b, g in results.groupby("batch")
    }


def lmm_markdown(batch: int, claim: compare.ClaimComparisons) -> str:
    return f"*DEIMOS's LMM test (the paper's method), batch {batch}:* {claim.lmm_sentence()} — {claim.aa_sentence()}."


def claims_markdown(title: str, by_batch: Mapping[int, compare.ClaimComparisons]) -> str:
    """Every comparison of every batch size as sentences (:meth:`~mcal_utils.compare.Comparison.sentence`)."""
    return f"**{title}, per batch size.**\n\n" + "\n".join(
        f"* batch {b}: " + "; ".join(c.sentence() for c in claim.comparisons) + "." for b, claim in by_batch.items()
    )


def paper_claims_sentence(profile: str) -> str:
    """The paper's regression claims with their p-values, and how the stand-in relates to them."""
    splicing = references.values(references.DEIMOS_SPLICING_P)
    bound = references.values(references.DEIMOS_UTK_P_BOUND)
    rmse = references.values(references.DEIMOS_UTK_RMSE_2000)
    return (
        "The paper's regression claims are DEIMOS ahead of both max variance and Random on splicing (Figure 2 "
        f"caption: p = {splicing['Max variance']:.2g} and {splicing['Random']:.2g}; Table 1) and on UTKFace at batch "
        f"{' and '.join(map(str, bound))} (Section 5.2; Figure 2 caption: "
        + " and ".join(f"p < {v:.0e}".replace("e-0", "e-") for v in bound.values())
        + f"). (The authors' result arrays have Random at {rmse['Random']} "
        f"{'below' if rmse['Random'] < rmse['DEIMOS'] else 'not below'} DEIMOS's {rmse['DEIMOS']} RMSE at "
        f"{PAPER_PROTOCOLS['utkface'].n_acquired} UTKFace acquisitions, batch {min(bound)}.) This stand-in tests "
        "the method on a different image regression: where it disagrees, the data set and the shrunk protocol "
        f'(profile `{profile}`) are possible reasons; where a verdict is "not resolved", the MDE says how large '
        "a difference these seeds could have detected."
    )


def utk_rmse_table(results: pd.DataFrame) -> tuple[pd.DataFrame, str] | None:
    """UTKFace, batch 100: our seed-mean RMSE at 2000 acquired beside the authors' arrays, and its caption
    (None: the run did not get there)."""
    utk = PAPER_PROTOCOLS["utkface"]
    b = utk.k_values[0]
    last = results[(results["batch"] == b) & (results["acquired_total"] == utk.n_acquired)]
    if last.empty:
        return None
    return pd.DataFrame(
        {
            "ours": last.groupby("method", observed=True)["rmse"].mean(),
            "authors' arrays": pd.Series(references.values(references.DEIMOS_UTK_RMSE_2000)),
        }
    ), f"RMSE (years) at {utk.n_acquired} acquired, batch {b}"


@dataclass(frozen=True)
class AngleQueries:
    """Which angles each method asked for (one batch size): the pool's angles, every pick's angle per method,
    each method's first batch (seed 0), the share rotated beyond ``edge`` degrees, and DEIMOS's and max
    variance's per-seed share against the pool's (the rule: does uncertainty over-sample the extremes?)."""

    edge: float
    pool_angles_N: np.ndarray
    picked_angles: Mapping[str, np.ndarray]
    first_batch: Mapping[str, np.ndarray]
    table: pd.DataFrame
    over: tuple[compare.Comparison, ...]

    @property
    def share_column(self) -> str:
        return f"share |angle| > {self.edge:g}°"


def angle_queries(
    results: pd.DataFrame, y_train_N: np.ndarray, pool_N: np.ndarray, max_angle: float, *, edge_fraction: float = 0.75
) -> AngleQueries:
    """:class:`AngleQueries` of one batch size's results; ``pool_N``: the seed-0 pool's train indices;
    ``edge = edge_fraction * max_angle``."""
    edge = edge_fraction * max_angle
    column = f"share |angle| > {edge:g}°"
    pool_angles = y_train_N[pool_N]
    picked = {m: y_train_N[picks.all_picks(results, m)] for m in METHODS.values()}
    first = {m: next(iter(picks.picks_by_seed(results, m).values())).first_batch for m in METHODS.values()}
    rows = [
        {
            "set": "pool",
            "mean |angle|": np.abs(pool_angles).mean(),
            column: np.mean(np.abs(pool_angles) > edge),
            "points": len(pool_angles),
        }
    ]
    rows += [
        {"set": f"{m} picks", "mean |angle|": np.abs(a).mean(), column: np.mean(np.abs(a) > edge), "points": len(a)}
        for m, a in picked.items()
    ]
    table = pd.DataFrame(rows).set_index("set")
    over = []
    for m in (SUBJECT, "Max variance"):
        by_seed = picks.picks_by_seed(results, m)
        share_S = [np.mean(np.abs(y_train_N[p.indices_N]) > edge) for p in by_seed.values()]
        over.append(
            compare.paired(
                share_S,
                np.full(len(share_S), table.loc["pool", column]),
                a=f"{m} picks",
                b="pool",
                seeds=list(by_seed),
                metric=column,
            )
        )
    return AngleQueries(edge, pool_angles, picked, first, table, tuple(over))


def angle_sentence(q: AngleQueries) -> str:
    share = q.table[q.share_column]
    return (
        f"Of the pool, {share['pool']:.0%} of the digits are rotated by more than {q.edge:g}°; of DEIMOS's picks "
        f"{share['DEIMOS picks']:.0%}, of max variance's {share['Max variance picks']:.0%}, of Random's "
        f"{share['Random picks']:.0%}. Do the uncertainty-driven methods over-sample them (per seed)? "
        + "; ".join(c.sentence(digits=3) for c in q.over)
        + "."
    )


def cost_plans(protocol: Protocol, n_test: int) -> dict[str, StepPlan]:
    """One :class:`~mcal_utils.cost.StepPlan` per method. ``batch_size=1``: the train unit is one image-epoch
    (the mini-batch differs between profiles and its cost grows with its size)."""
    return {
        m: StepPlan(
            epochs=protocol.train["epochs"],
            batch_size=1,
            n_test=n_test,
            eval_passes=protocol.T_eval,
            n_candidates=protocol.n_candidates if m != "Random" else 0,
            mc_passes=protocol.T if m != "Random" else 0,
        )
        for m in METHODS.values()
    }


def predict_cost(
    model: CostModel, protocol: Protocol, n_test: int, n_seeds: int, workers: int
) -> tuple[pd.DataFrame, float]:
    """Predicted seconds of ``protocol``'s grids (every batch size; rows: batch, method) and their wall time."""
    rows, wall = [], 0.0
    for b in protocol.k_values:
        budgets = [protocol.initial_size + s * b for s in range(protocol.n_steps(b) + 1)]
        table, w = model.predict_grid(cost_plans(protocol, n_test), budgets, n_seeds, workers=workers)
        rows.append(table.assign(batch=b))
        wall += w
    return pd.concat(rows), wall


@dataclass(frozen=True)
class StandInCost:
    """The cost model fitted on this run's steps and what it predicts: this run (``here_s`` on
    ``workers_here``) and the `paper` profile's stand-in (``paper_table`` in seconds, ``paper_s`` wall on
    ``workers``)."""

    model: CostModel
    here_s: float
    workers_here: int
    paper: Protocol
    paper_n_seeds: int
    paper_n_test: int
    paper_table: pd.DataFrame
    paper_s: float
    workers: int

    def rates(self) -> pd.DataFrame:
        return pd.DataFrame(self.model.rates).T.rename(columns=lambda c: f"{c} (s per unit)")

    def paper_hours(self) -> pd.DataFrame:
        return self.paper_table.reset_index().set_index(["batch", "method"]) / 3600


def stand_in_cost(
    results: pd.DataFrame,
    protocol: Protocol,
    settings: Mapping,
    paper_settings: Mapping,
    n_test: int,
    *,
    workers: int = 2,
) -> StandInCost:
    """Fit the cost model on this run's rotated-MNIST steps and predict this run and the `paper` profile
    (``paper_settings``) on ``workers`` processes."""
    model = CostModel.fit(results.assign(method=results["method"].astype(str)), cost_plans(protocol, n_test))
    w = settings["workers"]
    workers_here = 1 if w == 0 else w if w > 0 else len(os.sched_getaffinity(0))
    n_seeds = int(results["seed"].nunique())
    _, here_s = predict_cost(model, protocol, n_test, n_seeds, min(workers_here, n_seeds * len(METHODS)))
    paper = rotated_mnist_protocol_from(paper_settings)
    paper_n_test = paper_settings["test_size"] or 10000
    table, paper_s = predict_cost(model, paper, paper_n_test, paper_settings["n_seeds"], workers)
    return StandInCost(
        model, here_s, workers_here, paper, paper_settings["n_seeds"], paper_n_test, table, paper_s, workers
    )


def time_sentence(cost: StandInCost, results: pd.DataFrame, wall_s: float, profile: str) -> str:
    """Section 9: this run's wall time against the model's, the mean step times, and the `paper` profile's
    predicted hours."""
    step = results.groupby("method", observed=True)[["train_s", "eval_s", "select_s"]].mean()
    p = cost.paper
    utk = PAPER_PROTOCOLS["utkface"]
    pixels = utk.model_options["in_channels"] * utk.model_options["image_size"] ** 2 / (28 * 28)
    return (
        f"**Time.** This execution ran the rotated-MNIST grid in **{wall_s / 60:.1f} min** wall (profile "
        f"`{profile}`; the cost model, fitted on these very steps, gives {cost.here_s / 60:.1f} min on "
        f"{cost.workers_here} worker(s): the rest is process start-up and data loading). Mean seconds per step — "
        "training: "
        + ", ".join(f"{m} {v:.1f}" for m, v in step["train_s"].items())
        + "; selection: "
        + ", ".join(f"{m} {v:.2f}" for m, v in step["select_s"].items())
        + f". The **paper profile** (rotated MNIST sized like UTKFace: {p.initial_size} initial, batches "
        f"{' and '.join(map(str, p.k_values))}, {p.n_acquired} acquired, {p.train['epochs']} epochs, "
        f"{p.n_candidates} candidates, {p.T_eval} test passes on {cost.paper_n_test} images, "
        f"{cost.paper_n_seeds} seeds) is predicted at **{cost.paper_s / 3600:.0f} h** on {cost.workers} such "
        f"workers (no GPU timing has been measured for this network). UTKFace at {utk.model_options['in_channels']} "
        f"× {utk.model_options['image_size']} × {utk.model_options['image_size']} has {pixels:.0f} times the input "
        "pixels of a 28 × 28 digit, so its convolutions cost about that much more per image again; the splicing "
        f"network is far smaller but its protocol trains {PAPER_PROTOCOLS['splicing'].n_acquired + 1} times per run."
    )


def finding(
    by_batch: Mapping[int, compare.ClaimComparisons], protocol: Protocol, cost: StandInCost, settings: Mapping
) -> str:
    """The central claim (DEIMOS's test error below both baselines') judged by the rule on the stand-in's AUBC
    at each batch size run here; the paper's batch sizes with its training, when not run, say what they need
    and their predicted cost."""
    n_seeds = next(iter(by_batch.values())).comparisons[0].n_seeds
    text = (
        f"Rotated MNIST (stand-in; `{_profile(settings)}`, {n_seeds} seeds, {protocol.n_acquired} acquired, "
        f"{protocol.train['epochs']} epochs): is DEIMOS's error lower than each baseline's (AUBC of the test "
        "RMSE, lower is better; DEIMOS − method, per seed)?"
    )
    for b, claim in by_batch.items():
        aubc = claim.of("aubc")
        text += f" Batch {b}: {compare.verdict_tally(aubc)}: " + "; ".join(c.short() for c in aubc) + "."
    p, utk = cost.paper, PAPER_PROTOCOLS["utkface"]
    missing = [b for b in utk.k_values if b not in by_batch]
    if missing or protocol.train["epochs"] < utk.train["epochs"]:
        text += (
            f" The paper's batch sizes {' and '.join(map(str, utk.k_values))} with its training: not "
            f"tested here: needs {p.initial_size} → {p.initial_size + p.n_acquired} labels at "
            f"{p.train['epochs']} epochs per step ({len(METHODS)} methods × {cost.paper_n_seeds} seeds), "
            f"est. {cost.paper_s / 3600:.0f} h on {cost.workers} CPU cores."
        )
    return text
