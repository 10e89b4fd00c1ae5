"""Notebook 07 run the modAL way: the query strategies, one trained model's picks, and the grid of
ActiveLearner runs on a tiny random pool (every strategy, every seed, the same initial set)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("modAL")
from mcal_utils import compare, modal, models  # noqa: E402
from mcal_utils.protocols import own_model as own  # noqa: E402
from mcal_utils.protocols import own_model_modal as own_modal  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:'force_all_finite' was renamed:FutureWarning")
TINY = own.OwnModelProtocol(
    seeds=(0, 1),
    pool_size=None,
    test_size=None,
    initial_size=10,
    k=3,
    n_steps=1,
    epochs=1,
    batch_size=16,
    lr=0.002,
    T=3,
    n_candidates=20,
    tau_inv=3e-5,
    strategies=("random", "modAL uncertainty", "BALD", "DEIMOS"),
)


def fake_pool(n: int = 60, n_test: int = 20, seed: int = 0) -> own.MnistPool:
    """Random 1x28x28 images, labels cycling through the ten classes."""
    rng = np.random.default_rng(seed)
    images = rng.random((n + n_test, *own.INPUT_SHAPE), dtype=np.float32)
    labels = np.arange(n + n_test, dtype=np.int64) % own.N_CLASSES
    return own.MnistPool(x=images[:n], y=labels[:n], x_test=images[n:], y_test=labels[n:])


@pytest.fixture(scope="module")
def patched() -> models.MCModel:
    torch.manual_seed(0)
    return models.patch_dropout(own.my_cnn(), input_shape=own.INPUT_SHAPE)


@pytest.fixture(scope="module")
def grid(patched) -> own_modal.ModalGrid:
    return own_modal.run_grid(TINY, patched, fake_pool())


def test_query_strategies():
    assert own_modal.query_strategy(TINY, "modAL uncertainty", 0) is modal.uncertainty_sampling
    deimos = own_modal.query_strategy(TINY, "DEIMOS", 5)
    assert isinstance(deimos, modal.MCQuery) and (deimos.strategy, deimos.T, deimos.tau_inv_) == ("deimos", 3, 3e-5)
    assert (deimos.random_state, deimos.n_candidates) == (5, 20)
    assert own_modal.query_strategy(TINY, "BALD", 0).T == 3
    assert own_modal.query_strategy(TINY, "random", 0).tau_inv is None
    with pytest.raises(ValueError, match="strategy"):
        own_modal.query_strategy(TINY, "bald", 0)


def test_picks_on_one_model(patched):
    one = own_modal.picks_on_one_model(TINY, patched, fake_pool())
    assert set(one.picks) == {"max-entropy", "BALD", "DEIMOS"}
    assert len(one.candidates) == TINY.n_candidates and not set(one.candidates) & set(one.labelled)
    assert one.n_samp == TINY.initial_size + TINY.n_candidates and 0.0 <= one.accuracy <= 1.0
    for positions in one.picks.values():
        assert len(np.unique(positions)) == TINY.k and 0 <= positions.min() and positions.max() < TINY.n_candidates


def test_run_grid_runs_every_strategy_and_seed(grid):
    results = grid.results
    assert list(results["method"].unique()) == list(TINY.strategies) and grid.wall_s > 0
    assert len(results) == len(TINY.strategies) * len(TINY.seeds) * (TINY.n_steps + 1)
    assert "accuracy" in results.columns and "score" not in results.columns
    assert own.check_every_strategy_ran(results, TINY).holds
    first = results[results["iteration"] == 0].pivot_table(index="seed", columns="method", values="accuracy")
    assert (first.nunique(axis=1) == 1).all()  # a seed's runs share the initial set and weights
    comparisons = own.compare_with_random(results, TINY.strategies)
    assert all(c.verdict == compare.NOT_RESOLVED for c in comparisons.values())  # 2 seeds never resolve
