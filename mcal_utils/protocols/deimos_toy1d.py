"""DEIMOS Figure 1 (Nagpal & Knowles): one DEIMOS batch on the 1-D toy, against a random batch.

The experiment, per seed (:func:`run_seed`): the toy problem of :func:`mcal_utils.data.synthetic_1d`
(a random tanh MLP, a labelled sample sparse in ``sparse_interval``, a pool, a noise-free test grid);
a fresh ``mlp1d`` fitted with DEIMOS's 1-D settings (:meth:`ToyProtocol.train_config`); the EI of every
pool point at the first greedy step and the DEIMOS batch of ``k`` (``J`` dropout masks shared by every
point of X_samp = labelled sample + pool, tau^-1 by DEIMOS Appendix E); a random batch of ``k``; and a
refit from scratch on each enlarged labelled set. Test MSE = MSE of the MC mean of ``T`` fresh-mask
passes on the noise-free test points.

:func:`compare_batches` applies the report's rule (:mod:`mcal_utils.compare`) to the two claims of the
figure: the DEIMOS batch lowers the test MSE more than the random batch, and it puts more picks near
the sparse region. :func:`estimate_seconds` predicts another protocol's wall time from this run's timings
(:mod:`mcal_utils.cost`). The authors' own numbers: :data:`mcal_utils.references.DEIMOS_TOY_MSE`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import acquisition, compare, cost, mc, references
from ..checks import check_float
from ..data import Toy1D, synthetic_1d
from ..models import build_model
from ..training import DEIMOS_ADAM, TrainConfig, evaluate, fit
from .common import check_ints, check_seeds, missing_seeds, protocol_fields

__all__ = [
    "ARMS",
    "PAPER_EPOCHS",
    "EDGE_DISTANCE",
    "ToyProtocol",
    "DeimosBatch",
    "SeedRun",
    "BatchComparison",
    "first_step_ei",
    "train",
    "evaluate_mse",
    "edge_picks",
    "deimos_batch",
    "grid_prediction",
    "run_seed",
    "run_all",
    "count_near",
    "closest_gap",
    "per_seed_table",
    "summary_table",
    "compare_batches",
    "cost_model",
    "estimate_seconds",
    "missing_for_test",
]

#: the models of one seed: fitted before acquiring, after the DEIMOS batch, after the random batch
ARMS: tuple[str, str, str] = ("before", "DEIMOS", "random")
#: DEIMOS's epochs on the 1-D toy (its 1-D settings, ``training.DEIMOS_ADAM``): a fit shorter than
#: this is not the paper's model, so the claim is not tested with it
PAPER_EPOCHS: int = DEIMOS_ADAM.epochs
#: picks within this distance of the ends of the input range count as "at the edge" (the MLP extrapolates)
EDGE_DISTANCE: float = 1.5
#: the input range of the toy (the grid's ends)
_X_END: float = 10.0


@dataclass(frozen=True)
class ToyProtocol:
    """The 1-D toy experiment: one seed = one toy function, sample and model initialisation.

    seeds: the seeds run. n_train: labelled points before acquiring (DEIMOS: 100). epochs,
    train_batch_size, lr: Adam (DEIMOS: 300 epochs, lr 1e-3; mini-batch 128, full-batch here).
    l2: **absolute** L2 on the dense weights (DEIMOS: 5e-4). p: dropout rate of the MLP (0.2).
    k: points queried per batch (5). J: dropout masks shared by every point of X_samp (50).
    T: MC passes of the test prediction (100). tau_factor: tau^-1 = factor x mean MC variance (0.15).
    """

    seeds: tuple[int, ...]
    n_train: int = 100
    epochs: int = PAPER_EPOCHS
    train_batch_size: int = 128
    lr: float = 1e-3
    l2: float = 5e-4
    p: float = 0.2
    k: int = 5
    J: int = 50
    T: int = 100
    tau_factor: float = 0.15

    def __post_init__(self) -> None:
        check_seeds(self)
        check_ints(self, (("n_train", 1), ("epochs", 1), ("train_batch_size", 1), ("k", 1), ("J", 2), ("T", 1)))
        for name in ("lr", "tau_factor"):
            object.__setattr__(self, name, check_float(getattr(self, name), name, gt=0.0))
        object.__setattr__(self, "l2", check_float(self.l2, "l2", ge=0.0))
        object.__setattr__(self, "p", check_float(self.p, "p", gt=0.0, lt=1.0))

    @classmethod
    def from_settings(cls, settings: Any) -> ToyProtocol:
        """From a profile's settings of notebook 03 (``profiles.resolve("03_deimos_1d_toy", ...)``)."""
        names = ("n_train", "epochs", "train_batch_size", "lr", "l2", "p", "k", "tau_factor")
        return cls(**protocol_fields(settings, names, J=settings.T, T=settings.T_eval))

    def train_config(self, n_points: int) -> TrainConfig:
        """DEIMOS's 1-D training on ``n_points`` labelled points: Adam, final weights, and ``l2_dense`` =
        l2 x N (``TrainConfig`` divides it by N, DEIMOS's lambda is absolute); one thread (a tiny MLP)."""
        return DEIMOS_ADAM.with_(
            epochs=self.epochs,
            batch_size=self.train_batch_size,
            lr=self.lr,
            l2_dense=self.l2 * n_points,
            checkpoint="last",
            num_threads=1,
        )


@dataclass(frozen=True)
class DeimosBatch:
    """One DEIMOS batch on the pool: ``picks_k`` (pool indices, pick order), ``scores_k`` (each pick's
    EI when picked), ``ei_pool_N`` (every pool point's EI at the first greedy step), ``tau_inv``."""

    picks_k: np.ndarray
    scores_k: np.ndarray
    ei_pool_N: np.ndarray
    tau_inv: float

    @property
    def last_to_first(self) -> float:
        """EI of the last pick / EI of the first: how much conditioning on the picks lowered the EI."""
        return float(self.scores_k[-1] / self.scores_k[0])


@dataclass(frozen=True)
class SeedRun:
    """One seed: its toy problem, the DEIMOS batch, the random batch (pool indices), the fitted models and
    test MSEs by arm (:data:`ARMS`), and the seconds of each phase (``train``, ``eval``, ``select`` lists)."""

    seed: int
    toy: Toy1D
    batch: DeimosBatch
    random_picks_k: np.ndarray
    models: dict[str, nn.Module]
    mse: dict[str, float]
    seconds: dict[str, list[float]]

    def picks(self, arm: str) -> np.ndarray:
        """Pool indices acquired by ``arm`` ("DEIMOS" or "random")."""
        if arm not in ARMS[1:]:
            raise ValueError(f"arm must be 'DEIMOS' or 'random', got {arm!r}")
        return self.batch.picks_k if arm == "DEIMOS" else self.random_picks_k

    def pick_x(self, arm: str) -> np.ndarray:
        """Inputs ``(k,)`` of the pool points acquired by ``arm``, in pick order."""
        return self.toy.x_pool[self.picks(arm), 0]

    def labelled(self, arm: str) -> tuple[np.ndarray, np.ndarray]:
        """The labelled set ``(x (N, 1), y (N,))`` that ``arm``'s model was fitted to."""
        if arm == "before":
            return self.toy.x_train, self.toy.y_train
        idx = self.picks(arm)
        return (
            np.concatenate([self.toy.x_train, self.toy.x_pool[idx]]),
            np.concatenate([self.toy.y_train, self.toy.y_pool[idx]]),
        )


def first_step_ei(preds_J_S, tau_inv: float) -> np.ndarray:
    """EI of every point at DEIMOS's first greedy step (eq. 5, one output): ``||V[:, i]||^2 / V[i, i]``.

    preds_J_S: ``(J, S)`` outputs under J dropout masks shared by the S points of X_samp (J >= 2).
    V = A A^T + tau_inv I with ``A_S_J`` the centred predictions / sqrt(J - 1) (the joint predictive
    covariance); ``tr(V[:, i] V[i, i]^-1 V[i, :])`` is the drop of tr V when point i is labelled.
    Returns ``ei_S`` float64 (the score of DEIMOS's first pick is its maximum over the candidates).
    """
    preds = torch.as_tensor(preds_J_S, dtype=torch.float64)
    if preds.ndim != 2 or preds.shape[0] < 2:
        raise ValueError(f"preds_J_S must have shape (J, S) with J >= 2, got {tuple(preds.shape)}")
    tau_inv = check_float(tau_inv, "tau_inv", gt=0.0)
    A_S_J = (preds - preds.mean(0)).T.numpy() / np.sqrt(preds.shape[0] - 1)
    V_S_S = A_S_J @ A_S_J.T + tau_inv * np.eye(preds.shape[1])
    return (V_S_S**2).sum(0) / np.diag(V_S_S)


def train(protocol: ToyProtocol, x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
    """A fresh ``mlp1d`` (initialisation seeded by ``seed``) fitted to ``(x (N, 1), y (N,))``."""
    model = build_model("mlp1d", seed=seed, p=protocol.p)
    return fit(model, x, y, config=protocol.train_config(len(x)), random_state=seed).model


def evaluate_mse(protocol: ToyProtocol, model: nn.Module, toy: Toy1D, seed: int) -> float:
    """Test MSE of the MC mean of ``T`` fresh-mask passes on the noise-free test points."""
    return evaluate(model, toy.x_test, toy.y_test, T=protocol.T, random_state=seed)["mse"]


def deimos_batch(protocol: ToyProtocol, model: nn.Module, toy: Toy1D, seed: int) -> DeimosBatch:
    """The DEIMOS batch of ``k`` pool points and every pool point's first-step EI.

    X_samp = labelled sample + pool, predictions under ``J`` fixed masks shared by all its points;
    tau^-1 = ``tau_factor`` x the mean MC variance over X_samp (``acquisition.auto_tau_inv``, DEIMOS
    Appendix E). Checks that the fast DEIMOS's first score equals the dense EI (:func:`first_step_ei`).
    """
    x_samp = np.concatenate([toy.x_train, toy.x_pool])
    n_labelled = len(toy.x_train)
    preds_J_S = mc.predict(model, x_samp, protocol.J, masks="fixed", random_state=seed).T.double()
    tau_inv = acquisition.auto_tau_inv(preds_J_S.T, protocol.tau_factor)  # preds as (S, J)
    candidates_S = np.arange(len(x_samp)) >= n_labelled  # only pool points can be queried
    batch = acquisition.deimos(preds_J_S, protocol.k, tau_inv, candidates=candidates_S)
    ei_S = first_step_ei(preds_J_S, tau_inv)
    if not np.isclose(batch.scores[0], ei_S[candidates_S].max(), rtol=1e-6):
        raise RuntimeError(f"fast DEIMOS's first score {batch.scores[0]} != the dense EI {ei_S[candidates_S].max()}")
    return DeimosBatch(
        picks_k=batch.indices - n_labelled, scores_k=batch.scores, ei_pool_N=ei_S[n_labelled:], tau_inv=tau_inv
    )


def grid_prediction(protocol: ToyProtocol, model: nn.Module, toy: Toy1D, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """MC mean and std (ddof 1) of ``T`` passes over the plot grid, ``(G,)`` each; fixed masks, so
    every pass is a smooth function of x."""
    preds_G_T = mc.predict(model, toy.x_grid, protocol.T, masks="fixed", random_state=seed).numpy()
    return preds_G_T.mean(1), preds_G_T.std(1, ddof=1)


def run_seed(protocol: ToyProtocol, seed: int) -> SeedRun:
    """Fit, acquire (DEIMOS and random), refit from scratch, for one seed (module docstring)."""
    seconds: dict[str, list[float]] = {"train": [], "eval": [], "select": []}

    def timed(phase, func, *args):
        start = time.perf_counter()
        out = func(*args)
        seconds[phase].append(time.perf_counter() - start)
        return out

    toy = synthetic_1d(seed, n_train=protocol.n_train)
    models = {"before": timed("train", train, protocol, toy.x_train, toy.y_train, seed)}
    batch = timed("select", deimos_batch, protocol, models["before"], toy, seed)
    random_picks = acquisition.random_batch(len(toy.x_pool), protocol.k, random_state=seed).indices
    mse = {"before": timed("eval", evaluate_mse, protocol, models["before"], toy, seed)}
    run = SeedRun(seed=seed, toy=toy, batch=batch, random_picks_k=random_picks, models=models, mse=mse, seconds=seconds)
    for arm in ARMS[1:]:
        models[arm] = timed("train", train, protocol, *run.labelled(arm), seed)
        mse[arm] = timed("eval", evaluate_mse, protocol, models[arm], toy, seed)
    return run


def run_all(protocol: ToyProtocol) -> list[SeedRun]:
    """:func:`run_seed` for every seed of the protocol, in order."""
    return [run_seed(protocol, seed) for seed in protocol.seeds]


def count_near(x_N: np.ndarray, interval: tuple[float, float], margin: float = 1.0) -> int:
    """How many of the inputs ``x_N`` (any shape) lie in ``[lo - margin, hi + margin]`` around ``interval``."""
    x = np.asarray(x_N, dtype=np.float64).reshape(-1)
    lo, hi = interval
    return int(((x >= lo - margin) & (x <= hi + margin)).sum())


def closest_gap(x_k: np.ndarray) -> float:
    """The smallest distance between two of the inputs ``x_k``; NaN for fewer than two."""
    x = np.sort(np.asarray(x_k, dtype=np.float64).reshape(-1))
    return float(np.diff(x).min()) if len(x) > 1 else float("nan")


def per_seed_table(runs: Sequence[SeedRun]) -> pd.DataFrame:
    """One row per seed: tau^-1, the test MSE before and after each batch, and before / after ratios."""
    table = pd.DataFrame(
        [
            {
                "seed": r.seed,
                "tau_inv": r.batch.tau_inv,
                "before": r.mse["before"],
                "after DEIMOS": r.mse["DEIMOS"],
                "after random": r.mse["random"],
            }
            for r in runs
        ]
    )
    table = table.set_index("seed")
    table["ratio DEIMOS"] = table["before"] / table["after DEIMOS"]
    table["ratio random"] = table["before"] / table["after random"]
    return table


def summary_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of the test MSEs, beside the one run of the DEIMOS authors' repository
    (:data:`references.DEIMOS_TOY_MSE`; its own toy data, no random control)."""
    columns = ["before", "after DEIMOS", "after random"]
    ddof = 1 if len(per_seed) > 1 else 0
    before, after = references.DEIMOS_TOY_MSE.value
    table = pd.DataFrame(
        {
            "test MSE, ours (mean ± std)": [
                f"{per_seed[c].mean():.4f} ± {per_seed[c].std(ddof=ddof):.4f}" for c in columns
            ],
            "DEIMOS authors' repository (1 run, its own toy data)": [f"{before:g}", f"{after:g}", "—"],
        },
        index=columns,
    )
    table.index.name = f"{len(per_seed)} seeds"
    return table


@dataclass(frozen=True)
class BatchComparison:
    """Figure 1's two claims by the report's rule, paired by seed: ``mse`` (log test MSE after the DEIMOS
    batch vs after the random batch; lower is better) and ``sparse_picks`` (picks within 1 of the sparse
    region; more is better). ``mse_ratio``: the geometric mean of MSE_DEIMOS / MSE_random and its 95 % CI."""

    mse: compare.Comparison
    sparse_picks: compare.Comparison

    @property
    def mse_ratio(self) -> tuple[float, float, float]:
        ratio = np.exp([self.mse.effect, self.mse.ci_low, self.mse.ci_high])
        return float(ratio[0]), float(ratio[1]), float(ratio[2])


def compare_batches(runs: Sequence[SeedRun]) -> BatchComparison:
    """The DEIMOS batch against the random batch over the seeds of ``runs`` (at least 2)."""
    per_seed = per_seed_table(runs)
    lo, hi = runs[0].toy.sparse_interval
    mse = compare.paired(
        np.log(per_seed["after DEIMOS"]),
        np.log(per_seed["after random"]),
        a="DEIMOS batch",
        b="random batch",
        metric="log test MSE",
        seeds=per_seed.index,
        higher_is_better=False,
    )
    near = {arm: [count_near(r.pick_x(arm), r.toy.sparse_interval) for r in runs] for arm in ARMS[1:]}
    sparse = compare.paired(
        near["DEIMOS"],
        near["random"],
        a="DEIMOS batch",
        b="random batch",
        metric=f"picks in [{lo - 1:g}, {hi + 1:g}]",
        seeds=per_seed.index,
    )
    return BatchComparison(mse=mse, sparse_picks=sparse)


def _step_plan(protocol: ToyProtocol, toy: Toy1D) -> cost.StepPlan:
    return cost.StepPlan(
        epochs=protocol.epochs,
        batch_size=protocol.train_batch_size,
        n_test=len(toy.x_test),
        eval_passes=protocol.T,
        n_candidates=len(toy.x_train) + len(toy.x_pool),
        mc_passes=protocol.J,
    )


def cost_model(protocol: ToyProtocol, runs: Sequence[SeedRun]) -> cost.CostModel:
    """Seconds per unit of each phase (:mod:`mcal_utils.cost`) from the measured fits, test MSEs and
    DEIMOS selections of ``runs`` (run under ``protocol``), pooled as one method, ``"toy"``."""
    rows = []
    for r in runs:
        budgets = [protocol.n_train, protocol.n_train + protocol.k, protocol.n_train + protocol.k]
        for i, budget in enumerate(budgets):
            rows.append(
                dict(
                    method="toy",
                    budget=budget,
                    train_s=r.seconds["train"][i],
                    eval_s=r.seconds["eval"][i],
                    select_s=r.seconds["select"][0] if i == 0 else 0.0,
                    n_acquired_this_step=protocol.k if i == 0 else 0,
                )
            )
    return cost.CostModel.fit(pd.DataFrame(rows), {"toy": _step_plan(protocol, runs[0].toy)})


def estimate_seconds(model: cost.CostModel, target: ToyProtocol, toy: Toy1D) -> float:
    """Predicted seconds of ``target`` on this machine: per seed one fit on n_train points, two on
    n_train + k, three test MSEs and one DEIMOS selection, at ``model``'s rates (linear in epochs x
    mini-batches, test points x T, X_samp x J: fixed per-fit overheads scale too, so it is an upper
    bound when the measured fits were short). ``toy``: a toy problem of the sizes run."""
    rates = model.rates["toy"]
    plan = _step_plan(target, toy)
    first, refit = plan.units(target.n_train), plan.units(target.n_train + target.k)
    per_seed = (
        rates["train"] * (first["train"] + 2 * refit["train"])
        + rates["eval"] * (first["eval"] + 2 * refit["eval"])
        + rates["select"] * first["select"]
    )
    return len(target.seeds) * per_seed


def missing_for_test(protocol: ToyProtocol) -> list[str]:
    """What ``protocol`` lacks to test Figure 1's claim (empty: it can): at least
    ``compare.min_seeds()`` seeds (fewer cannot reach p < 0.05) and the paper's epochs."""
    missing = missing_seeds(protocol)
    if protocol.epochs < PAPER_EPOCHS:
        missing.append(f"the paper's {PAPER_EPOCHS} epochs per fit (has {protocol.epochs})")
    return missing


def edge_picks(runs: Sequence[SeedRun]) -> tuple[int, int]:
    """(picks of the DEIMOS batches within :data:`EDGE_DISTANCE` of the ends of [-10, 10], all picks)."""
    x = np.concatenate([r.pick_x("DEIMOS") for r in runs])
    return int((np.abs(x) >= _X_END - EDGE_DISTANCE).sum()), len(x)
