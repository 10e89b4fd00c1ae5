"""DEIMOS Figure 1 on the 1-D toy: the first-step EI, the protocol from a profile, one seed's pipeline
(fit, DEIMOS and random batches, refits), the tables, the rule's comparisons and the cost estimate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcal_utils import acquisition, compare, cost, profiles, references
from mcal_utils.protocols import deimos_toy1d as toy1d

torch.set_num_threads(1)
#: the smallest protocol that runs every phase: 1 epoch, 3 masks, 2 test passes, two seeds
TINY = toy1d.ToyProtocol(seeds=(0, 1), n_train=20, epochs=1, J=3, T=2)


@pytest.fixture(scope="module")
def tiny_runs() -> list[toy1d.SeedRun]:
    return toy1d.run_all(TINY)


# ---------------------------------------------------------------------------
# the first-step EI (DEIMOS eq. 5 with one output)
# ---------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(J=st.integers(2, 6), S=st.integers(2, 9), seed=st.integers(0, 2**31 - 1), tau_inv=st.floats(1e-4, 1.0))
def test_first_step_ei_is_the_trace_drop_of_labelling_one_point(J, S, seed, tau_inv):
    """EI_i = tr(V[:, i] V[i, i]^-1 V[i, :]) with V = A A^T + tau^-1 I the joint predictive covariance."""
    preds_J_S = np.random.default_rng(seed).normal(size=(J, S))
    ei_S = toy1d.first_step_ei(preds_J_S, tau_inv)
    V_S_S = np.cov(preds_J_S, rowvar=False, ddof=1).reshape(S, S) + tau_inv * np.eye(S)
    want_S = np.array([np.trace(np.outer(V_S_S[:, i], V_S_S[i, :]) / V_S_S[i, i]) for i in range(S)])
    np.testing.assert_allclose(ei_S, want_S, rtol=1e-10)
    assert ei_S.dtype == np.float64 and np.all(ei_S >= tau_inv * (1 - 1e-12))  # V[i, i] >= tau^-1


@settings(max_examples=20, deadline=None)
@given(J=st.integers(2, 6), S=st.integers(3, 9), seed=st.integers(0, 2**31 - 1))
def test_first_step_ei_is_deimos_first_score(J, S, seed):
    preds_J_S = torch.from_numpy(np.random.default_rng(seed).normal(size=(J, S)))
    candidates_S = np.arange(S) >= 1
    batch = acquisition.deimos_dense(preds_J_S, 2, 0.1, candidates=candidates_S)
    ei_S = toy1d.first_step_ei(preds_J_S, 0.1)
    np.testing.assert_allclose(batch.scores[0], ei_S[candidates_S].max(), rtol=1e-9)
    assert batch.indices[0] == np.flatnonzero(candidates_S)[np.argmax(ei_S[candidates_S])]


def test_first_step_ei_refuses_bad_input():
    with pytest.raises(ValueError, match="J >= 2"):
        toy1d.first_step_ei(np.zeros((1, 4)), 0.1)
    with pytest.raises(ValueError, match="tau_inv"):
        toy1d.first_step_ei(np.zeros((3, 4)), 0.0)
    with pytest.raises(TypeError, match="tau_inv"):
        toy1d.first_step_ei(np.zeros((3, 4)), "0.1")


# ---------------------------------------------------------------------------
# the protocol
# ---------------------------------------------------------------------------
def test_protocol_from_each_profile_and_its_training():
    for name in profiles.PROFILE_NAMES:
        settings_ = profiles.resolve("03_deimos_1d_toy", name)
        protocol = toy1d.ToyProtocol.from_settings(settings_)
        assert protocol.seeds == tuple(range(settings_.seed, settings_.seed + settings_.n_seeds))
        assert (protocol.k, protocol.J, protocol.T) == (
            settings_.k,
            settings_.T,
            settings_.T_eval,
        )
    config = toy1d.ToyProtocol(seeds=(0,), l2=5e-4).train_config(105)
    assert config.l2_dense == pytest.approx(5e-4 * 105)  # absolute lambda: TrainConfig divides by N
    assert (config.optimizer, config.epochs, config.checkpoint, config.num_threads) == ("adam", 300, "last", 1)


@pytest.mark.parametrize(
    "changes, error",
    [
        (dict(seeds=()), ValueError),
        (dict(seeds=(-1,)), ValueError),
        (dict(seeds=(True,)), TypeError),
        (dict(k=0), ValueError),
        (dict(J=1), ValueError),
        (dict(T=2.0), TypeError),
        (dict(p=1.0), ValueError),
        (dict(lr=0.0), ValueError),
        (dict(l2=-1e-4), ValueError),
        (dict(tau_factor="0.1"), TypeError),
    ],
)
def test_protocol_refuses_bad_settings(changes, error):
    with pytest.raises(error):
        toy1d.ToyProtocol(**{"seeds": (0,), **changes})


def test_missing_for_test_names_seeds_and_epochs():
    assert toy1d.missing_for_test(toy1d.ToyProtocol(seeds=tuple(range(8)))) == []
    missing = toy1d.missing_for_test(TINY)
    assert len(missing) == 2 and f"≥ {compare.min_seeds()} seeds" in missing[0] and "300 epochs" in missing[1]


# ---------------------------------------------------------------------------
# one seed's pipeline
# ---------------------------------------------------------------------------
def test_run_seed_fits_acquires_and_refits(tiny_runs):
    run = tiny_runs[0]
    n_pool = len(run.toy.x_pool)
    for arm in ("DEIMOS", "random"):
        picks = run.picks(arm)
        assert picks.shape == (TINY.k,) and len(np.unique(picks)) == TINY.k and 0 <= picks.min() < picks.max() < n_pool
        x, y = run.labelled(arm)
        assert x.shape == (TINY.n_train + TINY.k, 1) and y.shape == (TINY.n_train + TINY.k,)
        np.testing.assert_array_equal(run.pick_x(arm), run.toy.x_pool[picks, 0])
    assert set(run.models) == set(run.mse) == set(toy1d.ARMS)
    assert all(np.isfinite(v) and v >= 0 for v in run.mse.values())
    assert run.batch.ei_pool_N.shape == (n_pool,) and np.all(np.diff(run.batch.scores_k) <= 1e-12)
    assert run.batch.scores_k[0] == pytest.approx(run.batch.ei_pool_N.max(), rel=1e-6)  # first pick: max EI
    assert run.batch.last_to_first == pytest.approx(run.batch.scores_k[-1] / run.batch.scores_k[0])
    assert {phase: len(s) for phase, s in run.seconds.items()} == {"train": 3, "eval": 3, "select": 1}
    with pytest.raises(ValueError, match="arm"):
        run.picks("before")


def test_run_seed_is_reproducible(tiny_runs):
    again = toy1d.run_seed(TINY, TINY.seeds[0])
    np.testing.assert_array_equal(again.batch.picks_k, tiny_runs[0].batch.picks_k)
    np.testing.assert_array_equal(again.random_picks_k, tiny_runs[0].random_picks_k)
    assert again.mse == tiny_runs[0].mse


def test_grid_prediction_has_one_mean_and_std_per_grid_point(tiny_runs):
    run = tiny_runs[0]
    mean_G, std_G = toy1d.grid_prediction(TINY, run.models["before"], run.toy, run.seed)
    assert mean_G.shape == std_G.shape == (len(run.toy.x_grid),) and np.all(std_G >= 0)


# ---------------------------------------------------------------------------
# counts, tables, comparisons, cost
# ---------------------------------------------------------------------------
def test_count_near_and_closest_gap():
    x = np.array([-3.5, -3.0, 0.0, 3.0, 3.01])
    assert toy1d.count_near(x, (-2.0, 2.0)) == 3  # [-3, 3], both ends included
    assert toy1d.count_near(x[:, None], (-2.0, 2.0), margin=0) == 1
    assert toy1d.closest_gap(x) == pytest.approx(0.01)
    assert np.isnan(toy1d.closest_gap(x[:1]))


def test_tables_and_comparison(tiny_runs):
    per_seed = toy1d.per_seed_table(tiny_runs)
    assert list(per_seed.index) == list(TINY.seeds)
    np.testing.assert_allclose(per_seed["ratio DEIMOS"], per_seed["before"] / per_seed["after DEIMOS"])
    summary = toy1d.summary_table(per_seed)
    before, after = references.DEIMOS_TOY_MSE.value
    assert list(summary.iloc[:, 1]) == [f"{before:g}", f"{after:g}", "—"]
    batches = toy1d.compare_batches(tiny_runs)
    assert batches.mse.verdict == compare.NOT_RESOLVED  # 2 seeds can never resolve
    assert batches.mse_ratio[0] == pytest.approx(np.exp(batches.mse.effect))
    np.testing.assert_allclose(batches.mse.differences_S, np.log(per_seed["after DEIMOS"] / per_seed["after random"]))
    assert batches.sparse_picks.metric == "picks in [-3, 3]"
    n_edge, n_picks = toy1d.edge_picks(tiny_runs)
    assert n_picks == TINY.k * len(TINY.seeds) and 0 <= n_edge <= n_picks


def test_estimate_scales_with_seeds_and_epochs(tiny_runs):
    model = toy1d.cost_model(TINY, tiny_runs)
    assert isinstance(model, cost.CostModel) and model.n_steps["toy"] == 3 * len(TINY.seeds)
    toy = tiny_runs[0].toy
    base = toy1d.estimate_seconds(model, TINY, toy)
    assert base > 0
    assert toy1d.estimate_seconds(model, dataclasses.replace(TINY, seeds=(0, 1, 2, 3)), toy) == pytest.approx(2 * base)
    longer = toy1d.estimate_seconds(model, dataclasses.replace(TINY, epochs=10), toy)
    assert longer > base
