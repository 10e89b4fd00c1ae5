"""Is one active-learning method better than another? Two tests on long-format results.

Input: a pandas DataFrame in long format, one row per (method, seed, iteration)
with columns ``method``, ``seed``, ``iteration`` (or a budget column) and the
metric (names configurable).

* :func:`lmm_lrt` -- DEIMOS Appendix C as its authors coded it in R (lme4):
  ``metric ~ method + (1 | iteration)`` against ``metric ~ (1 | iteration)``,
  both fitted by maximum likelihood (``REML = FALSE``), likelihood-ratio test
  with 1 degree of freedom, one pair of methods at a time. Here with
  statsmodels ``MixedLM`` (random intercept per iteration, ``reml=False``).

  It is anti-conservative. Given the iteration effect, it treats every
  (iteration, seed) point as independent, but the points along one learning
  curve share the seed, the initial labelled set, the growing labelled set and
  hence most of the trained model: consecutive points are strongly
  autocorrelated. A difference that is really "seed 2 of method A happened to
  start well" is counted once per iteration, so the effective sample size is
  close to the number of seeds (3 in DEIMOS), not the number of points
  (seeds x iterations, hundreds), and p-values such as 5e-133 owe far more to
  that pseudo-replication than to evidence.

* :func:`paired_seed_test` -- the sounder variant: one number per seed and
  method (the AUBC of that seed's curve, or its mean), the per-seed
  differences A - B (paired by seed, i.e. by initial set), and
  (a) a one-sample t-test on the differences (df = S - 1), and
  (b) an exact sign-flip permutation test over the 2^S sign patterns (no
  normality assumption; Monte Carlo with ``random_state`` when S > 20).
  With S seeds the smallest attainable two-sided permutation p-value is
  2 / 2^S (0.25 for 3 seeds): three seeds cannot, on their own, establish a
  difference at the 5 % level -- which is the honest answer.

Tests the notebooks use for single comparisons (each checked against scipy / statsmodels or an
exact small case in ``tests/test_stats.py``):

* :func:`mcnemar_exact` -- two classifiers on the same test items: the exact (binomial) McNemar
  test on the items exactly one of them gets right;
* :func:`z_test_against_published` -- our mean of N values against a published mean of M values
  from the same distribution, both spreading like ours (two-sample z with the pooled variance
  ``sd^2 / N + sd^2 / M``);
* :func:`published_minimum_test` -- is a published minimum of M values unusually placed among our
  N values? Exact permutation test on the count of ours below it;
* :func:`bonferroni` -- the family-wise 5 % threshold over every test made.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.tools.sm_exceptions import ModelWarning  # convergence, singular, Hessian

from . import checks, metrics

__all__ = [
    "AACalibration",
    "LRTResult",
    "PairedSeedTest",
    "lmm_aa_calibration",
    "lmm_lrt",
    "paired_seed_test",
    "per_seed_summary",
    "McNemarTest",
    "mcnemar_exact",
    "ZTest",
    "z_test_against_published",
    "MinimumTest",
    "published_minimum_test",
    "Bonferroni",
    "bonferroni",
]


def _pair_frame(df, method_a, method_b, *, metric, method, group) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame in long format; got {type(df).__name__}")
    missing = [c for c in (method, group, metric) if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; has {list(df.columns)}")
    if method_a == method_b:
        raise ValueError(f"method_a and method_b must differ; both are {method_a!r}")
    present = set(df[method].unique())
    for m in (method_a, method_b):
        if m not in present:
            raise ValueError(f"method {m!r} not in df[{method!r}]; present: {sorted(map(str, present))}")
    sub = df.loc[df[method].isin([method_a, method_b])].copy()
    y = pd.to_numeric(sub[metric], errors="coerce")
    if not np.all(np.isfinite(y.to_numpy(dtype=np.float64))):
        raise ValueError(f"column {metric!r} must be finite numbers for both methods")
    sub[metric] = y.astype(np.float64)
    return sub


@dataclass(frozen=True)
class LRTResult:
    """Likelihood-ratio test of the method fixed effect (DEIMOS Appendix C)."""

    method_a: str
    method_b: str
    lr_statistic: float  # 2 (llf_alternative - llf_null), clipped at 0
    df: int  # 1
    p_value: float  # chi^2_1 upper tail
    llf_null: float  # max log-likelihood of metric ~ (1 | iteration)
    llf_alternative: float  # max log-likelihood of metric ~ method + (1 | iteration)
    effect: float  # fixed effect of method_a relative to method_b (metric units)
    effect_se: float
    n_obs: int
    n_groups: int
    converged: bool  # both fits converged without statsmodels convergence warnings
    fit_warnings: tuple[str, ...]  # the warnings the fits raised (boundary, non-convergence)


#: optimisers tried in turn; statsmodels' default (lbfgs) sometimes stops at a singular
#: random-effect covariance with llf = +inf, which the others then fix.
OPTIMIZERS: tuple[str, ...] = ("lbfgs", "bfgs", "powell", "nm")


def _fit_mixedlm(formula: str, data: pd.DataFrame, groups: np.ndarray):
    """ML fit of a random-intercept model; returns (fit, converged, warning messages).

    Tries :data:`OPTIMIZERS` in turn and keeps the first fit whose log-likelihood is
    finite, that statsmodels reports as converged, and that raised no warning other
    than "the MLE may be on the boundary" (a legitimate zero variance component).
    Only statsmodels model warnings and RuntimeWarnings count; other warnings raised
    inside the fit (e.g. library deprecations) are dropped.
    If none qualifies, the fit with the largest finite log-likelihood is returned
    with ``converged=False``. Warnings are recorded, not re-emitted.
    """
    candidates: list[tuple[Any, bool, tuple[str, ...]]] = []
    for name in OPTIMIZERS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fit = smf.mixedlm(formula, data, groups=groups).fit(reml=False, method=[name])
            except (np.linalg.LinAlgError, ValueError) as exc:  # a failed optimiser: try the next one
                candidates.append((None, False, (f"{name}: {type(exc).__name__}: {exc}",)))
                continue
        caught = [w for w in caught if issubclass(w.category, (ModelWarning, RuntimeWarning))]
        messages = tuple(f"{name}: {w.category.__name__}: {w.message}" for w in caught)
        serious = [w for w in caught if "boundary" not in str(w.message)]
        finite = bool(np.isfinite(fit.llf))
        ok = finite and bool(getattr(fit, "converged", True)) and not serious
        if ok:
            return fit, True, messages
        candidates.append((fit if finite else None, False, messages))
    finite_fits = [c for c in candidates if c[0] is not None]
    all_messages = tuple(m for c in candidates for m in c[2])
    if not finite_fits:
        raise ValueError(f"MixedLM failed with every optimiser {OPTIMIZERS}: {all_messages}")
    best = max(finite_fits, key=lambda c: c[0].llf)
    return best[0], False, all_messages


def lmm_lrt(
    df: pd.DataFrame, method_a: str, method_b: str,
    *, metric: str = "metric", method: str = "method", group: str = "iteration",
) -> LRTResult:  # fmt: skip
    """DEIMOS's LMM likelihood-ratio test of ``method_a`` against ``method_b``.

    Fits ``metric ~ is_a + (1 | group)`` and ``metric ~ 1 + (1 | group)`` by
    maximum likelihood and returns LR = 2 (llf_alt - llf_null) with its chi^2_1
    p-value. ``effect`` is the ``is_a`` coefficient (A minus B). Convergence
    problems are reported in ``converged`` / ``fit_warnings``, never hidden.
    Anti-conservative: see the module docstring; prefer :func:`paired_seed_test`.
    """
    sub = _pair_frame(df, method_a, method_b, metric=metric, method=method, group=group)
    data = pd.DataFrame({"y": sub[metric].to_numpy(np.float64), "is_a": (sub[method] == method_a).to_numpy(np.float64)})
    groups = sub[group].to_numpy()
    n_groups = int(pd.Series(groups).nunique())
    if n_groups < 2:
        raise ValueError(f"need at least 2 distinct values of {group!r} for a random intercept; got {n_groups}")
    if len(data) < n_groups + 3:
        raise ValueError(f"too few observations ({len(data)}) for {n_groups} groups")
    fit_alt, ok_alt, w_alt = _fit_mixedlm("y ~ is_a", data, groups)
    fit_null, ok_null, w_null = _fit_mixedlm("y ~ 1", data, groups)
    llf_alt, llf_null = float(fit_alt.llf), float(fit_null.llf)
    lr = max(0.0, 2.0 * (llf_alt - llf_null))
    return LRTResult(
        method_a=str(method_a),
        method_b=str(method_b),
        lr_statistic=lr,
        df=1,
        p_value=float(sps.chi2.sf(lr, df=1)),
        llf_null=llf_null,
        llf_alternative=llf_alt,
        effect=float(fit_alt.fe_params["is_a"]),
        effect_se=float(fit_alt.bse_fe["is_a"]),
        n_obs=int(len(data)),
        n_groups=n_groups,
        converged=ok_alt and ok_null,
        fit_warnings=w_alt + w_null,
    )


def per_seed_summary(
    df: pd.DataFrame,
    *,
    metric: str = "metric",
    method: str = "method",
    seed: str = "seed",
    iteration: str = "iteration",
    summary: str = "aubc",
) -> pd.DataFrame:
    """One number per (method, seed): the AUBC (the MC-dropout-entropy paper's formula) or mean of its curve.

    Returns a DataFrame indexed by seed with one column per method. Every
    (method, seed) curve must cover the same iterations.
    """
    checks.check_choice(summary, "summary", ("aubc", "mean"))
    missing = [c for c in (method, seed, iteration, metric) if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; has {list(df.columns)}")
    if df.duplicated([method, seed, iteration]).any():
        raise ValueError(f"df has several rows for one ({method}, {seed}, {iteration})")
    iters = df.groupby([method, seed])[iteration].apply(lambda s: tuple(sorted(s)))
    if iters.nunique() != 1:
        raise ValueError("every (method, seed) curve must cover the same iterations")
    rows = {}
    for (m, s), g in df.sort_values(iteration).groupby([method, seed], sort=True):
        y = g[metric].to_numpy(np.float64)
        if summary == "aubc":
            rows[(m, s)] = metrics.aubc(y) if y.size >= 2 else float(y[0])
        else:
            rows[(m, s)] = float(np.mean(y))
    return pd.Series(rows).unstack(0)


@dataclass(frozen=True)
class PairedSeedTest:
    """Seed-level comparison of two methods (differences A - B, one per seed)."""

    method_a: str
    method_b: str
    summary: str  # "aubc" or "mean"
    differences_S: np.ndarray
    mean_difference: float
    t_statistic: float  # NaN when S < 2 or all differences are equal
    p_value_t: float  # two-sided one-sample t-test, df = S - 1
    p_value_permutation: float  # two-sided sign-flip test on the mean difference
    n_permutations: int  # 2^S when exact
    exact: bool
    min_attainable_p: float  # 2 / 2^S for the exact test


def paired_seed_test(
    df: pd.DataFrame, method_a: str, method_b: str,
    *, metric: str = "metric", method: str = "method", seed: str = "seed", iteration: str = "iteration",
    summary: str = "aubc", max_exact_seeds: int = 20, n_permutations: int = 100_000, random_state=0,
) -> PairedSeedTest:  # fmt: skip
    """Paired t-test and sign-flip permutation test on per-seed summaries of A and B.

    Seeds are the independent units: the curves of both methods are reduced to one
    number per seed (:func:`per_seed_summary`), paired by seed label.
    """
    sub = _pair_frame(df, method_a, method_b, metric=metric, method=method, group=iteration)
    if seed not in sub.columns:
        raise ValueError(f"df lacks column {seed!r}")
    table = per_seed_summary(sub, metric=metric, method=method, seed=seed, iteration=iteration, summary=summary)
    if table[[method_a, method_b]].isna().any().any():
        raise ValueError(f"methods {method_a!r} and {method_b!r} must share the same seeds (paired design)")
    d_S = (table[method_a] - table[method_b]).to_numpy(np.float64)
    S = d_S.shape[0]
    if S < 2:
        raise ValueError(f"need at least 2 seeds for a paired test; got {S}")
    mean_d = float(d_S.mean())
    sd = float(d_S.std(ddof=1))
    if sd > 0:
        t = mean_d / (sd / np.sqrt(S))
        p_t = float(2.0 * sps.t.sf(abs(t), df=S - 1))
    else:
        t = float("nan") if mean_d == 0 else float(np.copysign(np.inf, mean_d))
        p_t = 1.0 if mean_d == 0 else 0.0
    observed = abs(mean_d)
    tol = 1e-12 * max(1.0, observed)
    if S <= max_exact_seeds:
        signs_P_S = np.array(list(itertools.product((1.0, -1.0), repeat=S)))
        exact = True
    else:
        rng = checks.check_random_state(random_state)
        signs_P_S = rng.choice((1.0, -1.0), size=(n_permutations, S))
        exact = False
    stats_P = np.abs(signs_P_S @ d_S) / S
    count = int(np.sum(stats_P >= observed - tol))
    p_perm = count / signs_P_S.shape[0] if exact else (count + 1) / (signs_P_S.shape[0] + 1)
    return PairedSeedTest(
        summary=summary,
        method_a=str(method_a),
        method_b=str(method_b),
        differences_S=d_S,
        mean_difference=mean_d,
        t_statistic=float(t),
        p_value_t=p_t,
        p_value_permutation=float(p_perm),
        n_permutations=int(signs_P_S.shape[0]),
        exact=exact,
        min_attainable_p=2.0 / 2.0**S if exact else float("nan"),
    )


@dataclass(frozen=True)
class AACalibration:
    """How often DEIMOS's LMM test calls a difference where there is none (A/A runs).

    ``p_values_R``: the LRT p-value of every split of one method's seeds into two pseudo-methods
    ("A" = one half of the seeds, "B" = the other half, different seeds, same strategy);
    ``false_positive_rate``: the share with ``p < alpha`` (a calibrated test gives about ``alpha``).
    """

    method: str
    n_seeds: int
    alpha: float
    p_values_R: np.ndarray
    false_positive_rate: float
    n_splits: int


def lmm_aa_calibration(
    df: pd.DataFrame, method_name: str,
    *, metric: str = "metric", method: str = "method", seed: str = "seed", group: str = "iteration",
    alpha: float = 0.05, max_splits: int = 35, random_state=0,
) -> AACalibration:  # fmt: skip
    """False-positive rate of :func:`lmm_lrt` on A/A comparisons built from one method's seeds.

    The seeds of ``method_name`` (S >= 4) are split into two halves (the first ``S // 2`` seeds
    of each split are "A"): every distinct split when there are at most ``max_splits`` of them,
    else ``max_splits`` seeded random splits. Each split is tested with :func:`lmm_lrt`,
    exactly as two different methods would be. Nothing differs between the halves but the seeds,
    so every ``p < alpha`` is a false positive.
    """
    if seed not in df.columns or method not in df.columns:
        raise ValueError(f"df needs columns {method!r} and {seed!r}; has {list(df.columns)}")
    sub = df[df[method].astype(str) == str(method_name)]
    seeds = sorted(sub[seed].unique())
    S = len(seeds)
    if S < 4:
        raise ValueError(f"an A/A calibration needs at least 4 seeds of {method_name!r}; got {S}")
    half = S // 2
    splits = [c for c in itertools.combinations(seeds, half) if seeds[0] in c or 2 * half != S]
    if len(splits) > max_splits:
        rng = checks.check_random_state(random_state)
        splits = [splits[i] for i in np.sort(rng.choice(len(splits), size=max_splits, replace=False))]
    p_list = []
    for a_seeds in splits:
        frame = sub[[seed, group, metric]].copy()
        frame[method] = np.where(frame[seed].isin(a_seeds), "A", "B")
        frame = frame[frame[method].eq("A") | frame[seed].isin([s for s in seeds if s not in a_seeds][:half])]
        p_list.append(lmm_lrt(frame, "A", "B", metric=metric, method=method, group=group).p_value)
    p_R = np.asarray(p_list, dtype=np.float64)
    return AACalibration(
        method=str(method_name),
        n_seeds=S,
        alpha=float(alpha),
        p_values_R=p_R,
        false_positive_rate=float(np.mean(p_R < alpha)),
        n_splits=len(splits),
    )


# --------------------------------------------------------------------------------------------
# single comparisons: McNemar, a z-test and a minimum test against published numbers, Bonferroni
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class McNemarTest:
    """Exact McNemar test of two classifiers scored on the same N test items.

    ``n_only_a`` / ``n_only_b``: items that only A / only B gets right (the discordant pairs);
    ``p_value``: two-sided exact binomial p of ``n_only_a`` among the discordant items at 1/2
    (1.0 when there are none).
    """

    n_only_a: int
    n_only_b: int
    p_value: float

    @property
    def n_discordant(self) -> int:
        return self.n_only_a + self.n_only_b


def _bool_vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.dtype != np.bool_:
        raise TypeError(f"{name} must be a 1-D boolean array (True = correct), got {arr.dtype} shape {arr.shape}")
    return arr


def mcnemar_exact(correct_a_N, correct_b_N) -> McNemarTest:
    """Exact McNemar test: is A right more (or less) often than B on the same test items?

    correct_a_N, correct_b_N: (N,) bool, whether each classifier gets item n right. Under the
    null both are equally likely to be the one right on a discordant item, so the count of
    items only A gets right is Binomial(n_discordant, 1/2) (``scipy.stats.binomtest``).
    """
    a_N = _bool_vector(correct_a_N, "correct_a_N")
    b_N = _bool_vector(correct_b_N, "correct_b_N")
    if a_N.shape != b_N.shape:
        raise ValueError(f"correct_a_N and correct_b_N must score the same items; shapes {a_N.shape}, {b_N.shape}")
    only_a, only_b = int((a_N & ~b_N).sum()), int((~a_N & b_N).sum())
    p = float(sps.binomtest(only_a, only_a + only_b).pvalue) if only_a + only_b else 1.0
    return McNemarTest(n_only_a=only_a, n_only_b=only_b, p_value=p)


@dataclass(frozen=True)
class ZTest:
    """Two-sided z-test of our mean against a published mean (NaN when it cannot be formed)."""

    z: float
    p_value: float


def z_test_against_published(values_N, published_mean: float, n_published: int) -> ZTest:
    """z = (mean(values_N) - published_mean) / sqrt(sd^2 / N + sd^2 / M), p = 2 P(Z > |z|).

    values_N: our N values; published_mean: the mean of the M = ``n_published`` published values,
    assumed to spread like ours (sd = the sample standard deviation of ours, ddof = 1). NaN for
    both when N < 2 or sd = 0 (no spread to compare against).
    """
    v_N = checks.check_finite(np.asarray(values_N, dtype=np.float64).reshape(-1), "values_N")
    published_mean = checks.check_float(published_mean, "published_mean")
    n_published = checks.check_int(n_published, "n_published", ge=1)
    n = v_N.shape[0]
    sd = v_N.std(ddof=1) if n > 1 else np.nan
    se = np.sqrt(sd**2 / n + sd**2 / n_published)
    if not se > 0:
        return ZTest(z=float("nan"), p_value=float("nan"))
    z = float((v_N.mean() - published_mean) / se)
    return ZTest(z=z, p_value=float(2 * sps.norm.sf(abs(z))))


@dataclass(frozen=True)
class MinimumTest:
    """Where a published minimum falls among our values: ``n_below`` of ours lie below it."""

    n_below: int
    p_value: float  # two-sided exact permutation p


def published_minimum_test(values_N, published_min: float, n_published: int) -> MinimumTest:
    """Exact permutation test: is the minimum of M published values unusually placed among our N?

    Under "same distribution" our N values and the M published ones are exchangeable, and
    K = the number of ours below the published minimum is at least k exactly when the k smallest
    of all N + M values are ours: P(K >= k) = C(N, k) / C(N + M, k) = prod_{i<k} (N - i) / (N + M - i).
    Two-sided p = min(1, 2 min(P(K >= k), P(K <= k))) at the observed k.
    """
    v_N = checks.check_finite(np.asarray(values_N, dtype=np.float64).reshape(-1), "values_N")
    published_min = checks.check_float(published_min, "published_min")
    m = checks.check_int(n_published, "n_published", ge=1)
    n = v_N.shape[0]
    if n < 1:
        raise ValueError("values_N must hold at least one value")
    k = int(np.sum(v_N < published_min))

    def p_at_least(j: int) -> float:
        return float(np.prod([(n - i) / (n + m - i) for i in range(j)])) if j <= n else 0.0

    return MinimumTest(n_below=k, p_value=min(1.0, 2 * min(p_at_least(k), 1 - p_at_least(k + 1))))


@dataclass(frozen=True)
class Bonferroni:
    """Bonferroni correction over ``n_tests`` tests (NaN p-values are tests not made).

    ``threshold`` = alpha / n_tests; ``z_critical``: the |z| a two-sided z-test must exceed;
    ``reject_M``: p < threshold for each of the M p-values given (False where NaN).
    """

    alpha: float
    n_tests: int
    threshold: float
    z_critical: float
    reject_M: np.ndarray


def bonferroni(p_values_M, alpha: float = 0.05) -> Bonferroni:
    """Family-wise level ``alpha`` over the finite p-values of ``p_values_M`` (M,)."""
    alpha = checks.check_float(alpha, "alpha", gt=0.0, lt=1.0)
    p_M = np.asarray(p_values_M, dtype=np.float64).reshape(-1)
    made_M = ~np.isnan(p_M)
    m = int(made_M.sum())
    if m == 0:
        raise ValueError("bonferroni needs at least one p-value that is not NaN")
    threshold = alpha / m
    return Bonferroni(
        alpha=alpha,
        n_tests=m,
        threshold=threshold,
        z_critical=float(sps.norm.ppf(1 - alpha / (2 * m))),
        reject_M=made_M & (np.nan_to_num(p_M, nan=1.0) < threshold),
    )
