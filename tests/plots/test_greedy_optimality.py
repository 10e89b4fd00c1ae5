"""mcal_utils.plots.greedy_optimality: the ratio histograms of notebook 04."""

import numpy as np

from mcal_utils.plots import greedy_optimality as greedy_plots
from mcal_utils.protocols import greedy_optimality as protocol


def test_ratio_histograms_one_panel_per_configuration():
    run = protocol.run_simulation(2, 1, 0)
    fig = greedy_plots.ratio_histograms(run, hist_bins=10)
    assert len(fig.axes) == 9
    assert "2 for batch < 10" in fig._suptitle.get_text()
    floor_lines = [line for ax in fig.axes for line in ax.lines if np.allclose(line.get_xdata(), protocol.FLOOR)]
    assert len(floor_lines) == 9  # the paper's floor in every panel
