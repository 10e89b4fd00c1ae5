"""Notebook 07's protocol, without modAL: your CNN and its patched copy, the strategies and settings, the
seeded pool and balanced initial set, the check of the package's claim, the tables, the rule, the cost."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mcal_utils import compare, cost, metrics, models, profiles
from mcal_utils.protocols import own_model as own

torch.set_num_threads(1)
TINY = own.OwnModelProtocol(
    seeds=(0, 1),
    pool_size=None,
    test_size=None,
    initial_size=10,
    k=3,
    n_steps=2,
    epochs=1,
    batch_size=16,
    lr=0.002,
    T=3,
    n_candidates=20,
    tau_inv=3e-5,
    strategies=("random", "modAL uncertainty", "BALD", "DEIMOS"),
)


def fake_results(protocol: own.OwnModelProtocol = TINY, seed: int = 0) -> pd.DataFrame:
    """Rows as :func:`own_model_modal.run_grid` returns them: random accuracies rising along the curve,
    random picked labels, timings growing with the budget."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in protocol.strategies:
        for s in protocol.seeds:
            for i in range(protocol.n_steps + 1):
                budget = protocol.initial_size + i * protocol.k
                row = dict(
                    method=label,
                    seed=s,
                    iteration=i,
                    budget=budget,
                    accuracy=0.1 * i + rng.random() / 10,
                    fit_s=0.01 * budget,
                    score_s=0.05,
                    query_s=0.2 if i else 0.0,
                )
                if i:
                    row["picked"] = rng.integers(0, 10, protocol.k).tolist()
                rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# the strategies and the protocol
# ---------------------------------------------------------------------------
def test_every_profile_builds_a_protocol_of_known_strategies():
    for name in profiles.PROFILE_NAMES:
        s = profiles.resolve("07_own_model", name)
        protocol = own.OwnModelProtocol.from_settings(s)
        assert set(protocol.strategies) <= set(own.STRATEGY_LABELS) and {"random", "DEIMOS"} <= set(protocol.strategies)
        assert protocol.seeds == tuple(range(s.seed, s.seed + s.n_seeds)) and protocol.seed == s.seed
        assert protocol.n_candidates == (s.n_candidates or None) and protocol.pool_size == (s.pool_size or None)
        assert (protocol.k, protocol.T, protocol.train_config.epochs) == (s.k, s.T, s.epochs)
    assert own.STRATEGY_LABELS == tuple(own.STRATEGIES) and set(own.CLAIMS) < set(own.STRATEGY_LABELS)
    assert own.BASELINE in own.STRATEGY_LABELS


@pytest.mark.parametrize(
    "changes, error",
    [
        (dict(seeds=()), ValueError),
        (dict(seeds=(0.5,)), TypeError),
        (dict(initial_size=15), ValueError),
        (dict(initial_size=5), ValueError),
        (dict(k=0), ValueError),
        (dict(T=1), ValueError),
        (dict(pool_size=0), ValueError),
        (dict(lr="0.1"), TypeError),
        (dict(tau_inv=0.0), ValueError),
        (dict(strategies=("BALD", "VarRatio")), ValueError),
        (dict(strategies=()), ValueError),
    ],
)
def test_protocol_refuses_bad_settings(changes, error):
    with pytest.raises(error):
        dataclasses.replace(TINY, **changes)


def test_missing_for_test_counts_seeds():
    assert own.missing_for_test(TINY) == [f"≥ {compare.min_seeds()} seeds (has 2)"]
    assert own.missing_for_test(dataclasses.replace(TINY, seeds=tuple(range(8)))) == []


# ---------------------------------------------------------------------------
# data: pool, initial set; the network
# ---------------------------------------------------------------------------
def test_load_pool_subsamples_train_and_test_with_the_first_seed():
    mnist = SimpleNamespace(
        x_train=np.arange(100.0)[:, None],
        y_train=np.arange(100) % 10,
        x_test=np.arange(40.0)[:, None],
        y_test=np.arange(40) % 10,
    )
    protocol = dataclasses.replace(TINY, pool_size=30, test_size=10)
    pool = own.load_pool(protocol, mnist)
    rng = np.random.default_rng(protocol.seed)
    np.testing.assert_array_equal(pool.x[:, 0], np.sort(rng.choice(100, 30, replace=False)))
    np.testing.assert_array_equal(pool.x_test[:, 0], np.sort(rng.choice(40, 10, replace=False)))
    assert len(own.load_pool(TINY, mnist).x) == 100  # pool_size None: all
    np.testing.assert_allclose(pool.class_shares_C, np.bincount(pool.y, minlength=10) / 30)


@settings(max_examples=25, deadline=None)
@given(per_class=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_initial_set_is_balanced_sorted_and_seeded(per_class, seed):
    y = np.random.default_rng(seed).permutation(np.arange(80) % 10)
    chosen = own.initial_set(y, 10 * per_class, seed)
    assert np.all(np.diff(chosen) > 0)
    np.testing.assert_array_equal(np.bincount(y[chosen], minlength=10), np.full(10, per_class))
    np.testing.assert_array_equal(chosen, own.initial_set(y, 10 * per_class, seed))


def test_patched_cnn_matches_the_original_with_dropout_off():
    torch.manual_seed(0)
    net = own.my_cnn()
    patched = models.patch_dropout(net, input_shape=own.INPUT_SHAPE)
    assert len(patched.dropout_layers()) == 3
    x = np.random.default_rng(0).random((8, *own.INPUT_SHAPE), dtype=np.float32)
    assert own.dropout_off_matches(net, patched, x) and not net.training
    torch.manual_seed(1)
    assert not own.dropout_off_matches(own.my_cnn(), patched, x)


def test_pick_overlaps_counts_every_pair_in_order():
    overlap = own.pick_overlaps({"A": np.array([1, 2, 3]), "B": np.array([3, 4]), "C": np.array([1, 3, 4])})
    assert overlap == {"A ∩ B": 1, "A ∩ C": 2, "B ∩ C": 2}


# ---------------------------------------------------------------------------
# reading the results
# ---------------------------------------------------------------------------
def test_check_every_strategy_ran():
    results = fake_results()
    check = own.check_every_strategy_ran(results, TINY)
    assert check.holds and check.ran == TINY.strategies and check.failed == ()
    broken = own.check_every_strategy_ran(results.drop(index=results.index[-1]), TINY)
    assert broken.failed == ("DEIMOS",) and not broken.holds
    short = results.copy()
    short.at[1, "picked"] = [0]  # random, seed 0, a query that picked one image instead of k
    assert own.check_every_strategy_ran(short, TINY).failed == ("random",)


def test_summary_table():
    results = fake_results()
    summary = own.summary_table(results, TINY.strategies)
    assert list(summary.index) == list(TINY.strategies)
    assert list(summary.columns) == [
        "aubc_mean",
        "aubc_std",
        "final_mean",
        "final_std",
        "median query s",
        "median fit s",
    ]
    deimos = results[results["method"] == "DEIMOS"]
    aubc_S = [metrics.aubc(g.sort_values("budget")["accuracy"]) for _, g in deimos.groupby("seed")]
    assert summary.loc["DEIMOS", "aubc_mean"] == pytest.approx(np.mean(aubc_S))
    assert summary.loc["DEIMOS", "aubc_std"] == pytest.approx(np.std(aubc_S, ddof=1))
    assert summary.loc["BALD", "median query s"] == pytest.approx(0.2)


def test_compare_with_random_is_the_rule_on_each_seeds_aubc():
    results = fake_results()
    comparisons = own.compare_with_random(results, TINY.strategies)
    assert list(comparisons) == ["DEIMOS", "BALD"]  # max-entropy did not run
    want = compare.compare_curves(results, "BALD", "random", summary="aubc", x="iteration")
    np.testing.assert_array_equal(comparisons["BALD"].differences_S, want.differences_S)
    assert all(c.b == own.BASELINE and c.verdict == compare.NOT_RESOLVED for c in comparisons.values())


def test_class_fractions_and_largest_departure():
    results = fake_results()
    fractions = own.class_fractions(results, TINY.strategies)
    assert list(fractions.index) == list(TINY.strategies) and list(fractions.columns) == list(range(10))
    np.testing.assert_allclose(fractions.sum(axis=1), 1.0)
    picked = np.concatenate(results[(results["method"] == "BALD") & (results["iteration"] > 0)]["picked"].to_list())
    np.testing.assert_allclose(fractions.loc["BALD"], np.bincount(picked, minlength=10) / len(picked))
    shares = np.full(10, 0.1)
    most = own.largest_departure(fractions, shares)
    departure = (fractions - shares).abs()
    assert most.share == fractions.loc[most.method, most.digit] and most.pool_share == 0.1
    assert abs(most.share - most.pool_share) == pytest.approx(departure.to_numpy().max())
    assert most.baseline == pytest.approx(departure.loc["random"].max())


def test_cost_estimate_scales_with_seeds_and_steps():
    model = own.cost_model(fake_results(), TINY)
    assert isinstance(model, cost.CostModel) and set(model.rates) == set(TINY.strategies)
    base = own.estimate_seconds(model, TINY)
    assert base > 0
    assert own.estimate_seconds(model, dataclasses.replace(TINY, seeds=(0, 1, 2, 3))) == pytest.approx(2 * base)
    assert own.estimate_seconds(model, dataclasses.replace(TINY, n_steps=4)) > base
    with pytest.raises(ValueError, match="BatchBALD"):
        own.estimate_seconds(model, dataclasses.replace(TINY, strategies=("random", "BatchBALD")))
