"""Tests of mcal_utils.plots: they draw on small inputs, with the right artists."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from mcal_utils import metrics, plots


def _long(n_seeds=3):
    rng = np.random.default_rng(0)
    rows = [dict(method=m, seed=s, budget=b, metric=0.5 + 0.01 * b + rng.normal(0, 0.01))
            for m in ("Random", "DEIMOS") for s in range(n_seeds) for b in (10, 20, 30, 40)]
    return pd.DataFrame(rows)


def test_curves_from_long_df_lines_bands_and_reference():
    ref = {"DEIMOS": ([10, 20, 30], [0.6, 0.7, 0.8])}
    ax = plots.curves(_long(), reference=ref, log_x=True, title="t")
    assert len(ax.lines) == 3  # 2 means + 1 reference marker line
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 2
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "DEIMOS (paper)" in labels
    mean, _ = metrics.mean_std(_long().query("method == 'Random'").pivot(index="seed", columns="budget", values="metric"))
    np.testing.assert_allclose(ax.lines[0].get_ydata(), mean)
    ref_line = ax.lines[2]
    assert ref_line.get_linestyle() == "None" and ref_line.get_color() == ax.lines[1].get_color()


def test_curves_from_dict_single_seed_has_no_band():
    data = {"a": ([1, 2, 3], [0.1, 0.2, 0.3]), "b": ([1, 2, 3], np.ones((2, 3)))}
    ax = plots.curves(data)
    assert len(ax.lines) == 2 and len(ax.collections) == 1


@pytest.mark.parametrize("bad", [
    {},
    {"a": ([1, 2], [0.1, 0.2, 0.3])},
    {"a": [1, 2, 3]},
    {"a": ([1, 2], [0.1, np.nan])},
    pd.DataFrame({"method": ["a"], "budget": [1]}),
    pd.DataFrame({"method": ["a", "a"], "seed": [0, 0], "budget": [1, 1], "metric": [0.1, 0.2]}),
    pd.DataFrame({"method": ["a", "a", "a"], "seed": [0, 1, 1], "budget": [1, 1, 2], "metric": [0.1, 0.2, 0.3]}),
])
def test_curves_bad_input(bad):
    with pytest.raises(ValueError):
        plots.curves(bad)


def test_reliability_diagram():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=200)
    y = rng.integers(0, 3, 200)
    ax = plots.reliability_diagram(p, y, n_bins=10)
    assert len(ax.patches) == 10 and len(ax.lines) == 1
    assert "ECE" in ax.get_legend().get_texts()[0].get_text()
    rc = metrics.reliability_curve(p, y, 5)
    assert len(plots.reliability_diagram(curve=rc).patches) == 5
    with pytest.raises(ValueError):
        plots.reliability_diagram()
    with pytest.raises(ValueError):
        plots.reliability_diagram(curve="nope")


def test_styled_table():
    df = pd.DataFrame({"name": ["a", "b"], "x": [0.123456, 1.0], "n": [1, 2]})
    st = plots.styled_table(df, precision=2, caption="cap", highlight_max=["x"])
    html = st.to_html() if hasattr(st, "to_html") else str(st)
    assert "0.12" in html and "0.123456" not in html and "cap" in html
    html2 = plots.styled_table(df, formats={"x": "{:.1%}"}).to_html()
    assert "12.3%" in html2
    with pytest.raises(ValueError):
        plots.styled_table(df, formats={"nope": "{:.1f}"})
    with pytest.raises(ValueError):
        plots.styled_table(df, highlight_max=["nope"])
    with pytest.raises(ValueError):
        plots.styled_table([1, 2])


def test_image_grid():
    imgs = np.random.default_rng(0).random((5, 1, 8, 8))
    fig = plots.image_grid(imgs, labels=list("abcde"), ncols=3)
    assert len(fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes] == list("abcde")
    assert len(plots.image_grid(imgs[:, 0]).axes) == 5
    with pytest.raises(ValueError):
        plots.image_grid(imgs, labels=["a"])
    with pytest.raises(ValueError):
        plots.image_grid(np.ones((4, 4)))


def test_histograms():
    samples = {"x": np.linspace(0.97, 1, 50), "y": np.ones(10), "z": [0.99, 1.0]}
    fig = plots.histograms(samples, bins=10, ncols=2, reference_lines={"0.97": 0.97})
    assert len(fig.axes) == 3
    assert len(fig.axes[0].patches) == 10
    assert len(fig.axes[1].patches) == 1  # a constant sample: one bin
    assert all(len(ax.lines) == 1 for ax in fig.axes)
    assert len(plots.histograms(np.arange(5.0)).axes) == 1
    with pytest.raises(ValueError):
        plots.histograms({})
    with pytest.raises(ValueError):
        plots.histograms({"x": [np.nan]})
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders under Agg


def test_class_balance_heatmap():
    fr = {"Random": [0.5, 0.25, 0.25], "BALD": [0.0, 0.1, 0.9]}
    ax = plots.class_balance_heatmap(fr, reference_C=[0.5, 0.25, 0.25], class_names=["a", "b", "c"], title="t")
    img = ax.images[0].get_array()
    np.testing.assert_allclose(img, [[0, 0, 0], [-0.5, -0.15, 0.65]])   # share minus reference
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Random", "BALD"]
    assert [t.get_text() for t in ax.texts] == ["50", "25", "25", "0", "10", "90"]
    assert ax.images[0].norm.vmin == -ax.images[0].norm.vmax == pytest.approx(-0.65)


@pytest.mark.parametrize("fr, kw", [
    ({}, {}),
    ({"a": [0.5, 0.6]}, {}),
    ({"a": [0.5, 0.5], "b": [0.2, 0.3, 0.5]}, {}),
    ({"a": [0.5, 0.5]}, {"reference_C": [1.0]}),
    ({"a": [0.5, 0.5]}, {"class_names": ["x"]}),
])
def test_class_balance_heatmap_bad_input(fr, kw):
    with pytest.raises(ValueError):
        plots.class_balance_heatmap(fr, **kw)

