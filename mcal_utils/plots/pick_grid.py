"""The first picks of several strategies from the same candidates, one row of images per strategy.

:func:`first_picks` draws notebook 07's grid; it returns the Figure and never calls ``plt.show``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = ["first_picks"]


def first_picks(
    images_N_1_H_W: np.ndarray,
    labels_N: np.ndarray,
    picks: Mapping[str, np.ndarray],
    *,
    ncols: int = 10,
    title: str | None = None,
) -> Figure:
    """One row per strategy: its first ``ncols`` picks (positions into the N candidate images, pick
    order), each titled with its true label; the strategy's name labels the row.

    images_N_1_H_W: greyscale images ``(N, 1, H, W)``; labels_N: their labels ``(N,)``.
    """
    images = np.asarray(images_N_1_H_W)
    if images.ndim != 4 or images.shape[1] != 1 or len(labels_N) != len(images):
        raise ValueError(
            f"images must be (N, 1, H, W) with one label each, got {images.shape} and {len(labels_N)} labels"
        )
    if not picks:
        raise ValueError("picks must name at least one strategy")
    fig = Figure(figsize=(0.9 * ncols, 1.2 * len(picks)))
    for row, (name, positions) in enumerate(picks.items()):
        for col, position in enumerate(np.asarray(positions)[:ncols]):
            ax = fig.add_subplot(len(picks), ncols, row * ncols + col + 1)
            ax.imshow(images[position, 0], cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(str(labels_N[position]), fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
