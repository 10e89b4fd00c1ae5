"""Notebook 07 run the modAL way (the ``modal`` extra): the strategies as modAL query strategies, one
trained model's picks, and the grid of ``ActiveLearner`` runs.

The experiment's settings, strategies and the reading of the results: :mod:`mcal_utils.protocols.own_model`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import mc, modal, models
from ..acquisition import bald, deimos, predictive_entropy, top_k
from ..checks import check_choice
from .own_model import STRATEGIES, STRATEGY_LABELS, MnistPool, OwnModelProtocol, initial_set

__all__ = ["query_strategy", "OneModelPicks", "picks_on_one_model", "ModalGrid", "run_grid"]


def query_strategy(protocol: OwnModelProtocol, label: str, seed: int) -> Any:
    """The modAL ``query_strategy`` of strategy ``label`` for the run of ``seed``: an
    :class:`mcal_utils.modal.MCQuery` (``T`` passes, ``n_candidates``, DEIMOS's ``tau_inv``; seeded by
    ``seed``), or modAL's own ``uncertainty_sampling`` for "modAL uncertainty"."""
    strategy = STRATEGIES[check_choice(label, "strategy", STRATEGY_LABELS)]
    if strategy is None:
        return modal.uncertainty_sampling
    options: dict[str, Any] = {} if strategy == "random" else {"T": protocol.T}
    if strategy == "deimos":
        options["tau_inv"] = protocol.tau_inv
    return modal.MCQuery(strategy, n_candidates=protocol.n_candidates, random_state=seed, **options)


@dataclass(frozen=True)
class OneModelPicks:
    """The picks of three strategies from the same candidates on one trained model.

    labelled: the initial set (pool positions); candidates: pool positions scored; picks: label ->
    positions into ``candidates`` in pick order; accuracy: the model's test accuracy; seconds: of the
    ``T`` fresh-mask passes over the candidates (``"fresh"``) and fixed-mask passes over X_samp
    (``"fixed"``, X_samp = labelled + candidates, ``n_samp`` points).
    """

    labelled: np.ndarray
    candidates: np.ndarray
    picks: dict[str, np.ndarray]
    accuracy: float
    seconds: dict[str, float]
    n_samp: int


def picks_on_one_model(protocol: OwnModelProtocol, model: models.MCModel, pool: MnistPool) -> OneModelPicks:
    """Train on the initial set of ``protocol.seed`` (``MCDropoutClassifier``), then pick ``k`` of a
    seeded random candidate subset by predictive entropy and BALD (``T`` fresh-mask passes) and by
    DEIMOS (``T`` fixed masks on X_samp = labelled + candidates)."""
    seed, k = protocol.seed, protocol.k
    labelled = initial_set(pool.y, protocol.initial_size, seed)
    clf = modal.MCDropoutClassifier(model, config=protocol.train_config, random_state=seed)
    clf.fit(pool.x[labelled], pool.y[labelled])
    unlabelled = np.setdiff1d(np.arange(len(pool.x)), labelled)
    n_candidates = min(protocol.n_candidates or len(unlabelled), len(unlabelled))
    candidates = np.sort(np.random.default_rng(seed).choice(unlabelled, n_candidates, replace=False))
    start = time.perf_counter()
    probs_N_T_C = mc.predict(clf.model_, pool.x[candidates], protocol.T, masks="fresh", random_state=seed)
    seconds = {"fresh": time.perf_counter() - start}
    x_samp = np.concatenate([pool.x[labelled], pool.x[candidates]])
    start = time.perf_counter()
    probs_S_J_C = mc.predict(clf.model_, x_samp, protocol.T, masks="fixed", random_state=seed)
    seconds["fixed"] = time.perf_counter() - start
    in_samp = np.arange(len(labelled), len(x_samp))  # the candidates' rows of X_samp
    picks = {
        "max-entropy": top_k(predictive_entropy(probs_N_T_C), k).indices,
        "BALD": top_k(bald(probs_N_T_C), k).indices,
        "DEIMOS": deimos(probs_S_J_C.transpose(0, 1), k, protocol.tau_inv, candidates=in_samp).indices - len(labelled),
    }
    accuracy = float((clf.predict(pool.x_test) == pool.y_test).mean())
    return OneModelPicks(
        labelled=labelled, candidates=candidates, picks=picks, accuracy=accuracy, seconds=seconds, n_samp=len(x_samp)
    )


@dataclass(frozen=True)
class ModalGrid:
    """Every (strategy, seed) run: ``results`` (the rows of :func:`mcal_utils.modal.run_active_learning`,
    ``score`` renamed ``accuracy``, strategies in the protocol's order, seeds within) and ``wall_s``."""

    results: pd.DataFrame
    wall_s: float


def run_grid(protocol: OwnModelProtocol, model: models.MCModel, pool: MnistPool) -> ModalGrid:
    """One modAL run per strategy and seed; every run of a seed starts from the same initial set and
    refits ``model``'s initial weights (``MCDropoutClassifier``) on everything labelled so far."""
    start = time.perf_counter()
    runs = []
    for label in protocol.strategies:
        subsample = protocol.n_candidates if STRATEGIES[label] is None else None  # MCQuery subsamples itself
        for seed in protocol.seeds:
            runs.append(
                modal.run_active_learning(
                    modal.MCDropoutClassifier(model, config=protocol.train_config, random_state=seed),
                    query_strategy(protocol, label, seed),
                    pool.x,
                    pool.y,
                    pool.x_test,
                    pool.y_test,
                    labelled=initial_set(pool.y, protocol.initial_size, seed),
                    n_steps=protocol.n_steps,
                    k=protocol.k,
                    random_state=seed,
                    subsample=subsample,
                    method=label,
                )
            )
    results = pd.concat(runs, ignore_index=True).rename(columns={"score": "accuracy"})
    return ModalGrid(results=results, wall_s=time.perf_counter() - start)
