"""DEIMOS's figures and tables (mcal_utils.plots.deimos): formats, panels, captions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mcal_utils import compare
from mcal_utils.plots import deimos as deimos_plots


def results(methods=("DEIMOS", "Random"), n_seeds=3, n_steps=4) -> pd.DataFrame:
    rows = [
        dict(method=m, seed=s, acquired_total=10 * k, accuracy=0.5 + 0.1 * k + 0.01 * s)
        for m in methods
        for s in range(n_seeds)
        for k in range(n_steps)
    ]
    df = pd.DataFrame(rows)
    df["method"] = pd.Categorical(df["method"], categories=list(methods), ordered=True)
    return df


def test_number_table_formats_floats_counts_and_p_values():
    df = pd.DataFrame({"effect": [0.123456], "seeds": [8.0], "p": [0.000123456]})
    html = deimos_plots.number_table(df, ints=("seeds",), precision=3, p_values=("p",)).to_html()
    assert "0.123" in html and ">8<" in html and "0.00012" in html and "0.000123456" not in html


def test_counts_and_claim_tables():
    counts = pd.DataFrame({"DEIMOS": [5.0, np.nan], "DEIMOS: per seed": ["5 / 6", "— / —"]})
    html = deimos_plots.counts_table(counts, ["DEIMOS"], caption="levels").to_html()
    assert ">5<" in html and "levels" in html
    c = compare.paired(np.arange(8) * 0.001 + 0.05, np.zeros(8), a="DEIMOS", b="Random", metric="AUBC rmse")
    html = deimos_plots.claim_table(compare.comparison_table([c])).to_html()
    assert "+0.0535" in html and "supported" in html


def test_curve_panels_one_panel_per_entry_with_reference_points():
    fig = deimos_plots.curve_panels(
        {"left": results(), "right": results(("DEIMOS", "MaxEnt"))},
        metric="accuracy",
        ylabel="test accuracy",
        references={"left": {"DEIMOS": (np.array([20]), np.array([0.8]))}},
    )
    left, right = fig.axes[:2]
    assert left.get_title() == "left" and right.get_title() == "right"
    assert len(left.lines) == 3 and len(right.lines) == 2  # two methods (+ one paper marker on the left)
    with pytest.raises(ValueError, match="at least one"):
        deimos_plots.curve_panels({}, metric="accuracy", ylabel="y")


def test_labelled_images_and_angle_histograms():
    images = np.random.default_rng(0).random((10, 1, 8, 8))
    fig = deimos_plots.labelled_images(images, [3, 1, 4], ["a", "b", "c"], title="t")
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), images[1, 0])
    with pytest.raises(ValueError, match="captions"):
        deimos_plots.labelled_images(images, [1, 2], ["a"])
    rng = np.random.default_rng(1)
    fig = deimos_plots.angle_histograms(
        rng.uniform(-45, 45, 200),
        {"DEIMOS": rng.uniform(-45, 45, 30), "Random": rng.uniform(-45, 45, 30)},
        max_angle=45,
    )
    assert [ax.get_title() for ax in fig.axes] == ["DEIMOS", "Random"]
    assert len(fig.axes[0].patches) == 18 + 1  # the pool's 18 bars and the picks' step outline
