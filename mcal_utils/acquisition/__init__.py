"""Acquisition: pure functions of arrays (numpy or torch in, float64 numpy out).

Scores (``scores_N``, higher = more uncertain unless stated): ``var_ratio``,
``margin`` (smaller = more uncertain), ``entropy``, ``predictive_entropy``,
``mc_variation_ratio``, ``mean_std``, ``bald``, ``max_variance``.
Selection (-> ``CandidateBatch(indices, scores)``, indices in pick order):
``random_batch``, ``top_k``, ``power_sample``, ``power_bald``, ``batchbald``, ``kcenter_greedy``, ``kcenter_robust``,
``deimos`` / ``deimos_dense`` / ``deimos_from_covariance`` (+ ``deimos_sample``
for X_samp). ``STRATEGIES`` / ``get_strategy`` give them one
``select(k, *, random_state, **arrays)`` API (see ``strategies``); each strategy carries a
``Requirement`` (``requirements``) that computes its arrays from (model, candidates, seeds) for the
loop. ``auto_tau_inv`` (``tau``): DEIMOS's tau^-1 from the data (Appendix E). Input checks for new
strategies: ``check_probs``, ``check_log_probs``, ``check_passes``, ``check_scores``, ``check_k``.
"""

from .bald import bald, batchbald, conditional_entropy, joint_entropy_exact, power_bald, power_sample
from .base import (
    CandidateBatch,
    as_numpy,
    check_k,
    check_log_probs,
    check_passes,
    check_probs,
    check_scores,
    random_batch,
    top_k,
)
from .coreset import RobustKCenterBatch, covering_radius, kcenter_greedy, kcenter_robust, nearest_centre_distance
from .deimos import DeimosSample, deimos, deimos_dense, deimos_from_covariance, deimos_sample
from .requirements import REQUIREMENTS, AcquisitionContext, Requirement, StrategyInputs
from .strategies import STRATEGIES, Strategy, get_strategy
from .tau import auto_tau_inv
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

# fmt: off
__all__ = [  # by submodule: base, uncertainty, bald, coreset, deimos, strategies + requirements, tau
    "CandidateBatch", "as_numpy", "check_k", "check_probs", "check_log_probs", "check_passes", "check_scores",
    "random_batch", "top_k",
    "var_ratio", "margin", "entropy", "predictive_entropy", "mc_variation_ratio", "mean_std", "max_variance", "to_base",
    "bald", "batchbald", "power_bald", "power_sample", "conditional_entropy", "joint_entropy_exact",
    "kcenter_greedy", "kcenter_robust", "RobustKCenterBatch", "covering_radius", "nearest_centre_distance",
    "deimos", "deimos_dense", "deimos_from_covariance", "deimos_sample", "DeimosSample",
    "STRATEGIES", "Strategy", "get_strategy", "REQUIREMENTS", "Requirement", "AcquisitionContext", "StrategyInputs",
    "auto_tau_inv",
]
# fmt: on
