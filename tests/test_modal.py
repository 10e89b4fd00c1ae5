"""mcal strategies as modAL query strategies: end to end with ActiveLearner, skorch, and the fixes; a modAL run
as a learning curve."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

pytest.importorskip("modAL")
from modAL.models import ActiveLearner  # noqa: E402

from mcal_utils import mc  # noqa: E402
from mcal_utils.acquisition import auto_tau_inv, predictive_entropy, top_k  # noqa: E402
from mcal_utils.loop.seeds import step_seeds  # noqa: E402
from mcal_utils.modal import (  # noqa: E402
    MCDropoutClassifier,
    MCQuery,
    network_of,
    run_active_learning,
    uncertainty_sampling,
)
from mcal_utils.models import patch_dropout  # noqa: E402
from mcal_utils.training import TrainConfig  # noqa: E402

torch.set_num_threads(1)
# modAL 0.4.2.1 calls scikit-learn's check_array with a keyword renamed in scikit-learn 1.6
pytestmark = pytest.mark.filterwarnings("ignore:'force_all_finite' was renamed:FutureWarning")
CONFIG = TrainConfig(optimizer="adam", lr=1e-2, epochs=3, batch_size=16, checkpoint="last")


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of 1x6x6 images: bright left half (0) or bright right half (1), plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 0.3, (n, 1, 6, 6)).astype(np.float32)
    x[y == 0, :, :, :3] += 1.0
    x[y == 1, :, :, 3:] += 1.0
    return x, y.astype(np.int64)


def _network() -> nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3),
            nn.ReLU(),
            nn.Dropout2d(0.2),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 16),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(16, 2),
        )


def _learner(query: MCQuery, seed: int = 0) -> tuple[ActiveLearner, np.ndarray, np.ndarray]:
    x, y = _images(80, seed)
    model = patch_dropout(_network(), input_shape=(1, 6, 6))
    learner = ActiveLearner(
        MCDropoutClassifier(model, config=CONFIG, random_state=0),
        query_strategy=query,
        X_training=x[:6],
        y_training=y[:6],
    )
    return learner, x[6:], y[6:]


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("entropy_mc", {}),
        ("bald", {}),
        ("variation_ratio_mc", {}),
        ("mean_std", {}),
        ("var_ratio", {}),
        ("random", {}),
        ("batchbald", dict(options={"num_samples": 200})),
        ("kcenter_greedy", {}),
        ("deimos", dict(tau_inv=1e-3, n_candidates=30)),
    ],
)
def test_active_learner_loop_with_every_kind_of_strategy(name, kwargs):
    learner, x_pool, y_pool = _learner(MCQuery(name, T=8, random_state=1, **kwargs))
    pool = np.arange(len(x_pool))
    for _ in range(2):
        idx, picked = learner.query(x_pool[pool], n_instances=3)
        assert idx.dtype == np.int64 and len(np.unique(idx)) == 3
        assert idx.min() >= 0 and idx.max() < len(pool)
        np.testing.assert_array_equal(picked, x_pool[pool][idx])
        learner.teach(x_pool[pool][idx], y_pool[pool][idx])
        pool = np.delete(pool, idx)
    assert len(learner.X_training) == 6 + 6 and learner.query_strategy.n_queries == 2
    assert 0.0 <= learner.score(x_pool, y_pool) <= 1.0


def test_query_equals_the_strategy_on_mc_predict():
    """EntropyD through modAL = top-k predictive entropy of mc.predict with the query's seeds."""
    query = MCQuery("entropy_mc", T=10, random_state=7)
    learner, x_pool, _ = _learner(query)
    idx, _, scores = learner.query(x_pool, n_instances=4, return_metrics=True)
    probs = mc.predict(network_of(learner), x_pool, 10, masks="fresh", random_state=step_seeds(7, 0)("masks"))
    expected = top_k(predictive_entropy(probs), 4)
    np.testing.assert_array_equal(idx, expected.indices)
    np.testing.assert_allclose(scores, expected.scores)


def test_queries_are_reproducible_and_advance():
    picks = []
    for _ in range(2):
        query = MCQuery("bald", T=6, random_state=3)
        learner, x_pool, _ = _learner(query)
        picks.append([learner.query(x_pool, n_instances=5)[0] for _ in range(2)])
    np.testing.assert_array_equal(picks[0], picks[1])
    assert not np.array_equal(picks[0][0], picks[0][1])  # query 1 draws new masks


def test_return_metrics_gives_the_scores():
    learner, x_pool, _ = _learner(MCQuery("deimos", T=8, tau_inv=1e-3, n_candidates=20))
    idx, _, scores = learner.query(x_pool, n_instances=3, return_metrics=True)
    assert scores.shape == (3,) and np.all(np.isfinite(scores)) and np.all(np.diff(scores) <= 1e-12)


def test_deimos_auto_tau_inv_is_computed_once_from_the_first_model_as_the_loop_does():
    """tau_inv={"auto": f}: f x mean MC variance of the step-0 model (fresh masks seeded from
    (random_state, 0, "tau")) on x_val, or on a seeded subset of n_candidates pool points; kept."""
    x_val = _images(30, 7)[0]
    for val in (None, x_val):
        query = MCQuery("deimos", T=8, tau_inv={"auto": 0.01}, n_candidates=20, random_state=1, x_val=val)
        learner, x_pool, y_pool = _learner(query)
        model = network_of(learner)
        if val is None:
            rows = np.sort(np.random.default_rng(step_seeds(1, 0)("tau_rows")).choice(len(x_pool), 20, replace=False))
            val = x_pool[rows]
        want = auto_tau_inv(mc.predict(model, val, 8, masks="fresh", random_state=step_seeds(1, 0)("tau")), 0.01)
        idx, _ = learner.query(x_pool, n_instances=3)
        assert query.tau_inv_ == want > 0
        fixed = MCQuery("deimos", T=8, tau_inv=want, n_candidates=20, random_state=1)
        np.testing.assert_array_equal(fixed(learner, x_pool, 3)[0], idx)  # the same picks as the number
        learner.teach(x_pool[idx], y_pool[idx])
        learner.query(np.delete(x_pool, idx, axis=0), n_instances=3)
        assert query.tau_inv_ == want and query.n_queries == 2  # computed once, at the first query


def test_skorch_neural_net_classifier_works_with_mc_queries():
    skorch = pytest.importorskip("skorch")
    x, y = _images(60, 1)
    model = patch_dropout(_network(), input_shape=(1, 6, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = skorch.NeuralNetClassifier(
            model, criterion=nn.CrossEntropyLoss, max_epochs=3, lr=0.05, train_split=None, verbose=0
        )
        learner = ActiveLearner(
            net,
            query_strategy=MCQuery("batchbald", T=6, options={"num_samples": 100}),
            X_training=x[:6],
            y_training=y[:6],
        )
        idx, _ = learner.query(x[6:], n_instances=2)
        learner.teach(x[6:][idx], y[6:][idx])
    assert network_of(learner) is net.module_ and len(learner.X_training) == 8
    np.testing.assert_allclose(learner.predict_proba(x[:3]).sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.peer
def test_modal_dropout_softmax_is_over_the_flattened_chunk():
    """The bug MCQuery avoids: modAL.dropout's per-pass "probabilities" do not sum to 1 per row."""
    skorch = pytest.importorskip("skorch")
    from modAL.dropout import get_predictions

    x, y = _images(20, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = skorch.NeuralNetClassifier(
            _network(), criterion=nn.CrossEntropyLoss, max_epochs=1, train_split=None, verbose=0
        ).fit(x, y)
        learner = ActiveLearner(net, X_training=x, y_training=y)
        probs_modal = get_predictions(learner, torch.from_numpy(x), num_predictions=2)[0]
    np.testing.assert_allclose(probs_modal.sum(), 1.0, rtol=1e-5)  # one softmax over the whole chunk
    assert np.all(probs_modal.sum(axis=1) < 0.5)
    ours = mc.predict(patch_dropout(net.module_, input_shape=(1, 6, 6)), x, 2, random_state=0)
    np.testing.assert_allclose(ours.sum(dim=-1).numpy(), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(strategy="entropy_MC"), "unknown strategy"),
        (dict(strategy="deimos"), "needs tau_inv"),
        (dict(strategy="deimos", tau_inv=-1.0), "tau_inv must be a number > 0"),
        (dict(strategy="bald", tau_inv=1e-3), "only used by DEIMOS"),
        (dict(strategy="deimos", tau_inv={"auto": -1.0}), "'auto' factor must be a positive"),
        (dict(strategy="deimos", tau_inv={"fixed": 0.1}), r"must be \{'auto': factor\}"),
        (dict(strategy="deimos", tau_inv={"auto": 0.1}, T=1), "T >= 2"),
        (dict(strategy="deimos", tau_inv=1e-3, x_val=np.zeros((2, 1, 6, 6))), "x_val is only used"),
        (dict(strategy="bald", T=0), "T must be an int >= 1"),
        (dict(strategy="bald", n_candidates=0), "n_candidates"),
        (dict(strategy="bald", random_state=-1), "random_state"),
        (dict(strategy="batchbald", options={"num_sample": 3}), "num_sample"),
    ],
)
def test_mcquery_refuses_bad_settings_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MCQuery(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(strategy="bald", T=2.0),
        dict(strategy="bald", T=True),
        dict(strategy="bald", n_candidates="10"),
        dict(strategy="bald", random_state=None),
        dict(strategy="deimos", tau_inv="1e-3"),
        dict(strategy="deimos", tau_inv={"auto": "0.1"}),
    ],
)
def test_mcquery_refuses_wrong_types_with_type_error(kwargs):
    with pytest.raises(TypeError):
        MCQuery(**kwargs)


def test_query_time_errors_name_the_problem():
    learner, x_pool, _ = _learner(MCQuery("bald", n_candidates=500))
    with pytest.raises(ValueError, match="larger than the pool"):
        learner.query(x_pool, n_instances=2)
    with pytest.raises(ValueError, match="n_instances"):
        MCQuery("bald")(learner, x_pool, n_instances=0)
    with pytest.raises(ValueError, match="not fitted"):
        MCDropoutClassifier(patch_dropout(_network(), input_shape=(1, 6, 6))).predict(x_pool)
    with pytest.raises(TypeError, match="patch_dropout"):
        MCDropoutClassifier(_network()).fit(x_pool, np.zeros(len(x_pool), np.int64))
    with pytest.raises(ValueError, match="class indices"):
        MCDropoutClassifier(patch_dropout(_network(), input_shape=(1, 6, 6))).fit(x_pool[:3], np.array([0, 1, 2]))

    class Plain:
        module_ = _network()

    with pytest.raises(TypeError, match="not an MCModel"):
        network_of(Plain())


def test_regression_strategies_run_on_a_patched_regressor():
    """max_variance and DEIMOS on a regression network of your own (any estimator exposing model_)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    class Learner:  # what MCQuery reads from a modAL learner: estimator.model_ and X_training
        class estimator:
            model_ = patch_dropout(net, input_shape=(3,), kind="regression")

        X_training = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)

    x_pool = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
    for query in (MCQuery("max_variance", T=8), MCQuery("deimos", T=8, tau_inv=0.1, n_candidates=30)):
        idx, scores = query(Learner(), x_pool, n_instances=4)
        assert len(np.unique(idx)) == 4 and idx.max() < 40 and np.all(np.isfinite(scores))


# ---------------------------------------------------------------------------
# run_active_learning: one modAL run as a learning curve
# ---------------------------------------------------------------------------
def _curve(query, *, subsample=None, n_steps=2, seed=0):
    x, y = _images(70, 3)
    x_test, y_test = _images(30, 4)
    model = patch_dropout(_network(), input_shape=(1, 6, 6))
    return run_active_learning(
        MCDropoutClassifier(model, config=CONFIG, random_state=seed),
        query,
        x,
        y,
        x_test,
        y_test,
        labelled=np.arange(6),
        n_steps=n_steps,
        k=4,
        random_state=seed,
        subsample=subsample,
        method="m",
    )


def test_run_active_learning_records_one_row_per_point_of_the_curve():
    curve = _curve(MCQuery("bald", T=4, random_state=0))
    assert list(curve.columns) == [
        "method",
        "seed",
        "iteration",
        "budget",
        "score",
        "fit_s",
        "score_s",
        "query_s",
        "picked",
    ]
    assert list(curve["iteration"]) == [0, 1, 2] and list(curve["budget"]) == [6, 10, 14]
    assert curve["score"].between(0, 1).all() and (curve[["fit_s", "score_s", "query_s"]] >= 0).all().all()
    assert np.isnan(curve["picked"].iloc[0]) and all(len(p) == 4 for p in curve["picked"].iloc[1:])
    assert curve["query_s"].iloc[0] == 0.0 and set(curve["method"]) == {"m"}


def test_run_active_learning_is_reproducible_and_the_labels_come_from_the_pool():
    a, b = _curve(MCQuery("entropy_mc", T=4, random_state=2)), _curve(MCQuery("entropy_mc", T=4, random_state=2))
    pd.testing.assert_frame_equal(
        a.drop(columns=["fit_s", "score_s", "query_s"]), b.drop(columns=["fit_s", "score_s", "query_s"])
    )
    assert set(np.concatenate(a["picked"].iloc[1:].to_list())) <= {0, 1}


def test_run_active_learning_subsamples_for_modal_strategies():
    """A query strategy that scores every row it is given sees only the seeded subset rng([seed, step])."""
    seen = []

    def last_rows(learner, X, n_instances=1):  # a modAL query strategy: (indices, scores)
        seen.append(np.array(X))
        return np.arange(len(X) - n_instances, len(X)), np.zeros(n_instances)

    x, _ = _images(70, 3)
    pool = np.arange(6, 70)
    _curve(last_rows, n_steps=1, subsample=5)
    rows = np.sort(np.random.default_rng([0, 1]).choice(len(pool), 5, replace=False))
    np.testing.assert_array_equal(seen[0], x[pool[rows]])
    _curve(last_rows, n_steps=1)
    np.testing.assert_array_equal(seen[1], x[pool])
    assert len(_curve(uncertainty_sampling, n_steps=1, subsample=5)["picked"].iloc[1]) == 4


@pytest.mark.parametrize(
    "changes, error",
    [
        (dict(n_steps=-1), ValueError),
        (dict(n_steps=1.0), TypeError),
        (dict(n_steps=20), ValueError),
    ],
)
def test_run_active_learning_refuses_bad_sizes(changes, error):
    with pytest.raises(error):
        _curve(MCQuery("random"), **changes)
