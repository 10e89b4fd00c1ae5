"""Learning-curve and calibration metrics.

Learning curves are 1-D arrays ``values_P`` of a metric (accuracy, MSE, ...) at
``P`` budget points ``budgets_P`` (labelled-set sizes or acquired counts), or
2-D arrays ``curves_S_P`` with one row per seed.

Curve metrics follow the MC-dropout-entropy paper (Kirillov, 2026; code nealkafree/MonteCarloSampling) as it codes them
(docs/REFERENCES.md), with
``a_0 ... a_{n-1}`` the values at the ``n`` budget points:

* AUBC = sum_i (a_i + a_{i+1}) / 2  /  (n - 1): trapezoids of unit width, so a
  curve that is 1 everywhere scores 1, whatever the budget spacing.
* TP (after Reyes, Altalhi & Ventura, Knowledge-Based Systems 145, 2018): for
  every interval, delta = a_{i+1} - a_i and A = (a_i + a_{i+1}) / 2; if delta > 0
  then TPR += delta, PAULC += A, else TNR += delta (<= 0), NAULC += A;
  TP = (PAULC * TPR + NAULC * TNR) / (n - 1).
* "First k steps" windows use the first k + 1 points.

Calibration: ``expected_calibration_error`` / ``reliability_curve`` bin the
top-class confidence into equal-width, right-closed bins ``(e_b, e_{b+1}]``
(Guo et al. 2017): ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)|.
``prediction_quality`` adds the test accuracy, the mean top-class confidence minus the accuracy
(> 0: over-confident) and the negative log-likelihood of the true class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import checks

__all__ = [
    "TPParts",
    "WindowSummary",
    "ReliabilityCurve",
    "aubc",
    "tp",
    "tp_parts",
    "highest",
    "acquisitions_to_threshold",
    "ThresholdCrossings",
    "threshold_crossings",
    "window_summary",
    "mean_std",
    "expected_calibration_error",
    "reliability_curve",
    "PredictionQuality",
    "prediction_quality",
    "ClassBalance",
    "class_balance",
]


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------
def _curve(values, name: str = "values", min_len: int = 2) -> np.ndarray:
    """A finite 1-D float64 curve with at least ``min_len`` points."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D curve (one value per budget point); got shape {arr.shape}")
    if arr.shape[0] < min_len:
        raise ValueError(f"{name} needs at least {min_len} points; got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {arr}")
    return arr


def _curves_2d(curves, name: str = "curves") -> np.ndarray:
    """A finite (S, P) float64 array; a 1-D curve counts as one seed."""
    arr = np.asarray(curves, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n_seeds, n_points) with both >= 1; got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _budgets(budgets, n_points: int) -> np.ndarray:
    arr = np.asarray(budgets)
    if arr.ndim != 1 or arr.shape[0] != n_points:
        raise ValueError(f"budgets must be 1-D with {n_points} entries (one per curve point); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr.astype(np.float64))):
        raise ValueError("budgets must be finite numbers")
    if arr.shape[0] > 1 and not np.all(np.diff(arr.astype(np.float64)) > 0):
        raise ValueError(f"budgets must be strictly increasing; got {arr}")
    return arr


# ---------------------------------------------------------------------------
# learning-curve metrics (the MC-dropout-entropy paper)
# ---------------------------------------------------------------------------
def aubc(values) -> float:
    """Area under the budget curve, trapezoids of unit width, divided by ``n - 1``.

    ``values``: (P,) metric at P >= 2 budget points. A constant curve ``c`` scores ``c``.
    """
    a_P = _curve(values)
    return float(np.sum((a_P[:-1] + a_P[1:]) / 2.0) / (a_P.shape[0] - 1))


@dataclass(frozen=True)
class TPParts:
    """The pieces of the MC-dropout-entropy paper's TP: positive / negative rises and the areas under them."""

    tpr: float  # sum of the positive increments (>= 0)
    tnr: float  # sum of the non-positive increments (<= 0)
    paulc: float  # sum of trapezoid areas over rising intervals
    naulc: float  # sum of trapezoid areas over non-rising intervals
    tp: float  # (paulc * tpr + naulc * tnr) / (n - 1)


def tp_parts(values) -> TPParts:
    """All the intermediate sums of :func:`tp` (the MC-dropout-entropy paper, after Reyes et al. 2018)."""
    a_P = _curve(values)
    delta_I = a_P[1:] - a_P[:-1]
    area_I = (a_P[:-1] + a_P[1:]) / 2.0
    rising_I = delta_I > 0
    tpr = float(np.sum(delta_I[rising_I]))
    tnr = float(np.sum(delta_I[~rising_I]))
    paulc = float(np.sum(area_I[rising_I]))
    naulc = float(np.sum(area_I[~rising_I]))
    value = (paulc * tpr + naulc * tnr) / (a_P.shape[0] - 1)
    return TPParts(tpr=tpr, tnr=tnr, paulc=paulc, naulc=naulc, tp=float(value))


def tp(values) -> float:
    """The MC-dropout-entropy paper's TP score of a curve ``values`` (P >= 2 points); 0 for a constant curve."""
    return tp_parts(values).tp


def highest(values, budgets) -> tuple[float, float | int]:
    """``(max value, budget where it is first reached)`` of a curve."""
    a_P = _curve(values, min_len=1)
    b_P = _budgets(budgets, a_P.shape[0])
    i = int(np.argmax(a_P))
    return float(a_P[i]), b_P[i].item()


def acquisitions_to_threshold(budgets, curves_seed_x_step, threshold: float, *, higher_is_better: bool = True):
    """First budget where the seed-mean curve reaches ``threshold``, else ``None``.

    ``curves_seed_x_step``: (S, P) (or (P,) for one seed). Accuracy-like metrics
    (``higher_is_better=True``) reach it when mean >= threshold; error-like
    metrics (MSE, error rate) when mean <= threshold. This is how DEIMOS Table 1/2
    and Gal et al. count "points needed" (3-seed means).
    """
    c_S_P = _curves_2d(curves_seed_x_step, "curves_seed_x_step")
    b_P = _budgets(budgets, c_S_P.shape[1])
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite; got {threshold}")
    mean_P = c_S_P.mean(axis=0)
    hit_P = mean_P >= threshold if higher_is_better else mean_P <= threshold
    if not np.any(hit_P):
        return None
    return b_P[int(np.argmax(hit_P))].item()


@dataclass(frozen=True)
class ThresholdCrossings:
    """First budgets at which curves reach thresholds (NaN: never within the budgets).

    ``thresholds_K``; ``mean_K``: crossings of the seed-mean curve (DEIMOS Table 2's
    statistic); ``per_seed_S_K``: each seed's own first crossing; ``higher_is_better``.
    """

    thresholds_K: np.ndarray
    mean_K: np.ndarray
    per_seed_S_K: np.ndarray
    higher_is_better: bool

    def spread_K(self) -> np.ndarray:
        """max - min of the seeds' crossings per threshold (NaN when a seed never reaches it)."""
        return self.per_seed_S_K.max(axis=0) - self.per_seed_S_K.min(axis=0)


def _first_crossing_S_K(b_P: np.ndarray, c_S_P: np.ndarray, t_K: np.ndarray, higher_is_better: bool) -> np.ndarray:
    hit_S_K_P = c_S_P[:, None, :] >= t_K[None, :, None] if higher_is_better else c_S_P[:, None, :] <= t_K[None, :, None]
    first_S_K = np.argmax(hit_S_K_P, axis=2)
    return np.where(hit_S_K_P.any(axis=2), b_P.astype(np.float64)[first_S_K], np.nan)


def threshold_crossings(
    budgets, curves_seed_x_step, thresholds, *, higher_is_better: bool = True
) -> ThresholdCrossings:
    """Acquisitions needed to reach each threshold: by the seed-mean curve and by every seed.

    ``budgets``: (P,) strictly increasing (e.g. acquired counts); ``curves_seed_x_step``: (S, P);
    ``thresholds``: (K,). A curve reaches t at its first budget with value >= t
    (``higher_is_better``, accuracy) or <= t (error, MSE). The mean crossing is not the mean
    of the seeds' crossings: a first crossing of a noisy curve moves by several steps between
    seeds, which ``per_seed_S_K`` shows.
    """
    c_S_P = _curves_2d(curves_seed_x_step, "curves_seed_x_step")
    b_P = _budgets(budgets, c_S_P.shape[1])
    t_K = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t_K.ndim != 1 or t_K.size == 0 or not np.all(np.isfinite(t_K)):
        raise ValueError(f"thresholds must be a non-empty 1-D list of finite numbers; got {thresholds!r}")
    if not isinstance(higher_is_better, (bool, np.bool_)):
        raise ValueError(f"higher_is_better must be True (accuracy) or False (error, MSE); got {higher_is_better!r}")
    mean_K = _first_crossing_S_K(b_P, c_S_P.mean(axis=0)[None, :], t_K, bool(higher_is_better))[0]
    per_seed_S_K = _first_crossing_S_K(b_P, c_S_P, t_K, bool(higher_is_better))
    return ThresholdCrossings(
        thresholds_K=t_K, mean_K=mean_K, per_seed_S_K=per_seed_S_K, higher_is_better=bool(higher_is_better)
    )


@dataclass(frozen=True)
class WindowSummary:
    """The MC-dropout-entropy paper's summary of the first ``n_steps`` acquisition steps (``n_steps + 1`` points)."""

    n_steps: int
    max: float
    aubc: float
    tp: float


def window_summary(values, n_steps: int) -> WindowSummary:
    """Max, AUBC and TP over the first ``n_steps + 1`` points of a curve.

    The MC-dropout-entropy paper's Tables 2 and 3 use 10 and 20 steps."""
    a_P = _curve(values)
    n_steps = checks.check_int(n_steps, "n_steps", ge=1)
    if n_steps + 1 > a_P.shape[0]:
        raise ValueError(f"the curve has {a_P.shape[0]} points, fewer than the {n_steps + 1} that {n_steps} steps need")
    w = a_P[: n_steps + 1]
    return WindowSummary(n_steps=int(n_steps), max=float(w.max()), aubc=aubc(w), tp=tp(w))


def mean_std(curves, *, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-point mean and standard deviation across seeds of ``curves`` (S, P).

    ``ddof=1`` (sample std) by default; with a single seed the std is 0.
    Returns ``(mean_P, std_P)``.
    """
    c_S_P = _curves_2d(curves)
    checks.check_choice(ddof, "ddof", (0, 1))
    mean_P = c_S_P.mean(axis=0)
    if c_S_P.shape[0] <= ddof:
        return mean_P, np.zeros_like(mean_P)
    return mean_P, c_S_P.std(axis=0, ddof=ddof)


# ---------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin calibration statistics; bins are ``(edges_B1[b], edges_B1[b + 1]]``.

    ``accuracy_B`` and ``confidence_B`` are NaN for empty bins (``counts_B == 0``).
    """

    edges_B1: np.ndarray
    accuracy_B: np.ndarray
    confidence_B: np.ndarray
    counts_B: np.ndarray
    ece: float


def _probs_labels(probs_N_C, labels_N) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs_N_C, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise ValueError(f"probs_N_C must have shape (N, C) with N >= 1, C >= 2; got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError("probs_N_C must be finite probabilities in [0, 1]")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("every row of probs_N_C must sum to 1 (got probabilities that do not; pass softmax outputs)")
    y = np.asarray(labels_N)
    if y.shape != (p.shape[0],):
        raise ValueError(f"labels_N must have shape ({p.shape[0]},); got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"labels_N must hold integer class indices; got dtype {y.dtype}")
    if np.any(y < 0) or np.any(y >= p.shape[1]):
        raise ValueError(f"labels_N must lie in [0, {p.shape[1]}); got range [{y.min()}, {y.max()}]")
    return p, y.astype(np.int64)


def reliability_curve(probs_N_C, labels_N, n_bins: int = 15) -> ReliabilityCurve:
    """Bin the top-class confidence into ``n_bins`` equal-width bins of [0, 1].

    ``probs_N_C``: predicted probabilities, ``labels_N``: true classes.
    """
    p_N_C, y_N = _probs_labels(probs_N_C, labels_N)
    n_bins = checks.check_int(n_bins, "n_bins", ge=1)
    conf_N = p_N_C.max(axis=1)
    correct_N = (p_N_C.argmax(axis=1) == y_N).astype(np.float64)
    edges_B1 = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins: conf in (e_b, e_{b+1}] -> b (conf = 0 falls into bin 0)
    bin_N = np.searchsorted(edges_B1[1:-1], conf_N, side="left")
    counts_B = np.bincount(bin_N, minlength=n_bins)
    sum_correct_B = np.bincount(bin_N, weights=correct_N, minlength=n_bins)
    sum_conf_B = np.bincount(bin_N, weights=conf_N, minlength=n_bins)
    nonempty_B = counts_B > 0
    accuracy_B = np.full(n_bins, np.nan)
    confidence_B = np.full(n_bins, np.nan)
    accuracy_B[nonempty_B] = sum_correct_B[nonempty_B] / counts_B[nonempty_B]
    confidence_B[nonempty_B] = sum_conf_B[nonempty_B] / counts_B[nonempty_B]
    gap_B = np.abs(accuracy_B[nonempty_B] - confidence_B[nonempty_B])
    ece = float(np.sum(counts_B[nonempty_B] / conf_N.shape[0] * gap_B))
    return ReliabilityCurve(
        edges_B1=edges_B1, accuracy_B=accuracy_B, confidence_B=confidence_B, counts_B=counts_B, ece=ece
    )


def expected_calibration_error(probs_N_C, labels_N, n_bins: int = 15) -> float:
    """ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)| over equal-width confidence bins."""
    return reliability_curve(probs_N_C, labels_N, n_bins).ece


@dataclass(frozen=True)
class PredictionQuality:
    """Test-set quality of class probabilities ``probs_N_C`` against ``labels_N``.

    ``accuracy``: share of argmax predictions that are right; ``ece``: :func:`expected_calibration_error`
    (15 bins); ``overconfidence``: mean top-class confidence minus the accuracy (> 0: over-confident);
    ``nll``: mean of -log p(true class), probabilities clipped at 1e-12.
    """

    accuracy: float
    ece: float
    overconfidence: float
    nll: float


def prediction_quality(probs_N_C, labels_N, *, n_bins: int = 15) -> PredictionQuality:
    """Accuracy, ECE, over-confidence and NLL of ``probs_N_C`` (N, C) on integer ``labels_N`` (N,).

    Accuracy, confidence and NLL are computed in the dtype of ``probs_N_C`` (float32 softmax outputs
    stay float32); the ECE in float64.
    """
    _, y_N = _probs_labels(probs_N_C, labels_N)  # validation only
    p_N_C = np.asarray(probs_N_C)
    correct_N = p_N_C.argmax(1) == y_N
    return PredictionQuality(
        accuracy=float(correct_N.mean()),
        ece=expected_calibration_error(p_N_C, y_N, n_bins),
        overconfidence=float(p_N_C.max(1).mean() - correct_N.mean()),
        nll=float(-np.log(np.clip(p_N_C[np.arange(len(y_N)), y_N], 1e-12, None)).mean()),
    )


# ---------------------------------------------------------------------------
# class balance of acquired labels
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassBalance:
    """Class make-up of a set of labels (e.g. a strategy's picks).

    ``counts_C`` (int64), ``fractions_C`` (sum 1), ``reference_C`` (the fractions compared
    against: uniform unless given), ``total_variation`` = 1/2 sum_c |f_c - r_c| in [0, 1]
    (the share of picks that would have to change class to match the reference),
    ``normalised_entropy`` = H(f) / log C in [0, 1] (1 = balanced), ``min_fraction``.
    """

    counts_C: np.ndarray
    fractions_C: np.ndarray
    reference_C: np.ndarray
    total_variation: float
    normalised_entropy: float
    min_fraction: float


def class_balance(labels_N, n_classes: int, *, reference_C=None) -> ClassBalance:
    """Class counts of integer ``labels_N`` in ``range(n_classes)`` and their imbalance.

    ``reference_C``: fractions to compare with (e.g. the pool's class fractions); uniform
    by default.
    """
    n_classes = checks.check_int(n_classes, "n_classes", ge=2)
    y = np.asarray(labels_N)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels_N must be a non-empty 1-D array; got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
            raise ValueError(f"labels_N must hold integer class labels; got dtype {y.dtype}")
        y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels_N must lie in [0, {n_classes - 1}]; got values in [{y.min()}, {y.max()}]")
    if reference_C is None:
        r_C = np.full(n_classes, 1.0 / n_classes)
    else:
        r_C = np.asarray(reference_C, dtype=np.float64)
        if r_C.shape != (n_classes,) or not np.all(np.isfinite(r_C)) or r_C.min() < 0 or abs(r_C.sum() - 1) > 1e-6:
            raise ValueError(
                f"reference_C must be {n_classes} non-negative fractions summing to 1; got {reference_C!r}"
            )
    counts_C = np.bincount(y, minlength=n_classes).astype(np.int64)
    f_C = counts_C / counts_C.sum()
    nz = f_C[f_C > 0]
    return ClassBalance(
        counts_C=counts_C,
        fractions_C=f_C,
        reference_C=r_C,
        total_variation=float(0.5 * np.abs(f_C - r_C).sum()),
        normalised_entropy=float(-(nz * np.log(nz)).sum() / np.log(n_classes)),
        min_fraction=float(f_C.min()),
    )
