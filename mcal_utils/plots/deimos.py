"""Figures and tables of DEIMOS's experiments (notebooks 05 and 06).

* :func:`number_table` -- a styled table: floats to a precision, counts as integers, p-values in 2 digits.
* :func:`counts_table` -- a styled table of acquisition counts (blank: not reached).
* :func:`claim_table` -- the rule's comparisons with signed effects and intervals.
* :func:`curve_panels` -- one learning-curve panel per experiment or batch size, side by side.
* :func:`labelled_images` -- the images of chosen train indices with a caption each.
* :func:`angle_histograms` -- the rotation angles of each method's picks against the pool's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import curves, image_grid, new_axes, styled_table

__all__ = [
    "convergence",
    "number_table",
    "counts_table",
    "CLAIM_FORMATS",
    "claim_table",
    "curve_panels",
    "labelled_images",
    "angle_histograms",
]

#: formats of :func:`mcal_utils.compare.comparison_table`'s columns in :func:`claim_table`.
CLAIM_FORMATS: dict[str, str] = {
    "A − B": "{:+.4g}",
    "CI low": "{:+.4g}",
    "CI high": "{:+.4g}",
    "sign-flip p": "{:.3g}",
    "MDE": "{:.4g}",
}


def number_table(df: pd.DataFrame, *, ints: Sequence[str] = (), precision: int = 4, p_values: Sequence[str] = ()):
    """:func:`mcal_utils.plots.styled_table` with every float column to ``precision`` decimals, the ``ints``
    columns as integers and the ``p_values`` columns in two significant digits."""
    formats = {c: f"{{:.{precision}f}}" for c in df.columns if pd.api.types.is_float_dtype(df[c])}
    formats.update({c: "{:.0f}" for c in ints})
    formats.update({c: "{:.2g}" for c in p_values})
    return styled_table(df, formats=formats)


def counts_table(df: pd.DataFrame, columns: Sequence[str], *, caption: str | None = None):
    """``df`` with the ``columns`` (acquisition counts, NaN: not reached) as integers."""
    return styled_table(df, formats={c: "{:.0f}" for c in columns}, caption=caption)


def claim_table(comparisons: pd.DataFrame, *, caption: str | None = None):
    """A :func:`mcal_utils.compare.comparison_table` indexed by (metric, B), effects and CIs signed."""
    return styled_table(comparisons.set_index(["metric", "B"]), formats=CLAIM_FORMATS, caption=caption)


def curve_panels(
    panels: Mapping[str, pd.DataFrame],
    *,
    metric: str,
    ylabel: str,
    x: str = "acquired_total",
    xlabel: str = "points acquired",
    references: Mapping[str, Mapping | None] | None = None,
    panel_size: tuple[float, float] = (5.2, 4.6),
) -> Figure:
    """One panel per entry of ``panels`` ({title: long results}): seed-mean ``metric`` against ``x`` with a
    ±1 std band (:func:`mcal_utils.plots.curves`), the paper's points of ``references[title]`` as markers."""
    if not panels:
        raise ValueError("panels must hold at least one {title: results} entry")
    fig = Figure(figsize=(panel_size[0] * len(panels), panel_size[1]), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, df) in zip(axes, panels.items()):
        curves(
            df.assign(method=df["method"].astype(str)),
            metric=metric,
            budget=x,
            ax=ax,
            xlabel=xlabel,
            ylabel=ylabel,
            title=title,
            reference=(references or {}).get(title),
        )
    return fig


def labelled_images(
    images_N, indices: Sequence[int], captions: Sequence[str], *, ncols: int = 5, title: str | None = None
) -> Figure:
    """The images ``images_N[indices]`` (``(N, 1, H, W)`` or ``(N, H, W)``) in a grid, one caption each."""
    if len(indices) != len(captions):
        raise ValueError(f"{len(indices)} indices but {len(captions)} captions")
    chosen = np.asarray(images_N)[np.asarray(indices, dtype=np.int64)]
    return image_grid(chosen[:, 0] if chosen.ndim == 4 else chosen, list(captions), ncols=ncols, title=title)


def angle_histograms(
    pool_angles_N,
    picked_angles: Mapping[str, np.ndarray],
    *,
    max_angle: float,
    n_bins: int = 18,
    label: Callable[[str], str] = lambda m: f"{m} picks",
) -> Figure:
    """One panel per method: the density of its picks' angles (line) over the pool's (grey), in
    ``n_bins`` equal bins on ``[-max_angle, max_angle]`` degrees."""
    if not picked_angles:
        raise ValueError("picked_angles must hold at least one {method: angles} entry")
    edges = np.linspace(-max_angle, max_angle, n_bins + 1)
    fig = Figure(figsize=(4.2 * len(picked_angles), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(picked_angles), sharey=True))
    for ax, (m, angles) in zip(axes, picked_angles.items()):
        ax.hist(pool_angles_N, bins=edges, density=True, color="0.7", label="pool")
        ax.hist(angles, bins=edges, density=True, histtype="step", lw=2, color="C3", label=label(m))
        ax.set_xlabel("rotation angle (degrees)")
        ax.set_title(m)
        ax.legend(fontsize="small")
    return fig


def convergence(conv, *, ax=None):
    """Training loss per epoch of :func:`mcal_utils.protocols.deimos_mnist.convergence`'s longest fit, with a
    line at each epoch count of its table (e.g. the profile's and the paper's)."""
    ax = new_axes(ax, figsize=(6.0, 3.2))
    ax.plot(conv.loss_by_epoch["epoch"], conv.loss_by_epoch["train_loss"], lw=1.2)
    for row in conv.table.itertuples():
        ax.axvline(row.epochs, color="0.5", ls="--", lw=0.8)
        ax.annotate(
            f"{row.epochs} epochs: acc {row.test_accuracy:.3f}",
            (row.epochs, ax.get_ylim()[1]),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="b1, step 0: training loss per epoch")
    return ax.figure
