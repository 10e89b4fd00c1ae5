"""The first-picks grid: one row per strategy, titled with the true labels, refusing wrong shapes."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from mcal_utils.plots import pick_grid


def test_first_picks_draws_one_row_per_strategy():
    images = np.random.default_rng(0).random((12, 1, 6, 6))
    labels = np.arange(12) % 10
    picks = {"A": np.array([3, 1, 2]), "B": np.arange(12)}
    fig = pick_grid.first_picks(images, labels, picks, ncols=4, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 3 + 4  # B is cut at ncols
    assert [ax.get_title() for ax in fig.axes[:3]] == ["3", "1", "2"]
    assert fig.axes[0].get_ylabel() == "A" and fig.axes[3].get_ylabel() == "B"


def test_first_picks_refuses_wrong_shapes():
    with pytest.raises(ValueError, match="N, 1, H, W"):
        pick_grid.first_picks(np.zeros((4, 6, 6)), np.zeros(4), {"A": [0]})
    with pytest.raises(ValueError, match="at least one strategy"):
        pick_grid.first_picks(np.zeros((4, 1, 6, 6)), np.zeros(4), {})
