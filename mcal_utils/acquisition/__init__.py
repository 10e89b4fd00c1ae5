"""Acquisition: pure functions of arrays (numpy or torch in, float64 numpy out).

Scores (``scores_N``, higher = more uncertain unless stated): ``var_ratio``,
``margin`` (smaller = more uncertain), ``entropy``, ``predictive_entropy``,
``mc_variation_ratio``, ``mean_std``, ``bald``, ``max_variance``.
Selection (-> ``CandidateBatch(indices, scores)``, indices in pick order):
``random_batch``, ``top_k``, ``batchbald``, ``kcenter_greedy``, ``kcenter_robust``,
``deimos`` / ``deimos_dense`` / ``deimos_from_covariance`` (+ ``deimos_sample``
for X_samp). ``STRATEGIES`` / ``get_strategy`` give them one
``select(k, *, random_state, **arrays)`` API (see ``strategies``).
"""
from .base import CandidateBatch, as_numpy, random_batch, top_k
from .uncertainty import (
    entropy,
    margin,
    max_variance,
    mc_variation_ratio,
    mean_std,
    predictive_entropy,
    to_base,
    var_ratio,
)
from .bald import bald, batchbald, conditional_entropy, joint_entropy_exact
from .coreset import RobustKCenterBatch, covering_radius, kcenter_greedy, kcenter_robust, nearest_centre_distance
from .deimos import DeimosSample, deimos, deimos_dense, deimos_from_covariance, deimos_sample
from .strategies import STRATEGIES, Strategy, get_strategy

__all__ = [
    "CandidateBatch",
    "as_numpy",
    "random_batch",
    "top_k",
    "var_ratio",
    "margin",
    "entropy",
    "predictive_entropy",
    "mc_variation_ratio",
    "mean_std",
    "max_variance",
    "to_base",
    "bald",
    "batchbald",
    "conditional_entropy",
    "joint_entropy_exact",
    "kcenter_greedy",
    "kcenter_robust",
    "RobustKCenterBatch",
    "covering_radius",
    "nearest_centre_distance",
    "deimos",
    "deimos_dense",
    "deimos_from_covariance",
    "deimos_sample",
    "DeimosSample",
    "STRATEGIES",
    "Strategy",
    "get_strategy",
]
