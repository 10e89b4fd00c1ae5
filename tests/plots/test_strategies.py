"""mcal_utils.plots.strategies: one panel per rerun pair / per dropout layer, with the right lines and legends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mcal_utils.plots import strategies as strategy_plots


def results_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {"method": m, "seed": s, "budget": b, "accuracy": 0.5 + 0.01 * b + rng.normal(0, 0.01)}
        for m in ("Random", "Random · per-step init", "Entropy", "Entropy · per-step init", "BALD")
        for s in range(3)
        for b in (10, 20, 30)
    ]
    df = pd.DataFrame(rows)
    df["method"] = pd.Categorical(df["method"], categories=list(dict.fromkeys(df["method"])), ordered=True)
    return df


def test_rerun_curves_one_panel_per_pair_with_both_runs():
    runs = {"Random": "Random · per-step init", "Entropy": "Entropy · per-step init"}
    fig = strategy_plots.rerun_curves(results_frame(), runs, this_name="fixed init")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax, (label, other) in zip(fig.axes, runs.items()):
        assert ax.get_title() == label
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [f"{label} · fixed init (n=3)", f"{other} (n=3)"]
        assert len(ax.lines) == 2
    with pytest.raises(ValueError, match="at least one"):
        strategy_plots.rerun_curves(results_frame(), {}, this_name="x")


def test_dropout_rate_panels_one_per_layer_legend_on_the_first():
    rows = [
        {"method": m, "seed": s, "budget": b, "layer": f"p{i}", "metric": 0.1 * i + 0.001 * b}
        for m in ("Random", "Random · 1/N regulariser")
        for s in range(2)
        for b in (10, 20)
        for i in (1, 2, 3)
    ]
    fig = strategy_plots.dropout_rate_panels(pd.DataFrame(rows), rename={"Random": "Random · paper's regulariser"})
    assert [ax.get_title() for ax in fig.axes[:3]] == ["p1", "p2", "p3"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "Random · paper's regulariser (n=2)" in legend
    assert fig.axes[1].get_legend() is None and fig.axes[2].get_legend() is None
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [0.21, 0.22])
    with pytest.raises(ValueError, match="layer"):
        strategy_plots.dropout_rate_panels(pd.DataFrame(rows).drop(columns="layer"))
