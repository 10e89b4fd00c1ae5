"""Figures and tables for the notebooks (matplotlib, safe under the Agg backend).

Every function draws on an ``ax`` it is given (or a new figure) and returns the
Axes (single panel) or the Figure (grids); none calls ``plt.show``.

* :func:`curves` -- metric vs budget, seed mean with a +-1 std band, one colour per
  method, optional reference points of a paper (markers labelled "... (paper)").
* :func:`reliability_diagram` -- per-bin accuracy vs confidence, with the ECE.
* :func:`styled_table` -- a pandas Styler with number formats (plain DataFrame if
  styling is unavailable).
* :func:`image_grid` -- a grid of greyscale images with optional labels.
* :func:`histograms` -- one histogram panel per named sample (e.g. greedy/optimal ratios).
* :func:`class_balance_heatmap` -- the class make-up of each method's picks, against a reference.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mcal_utils import metrics

__all__ = [
    "curves",
    "reliability_diagram",
    "styled_table",
    "image_grid",
    "histograms",
    "long_to_curves",
    "class_balance_heatmap",
]


def new_axes(ax, figsize=(6.0, 4.0)):
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def long_to_curves(
    df: pd.DataFrame, *, budget: str = "budget", metric: str = "metric", method: str = "method", seed: str = "seed"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Long DataFrame -> {method: (budgets_P, values_S_P)}; every seed must share the budgets."""
    missing = [c for c in (budget, metric, method) if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; has {list(df.columns)}")
    keys = [c for c in (method, seed, budget) if c in df.columns]
    if df.duplicated(keys).any():
        raise ValueError(f"df has several rows for one ({', '.join(keys)})")
    out = {}
    for m, g in df.groupby(method, sort=False):
        if seed in g.columns:
            wide = g.pivot_table(index=seed, columns=budget, values=metric, aggfunc="first")
        else:
            wide = g.set_index(budget)[[metric]].T
        if wide.isna().any().any():
            raise ValueError(f"method {m!r}: seeds do not share the same budgets")
        out[str(m)] = (wide.columns.to_numpy(), wide.to_numpy(np.float64))
    return out


def _as_curve_dict(data, **columns) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if isinstance(data, pd.DataFrame):
        data = long_to_curves(data, **columns)
    if not isinstance(data, Mapping) or len(data) == 0:
        raise ValueError("data must be a long DataFrame or a non-empty dict {method: (budgets_P, values_S_P)}")
    out = {}
    for name, item in data.items():
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"data[{name!r}] must be a pair (budgets_P, values_S_P or values_P)")
        b_P = np.asarray(item[0], dtype=np.float64)
        v = np.asarray(item[1], dtype=np.float64)
        v_S_P = v[None, :] if v.ndim == 1 else v
        if b_P.ndim != 1 or v_S_P.ndim != 2 or v_S_P.shape[1] != b_P.shape[0] or b_P.shape[0] < 1:
            raise ValueError(
                f"data[{name!r}]: budgets {b_P.shape} and values {v.shape} do not match "
                "(expected (P,) and (S, P) or (P,))"
            )
        if not (np.all(np.isfinite(b_P)) and np.all(np.isfinite(v_S_P))):
            raise ValueError(f"data[{name!r}] must be finite")
        out[str(name)] = (b_P, v_S_P)
    return out


def curves(
    data,
    *,
    ax=None,
    reference=None,
    log_x: bool = False,
    xlabel: str = "labelled points",
    ylabel: str = "accuracy",
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
    band: bool = True,
    budget: str = "budget",
    metric: str = "metric",
    method: str = "method",
    seed: str = "seed",
):
    """Metric-vs-budget curves: seed mean (line) and +-1 std band (when > 1 seed).

    ``data``: long DataFrame (columns ``method, seed, budget, metric``) or dict
    ``{method: (budgets_P, values_S_P)}``. ``reference``: optional dict
    ``{method: (budgets, values)}`` of published points, drawn as markers in the
    method's colour and labelled "<method> (paper)". Returns the Axes.
    Lines: one per method, plus one per reference entry; bands: one per method
    with at least two seeds (``ax.collections``).
    """
    curves_ = _as_curve_dict(data, budget=budget, metric=metric, method=method, seed=seed)
    ref = {} if reference is None else _as_curve_dict(reference)
    ax = new_axes(ax)
    palette = [f"C{i}" for i in range(10)]
    names = list(dict.fromkeys(list(curves_) + list(ref)))
    color_of = {name: (colors or {}).get(name, palette[i % 10]) for i, name in enumerate(names)}
    for name, (b_P, v_S_P) in curves_.items():
        mean_P, std_P = metrics.mean_std(v_S_P)
        label = name if v_S_P.shape[0] == 1 else f"{name} (n={v_S_P.shape[0]})"
        ax.plot(b_P, mean_P, color=color_of[name], label=label, lw=1.6)
        if band and v_S_P.shape[0] > 1:
            ax.fill_between(b_P, mean_P - std_P, mean_P + std_P, color=color_of[name], alpha=0.2, lw=0)
    for name, (b_P, v_S_P) in ref.items():
        ax.plot(
            b_P,
            v_S_P.mean(axis=0),
            ls="none",
            marker="o",
            mfc="none",
            ms=5,
            color=color_of[name],
            label=f"{name} (paper)",
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def reliability_diagram(
    probs_N_C=None,
    labels_N=None,
    *,
    curve: metrics.ReliabilityCurve | None = None,
    n_bins: int = 15,
    ax=None,
    label: str | None = None,
    title: str | None = None,
):
    """Per-bin accuracy (bars) against mean confidence, diagonal = perfect calibration.

    Give either ``probs_N_C`` and ``labels_N`` or a precomputed ``curve``. The ECE
    is shown in the legend. Returns the Axes.
    """
    if curve is None:
        if probs_N_C is None or labels_N is None:
            raise ValueError("give probs_N_C and labels_N, or curve=")
        curve = metrics.reliability_curve(probs_N_C, labels_N, n_bins)
    elif not isinstance(curve, metrics.ReliabilityCurve):
        raise ValueError(f"curve must be a metrics.ReliabilityCurve; got {type(curve).__name__}")
    ax = new_axes(ax, figsize=(4.5, 4.5))
    e = curve.edges_B1
    width = np.diff(e)
    acc = np.nan_to_num(curve.accuracy_B, nan=0.0)
    text = f"ECE = {curve.ece:.4f}" if label is None else f"{label} (ECE = {curve.ece:.4f})"
    ax.bar(e[:-1], acc, width=width, align="edge", edgecolor="k", alpha=0.7, label=text)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return ax


def styled_table(
    df: pd.DataFrame,
    *,
    formats: Mapping[str, str] | str | None = None,
    precision: int = 4,
    caption: str | None = None,
    highlight_max: list[str] | None = None,
    highlight_min: list[str] | None = None,
):
    """A pandas Styler with number formats (``formats``: column -> format string, or one
    format for all numeric columns); falls back to a rounded DataFrame if styling fails
    (e.g. jinja2 missing)."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame; got {type(df).__name__}")
    for cols in (highlight_max, highlight_min):
        bad = [c for c in (cols or []) if c not in df.columns]
        if bad:
            raise ValueError(f"unknown column(s) {bad}; have {list(df.columns)}")
    if isinstance(formats, Mapping):
        bad = [c for c in formats if c not in df.columns]
        if bad:
            raise ValueError(f"formats names unknown column(s) {bad}; have {list(df.columns)}")
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    if formats is None:
        fmt = {c: f"{{:.{precision}f}}" for c in numeric if pd.api.types.is_float_dtype(df[c])}
    elif isinstance(formats, str):
        fmt = {c: formats for c in numeric}
    else:
        fmt = dict(formats)
    try:
        styler = df.style.format(fmt, na_rep="–")
        if caption:
            styler = styler.set_caption(caption)
        if highlight_max:
            styler = styler.highlight_max(subset=highlight_max, props="font-weight: bold")
        if highlight_min:
            styler = styler.highlight_min(subset=highlight_min, props="font-weight: bold")
        styler.to_html()  # fail here, not at display time
        return styler
    except ImportError:
        return df.round(precision)


def _panel_grid(n: int, ncols, panel_size: tuple[float, float], **subplots):
    """A Figure of ``n`` panels in rows of ``ncols`` (at most ``n``), each ``panel_size`` inches, and its
    axes array (rows x columns; ``subplots``: more keywords of ``Figure.subplots``)."""
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int; got {ncols!r}")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **subplots)


def _finish_grid(fig, axes, n: int, title: str | None):
    """``fig`` without the axes past the ``n`` panels, with ``title`` above (if any)."""
    for ax in axes.flat[n:]:
        fig.delaxes(ax)
    if title:
        fig.suptitle(title)
    return fig


def image_grid(images_N_H_W, labels=None, *, ncols: int = 8, cmap: str = "gray", title: str | None = None):
    """Greyscale images (N, H, W) or (N, 1, H, W) in a grid, with optional per-image labels.

    Returns the Figure (N image axes; unused cells are hidden).
    """
    x = images_N_H_W.detach().cpu().numpy() if hasattr(images_N_H_W, "detach") else np.asarray(images_N_H_W)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(f"images must have shape (N, H, W) or (N, 1, H, W) with N >= 1; got {np.shape(images_N_H_W)}")
    n = x.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} images")
    fig, axes = _panel_grid(n, ncols, (1.3, 1.45))
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(x[i], cmap=cmap)
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize="small")
    return _finish_grid(fig, axes, n, title)


def histograms(
    samples,
    *,
    bins: int | np.ndarray = 30,
    ncols: int = 3,
    xlabel: str = "ratio",
    reference_lines: Mapping[str, float] | None = None,
    sharex: bool = False,
    title: str | None = None,
):
    """One histogram panel per named sample: ``samples`` = {name: values} (or one array).

    ``reference_lines``: {label: x} drawn as vertical dashed lines in every panel
    (e.g. {"0.97 (paper's bound)": 0.97}). Returns the Figure (one axes per sample).
    """
    if not isinstance(samples, Mapping):
        samples = {"": samples}
    if len(samples) == 0:
        raise ValueError("samples must not be empty")
    data = {}
    for name, values in samples.items():
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ValueError(f"samples[{name!r}] must be a non-empty finite array")
        data[str(name)] = v
    n = len(data)
    fig, axes = _panel_grid(n, ncols, (3.6, 2.7), sharex=sharex)
    for ax, (name, v) in zip(axes.flat, data.items()):
        lo, hi = float(v.min()), float(v.max())
        b = bins
        if isinstance(bins, int) and hi - lo < 1e-12:  # a constant sample: one visible bin around it
            half = 5e-4 * max(1.0, abs(lo))
            b = np.array([lo - half, hi + half])
        ax.hist(v, bins=b, color="C0", alpha=0.8)
        for j, (lab, x0) in enumerate((reference_lines or {}).items()):
            ax.axvline(x0, ls="--", color=f"C{j + 1}", lw=1, label=lab)
        if reference_lines:
            ax.legend(fontsize="x-small")
        ax.set_title(name, fontsize="small")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
    return _finish_grid(fig, axes, n, title)


def class_balance_heatmap(
    fractions, *, reference_C=None, class_names=None, ax=None, title: str | None = None, annotate: bool = True
):
    """Share of each class in each method's picks: one row per method, one column per class.

    ``fractions``: ``{method: fractions_C}`` (each summing to 1). The colour is the share
    minus ``reference_C`` (uniform unless given; e.g. the pool's class fractions) on a
    diverging scale, so over-picked classes are red and under-picked ones blue; cells are
    annotated with the share in %. Returns the Axes (its image is ``ax.images[0]``).
    """
    if not isinstance(fractions, Mapping) or len(fractions) == 0:
        raise ValueError("fractions must be a non-empty dict {method: fractions_C}")
    rows = {}
    for name, f in fractions.items():
        f_C = np.asarray(f, dtype=np.float64)
        if f_C.ndim != 1 or f_C.size < 2 or not np.all(np.isfinite(f_C)) or f_C.min() < 0 or abs(f_C.sum() - 1) > 1e-6:
            raise ValueError(f"fractions[{name!r}] must be >= 2 non-negative fractions summing to 1; got {f!r}")
        rows[str(name)] = f_C
    C = next(iter(rows.values())).size
    if any(f.size != C for f in rows.values()):
        raise ValueError(f"every method needs the same number of classes; got {[f.size for f in rows.values()]}")
    r_C = np.full(C, 1.0 / C) if reference_C is None else np.asarray(reference_C, dtype=np.float64)
    if r_C.shape != (C,):
        raise ValueError(f"reference_C must have {C} entries; got shape {r_C.shape}")
    names = [str(c) for c in (range(C) if class_names is None else class_names)]
    if len(names) != C:
        raise ValueError(f"class_names must have {C} entries; got {len(names)}")
    f_M_C = np.stack(list(rows.values()))
    diff = f_M_C - r_C
    lim = max(float(np.abs(diff).max()), 1e-3)
    ax = new_axes(ax, figsize=(0.6 * C + 2.5, 0.45 * len(rows) + 1.4))
    im = ax.imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(C), names)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xlabel("class")
    if annotate:
        for (m, c), v in np.ndenumerate(f_M_C):
            ax.text(c, m, f"{100 * v:.0f}", ha="center", va="center", fontsize="x-small")
    ax.figure.colorbar(im, ax=ax, label="share − reference", shrink=0.9)
    if title:
        ax.set_title(title)
    return ax
