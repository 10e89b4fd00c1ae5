"""Notebook 07: a network of your own, patched for MC dropout, running every strategy in modAL loops.

The package's claim tested here: any PyTorch network with ``nn.Dropout`` / ``nn.Dropout2d`` layers,
converted by :func:`mcal_utils.models.patch_dropout`, runs every acquisition strategy unchanged. This
module is the experiment as data and how its results are read, without modAL (so that
:mod:`mcal_utils.profiles` can take the strategy labels from here): the network :func:`my_cnn` (plain
``torch.nn``), the strategies (:data:`STRATEGIES`), the settings (:class:`OwnModelProtocol`), the seeded
MNIST pool (:func:`load_pool`) and balanced initial set (:func:`initial_set`); the check of the claim
(:func:`check_every_strategy_ran`), the tables, the report's rule on the AUBC of each MC strategy against
Random (:func:`compare_with_random`, :data:`CLAIMS`) and the cost model. Running it in modAL
(``ActiveLearner``, the ``modal`` extra): :mod:`mcal_utils.protocols.own_model_modal`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import compare, cost, metrics, models
from ..checks import check_choice, check_float, check_int
from ..data import MNIST
from ..training import TrainConfig
from .common import check_ints, check_seeds, missing_seeds, protocol_fields

__all__ = [
    "STRATEGIES",
    "STRATEGY_LABELS",
    "BASELINE",
    "CLAIMS",
    "INPUT_SHAPE",
    "N_CLASSES",
    "my_cnn",
    "dropout_off_matches",
    "OwnModelProtocol",
    "MnistPool",
    "load_pool",
    "initial_set",
    "pick_overlaps",
    "StrategyCheck",
    "check_every_strategy_ran",
    "summary_table",
    "compare_with_random",
    "class_fractions",
    "Departure",
    "largest_departure",
    "cost_model",
    "estimate_seconds",
    "missing_for_test",
]

#: display label -> mcal strategy name (:data:`mcal_utils.acquisition.STRATEGIES`); None: modAL's own
#: ``uncertainty_sampling`` (1 - max p of one deterministic pass, the MC-dropout-entropy paper's VarRatio)
STRATEGIES: dict[str, str | None] = {
    "random": "random",
    "modAL uncertainty": None,
    "max-entropy (MC)": "entropy_mc",
    "BALD": "bald",
    "BatchBALD": "batchbald",
    "DEIMOS": "deimos",
}
#: the labels in table order (the ``strategies`` knob of notebook 07 takes a subset of them)
STRATEGY_LABELS: tuple[str, ...] = tuple(STRATEGIES)
#: every comparison is against this strategy
BASELINE: str = "random"
#: the MC strategies compared with Random on the AUBC of each seed's curve, declared before the runs
CLAIMS: tuple[str, ...] = ("DEIMOS", "BALD", "max-entropy (MC)")
#: one MNIST image
INPUT_SHAPE: tuple[int, int, int] = (1, 28, 28)
N_CLASSES: int = 10
#: MNIST's training and test images (the sizes used when ``pool_size`` / ``test_size`` is 0)
_MNIST_SIZES: tuple[int, int] = (60000, 10000)


def my_cnn() -> nn.Sequential:
    """Your network, written the usual way: two convolution blocks, channel dropout (``nn.Dropout2d``)
    on the first feature maps, element-wise dropout (``nn.Dropout``) before each dense layer; logits
    out, no softmax. Input ``(B, 1, 28, 28)``; weights from torch's global RNG, as any ``nn`` module."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 28 -> 26 -> 13
        nn.Dropout2d(0.25),
        nn.Conv2d(16, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 13 -> 11 -> 5
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(32 * 5 * 5, 64),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(64, 10),
    )


def dropout_off_matches(net: nn.Module, model: models.MCModel, x: np.ndarray) -> bool:
    """Whether ``model`` (``patch_dropout(net)``) with dropout off gives bit-for-bit the outputs of ``net``
    in ``eval()`` on the inputs ``x``. Puts ``net`` in eval mode."""
    x_probe = torch.from_numpy(np.asarray(x))
    net.eval()
    with torch.no_grad(), models.mc_mode(model, "off"):
        return torch.equal(model(x_probe), net(x_probe))


@dataclass(frozen=True)
class OwnModelProtocol:
    """Notebook 07's experiment. seeds: one run per strategy and seed (the first also draws the pool
    and the one-model section). pool_size / test_size: MNIST train / test images used (None: all).
    initial_size: balanced initial set (a multiple of 10). k: images per query. n_steps: queries per
    run. epochs, batch_size, lr: Adam, final weights. T: MC passes (K for BatchBALD, J for DEIMOS).
    n_candidates: pool points scored per query (None: the whole pool). tau_inv: DEIMOS's tau^-1.
    strategies: labels of :data:`STRATEGIES` to run, in table order.
    """

    seeds: tuple[int, ...]
    pool_size: int | None
    test_size: int | None
    initial_size: int
    k: int
    n_steps: int
    epochs: int
    batch_size: int
    lr: float
    T: int
    n_candidates: int | None
    tau_inv: float
    strategies: tuple[str, ...] = STRATEGY_LABELS

    def __post_init__(self) -> None:
        check_seeds(self)
        for name in ("pool_size", "test_size", "n_candidates"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_int(getattr(self, name), name, ge=1))
        check_ints(
            self, (("initial_size", N_CLASSES), ("k", 1), ("n_steps", 1), ("epochs", 1), ("batch_size", 1), ("T", 2))
        )
        if self.initial_size % N_CLASSES:
            raise ValueError(f"initial_size must be a multiple of {N_CLASSES} (balanced), got {self.initial_size}")
        object.__setattr__(self, "lr", check_float(self.lr, "lr", gt=0.0))
        object.__setattr__(self, "tau_inv", check_float(self.tau_inv, "tau_inv", gt=0.0))
        strategies = tuple(check_choice(s, "strategy", STRATEGY_LABELS) for s in self.strategies)
        if not strategies:
            raise ValueError(f"strategies must name at least one of {STRATEGY_LABELS}")
        object.__setattr__(self, "strategies", strategies)

    @classmethod
    def from_settings(cls, settings: Any) -> OwnModelProtocol:
        """From a profile's settings of notebook 07 (sizes 0 mean "all" / "the whole pool")."""
        s = settings
        names = ("initial_size", "k", "n_steps", "epochs", "batch_size", "lr", "T", "tau_inv")
        sizes = {name: getattr(s, name) or None for name in ("pool_size", "test_size", "n_candidates")}
        return cls(**protocol_fields(s, names, **sizes, strategies=tuple(s.strategies)))

    @property
    def seed(self) -> int:
        return self.seeds[0]

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(
            optimizer="adam", lr=self.lr, epochs=self.epochs, batch_size=self.batch_size, checkpoint="last"
        )


@dataclass(frozen=True)
class MnistPool:
    """The pool ``x (N, 1, 28, 28)`` float32 in [0, 1], ``y (N,)`` int64, and the test set."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def class_shares_C(self) -> np.ndarray:
        """The share of each class in the pool, ``(10,)``."""
        return np.bincount(self.y, minlength=N_CLASSES) / len(self.y)


def load_pool(protocol: OwnModelProtocol, mnist: MNIST) -> MnistPool:
    """Seeded subsamples (``protocol.seed``) of the MNIST training images (the pool) and test images."""
    rng = np.random.default_rng(protocol.seed)
    pool_idx = np.sort(rng.choice(len(mnist.x_train), protocol.pool_size or len(mnist.x_train), replace=False))
    test_idx = np.sort(rng.choice(len(mnist.x_test), protocol.test_size or len(mnist.x_test), replace=False))
    return MnistPool(
        x=mnist.x_train[pool_idx],
        y=mnist.y_train[pool_idx],
        x_test=mnist.x_test[test_idx],
        y_test=mnist.y_test[test_idx],
    )


def initial_set(y_N: np.ndarray, size: int, random_state: int, n_classes: int = N_CLASSES) -> np.ndarray:
    """Sorted positions into ``y_N`` of a balanced set: ``size // n_classes`` of each class, drawn
    without replacement by ``numpy.random.default_rng(random_state)``, class after class."""
    rng = np.random.default_rng(check_int(random_state, "random_state", ge=0))
    per_class = check_int(size, "size", ge=n_classes) // n_classes
    return np.sort(
        np.concatenate([rng.choice(np.flatnonzero(y_N == c), per_class, replace=False) for c in range(n_classes)])
    )


def pick_overlaps(picks: dict[str, np.ndarray]) -> dict[str, int]:
    """``{"A ∩ B": shared picks}`` for every pair of strategies, in the order of ``picks``."""
    names = list(picks)
    return {f"{a} ∩ {b}": len(np.intersect1d(picks[a], picks[b])) for i, a in enumerate(names) for b in names[i + 1 :]}


@dataclass(frozen=True)
class StrategyCheck:
    """The package's claim on this network: ``ran`` (strategies whose every run has the protocol's
    curve, each query picking k images) and ``failed`` (the others)."""

    ran: tuple[str, ...]
    failed: tuple[str, ...]

    @property
    def holds(self) -> bool:
        return not self.failed


def check_every_strategy_ran(results: pd.DataFrame, protocol: OwnModelProtocol) -> StrategyCheck:
    """Which strategies ran every seed through ``n_steps`` queries of ``k`` picks each."""
    ran: list[str] = []
    failed: list[str] = []
    for label in protocol.strategies:
        rows = results[results["method"] == label]
        steps = rows[rows["iteration"] > 0]
        complete = (
            sorted(rows["seed"].unique()) == list(protocol.seeds)
            and len(rows) == len(protocol.seeds) * (protocol.n_steps + 1)
            and all(isinstance(p, list) and len(p) == protocol.k for p in steps["picked"])
        )
        (ran if complete else failed).append(label)
    return StrategyCheck(ran=tuple(ran), failed=tuple(failed))


def summary_table(results: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Per strategy (rows in ``labels``' order): mean and std over seeds of the AUBC and the final test
    accuracy of each seed's curve, and the median seconds of a query and of a refit."""
    per_seed = (
        results.groupby(["method", "seed"])
        .apply(
            lambda g: pd.Series(
                dict(
                    aubc=metrics.aubc(g.sort_values("budget")["accuracy"]),
                    final=g.sort_values("budget")["accuracy"].iloc[-1],
                )
            ),
            include_groups=False,
        )
        .reset_index()
    )
    summary = per_seed.groupby("method", sort=False).agg(
        aubc_mean=("aubc", "mean"), aubc_std=("aubc", "std"), final_mean=("final", "mean"), final_std=("final", "std")
    )
    seconds = results[results.iteration > 0].groupby("method", sort=False)[["query_s", "fit_s"]].median()
    summary = summary.join(seconds.rename(columns={"query_s": "median query s", "fit_s": "median fit s"}))
    return summary.loc[list(labels)]


def compare_with_random(results: pd.DataFrame, labels: Sequence[str]) -> dict[str, compare.Comparison]:
    """Each strategy of :data:`CLAIMS` that ran (in ``labels``) against :data:`BASELINE`: the rule on
    the AUBC of each seed's accuracy curve (paired by seed)."""
    return {
        m: compare.compare_curves(results, m, BASELINE, summary="aubc", x="iteration") for m in CLAIMS if m in labels
    }


def class_fractions(results: pd.DataFrame, labels: Sequence[str], n_classes: int = N_CLASSES) -> pd.DataFrame:
    """Share of each class in each strategy's acquisitions over all its seeds: rows ``labels``,
    columns ``0 .. n_classes - 1`` (each row sums to 1)."""
    picked = results.dropna(subset=["picked"]).explode("picked")
    counts = pd.crosstab(picked["method"], picked["picked"].astype(int))
    counts = counts.reindex(index=list(labels), columns=range(n_classes)).fillna(0)
    return counts.div(counts.sum(axis=1), axis=0)


@dataclass(frozen=True)
class Departure:
    """The largest departure of a strategy's class shares from the pool's: ``method`` gives class
    ``digit`` the share ``share`` of its picks (the pool: ``pool_share``); ``baseline`` is Random's own
    largest departure (|share - pool share|), from sampling alone."""

    method: str
    digit: int
    share: float
    pool_share: float
    baseline: float


def largest_departure(fractions: pd.DataFrame, pool_shares_C: np.ndarray) -> Departure:
    """:class:`Departure` of :func:`class_fractions` from the pool's class shares (rows must include Random)."""
    pool_share = pd.Series(pool_shares_C, index=fractions.columns)
    departure = (fractions - pool_share).abs()
    method = departure.max(axis=1).idxmax()
    digit = int(departure.loc[method].idxmax())
    return Departure(
        method=str(method),
        digit=digit,
        share=float(fractions.loc[method, digit]),
        pool_share=float(pool_share[digit]),
        baseline=float(departure.loc[BASELINE].max()),
    )


def _step_plan(protocol: OwnModelProtocol, label: str) -> cost.StepPlan:
    n_pool = protocol.pool_size or _MNIST_SIZES[0]
    uses_mc = STRATEGIES[label] not in (None, "random")
    return cost.StepPlan(
        epochs=protocol.epochs,
        batch_size=protocol.batch_size,
        n_test=protocol.test_size or _MNIST_SIZES[1],
        eval_passes=0,
        n_candidates=protocol.n_candidates or n_pool,
        mc_passes=protocol.T if uses_mc else 0,
    )


def cost_model(results: pd.DataFrame, protocol: OwnModelProtocol) -> cost.CostModel:
    """Seconds per unit of each phase (:mod:`mcal_utils.cost`) from the measured refits (train), test
    scores (eval) and queries (select) of :func:`run_grid`'s ``results``, per strategy."""
    steps = results.rename(columns={"fit_s": "train_s", "score_s": "eval_s", "query_s": "select_s"})
    steps = steps.assign(n_acquired_this_step=np.where(steps["iteration"] > 0, protocol.k, 0))
    return cost.CostModel.fit(steps, {label: _step_plan(protocol, label) for label in protocol.strategies})


def estimate_seconds(model: cost.CostModel, target: OwnModelProtocol) -> float:
    """Predicted wall seconds of ``target``'s grid on this machine (one process), from ``model``'s rates
    (linear in epochs x mini-batches, test images, candidates x MC passes)."""
    budgets = [target.initial_size + i * target.k for i in range(target.n_steps + 1)]
    plans = {label: _step_plan(target, label) for label in target.strategies}
    return model.predict_grid(plans, budgets, len(target.seeds))[1]


def missing_for_test(protocol: OwnModelProtocol) -> list[str]:
    """What ``protocol`` lacks for the rule to resolve a comparison (empty: nothing): at least
    ``compare.min_seeds()`` seeds."""
    return missing_seeds(protocol)
