"""Is method A better than method B here? The report's one decision rule.

Every finding of the report that compares two methods goes through :func:`paired`
(or its wrappers :func:`compare_curves` and :func:`compare_crossings`); no notebook
has a rule of its own.

Design. Seeds are the independent units: a run's whole learning curve shares its
seed (initial set, initialisation, split), so each method is reduced to one number
per seed (its AUBC, its final accuracy, the acquisitions it needs to reach a
threshold, a test MSE) and the two methods are paired by seed. With the paired
differences ``d_S = a_S - b_S``:

* **effect** -- the mean of ``d_S`` (metric units);
* **95 % CI** -- the t interval ``mean ± t_{0.975, S-1} · sd / √S``;
* **p** -- the exact two-sided sign-flip (permutation) p-value over the ``2^S``
  sign patterns: no normality assumption; its smallest attainable value is
  ``2 / 2^S`` (0.25 for 3 seeds, 0.0078 for 8);
* **MDE** -- the minimal detectable difference at this seed count: the true mean
  difference a paired t-test at level 0.05 detects with 80 % power,
  ``(t_{0.975, S-1} + t_{0.80, S-1}) · sd / √S``; infinite when even a perfect
  sign pattern cannot reach ``p < 0.05`` (fewer than 6 seeds).

THE RULE (declared before any run, written once here, :data:`ALPHA` = 0.05). For a
claim "A is better than B" (``higher_is_better`` says what better means):

* **supported** -- the 95 % CI lies entirely on A's better side of 0 *and* the
  exact sign-flip p < 0.05;
* **contradicted** -- the 95 % CI lies entirely on B's better side *and* p < 0.05;
* **not resolved at this scale** -- anything else (the effect is within what these
  seeds can tell apart; the MDE says how large it would have to be).

Requiring both the interval and the permutation test makes the verdict robust to
the last-bit differences between machines: a verdict changes only when an effect
sits at the edge of both. With fewer than 6 seeds no comparison can be resolved,
whatever the numbers -- which is the honest answer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

from . import metrics, stats

__all__ = [
    "ALPHA",
    "POWER",
    "VERDICTS",
    "SUPPORTED",
    "CONTRADICTED",
    "NOT_RESOLVED",
    "Comparison",
    "paired",
    "per_seed",
    "compare_curves",
    "compare_crossings",
    "compare_each",
    "comparison_table",
    "sign_flip_p",
    "min_seeds",
    "verdict_tally",
    "ClaimComparisons",
    "compare_with_lmm",
]

#: significance level of the rule (two-sided), fixed before any run
ALPHA: float = 0.05
#: power at which the minimal detectable difference is stated
POWER: float = 0.80
SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOT_RESOLVED = "not resolved at this scale"
#: the three verdicts, in this order everywhere
VERDICTS: tuple[str, str, str] = (SUPPORTED, CONTRADICTED, NOT_RESOLVED)
#: exact enumeration of the 2^S sign patterns up to this many seeds (2^20 = 1e6 patterns)
_MAX_EXACT_SEEDS = 20


def min_seeds(alpha: float = ALPHA) -> int:
    """The fewest seeds whose best sign pattern reaches ``p < alpha`` (6 for 0.05)."""
    return int(math.floor(math.log2(2.0 / alpha))) + 1


def sign_flip_p(d_S: np.ndarray) -> float:
    """Exact two-sided sign-flip p-value of the mean of ``d_S`` (shape ``(S,)``).

    The share of the ``2^S`` sign patterns whose |mean| is at least the observed one
    (ties included, with a relative tolerance of 1e-12). 1.0 when every difference is 0.
    """
    d_S = np.asarray(d_S, dtype=np.float64)
    S = d_S.shape[0]
    if S > _MAX_EXACT_SEEDS:
        raise ValueError(f"exact sign-flip enumeration is limited to {_MAX_EXACT_SEEDS} seeds; got {S}")
    observed = abs(float(d_S.mean()))
    if observed == 0.0:
        return 1.0
    signs_P_S = np.array(list(itertools.product((1.0, -1.0), repeat=S)))
    stats_P = np.abs(signs_P_S @ d_S) / S
    return float(np.mean(stats_P >= observed * (1.0 - 1e-12)))


@dataclass(frozen=True)
class Comparison:
    """One paired comparison of method ``a`` against method ``b`` over seeds.

    ``differences_S = a_S - b_S`` in metric units (raw, whatever the direction of
    "better"); ``effect``, ``ci_low``, ``ci_high`` and ``mde`` are in the same units;
    ``verdict`` is one of :data:`VERDICTS` for the claim "a is better than b".
    """

    a: str
    b: str
    metric: str
    seeds: tuple
    differences_S: np.ndarray
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    mde: float
    verdict: str
    higher_is_better: bool = True
    n_censored: int = 0

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def n_a_better(self) -> int:
        """Seeds in which ``a`` is strictly better than ``b``."""
        better = self.differences_S > 0 if self.higher_is_better else self.differences_S < 0
        return int(np.sum(better))

    def interval(self, digits: int = 4) -> str:
        """``"+0.0123 [95 % CI −0.0031, +0.0277]"``."""
        f = f"{{:+.{digits}f}}"
        lo, eff, hi = (round(v, digits) + 0.0 for v in (self.ci_low, self.effect, self.ci_high))  # no "-0.0000"
        return f"{f.format(eff)} [95 % CI {f.format(lo)}, {f.format(hi)}]"

    def sentence(self, digits: int = 4) -> str:
        """The comparison as one clause: effect, CI, seeds, p, MDE and verdict."""
        mde = "∞ (too few seeds)" if not np.isfinite(self.mde) else f"{self.mde:.{digits}f}"
        cens = f", {self.n_censored} censored" if self.n_censored else ""
        return (
            f"{self.a} − {self.b} {self.metric} {self.interval(digits)}, {self.n_seeds} seeds{cens} "
            f"({self.a} better in {self.n_a_better}), sign-flip p = {self.p_value:.3g}, "
            f"MDE {mde}: **{self.verdict}**"
        )

    def short(self, digits: int = 4) -> str:
        """``"vs B +0.0123 [95 % CI ...], p = 0.008: **supported**"`` (for a list of comparisons of one A)."""
        return f"vs {self.b} {self.interval(digits)}, p = {self.p_value:.3g}: **{self.verdict}**"

    def as_row(self) -> dict:
        return {
            "A": self.a,
            "B": self.b,
            "metric": self.metric,
            "A − B": self.effect,
            "CI low": self.ci_low,
            "CI high": self.ci_high,
            "seeds": self.n_seeds,
            "A better in": self.n_a_better,
            "sign-flip p": self.p_value,
            "MDE": self.mde,
            "verdict": self.verdict,
        }


def _decide(effect: float, lo: float, hi: float, p: float, higher_is_better: bool, alpha: float) -> str:
    if not p < alpha:
        return NOT_RESOLVED
    if higher_is_better:
        a_better, b_better = lo > 0, hi < 0
    else:
        a_better, b_better = hi < 0, lo > 0
    return SUPPORTED if a_better else CONTRADICTED if b_better else NOT_RESOLVED


def paired(
    values_a_S,
    values_b_S,
    *,
    a: str = "A",
    b: str = "B",
    metric: str = "metric",
    seeds=None,
    higher_is_better: bool = True,
    censor_at: float | None = None,
    alpha: float = ALPHA,
) -> Comparison:
    """The rule applied to per-seed values of two methods, paired by position (or by ``seeds``).

    values_a_S, values_b_S: shape ``(S,)`` finite numbers, one per seed, in the same seed order.
    censor_at: for "not reached" outcomes (NaN, e.g. a threshold never crossed): the value to
        count them as (e.g. one step past the last budget); without it a NaN is an error.
    Returns a :class:`Comparison`. Raises ``ValueError`` for shapes that differ, fewer than 2
    seeds, or NaN/inf without ``censor_at``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    a_S = np.asarray(values_a_S, dtype=np.float64).reshape(-1)
    b_S = np.asarray(values_b_S, dtype=np.float64).reshape(-1)
    if a_S.shape != b_S.shape:
        raise ValueError(
            f"{a!r} has {a_S.size} per-seed values, {b!r} has {b_S.size}: a paired comparison needs "
            "one value per seed for both"
        )
    S = a_S.size
    if S < 2:
        raise ValueError(f"a paired comparison needs at least 2 seeds; got {S}")
    seeds = tuple(range(S)) if seeds is None else tuple(seeds)
    if len(seeds) != S:
        raise ValueError(f"seeds has {len(seeds)} labels for {S} values")
    bad = ~np.isfinite(a_S) | ~np.isfinite(b_S)
    n_censored = int(np.sum(~np.isfinite(a_S)) + np.sum(~np.isfinite(b_S)))
    if bad.any():
        if censor_at is None:
            which = [seeds[i] for i in np.flatnonzero(bad)]
            raise ValueError(
                f"{metric} of {a!r} vs {b!r} is not finite for seed(s) {which}; pass censor_at= to "
                "count 'not reached' outcomes as a value, or drop those seeds explicitly"
            )
        if np.isinf(a_S).any() or np.isinf(b_S).any():
            raise ValueError(f"{metric} holds ±inf; only NaN ('not reached') can be censored")
        a_S = np.where(np.isnan(a_S), float(censor_at), a_S)
        b_S = np.where(np.isnan(b_S), float(censor_at), b_S)
    d_S = a_S - b_S
    effect = float(d_S.mean())
    sd = float(d_S.std(ddof=1))
    se = sd / math.sqrt(S)
    t_crit = float(_sps.t.ppf(1.0 - alpha / 2.0, df=S - 1))
    lo, hi = effect - t_crit * se, effect + t_crit * se
    p = sign_flip_p(d_S)
    if 2.0 / 2.0**S >= alpha:
        mde = math.inf
    else:
        mde = (t_crit + float(_sps.t.ppf(POWER, df=S - 1))) * se
    return Comparison(
        a=str(a),
        b=str(b),
        metric=metric,
        seeds=seeds,
        differences_S=d_S,
        effect=effect,
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=p,
        mde=float(mde),
        verdict=_decide(effect, lo, hi, p, higher_is_better, alpha),
        higher_is_better=bool(higher_is_better),
        n_censored=n_censored,
    )


_SUMMARIES = ("aubc", "tp", "final", "mean", "max")


def per_seed(
    results: pd.DataFrame, method: str, *, metric: str = "accuracy", summary: str = "aubc", x: str = "step", upto=None
) -> pd.Series:
    """One number per seed for ``method`` from long-format results (``loop.load_results``).

    summary: ``"aubc"`` (the MC-dropout-entropy paper's area under the curve), ``"tp"`` (its TP
    score, :func:`metrics.tp`; curves of at least 2 points), ``"final"`` (last
    point), ``"mean"`` or ``"max"`` of the curve; ``upto``: keep points with ``x <= upto``.
    Returns a Series indexed by seed (sorted). Refuses a method that is absent, seeds whose
    curves cover different points, and duplicated points.
    """
    if summary not in _SUMMARIES:
        raise ValueError(f"summary must be one of {_SUMMARIES}; got {summary!r}")
    for col in ("method", "seed", x, metric):
        if col not in results.columns:
            raise ValueError(f"results lack column {col!r}; have {list(results.columns)}")
    g = results[results["method"].astype(str) == str(method)]
    if g.empty:
        raise ValueError(
            f"method {method!r} is not in the results; present: {sorted(map(str, results['method'].unique()))}"
        )
    if upto is not None:
        g = g[g[x] <= upto]
    if g.duplicated(["seed", x]).any():
        raise ValueError(f"{method!r} has several rows for one (seed, {x})")
    points = g.groupby("seed")[x].apply(lambda s: tuple(sorted(s)))
    if points.nunique() != 1:
        raise ValueError(
            f"the seeds of {method!r} cover different {x} values (a run stopped early?): "
            + "; ".join(f"seed {s}: {len(v)} points" for s, v in points.items())
        )
    out = {}
    for s, c in g.sort_values(x).groupby("seed"):
        y = c[metric].to_numpy(np.float64)
        out[s] = (
            (metrics.aubc(y) if y.size >= 2 else float(y[0]))
            if summary == "aubc"
            else metrics.tp(y)
            if summary == "tp"
            else float(y[-1])
            if summary == "final"
            else float(y.mean())
            if summary == "mean"
            else float(y.max())
        )
    return pd.Series(out, name=str(method)).sort_index()


def compare_curves(
    results: pd.DataFrame,
    a: str,
    b: str,
    *,
    metric: str = "accuracy",
    summary: str = "aubc",
    x: str = "step",
    upto=None,
    higher_is_better: bool = True,
) -> Comparison:
    """:func:`paired` on :func:`per_seed` summaries of two methods' curves (paired by seed label)."""
    va, vb = (per_seed(results, m, metric=metric, summary=summary, x=x, upto=upto) for m in (a, b))
    if list(va.index) != list(vb.index):
        raise ValueError(
            f"{a!r} ran seeds {list(va.index)}, {b!r} ran {list(vb.index)}: a paired comparison needs the same seeds"
        )
    label = summary.upper() if summary in ("aubc", "tp") else summary
    return paired(
        va.to_numpy(),
        vb.to_numpy(),
        a=a,
        b=b,
        metric=f"{label} {metric}",
        seeds=tuple(va.index),
        higher_is_better=higher_is_better,
    )


def compare_crossings(
    results: pd.DataFrame, a: str, b: str, threshold: float, *, metric: str = "accuracy", x: str = "acquired_total"
) -> Comparison:
    """Acquisitions (``x``) each seed's curve needs to reach ``threshold``; fewer is better.

    A seed that never reaches it is censored at one step past its last point (counted as
    reaching it right after the end: the comparison is then conservative for that method).
    """
    vals, seeds = {}, None
    last = float(results[x].max())
    steps = np.diff(np.sort(results[x].unique()))
    past_end = last + (float(steps.min()) if steps.size else 1.0)
    for m in (a, b):
        g = results[results["method"].astype(str) == str(m)]
        if g.empty:
            raise ValueError(f"method {m!r} is not in the results")
        wide = g.pivot_table(index="seed", columns=x, values=metric)
        if wide.isna().any().any():
            raise ValueError(f"the seeds of {m!r} cover different {x} values (a run stopped early?)")
        cross = metrics.threshold_crossings(wide.columns.to_numpy(), wide.to_numpy(np.float64), [threshold])
        vals[m] = cross.per_seed_S_K[:, 0]
        if seeds is not None and seeds != tuple(wide.index):
            raise ValueError(f"{a!r} and {b!r} ran different seeds")
        seeds = tuple(wide.index)
    return paired(
        vals[a],
        vals[b],
        a=a,
        b=b,
        metric=f"acquisitions to {threshold:g}",
        seeds=seeds,
        higher_is_better=False,
        censor_at=past_end,
    )


def compare_each(
    results: pd.DataFrame,
    a: str,
    others: Sequence[str],
    *,
    summaries: Sequence[str] = ("aubc",),
    metric: str = "accuracy",
    x: str = "step",
    upto=None,
    higher_is_better: bool = True,
) -> list[Comparison]:
    """:func:`compare_curves` of ``a`` against each method of ``others``, for each summary.

    The declared comparisons of one experiment in one call: summary-major order (every method
    for ``summaries[0]``, then every method for ``summaries[1]``, ...). ``others`` must not hold
    ``a``; every other argument is passed on to :func:`compare_curves`.
    """
    others = [str(m) for m in others]
    if str(a) in others:
        raise ValueError(f"{a!r} is among the methods it is compared against: {others}")
    if not others or not summaries:
        raise ValueError("compare_each needs at least one method in others and one summary")
    return [
        compare_curves(results, a, b, metric=metric, summary=s, x=x, upto=upto, higher_is_better=higher_is_better)
        for s in summaries
        for b in others
    ]


def comparison_table(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """One row per comparison (for display): effect, CI, seeds, p, MDE, verdict."""
    return pd.DataFrame([c.as_row() for c in comparisons])


def verdict_tally(comparisons: Sequence[Comparison]) -> str:
    """How the rule came out over ``comparisons`` of one method A against several:
    ``"supported against 1, contradicted against 0, not resolved against 3 of 4 methods"``."""
    if not comparisons:
        raise ValueError("verdict_tally needs at least one comparison")
    count = {v: sum(c.verdict == v for c in comparisons) for v in VERDICTS}
    return (
        f"supported against {count[SUPPORTED]}, contradicted against {count[CONTRADICTED]}, "
        f"not resolved against {count[NOT_RESOLVED]} of {len(comparisons)} methods"
    )


@dataclass(frozen=True)
class ClaimComparisons:
    """Method ``a`` against each of ``others`` by the rule, with DEIMOS's LMM test beside (Appendix C, as coded).

    comparisons: :func:`compare_each`'s list (summary-major); lmm: other method -> its
    :class:`stats.LRTResult` (A minus B, every (seed, step) point an observation, random intercept per
    ``group``), or the reason it could not be fitted; aa: the LMM test's false-positive rate on A/A
    splits of ``aa_method``'s seeds (:func:`stats.lmm_aa_calibration`), or the reason there is none.
    """

    a: str
    others: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    lmm: Mapping[str, stats.LRTResult | str]
    aa: stats.AACalibration | str

    def of(self, summary: str) -> list[Comparison]:
        """The comparisons of one summary (``"aubc"``, ``"final"``, ...), in the order of ``others``."""
        if summary not in _SUMMARIES:
            raise ValueError(f"summary must be one of {_SUMMARIES}; got {summary!r}")
        label = summary.upper() if summary in ("aubc", "tp") else summary
        return [c for c in self.comparisons if c.metric.split(" ")[0] == label]

    def table(self) -> pd.DataFrame:
        """:func:`comparison_table` of every comparison."""
        return comparison_table(self.comparisons)

    def lmm_table(self) -> pd.DataFrame:
        """One row per other method: the LMM effect (A − B, metric units), its p-value and whether both fits
        converged (NaN / False where it was not fitted)."""
        rows = [
            (b, r.effect, r.p_value, r.converged) if isinstance(r, stats.LRTResult) else (b, np.nan, np.nan, False)
            for b, r in self.lmm.items()
        ]
        return pd.DataFrame(
            rows, columns=[f"{self.a} vs", "LMM: effect", "LMM: p (as coded)", "LMM fits converged"]
        ).set_index(f"{self.a} vs")

    def lmm_sentence(self, digits: int = 4) -> str:
        """``"DEIMOS vs Random: effect +0.2018, p = 0.16; ..."`` (non-converged and unfitted fits say so)."""
        parts = []
        for b, r in self.lmm.items():
            if isinstance(r, stats.LRTResult):
                parts.append(
                    f"{self.a} vs {b}: effect {r.effect:+.{digits}g}, p = {r.p_value:.2g}"
                    + ("" if r.converged else " (fits did not converge)")
                )
            else:
                parts.append(f"{self.a} vs {b}: not fitted ({r})")
        return "; ".join(parts)

    def aa_sentence(self) -> str:
        """How often the LMM test called p < alpha on A/A splits, or why it was not measured."""
        if isinstance(self.aa, str):
            return f"no A/A calibration ({self.aa})"
        return (
            f"on A/A runs ({self.aa.method} vs {self.aa.method}, different seeds) the LMM test calls "
            f"p < {self.aa.alpha:g} in {int(np.sum(self.aa.p_values_R < self.aa.alpha))} of "
            f"{self.aa.n_splits} splits"
        )


def compare_with_lmm(
    results: pd.DataFrame, a: str, others: Sequence[str],
    *, summaries: Sequence[str] = ("aubc",), metric: str = "accuracy", x: str = "step", higher_is_better: bool = True,
    group: str = "step", aa_method: str | None = "Random",
) -> ClaimComparisons:  # fmt: skip
    """The declared comparisons of one experiment (:func:`compare_each`: the rule decides) and, beside them,
    the test the DEIMOS paper used: :func:`stats.lmm_lrt` of ``a`` against each method on ``metric``
    (random intercept per ``group``) and its A/A false-positive rate on ``aa_method``'s seeds (``None``: skip).

    An LMM that cannot be fitted (too few steps) or an A/A calibration that cannot be run (fewer than 4
    seeds) is reported by its reason, not raised: the rule's verdicts do not depend on them.
    """
    comparisons = compare_each(
        results, a, others, summaries=summaries, metric=metric, x=x, higher_is_better=higher_is_better
    )
    frame = results.assign(method=results["method"].astype(str))
    lmm: dict[str, stats.LRTResult | str] = {}
    for b in others:
        try:
            lmm[str(b)] = stats.lmm_lrt(frame, str(a), str(b), metric=metric, group=group)
        except ValueError as err:
            lmm[str(b)] = str(err)
    aa: stats.AACalibration | str
    if aa_method is None:
        aa = "not asked for"
    else:
        try:
            aa = stats.lmm_aa_calibration(frame, aa_method, metric=metric, group=group)
        except ValueError as err:
            aa = str(err)
    return ClaimComparisons(
        a=str(a), others=tuple(str(b) for b in others), comparisons=tuple(comparisons), lmm=lmm, aa=aa
    )
