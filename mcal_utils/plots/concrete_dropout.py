"""Figures of notebook 01 (Concrete Dropout vs fixed p): learned rates, validation curves, reliability."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..protocols import concrete_dropout_svhn as protocol
from . import reliability_diagram

__all__ = ["rates_and_validation", "reliability_grid"]


def rates_and_validation(runs: protocol.TwinRuns, dataset: str, n_train: int) -> Figure:
    """Left: each Concrete Dropout layer's p after every epoch (from :data:`protocol.INITIAL_P` at epoch 0),
    with the author's repository's rates after full training as stars on the right. Right: every twin's
    validation accuracy per epoch, dotted at the restored best epoch. First seed's fits."""
    epochs_E, rates_E_L = protocol.rate_history(runs.first[protocol.CONCRETE])
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_p, ax_v = fig.subplots(1, 2)
    for l, name in enumerate(protocol.LAYER_NAMES):
        ax_p.plot([0, *epochs_E], [protocol.INITIAL_P, *rates_E_L[:, l]], marker="o", ms=3, color=f"C{l}", label=name)
    for l, p in enumerate(protocol.PAPER_P):
        label = f"★ author's repository: {protocol.PAPER_FULL_EPOCHS} epochs, full SVHN" if l == 0 else None
        ax_p.plot(epochs_E[-1] * 1.04 + 0.3, p, marker="*", ms=12, color=f"C{l}", clip_on=False, label=label)
    ax_p.set(
        xlabel="epoch",
        ylabel="learned dropout p",
        ylim=(0, max(0.45, rates_E_L.max() * 1.1)),
        title=f"Concrete Dropout rates per layer ({dataset}, {n_train} training images)",
    )
    for name, r in runs.first.items():
        (line,) = ax_v.plot(
            [h["epoch"] for h in r.history], [h["val_metric"] for h in r.history], marker="o", ms=3, label=name
        )
        ax_v.axvline(r.best_epoch, ls=":", color=line.get_color(), lw=1)
    ax_v.set(
        xlabel="epoch", ylabel="validation accuracy", title="validation accuracy (dotted: the restored best epoch)"
    )
    for ax in (ax_p, ax_v):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def reliability_grid(runs: protocol.TwinRuns, y_test: np.ndarray, dataset: str) -> Figure:
    """One reliability diagram per (model, prediction) of the first twin pair."""
    fig = Figure(figsize=(16, 4.3), layout="constrained")
    axes = fig.subplots(1, len(runs.probs))
    for ax, ((name, how), p_N_C) in zip(axes, runs.probs.items()):
        reliability_diagram(p_N_C, y_test, ax=ax, title=f"{name}\n{how}")
    fig.suptitle(f"Reliability on the {dataset} test set ({len(y_test)} images)")
    return fig
