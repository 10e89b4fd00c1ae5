"""Figures of notebook 00 (the data sets): rotation angles, faces, splice-site usage, the 1-D toy."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..data import Toy1D

__all__ = ["angle_histogram", "face_strip", "usage_histogram", "toy_problem"]


def angle_histogram(angles_N, max_angle: float) -> Figure:
    """Histogram of rotated-MNIST target angles (degrees) on 24 bins over [-max_angle, max_angle]."""
    fig = Figure(figsize=(6, 2.6), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(angles_N, bins=24, range=(-max_angle, max_angle), color="tab:blue", alpha=0.8)
    ax.set(
        xlabel="rotation angle (degrees)",
        ylabel="training images",
        title=f"angles of {len(angles_N):,} training images",
    )
    return fig


def face_strip(images_N_C_H_W, ages_N) -> Figure:
    """One row of RGB (or greyscale) faces, each titled with its age."""
    n = len(ages_N)
    fig = Figure(figsize=(1.4 * n, 1.8), layout="constrained")
    for ax, img, age in zip(np.atleast_1d(fig.subplots(1, n)), images_N_C_H_W, ages_N):
        ax.imshow(img.transpose(1, 2, 0).squeeze(), cmap="gray" if img.shape[0] == 1 else None)
        ax.set_title(f"{age:.0f} y", fontsize="small")
        ax.set_axis_off()
    return fig


def usage_histogram(usage_N) -> Figure:
    """Histogram of the splicing target SD1 / (SD1 + SD2) on 40 bins."""
    fig = Figure(figsize=(6, 2.6), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(usage_N, bins=40, color="tab:green")
    ax.set(xlabel="SD1 / (SD1 + SD2)", ylabel="sequences")
    return fig


def toy_problem(toy: Toy1D, random_state: int) -> Figure:
    """DEIMOS's 1-D toy: the true function, the noise-free test grid, the labelled sample, the pool inputs
    and the sparse interval."""
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.axvspan(*toy.sparse_interval, color="0.9", label="sparse region")
    ax.plot(toy.x_grid[:, 0], toy.f_grid, color="k", lw=1.5, label="true function f")
    ax.scatter(toy.x_test[:, 0], toy.y_test, s=6, color="tab:gray", label=f"test grid ({len(toy.y_test)}, noise-free)")
    ax.scatter(toy.x_train[:, 0], toy.y_train, s=18, color="tab:blue", label=f"labelled sample ({len(toy.y_train)})")
    ax.plot(
        toy.x_pool[:, 0],
        np.full(len(toy.x_pool), toy.f_grid.min() - 0.3),
        "|",
        color="tab:orange",
        ms=10,
        label=f"pool inputs ({len(toy.x_pool)})",
    )
    ax.set(xlabel="x", ylabel="y", title=f"DEIMOS 1-D toy data (random_state={random_state})")
    ax.legend(fontsize="small", ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return fig
