"""BALD and BatchBALD (mutual information between labels and model parameters).

BALD (Houlsby et al. 2011; Gal, Islam & Ghahramani 2017)::

    I[y; w | x] = H[ (1/T) sum_t p(y | x, w_t) ] - (1/T) sum_t H[ p(y | x, w_t) ]

BatchBALD (Kirsch, van Amersfoort & Gal 2019, eq. 8 and Algorithm 1), greedy::

    a(x_1..x_n) = H(y_1, ..., y_n) - sum_i (1/K) sum_k H[ p(y_i | x_i, w_k) ]

Power BALD (Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron & Gal 2023,
"Stochastic Batch Acquisition", the power variant): instead of the top-k BALD
scores, k points drawn without replacement with probabilities ``∝ score^beta``,
by the Gumbel-top-k trick (Kool, van Hoof & Welling 2019)::

    key_n = log s_n + g_n / beta,  g_n ~ Gumbel(0, 1);  batch = top-k of key

(the order of ``beta log s_n + g_n``, the form used for ``beta < 1``; each stays
finite on its side, and ``beta = inf`` is exactly top-k).

BatchBALD uses the K posterior samples ``w_k`` SHARED by every point (fixed dropout masks),
``p(y_1..y_n) = (1/K) sum_k prod_i p(y_i | x_i, w_k)``. The joint entropy of the
already-picked points S plus one candidate is exact (all ``C^|S|``
configurations of S enumerated) while ``C^|S| <= num_samples``; beyond, it is
estimated from ``num_samples`` configurations of S drawn from ``p(y_S)`` (ancestral
sampling: a mask, then a label per point), eq. 12 of the paper::

    H(y_S, y_n) ~ (1/M) sum_m sum_c  p(y_S^m, c) / p(y_S^m) * -log p(y_S^m, c).

The candidate's own C labels are always summed exactly. Products of
probabilities are kept as ``log`` values shifted by their per-configuration
maximum, so nothing underflows and ``p = 0`` contributes ``0 log 0 = 0``.

All values are in nats (natural log); ``base=2`` converts to bits (DEIMOS
reports BALD in bits; the ranking is the same).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp
from tqdm.auto import tqdm

from mcal_utils.checks import check_float, check_int, check_random_state

from .base import CandidateBatch, as_numpy, check_k, check_log_probs, check_probs, top_k
from .uncertainty import to_base, xlogx

__all__ = [
    "bald",
    "conditional_entropy",
    "joint_entropy_exact",
    "batchbald",
    "power_sample",
    "power_bald",
]

#: Upper bound on the elements of one (chunk, configurations, classes) block.
_BLOCK_ELEMENTS = 1 << 22


def _plogp_from_log(log_p: np.ndarray) -> np.ndarray:
    """``p log p`` from ``log p``, 0 where ``log p = -inf``."""
    finite = np.isfinite(log_p)
    safe = np.where(finite, log_p, 0.0)
    return np.where(finite, np.exp(safe) * safe, 0.0)


def _bald_terms(probs_N_T_C=None, log_probs_N_T_C=None):
    """(predictive entropy, expected entropy), nats, from probs or log-probs."""
    if (probs_N_T_C is None) == (log_probs_N_T_C is None):
        raise ValueError("pass exactly one of probs_N_T_C or log_probs_N_T_C")
    if probs_N_T_C is not None:
        p = check_probs(probs_N_T_C, 3, "probs_N_T_C")
        mean_N_C = p.mean(axis=1)
        h_pred = -xlogx(mean_N_C).sum(axis=1)
        h_cond = -xlogx(p).sum(axis=2).mean(axis=1)
    else:
        lp = check_log_probs(log_probs_N_T_C, 3, "log_probs_N_T_C")
        T = lp.shape[1]
        log_mean_N_C = logsumexp(lp, axis=1) - math.log(T)
        h_pred = -_plogp_from_log(log_mean_N_C).sum(axis=1)
        h_cond = -_plogp_from_log(lp).sum(axis=2).mean(axis=1)
    return h_pred, h_cond


def bald(probs_N_T_C=None, *, log_probs_N_T_C=None, base=None) -> np.ndarray:
    """BALD score per point: predictive entropy minus expected entropy, nats (``>= 0``).

    Give T MC passes either as probabilities ``probs_N_T_C`` or as natural-log
    probabilities ``log_probs_N_T_C`` (``-inf`` allowed). Rounding below 0 is
    clipped to 0.
    """
    h_pred, h_cond = _bald_terms(probs_N_T_C, log_probs_N_T_C)
    return to_base(np.maximum(h_pred - h_cond, 0.0), base)


def power_sample(scores_N, k: int, *, beta: float = 1.0, random_state) -> CandidateBatch:
    """k distinct indices drawn without replacement with probabilities ``∝ scores_N ** beta``.

    Gumbel-top-k: the top-k of ``log s_n + g_n / beta`` (``g_n ~ Gumbel(0, 1)``, seeded by
    ``random_state``), i.e. successive draws of a Plackett-Luce model with weights ``s^beta``.
    ``beta = math.inf``: exactly :func:`top_k` (ties -> lowest index). ``scores_N`` must be
    finite and ``>= 0``; points of score 0 have probability 0 and come after every positive
    score, in a uniformly random order. Returns the picks in draw order and their scores.
    """
    s = as_numpy(scores_N, "scores_N")
    if s.ndim != 1:
        raise ValueError(f"scores_N must be 1-D (N,), got shape {s.shape}")
    if not np.all(np.isfinite(s)) or (s.size and s.min() < 0):
        raise ValueError("scores_N must be finite and >= 0 (power sampling weights points by score^beta)")
    beta = check_float(beta, "beta (math.inf: plain top-k)", gt=0.0, finite=False)
    k = check_k(k, s.shape[0])
    rng = check_random_state(random_state)  # required even for beta = inf: explicit randomness
    if math.isinf(beta):
        return top_k(s, k)
    g_N = rng.gumbel(size=int(s.shape[0]))
    positive = s > 0
    log_s = np.log(np.where(positive, s, 1.0))
    # the same order either way; each form stays finite on its side of beta = 1
    key_N = log_s + g_N / beta if beta >= 1.0 else beta * log_s + g_N
    key_N = np.where(positive, key_N, -np.inf)
    order = np.lexsort((-g_N, -key_N))[:k]  # by key; the score-0 points by their own noise
    return CandidateBatch(indices=order.astype(np.int64), scores=s[order])


def power_bald(
    k: int, *, probs_N_T_C=None, log_probs_N_T_C=None, beta: float = 1.0, random_state, base=None
) -> CandidateBatch:
    """Power BALD: k points sampled with probabilities ``∝ BALD^beta`` (Kirsch et al. 2023).

    Give T MC passes as ``probs_N_T_C`` or ``log_probs_N_T_C`` (as :func:`bald`).
    ``beta = 1`` is the paper's default; ``beta = math.inf`` is top-k BALD. The scores of
    the result are the picks' BALD scores (nats unless ``base``).
    """
    scores_N = bald(probs_N_T_C, log_probs_N_T_C=log_probs_N_T_C)
    batch = power_sample(scores_N, k, beta=beta, random_state=random_state)
    return CandidateBatch(indices=batch.indices, scores=to_base(batch.scores, base))


def conditional_entropy(log_probs_N_K_C) -> np.ndarray:
    """``(1/K) sum_k H[p(y | x_n, w_k)]`` per point, nats."""
    lp = check_log_probs(log_probs_N_K_C, 3, "log_probs_N_K_C")
    return -_plogp_from_log(lp).sum(axis=2).mean(axis=1)


def _log_joint_step(log_joint_M_K: np.ndarray, log_probs_K_C: np.ndarray) -> np.ndarray:
    """Enumerate one more variable: ``(M, K) x (K, C) -> (M*C, K)`` log joint probabilities."""
    M, K = log_joint_M_K.shape
    out = (log_joint_M_K[:, None, :] + log_probs_K_C.T[None, :, :]).reshape(M * log_probs_K_C.shape[1], K)
    possible = np.isfinite(out.max(axis=1))  # drop configurations with p = 0 under every w_k
    return out if possible.all() else out[possible]


def joint_entropy_exact(log_probs_B_K_C) -> float:
    """Exact joint entropy ``H(y_1..y_B)`` of B points under K shared samples, nats.

    Enumerates all ``C^B`` configurations: small B only (refuses above 2^22).
    """
    lp = check_log_probs(log_probs_B_K_C, 3, "log_probs_B_K_C")
    B, K, C = lp.shape
    if C**B > _BLOCK_ELEMENTS:
        raise ValueError(f"C^B = {C}^{B} configurations is too many to enumerate (limit {_BLOCK_ELEMENTS})")
    log_joint = np.zeros((1, K))
    for i in range(B):
        log_joint = _log_joint_step(log_joint, lp[i])
    log_p = logsumexp(log_joint, axis=1) - math.log(K)
    return float(-_plogp_from_log(log_p).sum())


def _joint_entropies_with_candidates(
    log_joint_M_K: np.ndarray,
    probs_N_K_C: np.ndarray,
    exact: bool,
) -> np.ndarray:
    """``H(y_S, y_n)`` for every candidate n, nats.

    ``log_joint_M_K``: log p(config_m | w_k) of the picked points S, one row per
    enumerated (exact) or sampled configuration.
    """
    M, K = log_joint_M_K.shape
    N, _, C = probs_N_K_C.shape
    shift_M = log_joint_M_K.max(axis=1)  # finite: every row has p > 0 for some k
    scaled_M_K = np.exp(log_joint_M_K - shift_M[:, None])  # in [0, 1], max 1 per row
    # p(config_m, c) = exp(shift_m) / K * mix[m, c],  mix = scaled_M_K @ p_n_K_C, so
    #   sum_c p log p = exp(shift_m) / K * (sum_c mix log mix + (shift_m - log K) * sum_c mix)
    # sampled (eq. 12): weight p(y_S^m, c) / p(y_S^m) = mix[m, c] / sum_k scaled[m, k], averaged over m
    if exact:
        weight_M = np.exp(shift_M) / K
    else:
        weight_M = 1.0 / (M * scaled_M_K.sum(axis=1))
    offset_M = shift_M - math.log(K)
    sum_mix_M_N = scaled_M_K @ probs_N_K_C.sum(axis=2).T  # sum_c mix[m, c] for every candidate
    out_N = -(weight_M * offset_M) @ sum_mix_M_N
    chunk = max(1, _BLOCK_ELEMENTS // max(1, M * C))
    flat_probs = probs_N_K_C.transpose(1, 0, 2)  # (K, N, C)
    for start in range(0, N, chunk):
        stop = min(N, start + chunk)
        b = stop - start
        mix_M_bC = scaled_M_K @ flat_probs[:, start:stop, :].reshape(K, b * C)
        out_N[start:stop] -= (weight_M @ xlogx(mix_M_bC)).reshape(b, C).sum(axis=1)
    return out_N


def _sample_masks(M: int, K: int, rng: np.random.Generator) -> np.ndarray:
    """Mask index of each sampled configuration: stratified (M // K per mask) when M >= K."""
    if M >= K:
        return np.repeat(np.arange(K), M // K)
    return rng.choice(K, size=M, replace=False)


def _sample_labels(probs_K_C: np.ndarray, masks_M: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per configuration, ``y_m ~ p(y | x, w_{mask_m})`` (inverse CDF)."""
    cdf_M_C = np.cumsum(probs_K_C[masks_M], axis=1)
    u_M = rng.random(masks_M.shape[0]) * cdf_M_C[:, -1]
    labels = (cdf_M_C <= u_M[:, None]).sum(axis=1)  # first c with cdf_c > u: p_c > 0
    return np.minimum(labels, probs_K_C.shape[1] - 1)


def batchbald(
    log_probs_N_K_C,
    k: int,
    *,
    num_samples: int = 10_000,
    random_state=None,
    candidates=None,
    base=None,
    progress: bool | None = False,
) -> CandidateBatch:
    """Greedy BatchBALD batch of size k (Kirsch et al. 2019, Algorithm 1).

    ``log_probs_N_K_C``: natural-log class probabilities under K posterior
    samples shared by all points (``-inf`` allowed). ``num_samples`` (M): budget
    of configurations of the picked points; the joint entropy is exact while
    ``C^|picked| <= M``, else M configurations are sampled with ``random_state``
    (required only then). ``candidates``: optional index subset of ``range(N)``.

    Returns indices into ``range(N)`` in pick order; ``scores[i]`` is the
    BatchBALD value of the first ``i + 1`` picks (nats unless ``base``), so
    ``scores[0]`` is the BALD score of the first pick.
    """
    lp = check_log_probs(log_probs_N_K_C, 3, "log_probs_N_K_C")
    N, K, C = lp.shape
    num_samples = check_int(num_samples, "num_samples", ge=1)
    if candidates is None:
        cand = np.arange(N)
    else:
        cand = np.asarray(candidates)
        if cand.ndim != 1 or (cand.size and not np.issubdtype(cand.dtype, np.integer)):
            raise ValueError(f"candidates must be a 1-D integer index array, got dtype {cand.dtype} shape {cand.shape}")
        if cand.size and (cand.min() < 0 or cand.max() >= N):
            raise ValueError(f"candidates must index range({N})")
        if np.unique(cand).size != cand.size:
            raise ValueError("candidates must be distinct")
        cand = np.sort(cand)  # ties -> lowest index, as in top_k and deimos
        cand = cand.astype(np.int64)
    k = check_k(k, cand.size)
    if k == 0:
        return CandidateBatch(np.zeros(0, np.int64), np.zeros(0))
    probs_cand = np.exp(lp[cand])  # (Nc, K, C); exp(-inf) = 0
    h_cond_cand = -_plogp_from_log(lp[cand]).sum(axis=2).mean(axis=1)
    rng = None
    log_joint_M_K = np.zeros((1, K))  # S = {}: one empty configuration
    exact = True
    masks_M = labels_S_M = None
    picked: list[int] = []  # positions in cand
    scores: list[float] = []
    h_cond_picked = 0.0
    available = np.ones(cand.size, dtype=bool)
    for step in tqdm(range(k), desc="BatchBALD", disable=not progress, leave=False):
        if step > 0:
            last = picked[-1]
            if exact and C ** len(picked) <= num_samples:
                log_joint_M_K = _log_joint_step(log_joint_M_K, lp[cand[last]])
            elif exact:  # switch: sample configurations of S
                exact = False
                if random_state is None:
                    raise ValueError(
                        f"random_state is required: C^|batch| = {C}^{len(picked)} exceeds "
                        f"num_samples={num_samples}, so label configurations are sampled"
                    )
                rng = check_random_state(random_state)
                masks_M = _sample_masks(num_samples, K, rng)
                labels_S_M = [_sample_labels(probs_cand[j], masks_M, rng) for j in picked]
                log_joint_M_K = np.zeros((masks_M.shape[0], K))
                for j, labels_M in zip(picked, labels_S_M):
                    log_joint_M_K += lp[cand[j]][:, labels_M].T
            else:  # extend every sampled configuration
                assert masks_M is not None and rng is not None  # set when sampling started
                labels_M = _sample_labels(probs_cand[last], masks_M, rng)
                log_joint_M_K = log_joint_M_K + lp[cand[last]][:, labels_M].T
        h_joint = _joint_entropies_with_candidates(log_joint_M_K, probs_cand, exact)
        score_N = h_joint - h_cond_cand - h_cond_picked
        score_N[~available] = -np.inf
        best = int(np.argmax(score_N))  # ties -> lowest candidate position
        picked.append(best)
        scores.append(float(score_N[best]))
        available[best] = False
        h_cond_picked += h_cond_cand[best]
    return CandidateBatch(indices=cand[np.array(picked)], scores=to_base(np.array(scores), base))
