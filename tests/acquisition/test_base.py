"""CandidateBatch, input validation, top_k and random_batch."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mcal_utils.acquisition import bald, check_passes, check_scores, entropy, predictive_entropy
from mcal_utils.acquisition.base import (
    CandidateBatch,
    as_numpy,
    check_k,
    check_log_probs,
    check_probs,
    random_batch,
    top_k,
)


def test_candidate_batch_types_and_frozen():
    b = CandidateBatch(indices=[3, 1], scores=[0.5, 0.25])
    assert b.indices.dtype == np.int64 and b.scores.dtype == np.float64
    assert b.indices.tolist() == [3, 1] and b.scores.tolist() == [0.5, 0.25]
    assert len(b) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.indices = np.array([0])
    with pytest.raises(ValueError):
        b.indices[0] = 7  # read-only arrays


@pytest.mark.parametrize(
    "indices, scores, match",
    [
        ([0, 1], [0.1], "as many scores"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
        ([0, 0], [0.1, 0.2], "distinct"),
        ([-1, 2], [0.1, 0.2], "non-negative"),
        ([0.5, 1.0], [0.1, 0.2], "integer"),
    ],
)
def test_candidate_batch_validation(indices, scores, match):
    with pytest.raises(ValueError, match=match):
        CandidateBatch(indices=np.array(indices), scores=np.array(scores))


def test_as_numpy_torch_and_numpy():
    t = torch.tensor([[0.25, 0.75]], dtype=torch.float32, requires_grad=True)
    x = as_numpy(t)
    assert x.dtype == np.float64 and x.tolist() == [[0.25, 0.75]]
    assert as_numpy(np.arange(3)).dtype == np.float64
    with pytest.raises(ValueError, match="required"):
        as_numpy(None, "probs_N_C")
    with pytest.raises(ValueError, match="numeric"):
        as_numpy(np.array(["a"]), "x")


def test_check_probs_errors():
    good = np.array([[0.2, 0.8], [1.0, 0.0]])
    assert check_probs(good, 2).shape == (2, 2)
    with pytest.raises(ValueError, match=r"sum to 1"):
        check_probs(np.array([[0.2, 0.7]]), 2, "probs_N_C")
    with pytest.raises(ValueError, match=r"\(N, T, C\)"):
        check_probs(good, 3, "probs_N_T_C")
    with pytest.raises(ValueError, match="finite"):
        check_probs(np.array([[np.nan, 1.0]]), 2)
    with pytest.raises(ValueError, match="finite"):
        check_probs(np.array([[np.inf, 1.0]]), 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_probs(np.array([[-0.5, 1.5]]), 2)
    with pytest.raises(ValueError, match="at least one point"):
        check_probs(np.zeros((0, 3)), 2)
    # within tolerance (float32 softmax rounding) is fine
    check_probs(np.array([[0.5, 0.50005]]), 2)


def test_check_log_probs_errors():
    lp = np.array([[[np.log(0.5), np.log(0.5)], [0.0, -np.inf]]])  # -inf (p = 0) is allowed
    assert np.isneginf(check_log_probs(lp, 3)).sum() == 1
    with pytest.raises(ValueError, match="exp sums to 1"):
        check_log_probs(np.zeros((1, 2, 3)), 3)
    with pytest.raises(ValueError, match="NaN"):
        check_log_probs(np.full((1, 1, 2), np.nan), 3)
    with pytest.raises(ValueError, match="<= 0"):
        check_log_probs(np.array([[[1.0, -3.0]]]), 3)


def test_check_k():
    assert check_k(3, 3) == 3
    with pytest.raises(ValueError, match="larger than the number of candidates"):
        check_k(4, 3)
    with pytest.raises(ValueError, match=">= 0"):
        check_k(-1, 3)
    with pytest.raises(TypeError, match="int"):
        check_k(2.0, 3)
    with pytest.raises(TypeError, match="int"):
        check_k(True, 3)


def test_top_k_hand_and_ties():
    s = np.array([0.1, 0.9, 0.5, 0.9, 0.1])
    b = top_k(s, 3)
    assert b.indices.tolist() == [1, 3, 2] and b.scores.tolist() == [0.9, 0.9, 0.5]
    b = top_k(s, 3, largest=False)
    assert b.indices.tolist() == [0, 4, 2]
    assert top_k(torch.tensor([1.0, 2.0]), 1).indices.tolist() == [1]
    assert top_k(s, 0).indices.shape == (0,)
    with pytest.raises(ValueError, match="larger than"):
        top_k(s, 6)
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([np.nan, 1.0]), 1)
    with pytest.raises(ValueError, match="1-D"):
        top_k(np.zeros((2, 2)), 1)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 30), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, -1.0])),
    st.data(),
    st.booleans(),
)
def test_top_k_matches_sorted_reference(scores, data, largest):
    k = data.draw(st.integers(0, scores.size))
    sign = -1.0 if largest else 1.0
    ref = sorted(range(scores.size), key=lambda i: (sign * scores[i], i))[:k]
    assert top_k(scores, k, largest=largest).indices.tolist() == ref


def test_random_batch():
    a = random_batch(100, 10, 7)
    b = random_batch(100, 10, np.random.default_rng(7))
    assert a.indices.tolist() == b.indices.tolist()
    assert len(set(a.indices.tolist())) == 10 and a.indices.max() < 100 and a.indices.min() >= 0
    assert random_batch(100, 10, 8).indices.tolist() != a.indices.tolist()
    assert sorted(random_batch(5, 5, 0).indices.tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(TypeError, match="random_state"):
        random_batch(10, 2, None)
    with pytest.raises(TypeError, match="random_state"):
        random_batch(10, 2, "seed")
    with pytest.raises(TypeError, match="random_state"):
        random_batch(10, 2, True)
    with pytest.raises(TypeError, match="n must be an int"):
        random_batch(10.0, 2, 0)
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        random_batch(-1, 0, 0)
    with pytest.raises(ValueError, match="larger than"):
        random_batch(3, 4, 0)
    g = np.random.default_rng(1)
    random_batch(10, 2, g)
    assert random_batch(10, 2, g).indices.tolist() != random_batch(10, 2, 1).indices.tolist()  # g advanced


def test_random_batch_does_not_touch_global_rng():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    random_batch(50, 5, 1)
    assert np.random.random() == before


# ---------------------------------------------------------------------------
# low-precision inputs, MC passes, non-finite scores
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.astype(np.float16),
        lambda a: torch.as_tensor(a, dtype=torch.float16),
        lambda a: torch.as_tensor(a, dtype=torch.bfloat16),
    ],
)
def test_float16_probs_are_upcast_not_refused(make):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10) * 0.3, size=(50, 8))  # (N, T, C); low-precision row sums are off by ~1e-3
    low = make(p)
    got = check_probs(low, 3, "probs_N_T_C")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-12)  # renormalised after the upcast
    ref = check_probs(p, 3)
    np.testing.assert_allclose(got, ref, atol=1e-2)
    np.testing.assert_allclose(predictive_entropy(low), predictive_entropy(p), atol=2e-2)
    np.testing.assert_allclose(bald(low), bald(p), atol=2e-2)
    np.testing.assert_allclose(entropy(make(p[:, 0])), entropy(p[:, 0]), atol=2e-2)


def test_float16_log_probs_are_upcast_and_logits_still_refused():
    rng = np.random.default_rng(1)
    lp = np.log(rng.dirichlet(np.ones(10), size=(20, 4)))
    got = check_log_probs(lp.astype(np.float16), 3)
    np.testing.assert_allclose(np.exp(got).sum(-1), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="did you pass logits"):
        check_probs(np.full((5, 4), 0.3, dtype=np.float16), 2)  # rows sum to 1.2: not probabilities at any precision


def test_check_passes():
    assert check_passes(2, "BALD") == 2
    with pytest.raises(ValueError, match=r"BALD needs at least 2 MC-dropout passes \(T >= 2\), got T = 1"):
        check_passes(1, "BALD")
    with pytest.raises(TypeError, match=r"K \(MC passes\) must be an int"):
        check_passes(2.0, "BatchBALD", "K")


def test_check_scores():
    np.testing.assert_array_equal(check_scores([1, 2], "x"), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"strategy 'y' produced 2 non-finite score\(s\) \(NaN or inf\) out of 3"):
        check_scores([np.nan, 1.0, np.inf], "strategy 'y'")
