"""Deterministic and MC uncertainty scores: hand values, modAL agreement, properties."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcal_utils.acquisition import uncertainty as U
from mcal_utils.acquisition.tau import auto_tau_inv, check_tau_factor


def _dirichlet(rng, shape, C, alpha=0.5, zeros=True):
    p = rng.dirichlet(np.full(C, alpha), size=shape)
    if zeros:  # exact zeros in some rows
        mask = rng.random(p.shape) < 0.2
        mask[..., 0] = False
        p = np.where(mask, 0.0, p)
        p /= p.sum(-1, keepdims=True)
    return p


@st.composite
def probs(draw, ndim):
    N = draw(st.integers(1, 6))
    T = draw(st.integers(1, 5))
    C = draw(st.integers(1, 6))
    shape = (N, C) if ndim == 2 else (N, T, C)
    raw = draw(
        st.lists(
            st.sampled_from([0.0, 0.0, 1e-12, 0.1, 0.5, 1.0, 3.0]),
            min_size=int(np.prod(shape)),
            max_size=int(np.prod(shape)),
        )
    )
    x = np.array(raw).reshape(shape)
    x[..., 0] += 1e-3  # no all-zero row
    return x / x.sum(-1, keepdims=True)


def test_hand_values_deterministic():
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(U.var_ratio(p), [0.3, 0.6, 0.0], atol=1e-15)
    np.testing.assert_allclose(U.margin(p), [0.5, 0.0, 1.0], atol=1e-15)
    h0 = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    h1 = -(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2))
    np.testing.assert_allclose(U.entropy(p), [h0, h1, 0.0], rtol=1e-14, atol=0)
    np.testing.assert_allclose(U.entropy(p, base=2), np.array([h0, h1, 0.0]) / math.log(2), rtol=1e-14)
    np.testing.assert_allclose(U.margin(np.ones((2, 1))), [0.0, 0.0])


def test_hand_values_mc():
    # one point, T = 4 passes, C = 3
    p = np.array([[[1.0, 0.0, 0.0], [0.6, 0.4, 0.0], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5]]])
    mean = np.array([1.8, 1.7, 0.5]) / 4
    np.testing.assert_allclose(U.predictive_entropy(p), [-(mean * np.log(mean)).sum()], rtol=1e-14)
    np.testing.assert_allclose(U.mc_variation_ratio(p), [1 - 2 / 4])  # argmaxes 0, 0, 1, 2
    stds = [np.sqrt(np.mean((p[0, :, c] - mean[c]) ** 2)) for c in range(3)]
    np.testing.assert_allclose(U.mean_std(p), [np.mean(stds)], rtol=1e-14)
    two = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    np.testing.assert_allclose(U.predictive_entropy(two), [math.log(2)], rtol=1e-15)
    np.testing.assert_allclose(U.mc_variation_ratio(two), [0.5])  # tie 1-1: modal count 1


def test_max_variance_hand():
    y = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    np.testing.assert_allclose(U.max_variance(y), [1.25, 0.0])
    np.testing.assert_allclose(U.max_variance(y, ddof=1), [5 / 3, 0.0])
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        U.max_variance(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        U.max_variance(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="ddof"):
        U.max_variance(np.ones((2, 1)), ddof=1)


class _Fixed:
    """Minimal classifier for modAL: predict_proba returns the stored rows."""

    def __init__(self, p):
        self.p = p

    def predict_proba(self, X, **kwargs):
        return self.p[np.asarray(X, dtype=int).ravel()]


def test_modal_agreement():
    modal = pytest.importorskip("modAL.uncertainty")
    rng = np.random.default_rng(0)
    for C in (2, 3, 10):
        p = _dirichlet(rng, 200, C)
        clf, X = _Fixed(p), np.arange(200)[:, None]
        np.testing.assert_allclose(U.var_ratio(p), modal.classifier_uncertainty(clf, X), rtol=0, atol=1e-15)
        np.testing.assert_allclose(U.margin(p), modal.classifier_margin(clf, X), rtol=0, atol=1e-15)
        np.testing.assert_allclose(U.entropy(p), modal.classifier_entropy(clf, X), rtol=1e-12, atol=1e-15)
        # modAL's own selection: margin_sampling takes the SMALLEST margins
        idx, _ = modal.margin_sampling(clf, X, n_instances=5)
        assert set(idx.tolist()) == set(np.argsort(U.margin(p), kind="stable")[:5].tolist())


@settings(max_examples=80, deadline=None)
@given(probs(2))
def test_entropy_bounds(p):
    C = p.shape[1]
    h = U.entropy(p)
    assert np.all(h >= 0) and np.all(h <= math.log(C) + 1e-12)
    v = U.var_ratio(p)
    assert np.all(v >= 0) and np.all(v <= 1 - 1 / C + 1e-12)
    m = U.margin(p)
    assert np.all(m >= 0) and np.all(m <= 1)


@settings(max_examples=80, deadline=None)
@given(probs(3))
def test_mc_bounds(p):
    N, T, C = p.shape
    h = U.predictive_entropy(p)
    assert np.all(np.isfinite(h)) and np.all(h >= 0) and np.all(h <= math.log(C) + 1e-12)
    vr = U.mc_variation_ratio(p)
    assert np.all(vr >= 0) and np.all(vr <= 1 - 1 / T + 1e-12)
    ms = U.mean_std(p)
    assert np.all(ms >= 0) and np.all(ms <= 0.5)
    # all passes equal -> no disagreement
    same = np.repeat(p[:, :1, :], T, axis=1)
    np.testing.assert_allclose(U.mc_variation_ratio(same), 0.0)
    np.testing.assert_allclose(U.mean_std(same), 0.0, atol=1e-12)


def test_exact_zeros_finite_no_warnings():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (U.var_ratio, U.margin, U.entropy):
            assert np.all(np.isfinite(f(p)))
        pt = np.stack([p, p[::-1]], axis=1)
        for f in (U.predictive_entropy, U.mc_variation_ratio, U.mean_std):
            assert np.all(np.isfinite(f(pt)))


def test_torch_input():
    p = torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float32)
    np.testing.assert_allclose(U.var_ratio(p), [0.3], atol=1e-7)
    assert U.entropy(p).dtype == np.float64


@pytest.mark.parametrize("f", [U.var_ratio, U.margin, U.entropy])
def test_bad_input_deterministic(f):
    with pytest.raises(ValueError, match="sum to 1"):
        f(np.array([[0.3, 0.3]]))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        f(np.full((2, 3, 2), 0.5))
    with pytest.raises(ValueError, match="finite"):
        f(np.array([[np.nan, 0.5]]))


@pytest.mark.parametrize("f", [U.predictive_entropy, U.mc_variation_ratio, U.mean_std])
def test_bad_input_mc(f):
    with pytest.raises(ValueError, match=r"\(N, T, C\)"):
        f(np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="sum to 1"):
        f(np.full((1, 2, 2), 0.3))
    with pytest.raises(ValueError, match="finite"):
        f(np.full((1, 2, 2), np.inf))


def test_to_base():
    assert U.to_base(math.log(2), 2) == pytest.approx(1.0)
    assert U.to_base(1.0) == 1.0
    with pytest.raises(ValueError):
        U.to_base(1.0, 1)
    with pytest.raises(ValueError, match="base"):
        U.to_base(1.0, -2.0)
    with pytest.raises(TypeError, match="base"):
        U.to_base(1.0, "2")


def test_auto_tau_inv_and_its_factor():
    """DEIMOS Appendix E: factor x the mean MC variance (divisor T); wrong types -> TypeError."""
    rng = np.random.default_rng(0)
    preds = rng.normal(size=(20, 5))
    assert auto_tau_inv(preds, 0.1) == pytest.approx(0.1 * preds.var(axis=1).mean(), rel=1e-12)
    assert check_tau_factor(1) == 1.0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="'auto' factor"):
            check_tau_factor(bad)
    for bad in ("0.1", True, None):
        with pytest.raises(TypeError, match="'auto' factor"):
            check_tau_factor(bad)
    with pytest.raises(ValueError, match="at least 2 MC-dropout passes"):
        auto_tau_inv(preds[:, :1], 0.1)
    with pytest.raises(ValueError, match="is 0"):
        auto_tau_inv(np.ones((4, 3)), 0.1)
