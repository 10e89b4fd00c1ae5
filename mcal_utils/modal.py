"""mcal's strategies as modAL query strategies, over a PyTorch model, and a modAL active-learning run.

This module is the ``modal`` extra (modAL-python, skorch, scikit-learn): it imports modAL.
modAL-python's ``ActiveLearner(estimator, query_strategy)`` calls
``query_strategy(learner, X_pool, n_instances=k)`` and expects ``(indices, scores)``.
:class:`MCQuery` is such a callable for every strategy of
:data:`mcal_utils.acquisition.STRATEGIES` ("entropy_mc" = EntropyD / max-entropy, "bald",
"batchbald", "deimos", "variation_ratio_mc", "mean_std", "kcenter_greedy", "random", ...): it
finds the network behind the learner, computes what the strategy needs with
:mod:`mcal_utils.mc` (exactly as the loop does, through the strategy's requirement) and returns
``k`` distinct row indices into ``X_pool`` in pick order, with their scores. DEIMOS and the
k-center strategies also see the learner's labelled set (``learner.X_training``).

The network: ``learner.estimator.module_`` (a skorch ``NeuralNet``; skorch 0.9.0 trains and
predicts with torch 2.13) or ``learner.estimator.model_`` (:class:`MCDropoutClassifier`, the
small scikit-learn estimator of this module). It must be an ``MCModel``: build one with
:func:`mcal_utils.models.build_model` or convert your network with
:func:`mcal_utils.models.patch_dropout`.

What ``modAL.dropout`` (0.4.2.1) gets wrong, and what is done here instead:

* softmax: ``get_predictions`` applies ``prediction[mask].softmax(-1)`` to a boolean-indexed,
  hence flattened, chunk: one softmax over every class of every input of the chunk, so a row's
  "probabilities" depend on the other rows and do not sum to 1. Here: softmax per input and pass.
* entropy: ``mc_dropout_max_entropy`` scores the mean over classes of ``sum_t -p_tc log p_tc``
  (a sum of per-pass entropies), not the entropy of the mean prediction that max-entropy
  (Gal, Islam & Ghahramani 2017) and EntropyD use. Here: ``entropy_mc`` = predictive entropy.
* masks: modAL samples fresh dropout masks per input and pass; BatchBALD and DEIMOS need masks
  shared by every input ("fixed"), which :mod:`mcal_utils.mc` provides.
* seeds: modAL uses torch's global RNG; here query ``i`` of an :class:`MCQuery` derives all its
  randomness from ``(random_state, i)``, so a loop is reproducible.

:func:`run_active_learning` is one pool-based run the modAL way (``ActiveLearner``, ``query``,
``teach``), recorded as a learning curve; :data:`uncertainty_sampling` is modAL's own strategy
(1 - max p of one deterministic pass), re-exported for modules outside this extra.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from modAL.models import ActiveLearner
from modAL.uncertainty import uncertainty_sampling
from sklearn.base import BaseEstimator, ClassifierMixin

from mcal_utils import mc, training
from mcal_utils.acquisition import get_strategy
from mcal_utils.acquisition.requirements import REQUIREMENTS, AcquisitionContext
from mcal_utils.acquisition.tau import auto_tau_inv, check_tau_factor
from mcal_utils.checks import check_float, check_int
from mcal_utils.loop.seeds import step_seeds
from mcal_utils.models import MCModel

__all__ = ["MCDropoutClassifier", "MCQuery", "network_of", "run_active_learning", "uncertainty_sampling"]

#: Training of :class:`MCDropoutClassifier` unless told otherwise: Adam, final weights (no validation set).
DEFAULT_CONFIG = training.TrainConfig(optimizer="adam", lr=1e-3, epochs=50, batch_size=64, checkpoint="last")


class MCDropoutClassifier(BaseEstimator, ClassifierMixin):
    """A scikit-learn classifier around an ``MCModel``, for modAL's ``ActiveLearner``.

    ``fit(X, y)`` trains a deep copy of ``model`` (so every fit starts from the same initial
    weights, as the MC-dropout-entropy paper's code does with ``torch.manual_seed(42)`` before
    every model) with :func:`mcal_utils.training.fit` (``config``, seeded by ``random_state``);
    ``model_`` is the trained network. ``predict_proba`` is one pass with dropout off,
    ``(N, C)`` float64. ``X``: ``(N, *model.input_shape)`` float; ``y``: int class indices in
    ``0 .. C - 1``. A model that is not an ``MCModel`` -> TypeError; a regression model or bad
    labels -> ValueError.
    """

    def __init__(self, model: MCModel, *, config: training.TrainConfig = DEFAULT_CONFIG, random_state: int = 0):
        self.model = model
        self.config = config
        self.random_state = random_state

    def fit(self, X, y) -> MCDropoutClassifier:
        if not isinstance(self.model, MCModel):
            raise TypeError(
                f"model must be an MCModel (build_model, or models.patch_dropout(your_network, "
                f"input_shape=...)), got {type(self.model).__name__}"
            )
        if self.model.kind != "classification":
            raise ValueError(f"MCDropoutClassifier needs a classification model, got kind={self.model.kind!r}")
        y = np.asarray(y)
        n_classes = self.model.n_outputs
        if (
            y.ndim != 1
            or not np.issubdtype(y.dtype, np.integer)
            or y.min(initial=0) < 0
            or y.max(initial=0) >= n_classes
        ):
            raise ValueError(
                f"y must be 1-D int class indices in 0..{n_classes - 1}, got dtype {y.dtype}, shape {y.shape}"
            )
        result = training.fit(
            copy.deepcopy(self.model),
            np.asarray(X, np.float32),
            y.astype(np.int64),
            config=self.config,
            random_state=self.random_state,
        )
        self.model_ = cast(MCModel, result.model)  # fit trains the copy in place and returns it
        self.classes_ = np.arange(n_classes)
        return self

    def _fitted(self) -> MCModel:
        if not hasattr(self, "model_"):
            raise ValueError(
                "this MCDropoutClassifier is not fitted yet: call fit(X, y) first "
                "(modAL's ActiveLearner does when given X_training)"
            )
        return self.model_

    def predict_proba(self, X) -> np.ndarray:
        return mc.deterministic(self._fitted(), np.asarray(X, np.float32)).double().numpy()

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def network_of(learner) -> MCModel:
    """The ``MCModel`` behind a modAL learner (or an estimator): ``estimator.module_`` (skorch) or
    ``estimator.model_`` (:class:`MCDropoutClassifier`). No fitted network -> ValueError; a network
    that is not an ``MCModel`` -> TypeError."""
    estimator = getattr(learner, "estimator", learner)
    for attribute in ("module_", "model_"):
        net = getattr(estimator, attribute, None)
        if net is not None:
            break
    else:
        raise ValueError(
            f"no fitted network found on {type(estimator).__name__}: expected a fitted skorch NeuralNet "
            f"(module_) or MCDropoutClassifier (model_); fit the learner first"
        )
    if not isinstance(net, MCModel):
        raise TypeError(
            f"the network is a {type(net).__name__}, not an MCModel: convert it with "
            f"mcal_utils.models.patch_dropout(network, input_shape=...) before training"
        )
    return net


@dataclass
class MCQuery:
    """``MCQuery("bald", T=20)``: a modAL ``query_strategy`` running an mcal strategy.

    strategy: a name of ``STRATEGIES``. T: MC-dropout passes (K for BatchBALD, J for DEIMOS;
    unused by deterministic and feature strategies). n_candidates: score a seeded random
    subset of this many pool points (None: the whole pool; DEIMOS: the pool members of X_samp,
    ``min(len(X_pool), 2500)`` by default as in its paper). tau_inv: DEIMOS's tau^-1 (required
    for "deimos"): a number, or ``{"auto": factor}`` (DEIMOS Appendix E, as the loop): computed
    once, at the first query (the step-0 model), as ``factor`` x the mean MC-dropout variance of
    ``T`` fresh-mask passes seeded from ``(random_state, 0, "tau")``, on ``x_val`` (a
    validation set, as the loop uses) or, without one, on a seeded subset of that query's pool of
    ``n_candidates`` points (unlabelled, so unseen by the model as a validation set is); the value
    is kept in ``tau_inv_`` and used at every query. random_state: int; query i uses seeds derived
    from (random_state, i).
    options: further keywords of the strategy (e.g. ``{"num_samples": 10000}`` for BatchBALD),
    checked now. ``n_queries`` counts the calls so far. Wrong types -> TypeError, bad values ->
    ValueError (:mod:`mcal_utils.checks`), at construction.

    ``__call__(learner, X_pool, n_instances=1) -> (indices, scores)``: int64 positions into
    ``X_pool`` in pick order, float64 scores (see ``STRATEGIES``).
    """

    strategy: str
    T: int = 20
    n_candidates: int | None = None
    tau_inv: float | dict | None = None
    random_state: int = 0
    options: dict = field(default_factory=dict)
    x_val: np.ndarray | None = field(default=None, repr=False, compare=False)
    n_queries: int = field(default=0, init=False)
    tau_inv_: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._strategy = get_strategy(self.strategy)
        self._requirement = REQUIREMENTS[self._strategy.requires]
        self.T = check_int(self.T, "T", ge=1)
        if self.n_candidates is not None:
            self.n_candidates = check_int(self.n_candidates, "n_candidates", ge=1)
        self._tau_factor: float | None = None
        if self._requirement.needs_tau:
            if isinstance(self.tau_inv, dict):
                if set(self.tau_inv) != {"auto"}:
                    raise ValueError(
                        f"tau_inv as a dict must be {{'auto': factor}} (DEIMOS Appendix E), got {self.tau_inv!r}"
                    )
                self._tau_factor = check_tau_factor(self.tau_inv["auto"])
                self.tau_inv = {"auto": self._tau_factor}
                if self.T < 2:
                    raise ValueError(f"tau_inv={{'auto': ...}} needs T >= 2 (a variance over passes), got {self.T}")
            elif self.tau_inv is None:
                raise ValueError(
                    f"strategy {self.strategy!r} needs tau_inv: a finite number > 0 (DEIMOS's tau^-1, "
                    "e.g. 8.37e-5 on MNIST 7-vs-9) or {'auto': factor}"
                )
            else:
                self.tau_inv_ = check_float(self.tau_inv, "tau_inv", gt=0.0)
        elif self.tau_inv is not None:
            raise ValueError(f"tau_inv is only used by DEIMOS, not by {self.strategy!r}; leave it None")
        if self.x_val is not None and self._tau_factor is None:
            raise ValueError(
                "x_val is only used by tau_inv={'auto': factor} (the data of its MC variance); leave it None"
            )
        self.random_state = check_int(self.random_state, "random_state", ge=0)
        check_options = getattr(self._strategy, "check_options", None)
        if check_options is not None:
            check_options(self.options)

    def __call__(self, learner, X_pool, n_instances: int = 1) -> tuple[np.ndarray, np.ndarray]:
        n_instances = check_int(n_instances, "n_instances", ge=1)
        model = network_of(learner)
        x_pool = np.asarray(X_pool, dtype=np.float32)
        n_pool = len(x_pool)
        n_cand = self.n_candidates
        if self._requirement.needs_candidates and n_cand is None:
            n_cand = min(n_pool, 2500)
        if n_cand is not None and n_cand > n_pool:
            raise ValueError(f"n_candidates = {n_cand} is larger than the pool ({n_pool} points)")
        if n_instances > (n_cand or n_pool):
            raise ValueError(f"n_instances = {n_instances} is more than the {n_cand or n_pool} candidates")
        if self._strategy.requires in ("features", "fixed_J_S"):  # these also see the labelled set
            x_labelled = getattr(learner, "X_training", None)
            x_labelled = (
                np.zeros((0, *x_pool.shape[1:]), np.float32)
                if x_labelled is None
                else np.asarray(x_labelled, np.float32)
            )
        else:
            x_labelled = np.zeros((0, *x_pool.shape[1:]), np.float32)
        n_lab = len(x_labelled)
        if self._tau_factor is not None and self.tau_inv_ is None:
            self.tau_inv_ = self._auto_tau_inv(model, x_pool, n_cand, self._tau_factor)
        seeds = step_seeds(self.random_state, self.n_queries)
        self.n_queries += 1
        context = AcquisitionContext(
            model=model,
            x_train=np.concatenate([x_labelled, x_pool]) if n_lab else x_pool,
            labelled=np.arange(n_lab, dtype=np.int64),
            pool=np.arange(n_lab, n_lab + n_pool, dtype=np.int64),
            n_candidates=n_cand,
            T=self.T,
            tau_inv=self.tau_inv_,
            seed=seeds,
        )
        inputs = self._requirement(context)
        batch = self._strategy.select(n_instances, random_state=seeds("select"), **inputs.arrays, **self.options)
        positions = inputs.pool_positions(batch.indices, n_instances, self.strategy)
        return positions.astype(np.int64), np.asarray(batch.scores, np.float64)

    def _auto_tau_inv(self, model: MCModel, x_pool: np.ndarray, n_cand: int | None, factor: float) -> float:
        """``{"auto": factor}``: factor x the mean MC variance of ``model`` on ``x_val`` or a seeded
        subset of ``n_cand`` pool points (fresh masks, seeds of query 0, as the loop's step 0)."""
        seeds = step_seeds(self.random_state, 0)
        if self.x_val is not None:
            x = np.asarray(self.x_val, np.float32)
            if x.ndim < 2 or len(x) == 0 or x.shape[1:] != x_pool.shape[1:]:
                raise ValueError(
                    f"x_val must hold >= 1 input of X_pool's shape {x_pool.shape[1:]}, got shape {x.shape}"
                )
        else:
            n = len(x_pool) if n_cand is None else min(n_cand, len(x_pool))
            rows = np.sort(np.random.default_rng(seeds("tau_rows")).choice(len(x_pool), size=n, replace=False))
            x = x_pool[rows]
        preds = mc.predict(model, x, self.T, masks="fresh", random_state=seeds("tau"))
        return auto_tau_inv(preds, factor)


def run_active_learning(
    estimator: Any,
    query_strategy: Any,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    labelled: np.ndarray,
    n_steps: int,
    k: int,
    random_state: int,
    subsample: int | None = None,
    method: str = "",
) -> pd.DataFrame:
    """One pool-based active-learning run the modAL way, as a learning curve.

    An ``ActiveLearner(estimator, query_strategy)`` is trained on the ``labelled`` rows of the pool
    (positions into ``x_pool``); then ``n_steps`` times it queries ``k`` of the unlabelled rows and
    is taught their labels from ``y_pool`` (modAL refits on everything labelled so far).
    x_pool ``(N, ...)``, y_pool ``(N,)``; x_test, y_test: the test set of ``learner.score``.
    subsample: score a seeded random subset of this many unlabelled rows per query, drawn from
    ``numpy.random.default_rng([random_state, step])`` -- for query strategies that score all they
    are given (modAL's own); an :class:`MCQuery` subsamples itself (its ``n_candidates``): None.
    Returns one row per point of the curve (iteration 0 .. n_steps): ``method``, ``seed``
    (= random_state), ``iteration``, ``budget`` (labelled rows), ``score`` (``learner.score`` on the
    test set: the accuracy of a classifier), ``fit_s``, ``score_s``, ``query_s`` (seconds) and
    ``picked`` (the labels acquired at that iteration, as a list; NaN at iteration 0).
    """
    n_steps = check_int(n_steps, "n_steps", ge=0)
    k = check_int(k, "k", ge=1)
    random_state = check_int(random_state, "random_state", ge=0)
    if subsample is not None:
        subsample = check_int(subsample, "subsample", ge=1)
    labelled = np.asarray(labelled)
    pool = np.setdiff1d(np.arange(len(x_pool)), labelled)
    if n_steps * k > len(pool):
        raise ValueError(f"{n_steps} queries of k = {k} need {n_steps * k} unlabelled rows; the pool has {len(pool)}")

    start = time.perf_counter()
    learner = ActiveLearner(
        estimator, query_strategy=query_strategy, X_training=x_pool[labelled], y_training=y_pool[labelled]
    )
    fit_s = time.perf_counter() - start

    def record(step: int, fit_s: float, query_s: float, picked: np.ndarray | None = None) -> dict:
        start = time.perf_counter()
        score = learner.score(x_test, y_test)
        row = dict(
            method=method,
            seed=random_state,
            iteration=step,
            budget=len(learner.X_training),
            score=score,
            fit_s=fit_s,
            score_s=time.perf_counter() - start,
            query_s=query_s,
        )
        if picked is not None:
            row["picked"] = y_pool[picked].tolist()
        return row

    records = [record(0, fit_s, 0.0)]
    for step in range(1, n_steps + 1):
        start = time.perf_counter()
        if subsample is None:
            idx, _ = learner.query(x_pool[pool], n_instances=k)
        else:  # modAL's own strategies score every row they are given
            sub = np.sort(
                np.random.default_rng([random_state, step]).choice(len(pool), min(subsample, len(pool)), replace=False)
            )
            idx, _ = learner.query(x_pool[pool[sub]], n_instances=k)
            idx = sub[idx]
        query_s = time.perf_counter() - start
        picked = pool[idx]
        start = time.perf_counter()
        learner.teach(x_pool[picked], y_pool[picked])
        fit_s = time.perf_counter() - start
        pool = np.setdiff1d(pool, picked)
        records.append(record(step, fit_s, query_s, picked))
    return pd.DataFrame(records)
