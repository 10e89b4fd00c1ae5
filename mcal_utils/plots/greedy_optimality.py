"""Figures of notebook 04 (DEIMOS Appendix A): the greedy/optimal ratios of every configuration."""

from __future__ import annotations

import numpy as np

from ..protocols import greedy_optimality as protocol
from . import histograms

__all__ = ["ratio_histograms"]


def ratio_histograms(run: protocol.SimulationRun, *, hist_bins: int):
    """One histogram of greedy/optimal ratios per configuration, on shared bins from
    min(0.97, lowest ratio) - 0.005 to 1 (1.0 falls in the last bin), with the paper's floor marked.

    Returns the Figure.
    """
    bins = np.linspace(min(protocol.FLOOR, run.lowest_ratio) - 0.005, 1.0, hist_bins + 1)
    samples = {
        f"{n} pts, batch {b}, {s} samples: min {run.results[(n, b, s)].ratios_T.min():.4f}": run.results[
            (n, b, s)
        ].ratios_T
        for (n, b, s) in protocol.CONFIGS
    }
    n_b10, n_other = (run.results[cfg].n_trials for cfg in (protocol.CONFIGS[-1], protocol.CONFIGS[0]))
    return histograms(
        samples,
        bins=bins,
        ncols=3,
        sharex=True,
        xlabel="greedy / optimal trace reduction",
        reference_lines={f"{protocol.FLOOR:g} (paper: all above)": protocol.FLOOR},
        title=f"DEIMOS Appendix A redone: greedy vs exhaustive best batch ({n_b10} trials each"
        + (")" if n_other == n_b10 else f", {n_other} for batch < 10)"),
    )
