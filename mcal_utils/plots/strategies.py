"""Figures of notebook 02 (the MC-dropout-entropy paper's strategy comparison) that pair a run with its rerun.

* :func:`rerun_curves` -- one panel per strategy: its test-accuracy curve and the curve of its rerun
  (e.g. with the other initial-network mode), seed mean with a ±1 std band.
* :func:`dropout_rate_panels` -- one panel per Concrete Dropout layer: the learned rate against the budget.

Both return a ``matplotlib.figure.Figure`` (no pyplot state, safe under Agg).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from matplotlib.figure import Figure

from . import curves

__all__ = ["rerun_curves", "dropout_rate_panels"]


def rerun_curves(
    results: pd.DataFrame,
    runs: Mapping[str, str],
    *,
    this_name: str,
    metric: str = "accuracy",
    ylabel: str = "test accuracy",
) -> Figure:
    """One panel per ``label -> rerun label`` of ``runs``: both curves of ``metric`` against the budget.

    results: long results (columns ``method, seed, budget`` and ``metric``); this_name: how the run of
    ``label`` itself differs from its rerun (its legend entry becomes ``"<label> · <this_name>"``).
    """
    if not runs:
        raise ValueError("runs must name at least one (label, rerun label) pair")
    fig = Figure(figsize=(5.5 * len(runs), 4.2), layout="constrained")
    method = results["method"].astype(str)
    for ax, (label, other) in zip(fig.subplots(1, len(runs), squeeze=False)[0], runs.items()):
        pair = results[method.isin([label, other])].assign(method=lambda d: d["method"].astype(str))
        pair = pair.replace({"method": {label: f"{label} · {this_name}"}})
        curves(pair, metric=metric, ax=ax, xlabel="labelled training images", ylabel=ylabel, title=label)
    return fig


def dropout_rate_panels(rates: pd.DataFrame, *, rename: Mapping[str, str] | None = None) -> Figure:
    """One panel per layer of ``rates`` (long: ``method, seed, budget, layer, metric``, e.g.
    ``protocols.entropy_mnist_svhn.dropout_rates_long``): the learned rate against the budget.

    rename: method -> legend name. Only the first panel carries a legend.
    """
    missing = sorted({"method", "seed", "budget", "layer", "metric"} - set(rates.columns))
    if missing:
        raise ValueError(f"rates lack column(s) {missing}")
    layers = sorted(rates["layer"].unique())
    if not layers:
        raise ValueError("rates hold no layer")
    fig = Figure(figsize=(3.4 * len(layers), 3.4), layout="constrained")
    for ax, layer in zip(fig.subplots(1, len(layers), squeeze=False)[0], layers):
        panel = rates[rates["layer"] == layer].drop(columns="layer").replace({"method": dict(rename or {})})
        curves(panel, ax=ax, xlabel="labelled training images", ylabel="learned dropout rate", title=layer)
        if layer == layers[0]:
            ax.legend(fontsize="x-small")
        else:
            legend = ax.get_legend()
            if legend is not None:
                legend.remove()
    return fig
