"""BALD and BatchBALD against hand values and brute-force enumerations."""

import importlib
import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2 as chi2_dist

from mcal_utils.acquisition import get_strategy, top_k
from mcal_utils.acquisition.uncertainty import predictive_entropy

# the package re-exports the function ``bald``, which shadows the submodule attribute
B = importlib.import_module("mcal_utils.acquisition.bald")


def _log_probs(rng, N, K, C, scale=2.0, zeros=False):
    logits = rng.normal(size=(N, K, C)) * scale
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    if zeros:  # exact zeros (log p = -inf) in a third of the entries, never a whole row
        drop = rng.random(lp.shape) < 0.33
        drop[..., 0] = False
        p = np.where(drop, 0.0, np.exp(lp))
        p /= p.sum(-1, keepdims=True)
        with np.errstate(divide="ignore"):
            lp = np.log(p)
    return lp


def _brute_joint_entropy(p_B_K_C):
    """Plain enumeration of H(y_1..y_B) with p(y) = mean_k prod_i p_i(y_i | w_k)."""
    Bn, K, C = p_B_K_C.shape
    h = 0.0
    for ys in itertools.product(range(C), repeat=Bn):
        prob = np.mean([np.prod([p_B_K_C[i, k, y] for i, y in enumerate(ys)]) for k in range(K)])
        if prob > 0:
            h -= prob * math.log(prob)
    return h


def _brute_batchbald(p_N_K_C, b):
    """Greedy BatchBALD with brute-force joint entropies."""
    N, K, C = p_N_K_C.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        h_cond = -np.nan_to_num(p_N_K_C * np.log(p_N_K_C)).sum(2).mean(1)
    picked, scores = [], []
    for _ in range(b):
        best, best_score = None, -np.inf
        for n in range(N):
            if n in picked:
                continue
            s = _brute_joint_entropy(p_N_K_C[picked + [n]]) - h_cond[picked + [n]].sum()
            if s > best_score + 1e-12:
                best, best_score = n, s
        picked.append(best)
        scores.append(best_score)
    return picked, scores


def test_bald_hand_values():
    # two passes that disagree completely: BALD = H[mean] - 0 = log 2
    p = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.9, 0.1]]])
    np.testing.assert_allclose(B.bald(p), [math.log(2), 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(B.bald(p, base=2), [1.0, 0.0, 0.0], atol=1e-15)
    q = np.array([[[0.8, 0.2], [0.4, 0.6]]])
    mean = np.array([0.6, 0.4])

    def h(v):
        return -(v * np.log(v)).sum()

    np.testing.assert_allclose(B.bald(q), [h(mean) - (h(q[0, 0]) + h(q[0, 1])) / 2], rtol=1e-13)


def test_bald_probs_and_log_probs_agree_and_zeros_finite():
    rng = np.random.default_rng(1)
    lp = _log_probs(rng, 50, 7, 5, zeros=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = B.bald(log_probs_N_T_C=lp)
        b = B.bald(np.exp(lp))
        c = B.bald(log_probs_N_T_C=torch.tensor(lp))
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(a, c, atol=1e-12)
    with pytest.raises(ValueError, match="exactly one"):
        B.bald(np.exp(lp), log_probs_N_T_C=lp)
    with pytest.raises(ValueError, match="exactly one"):
        B.bald()


@st.composite
def mc_probs(draw):
    N, T, C = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    vals = draw(st.lists(st.sampled_from([0.0, 0.0, 1e-9, 0.2, 1.0, 4.0]), min_size=N * T * C, max_size=N * T * C))
    x = np.array(vals).reshape(N, T, C)
    x[..., -1] += 1e-3
    return x / x.sum(-1, keepdims=True)


@settings(max_examples=100, deadline=None)
@given(mc_probs())
def test_bald_bounds(p):
    b = B.bald(p)
    assert np.all(np.isfinite(b)) and np.all(b >= 0)
    assert np.all(b <= predictive_entropy(p) + 1e-12)
    assert np.all(b <= math.log(min(p.shape[1], p.shape[2])) + 1e-12)  # I[y; w] <= min(H[y], log T)
    same = np.repeat(p[:, :1], p.shape[1], axis=1)
    np.testing.assert_allclose(B.bald(same), 0.0, atol=1e-12)


def test_joint_entropy_exact_matches_brute_force():
    rng = np.random.default_rng(2)
    for Bn, K, C, zeros in [(1, 3, 4, False), (2, 4, 3, True), (3, 5, 3, False), (4, 3, 2, True)]:
        lp = _log_probs(rng, Bn, K, C, zeros=zeros)
        assert B.joint_entropy_exact(lp) == pytest.approx(_brute_joint_entropy(np.exp(lp)), rel=1e-12, abs=1e-14)
    with pytest.raises(ValueError, match="too many"):
        B.joint_entropy_exact(np.full((30, 1, 2), math.log(0.5)))


def test_conditional_entropy_hand():
    lp = np.log(np.array([[[0.5, 0.5], [0.25, 0.75]]]))
    h = (math.log(2) - 0.25 * math.log(0.25) - 0.75 * math.log(0.75)) / 2
    np.testing.assert_allclose(B.conditional_entropy(lp), [h], rtol=1e-14)


def test_batch_of_one_is_bald_top1():
    rng = np.random.default_rng(3)
    lp = _log_probs(rng, 300, 10, 10)
    bb = B.batchbald(lp, 1)
    s = B.bald(log_probs_N_T_C=lp)
    assert bb.indices.tolist() == [int(np.argmax(s))]
    assert bb.scores[0] == pytest.approx(s.max(), rel=1e-12)


@pytest.mark.parametrize("seed, zeros", [(4, False), (5, True), (6, False)])
def test_exact_batchbald_matches_brute_force_greedy(seed, zeros):
    rng = np.random.default_rng(seed)
    lp = _log_probs(rng, 8, 4, 3, scale=1.5, zeros=zeros)
    ours = B.batchbald(lp, 3, num_samples=10_000)
    ref_idx, ref_scores = _brute_batchbald(np.exp(lp), 3)
    assert ours.indices.tolist() == ref_idx
    np.testing.assert_allclose(ours.scores, ref_scores, rtol=1e-10, atol=1e-12)
    assert np.all(np.diff(ours.scores) >= -1e-12)  # the joint score never drops when adding a point


def test_batchbald_candidates_subset():
    rng = np.random.default_rng(7)
    lp = _log_probs(rng, 40, 6, 4)
    cand = np.array([3, 10, 11, 25, 39])
    sub = B.batchbald(lp, 3, candidates=cand)
    direct = B.batchbald(lp[cand], 3)
    assert sub.indices.tolist() == cand[direct.indices].tolist()
    np.testing.assert_allclose(sub.scores, direct.scores)


def test_sampled_estimator_close_to_exact():
    """Eq. 12 of Kirsch et al.: sampled H(y_S, y_n) converges to the exact value."""
    rng = np.random.default_rng(8)
    lp = _log_probs(rng, 60, 10, 3, scale=1.5)
    S = [0, 1, 2]
    exact_lj = np.zeros((1, 10))
    for j in S:
        exact_lj = B._log_joint_step(exact_lj, lp[j])
    probs = np.exp(lp)
    exact = B._joint_entropies_with_candidates(exact_lj, probs, exact=True)
    gen = np.random.default_rng(0)
    masks = B._sample_masks(20_000, 10, gen)
    sampled_lj = np.zeros((masks.size, 10))
    for j in S:
        sampled_lj += lp[j][:, B._sample_labels(probs[j], masks, gen)].T
    sampled = B._joint_entropies_with_candidates(sampled_lj, probs, exact=False)
    assert np.abs(sampled - exact).max() < 0.03  # nats, joint entropies of about 3-4 nats
    # exact joint entropy of S + n equals the brute force
    assert exact[5] == pytest.approx(_brute_joint_entropy(probs[S + [5]]), rel=1e-12)


def test_sampled_batchbald_close_to_exact_batch():
    rng = np.random.default_rng(9)
    lp = _log_probs(rng, 100, 20, 4, scale=1.5)
    exact = B.batchbald(lp, 5, num_samples=4**4)  # exact throughout (C^4 = 256)
    sampled = B.batchbald(lp, 5, num_samples=4**2, random_state=0)  # M=16: sampled from the 4th pick on
    sampled_big = B.batchbald(lp, 5, num_samples=4**3, random_state=0)  # exact for 4 picks, sampled (M=64) for the 5th
    assert sampled_big.indices[:4].tolist() == exact.indices[:4].tolist()
    np.testing.assert_allclose(sampled_big.scores[:4], exact.scores[:4], rtol=1e-12)
    assert sampled_big.scores[4] == pytest.approx(exact.scores[4], rel=0.1)
    many = B.batchbald(lp, 5, num_samples=4**3 * 100, random_state=0)
    assert abs(many.scores[4] - exact.scores[4]) < 0.02 * exact.scores[4]
    assert sampled.scores.shape == (5,) and np.all(np.isfinite(sampled.scores))


def test_batchbald_seeded_and_needs_random_state_only_when_sampling():
    rng = np.random.default_rng(10)
    lp = _log_probs(rng, 50, 8, 5)
    a = B.batchbald(lp, 4, num_samples=30, random_state=1)
    b = B.batchbald(lp, 4, num_samples=30, random_state=np.random.default_rng(1))
    assert a.indices.tolist() == b.indices.tolist() and np.array_equal(a.scores, b.scores)
    with pytest.raises(ValueError, match="random_state is required"):
        B.batchbald(lp, 4, num_samples=30)
    B.batchbald(lp, 2, num_samples=30)  # exact: no random_state needed


def test_batchbald_zeros_finite_no_warnings():
    rng = np.random.default_rng(11)
    lp = _log_probs(rng, 30, 6, 4, zeros=True)
    lp[0] = np.log([1.0, 1e-300, 1e-300, 1e-300]) - np.log1p(3e-300)  # near-deterministic row
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for M in (10_000, 20):
            out = B.batchbald(lp, 5, num_samples=M, random_state=0)
            assert np.all(np.isfinite(out.scores)) and len(set(out.indices.tolist())) == 5


def test_batchbald_bad_input():
    lp = np.log(np.full((5, 3, 2), 0.5))
    with pytest.raises(ValueError, match="larger than"):
        B.batchbald(lp, 6)
    with pytest.raises(ValueError, match=r"\(N, K, C\)"):
        B.batchbald(lp[0], 1)
    with pytest.raises(ValueError, match="exp sums to 1"):
        B.batchbald(np.zeros((5, 3, 2)), 1)
    with pytest.raises(ValueError, match="num_samples"):
        B.batchbald(lp, 1, num_samples=0)
    with pytest.raises(TypeError, match="num_samples"):
        B.batchbald(lp, 1, num_samples=10.0)
    with pytest.raises(ValueError, match="candidates"):
        B.batchbald(lp, 1, candidates=[0, 9])
    assert B.batchbald(lp, 0).indices.shape == (0,)


def test_batchbald_candidate_ties_go_to_the_lowest_index_whatever_their_order():
    batchbald = B.batchbald
    rng = np.random.default_rng(3)
    probs_K_C = rng.dirichlet(np.ones(3), size=8)
    log_probs_N_K_C = np.log(np.stack([probs_K_C] * 4))  # four identical points: all scores tie
    for candidates in ([3, 1, 2], [1, 2, 3], [2, 3, 1]):
        assert batchbald(log_probs_N_K_C, 1, candidates=np.array(candidates)).indices.tolist() == [1]


# ---------------------------------------------------------------------------
# power sampling / power BALD (Kirsch et al. 2023)
# ---------------------------------------------------------------------------
def _plackett_luce_first_two(w):
    """P(first = i, second = j) of successive draws without replacement, weights w."""
    W = w.sum()
    return {(i, j): w[i] / W * w[j] / (W - w[i]) for i in range(len(w)) for j in range(len(w)) if i != j}


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_power_sample_matches_plackett_luce(beta):
    # the first two draws of 20000 seeded calls against the exact sequential-sampling probabilities
    s = np.array([0.05, 0.2, 0.5, 1.0, 2.0])
    w = s**beta
    n = 20000
    counts = {}
    for r in range(n):
        i, j = B.power_sample(s, 2, beta=beta, random_state=r).indices
        counts[(i, j)] = counts.get((i, j), 0) + 1
    exact = _plackett_luce_first_two(w)
    obs = np.array([counts.get(key, 0) for key in exact])
    exp = np.array(list(exact.values())) * n
    keep = exp >= 5  # chi-square on cells with enough mass; the rest pooled
    chi2 = (((obs[keep] - exp[keep]) ** 2) / exp[keep]).sum()
    pooled_o, pooled_e = obs[~keep].sum(), exp[~keep].sum()
    if pooled_e > 0:
        chi2 += (pooled_o - pooled_e) ** 2 / pooled_e
    dof = int(keep.sum()) + int(pooled_e > 0) - 1
    assert chi2_dist.sf(chi2, dof) > 1e-3, (chi2, dof)
    # and the first pick's marginal within 4 standard errors of w / sum(w)
    first = np.bincount([i for (i, _), c in counts.items() for _ in range(c)], minlength=len(s)) / n
    p = w / w.sum()
    assert np.all(np.abs(first - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-12)


def test_power_sample_score_zero_comes_last_uniformly():
    s = np.array([0.0, 1.0, 0.0, 0.0, 3.0])
    firsts = []
    for r in range(3000):
        b = B.power_sample(s, 5, beta=1.0, random_state=r)
        assert set(b.indices[:2]) == {1, 4}
        firsts.append(b.indices[2])
    freq = np.bincount(firsts, minlength=5)[[0, 2, 3]] / 3000
    np.testing.assert_allclose(freq, 1 / 3, atol=0.04)


@st.composite
def _scores_k_seed(draw):
    n = draw(st.integers(1, 40))
    s = np.array(draw(st.lists(st.floats(0.0, 1e3, allow_nan=False), min_size=n, max_size=n)))
    k = draw(st.integers(0, n))
    return s, k, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=150, deadline=None)
@given(_scores_k_seed(), st.floats(1e-3, 1e3))
def test_power_sample_properties(sk, beta):
    s, k, seed = sk
    a = B.power_sample(s, k, beta=beta, random_state=seed)
    b = B.power_sample(s, k, beta=beta, random_state=np.random.default_rng(seed))
    np.testing.assert_array_equal(a.indices, b.indices)  # deterministic under a seed
    assert len(a) == k and np.unique(a.indices).size == k  # k distinct points
    np.testing.assert_array_equal(a.scores, s[a.indices])
    n_pos = int((s > 0).sum())
    assert np.all(s[a.indices[: min(k, n_pos)]] > 0)  # score 0 only once the rest ran out
    # scale invariance: s -> c s shifts every key by log c, the picks stay the same
    c = B.power_sample(s * 7.5, k, beta=beta, random_state=seed)
    np.testing.assert_array_equal(a.indices, c.indices)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 10**6), min_size=1, max_size=40, unique=True), st.integers(0, 40), st.integers(0, 2**31 - 1)
)
def test_power_sample_beta_to_infinity_is_top_k(ints, k, seed):
    # distinct scores at least 1e-6 relative apart: log-gaps >= ~1e-6, Gumbel noise / beta < 1e-8
    s = np.array(ints, dtype=np.float64)
    k = min(k, len(s))
    expected = top_k(s, k).indices
    np.testing.assert_array_equal(B.power_sample(s, k, beta=math.inf, random_state=seed).indices, expected)
    np.testing.assert_array_equal(B.power_sample(s, k, beta=1e10, random_state=seed).indices, expected)


def test_power_sample_beta_inf_keeps_top_k_ties_and_tiny_beta_is_finite():
    s = np.array([1.0, 2.0, 2.0, 0.5, 2.0])
    np.testing.assert_array_equal(B.power_sample(s, 3, beta=math.inf, random_state=0).indices, top_k(s, 3).indices)
    # beta -> 0: every positive score equally likely (keys beta log s + g stay finite)
    firsts = (
        np.bincount(
            [
                B.power_sample(np.array([1e-300, 1.0, 1e300]), 1, beta=1e-300, random_state=r).indices[0]
                for r in range(3000)
            ],
            minlength=3,
        )
        / 3000
    )
    np.testing.assert_allclose(firsts, 1 / 3, atol=0.04)


def test_power_sample_bad_input():
    s = np.array([0.1, 0.2])
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="beta"):
            B.power_sample(s, 1, beta=bad, random_state=0)
    for bad in (True, "1", None):
        with pytest.raises(TypeError, match="beta"):
            B.power_sample(s, 1, beta=bad, random_state=0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        B.power_sample(np.array([0.1, -0.2]), 1, random_state=0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        B.power_sample(np.array([0.1, np.inf]), 1, random_state=0)
    with pytest.raises(TypeError, match="random_state"):
        B.power_sample(s, 1, random_state=None)
    with pytest.raises(ValueError, match="larger than"):
        B.power_sample(s, 3, random_state=0)
    with pytest.raises(ValueError, match="1-D"):
        B.power_sample(s[None], 1, random_state=0)


def test_power_bald_samples_bald_scores():
    rng = np.random.default_rng(3)
    lp = _log_probs(rng, 30, 6, 4)
    scores = B.bald(log_probs_N_T_C=lp)
    a = B.power_bald(5, log_probs_N_T_C=lp, beta=2.0, random_state=11)
    b = B.power_sample(scores, 5, beta=2.0, random_state=11)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.scores, scores[a.indices])
    c = B.power_bald(5, probs_N_T_C=np.exp(lp), beta=2.0, random_state=11, base=2)
    np.testing.assert_array_equal(c.indices, a.indices)
    np.testing.assert_allclose(c.scores, a.scores / math.log(2))
    np.testing.assert_array_equal(
        B.power_bald(5, probs_N_T_C=np.exp(lp), beta=math.inf, random_state=0).indices, top_k(scores, 5).indices
    )


def test_power_bald_strategy_registered():
    p = np.exp(_log_probs(np.random.default_rng(4), 25, 5, 3))
    s = get_strategy("power_bald")
    s.check_options({"beta": 2.0})
    got = s.select(4, random_state=7, probs_N_T_C=p, beta=2.0)
    want = B.power_bald(4, probs_N_T_C=p, beta=2.0, random_state=7)
    np.testing.assert_array_equal(got.indices, want.indices)
    with pytest.raises(ValueError, match="beta"):
        s.check_options({"bet": 1.0})
