"""The 1-D toy of DEIMOS's Figure 1: the fit, the EI and the DEIMOS batch, before and after labelling it.

:func:`batch_before_after` draws the two panels of notebook 03 (the figure of
:mod:`mcal_utils.protocols.deimos_toy1d`); it returns the Figure and never calls ``plt.show``.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from ..data import Toy1D

__all__ = ["batch_before_after"]


def _panel(ax, toy: Toy1D, mean_G, std_G, x_labelled, y_labelled, title: str) -> None:
    x_G = toy.x_grid[:, 0]
    ax.fill_between(x_G, mean_G - std_G, mean_G + std_G, color="lightblue", alpha=0.7, label="MC mean ± 1 std")
    ax.plot(x_G, toy.f_grid, "k--", lw=1, label="true function")
    ax.plot(x_G, mean_G, color="C0", lw=1.5, label="MC mean")
    ax.plot(x_labelled[:, 0], y_labelled, "k.", ms=4, label="labelled")
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.grid(alpha=0.3)


def batch_before_after(
    toy: Toy1D,
    before: tuple[np.ndarray, np.ndarray],
    after: tuple[np.ndarray, np.ndarray],
    picks_k: np.ndarray,
    ei_pool_N: np.ndarray,
    *,
    mse_before: float,
    mse_after: float,
    title: str | None = None,
) -> Figure:
    """Left: the fit before acquiring (MC mean ± 1 std over ``toy.x_grid``), the first-step EI of every
    pool point (right axis) and the batch (triangles, dark = picked first, numbered); right: the refit
    after labelling the batch, its new labels circled.

    before, after: ``(mean_G, std_G)`` of the MC predictions on ``toy.x_grid`` (G points).
    picks_k: pool indices in pick order; ei_pool_N: the EI of the N pool points.
    """
    picks_k = np.asarray(picks_k)
    ei_pool_N = np.asarray(ei_pool_N, dtype=np.float64)
    if ei_pool_N.shape != (len(toy.x_pool),):
        raise ValueError(f"ei_pool_N must have one EI per pool point ({len(toy.x_pool)}), got {ei_pool_N.shape}")
    x_new = np.concatenate([toy.x_train, toy.x_pool[picks_k]])
    y_new = np.concatenate([toy.y_train, toy.y_pool[picks_k]])
    shades = colormaps["Reds"](np.linspace(0.95, 0.35, len(picks_k)))  # darker = picked earlier
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    _panel(
        axes[0], toy, *before, toy.x_train, toy.y_train, f"before: EI and the DEIMOS batch\ntest MSE = {mse_before:.4f}"
    )
    _panel(axes[1], toy, *after, x_new, y_new, f"after labelling the batch and refitting\ntest MSE = {mse_after:.4f}")
    y_min = axes[0].get_ylim()[0]
    for rank, (i, colour) in enumerate(zip(picks_k, shades), start=1):
        for ax in axes:
            ax.plot(
                toy.x_pool[i, 0],
                y_min,
                marker="^",
                ms=11,
                color=colour,
                clip_on=False,
                zorder=5,
                label="queried (dark → light = pick order)" if rank == 1 and ax is axes[0] else None,
            )
        axes[0].annotate(
            str(rank),
            (toy.x_pool[i, 0], y_min),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
            color=colour,
        )
    axes[1].plot(toy.x_pool[picks_k, 0], toy.y_pool[picks_k], "o", mfc="none", mec="C3", ms=8, label="new labels")
    order = np.argsort(toy.x_pool[:, 0])
    ax_ei = axes[0].twinx()
    ax_ei.plot(toy.x_pool[order, 0], ei_pool_N[order], color="C2", lw=1.2, label="EI (first greedy step)")
    ax_ei.set_ylabel("EI = expected drop of tr V", color="C2")
    ax_ei.set_ylim(0, 3 * ei_pool_N.max())
    axes[0].set_ylabel("y")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in (ax_ei, axes[1]):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig
