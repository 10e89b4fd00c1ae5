"""loop.run_cached_grid: run once, read back in config order, a second call computes nothing."""
from __future__ import annotations

import pytest
from test_loop import cfg

from mcal_utils import loop


def test_run_cached_grid_orders_methods_keeps_picks_and_resumes(tmp_path):
    configs = [cfg(strategy=s, seed=seed, n_steps=1) for s in ("random", "entropy") for seed in (0, 1)]
    first = loop.run_cached_grid("nb", "tiny", configs, workers=0, run_root=tmp_path / "runs")
    assert list(first.results["method"].cat.categories) == ["random", "entropy"]
    assert first.steps_computed == 4 * 2 and len(first.results) == 8
    picks = first.results[first.results["step"] == 0]["acquired"]
    assert all(len(p) == 5 for p in picks)
    again = loop.run_cached_grid("nb", "tiny", configs, workers=0, run_root=tmp_path / "runs")
    assert again.steps_computed == 0
    assert again.results.drop(columns=["train_s", "eval_s", "select_s", "step_s"]).equals(
        first.results.drop(columns=["train_s", "eval_s", "select_s", "step_s"]))
    assert "0 computed now" in again.summary()


def test_run_cached_grid_refuses_an_empty_grid(tmp_path):
    with pytest.raises(ValueError, match="no configs"):
        loop.run_cached_grid("nb", "tiny", [], run_root=tmp_path)
