"""mcal's strategies as modAL query strategies, over a PyTorch model.

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
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from mcal_utils import mc, training
from mcal_utils.acquisition import get_strategy
from mcal_utils.acquisition.requirements import REQUIREMENTS, AcquisitionContext
from mcal_utils.acquisition.tau import auto_tau_inv, check_tau_factor
from mcal_utils.loop.seeds import step_seeds
from mcal_utils.models import MCModel

__all__ = ["MCDropoutClassifier", "MCQuery", "network_of"]

#: Training of :class:`MCDropoutClassifier` unless told otherwise: Adam, final weights (no validation set).
DEFAULT_CONFIG = training.TrainConfig(optimizer="adam", lr=1e-3, epochs=50, batch_size=64, checkpoint="last")


class MCDropoutClassifier(BaseEstimator, ClassifierMixin):
    """A scikit-learn classifier around an ``MCModel``, for modAL's ``ActiveLearner``.

    ``fit(X, y)`` trains a deep copy of ``model`` (so every fit starts from the same initial
    weights, as the MC-dropout-entropy paper's code does with ``torch.manual_seed(42)`` before
    every model) with :func:`mcal_utils.training.fit` (``config``, seeded by ``random_state``);
    ``model_`` is the trained network. ``predict_proba`` is one pass with dropout off,
    ``(N, C)`` float64. ``X``: ``(N, *model.input_shape)`` float; ``y``: int class indices in
    ``0 .. C - 1``.
    """

    def __init__(self, model: MCModel, *, config: training.TrainConfig = DEFAULT_CONFIG, random_state: int = 0):
        self.model = model
        self.config = config
        self.random_state = random_state

    def fit(self, X, y) -> "MCDropoutClassifier":
        if not isinstance(self.model, MCModel):
            raise ValueError(f"model must be an MCModel (build_model, or models.patch_dropout(your_network, "
                             f"input_shape=...)), got {type(self.model).__name__}")
        if self.model.kind != "classification":
            raise ValueError(f"MCDropoutClassifier needs a classification model, got kind={self.model.kind!r}")
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.min(initial=0) < 0 or \
                y.max(initial=0) >= self.model.n_outputs:
            raise ValueError(f"y must be 1-D int class indices in 0..{self.model.n_outputs - 1}, "
                             f"got dtype {y.dtype}, shape {y.shape}")
        result = training.fit(copy.deepcopy(self.model), np.asarray(X, np.float32), y.astype(np.int64),
                              config=self.config, random_state=self.random_state)
        self.model_ = result.model
        self.classes_ = np.arange(self.model.n_outputs)
        return self

    def _fitted(self) -> MCModel:
        if not hasattr(self, "model_"):
            raise ValueError("this MCDropoutClassifier is not fitted yet: call fit(X, y) first "
                             "(modAL's ActiveLearner does when given X_training)")
        return self.model_

    def predict_proba(self, X) -> np.ndarray:
        return mc.deterministic(self._fitted(), np.asarray(X, np.float32)).double().numpy()

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def network_of(learner) -> MCModel:
    """The ``MCModel`` behind a modAL learner (or an estimator): ``estimator.module_`` (skorch) or
    ``estimator.model_`` (:class:`MCDropoutClassifier`)."""
    estimator = getattr(learner, "estimator", learner)
    for attribute in ("module_", "model_"):
        net = getattr(estimator, attribute, None)
        if net is not None:
            break
    else:
        raise ValueError(f"no fitted network found on {type(estimator).__name__}: expected a fitted skorch NeuralNet "
                         f"(module_) or MCDropoutClassifier (model_); fit the learner first")
    if not isinstance(net, MCModel):
        raise ValueError(f"the network is a {type(net).__name__}, not an MCModel: convert it with "
                         f"mcal_utils.models.patch_dropout(network, input_shape=...) before training")
    return net


@dataclass
class MCQuery:
    """``MCQuery("bald", mc_samples=20)``: a modAL ``query_strategy`` running an mcal strategy.

    strategy: a name of ``STRATEGIES``. mc_samples: MC-dropout passes (T; K for BatchBALD, J for
    DEIMOS; unused by deterministic and feature strategies). n_candidates: score a seeded random
    subset of this many pool points (None: the whole pool; DEIMOS: the pool members of X_samp,
    ``min(len(X_pool), 2500)`` by default as in its paper). tau_inv: DEIMOS's tau^-1 (required
    for "deimos"): a number, or ``{"auto": factor}`` (DEIMOS Appendix E, as the loop): computed
    once, at the first query (the step-0 model), as ``factor`` x the mean MC-dropout variance of
    ``mc_samples`` fresh-mask passes seeded from ``(random_state, 0, "tau")``, on ``x_val`` (a
    validation set, as the loop uses) or, without one, on a seeded subset of that query's pool of
    ``n_candidates`` points (unlabelled, so unseen by the model as a validation set is); the value
    is kept in ``tau_inv_`` and used at every query. random_state: int; query i uses seeds derived
    from (random_state, i).
    options: further keywords of the strategy (e.g. ``{"num_samples": 10000}`` for BatchBALD),
    checked now. ``n_queries`` counts the calls so far.

    ``__call__(learner, X_pool, n_instances=1) -> (indices, scores)``: int64 positions into
    ``X_pool`` in pick order, float64 scores (see ``STRATEGIES``).
    """

    strategy: str
    mc_samples: int = 20
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
        if isinstance(self.mc_samples, bool) or not isinstance(self.mc_samples, (int, np.integer)) or \
                self.mc_samples < 1:
            raise ValueError(f"mc_samples must be an int >= 1, got {self.mc_samples!r}")
        if self.n_candidates is not None and (isinstance(self.n_candidates, bool) or
                                              not isinstance(self.n_candidates, (int, np.integer)) or
                                              self.n_candidates < 1):
            raise ValueError(f"n_candidates must be None or an int >= 1, got {self.n_candidates!r}")
        if self._requirement.needs_tau:
            if isinstance(self.tau_inv, dict):
                if set(self.tau_inv) != {"auto"}:
                    raise ValueError(f"tau_inv as a dict must be {{'auto': factor}} (DEIMOS Appendix E), got "
                                     f"{self.tau_inv!r}")
                self.tau_inv = {"auto": check_tau_factor(self.tau_inv["auto"])}
                if self.mc_samples < 2:
                    raise ValueError(f"tau_inv={{'auto': ...}} needs mc_samples >= 2 (a variance over passes), "
                                     f"got {self.mc_samples}")
            elif not (isinstance(self.tau_inv, (int, float)) and not isinstance(self.tau_inv, bool)
                      and math.isfinite(self.tau_inv) and self.tau_inv > 0):
                raise ValueError(f"strategy {self.strategy!r} needs tau_inv, a finite number > 0 (DEIMOS's "
                                 f"tau^-1, e.g. 8.37e-5 on MNIST 7-vs-9) or {{'auto': factor}}, got {self.tau_inv!r}")
            else:
                self.tau_inv_ = float(self.tau_inv)
        elif self.tau_inv is not None:
            raise ValueError(f"tau_inv is only used by DEIMOS, not by {self.strategy!r}; leave it None")
        if self.x_val is not None and not isinstance(self.tau_inv, dict):
            raise ValueError("x_val is only used by tau_inv={'auto': factor} (the data of its MC variance); "
                             "leave it None")
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, (int, np.integer)) or \
                self.random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, got {self.random_state!r}")
        check_options = getattr(self._strategy, "check_options", None)
        if check_options is not None:
            check_options(self.options)

    def __call__(self, learner, X_pool, n_instances: int = 1) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(n_instances, bool) or not isinstance(n_instances, (int, np.integer)) or n_instances < 1:
            raise ValueError(f"n_instances must be an int >= 1, got {n_instances!r}")
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
            x_labelled = np.zeros((0, *x_pool.shape[1:]), np.float32) if x_labelled is None else \
                np.asarray(x_labelled, np.float32)
        else:
            x_labelled = np.zeros((0, *x_pool.shape[1:]), np.float32)
        n_lab = len(x_labelled)
        if self._requirement.needs_tau and self.tau_inv_ is None:
            self.tau_inv_ = self._auto_tau_inv(model, x_pool, n_cand)
        seeds = step_seeds(int(self.random_state), self.n_queries)
        self.n_queries += 1
        context = AcquisitionContext(
            model=model, x_train=np.concatenate([x_labelled, x_pool]) if n_lab else x_pool,
            labelled=np.arange(n_lab, dtype=np.int64), pool=np.arange(n_lab, n_lab + n_pool, dtype=np.int64),
            n_candidates=n_cand, mc_samples=int(self.mc_samples), tau_inv=self.tau_inv_, seed=seeds)
        inputs = self._requirement(context)
        batch = self._strategy.select(int(n_instances), random_state=seeds("select"), **inputs.arrays,
                                      **self.options)
        positions = inputs.pool_positions(batch.indices, int(n_instances), self.strategy)
        return positions.astype(np.int64), np.asarray(batch.scores, np.float64)

    def _auto_tau_inv(self, model: MCModel, x_pool: np.ndarray, n_cand: int | None) -> float:
        """``{"auto": factor}``: factor x the mean MC variance of ``model`` on ``x_val`` or a seeded
        subset of ``n_cand`` pool points (fresh masks, seeds of query 0, as the loop's step 0)."""
        seeds = step_seeds(int(self.random_state), 0)
        if self.x_val is not None:
            x = np.asarray(self.x_val, np.float32)
            if x.ndim < 2 or len(x) == 0 or x.shape[1:] != x_pool.shape[1:]:
                raise ValueError(f"x_val must hold >= 1 input of X_pool's shape {x_pool.shape[1:]}, got shape "
                                 f"{x.shape}")
        else:
            n = len(x_pool) if n_cand is None else min(n_cand, len(x_pool))
            rows = np.sort(np.random.default_rng(seeds("tau_rows")).choice(len(x_pool), size=n, replace=False))
            x = x_pool[rows]
        preds = mc.predict(model, x, int(self.mc_samples), masks="fresh", random_state=seeds("tau"))
        return auto_tau_inv(preds, self.tau_inv["auto"])
