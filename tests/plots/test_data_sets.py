"""mcal_utils.plots.data_sets: the figures of notebook 00."""

import numpy as np

from mcal_utils import data
from mcal_utils.plots import data_sets as data_plots


def test_angle_and_usage_histograms():
    fig = data_plots.angle_histogram(np.linspace(-30, 30, 50), 45.0)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "rotation angle (degrees)" and "50" in ax.get_title()
    assert sum(p.get_height() for p in ax.patches) == 50
    fig = data_plots.usage_histogram(np.random.default_rng(0).uniform(size=30))
    assert sum(p.get_height() for p in fig.axes[0].patches) == 30


def test_face_strip_titles_ages():
    faces = np.random.default_rng(0).uniform(size=(3, 3, 8, 8)).astype(np.float32)
    fig = data_plots.face_strip(faces, np.array([20.0, 31.0, 45.0]))
    assert [ax.get_title() for ax in fig.axes] == ["20 y", "31 y", "45 y"]


def test_toy_problem_draws_every_part():
    toy = data.synthetic_1d(0)
    ax = data_plots.toy_problem(toy, 0).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "sparse region" and f"labelled sample ({len(toy.y_train)})" in labels
    assert "random_state=0" in ax.get_title()
