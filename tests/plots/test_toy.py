"""The 1-D toy figure: two panels (before / after) and the EI axis, refusing an EI of the wrong length."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from mcal_utils.data import synthetic_1d
from mcal_utils.plots import toy as toy_plots


def test_batch_before_after_draws_both_panels_and_the_ei():
    toy = synthetic_1d(0, n_train=20)
    G, N = len(toy.x_grid), len(toy.x_pool)
    fit = (np.zeros(G), np.ones(G))
    ei_N = np.linspace(0.0, 1.0, N)
    fig = toy_plots.batch_before_after(
        toy, fit, fit, np.array([3, 1, 2]), ei_N, mse_before=0.5, mse_after=0.25, title="t"
    )
    assert isinstance(fig, Figure) and len(fig.axes) == 3  # two panels + the EI twin axis
    left, right, ei_axis = fig.axes
    assert "0.5000" in left.get_title() and "0.2500" in right.get_title()
    assert ei_axis.get_ylim() == (0.0, 3.0)
    labels = fig.legends[0].get_texts()
    assert {"new labels", "EI (first greedy step)", "labelled"} <= {t.get_text() for t in labels}


def test_batch_before_after_refuses_an_ei_per_other_points():
    toy = synthetic_1d(0, n_train=20)
    fit = (np.zeros(len(toy.x_grid)), np.ones(len(toy.x_grid)))
    with pytest.raises(ValueError, match="one EI per pool point"):
        toy_plots.batch_before_after(toy, fit, fit, np.array([0]), np.ones(3), mse_before=1.0, mse_after=1.0)
