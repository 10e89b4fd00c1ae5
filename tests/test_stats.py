"""Tests of mcal_utils.stats: DEIMOS's LMM likelihood-ratio test and the paired seed test."""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from mcal_utils import metrics, stats


def _balanced(n_iter=10, n_seeds=3, effect=0.3, sd_iter=1.0, sd_noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.normal(0.0, sd_iter, n_iter)
    rows = [
        dict(method=m, seed=s, iteration=i, metric=u[i] + off + rng.normal(0.0, sd_noise))
        for m, off in (("A", effect), ("B", 0.0))
        for s in range(n_seeds)
        for i in range(n_iter)
    ]
    return pd.DataFrame(rows)


def _ml_closed_form(y, g, x=None):
    """Max log-likelihood of y = X beta + u_g + e for a balanced random-intercept model.

    With n groups of m observations, V = s2 I + su2 J per group has eigenvalue s2 on the
    m - 1 within-group contrasts and lam = s2 + m su2 on the group mean, so
    -2 llf = N log(2 pi) + n (m - 1) log s2 + n log lam + SSW / s2 + SSB / lam.
    If x is balanced within every group (half A, half B), x - 1/2 lies in the within
    space and its group mean in the intercept's, so beta only changes SSW: beta_hat =
    mean_A - mean_B, SSB = m sum_i (ybar_i - ybar)^2 in both models. Maximising:
    s2 = SSW / (n (m - 1)), lam = SSB / n (valid when lam >= s2, i.e. su2 >= 0), and
    llf = -1/2 [N log(2 pi) + n (m - 1) log s2 + n log lam + N].
    """
    y = np.asarray(y, float)
    N = y.size
    groups = pd.Series(y).groupby(g)
    n = groups.ngroups
    m = N // n
    gm = groups.transform("mean").to_numpy()
    resid = y - gm
    if x is not None:
        beta = y[x == 1].mean() - y[x == 0].mean()
        resid = resid - beta * (x - 0.5)
    ssw = np.sum(resid**2)
    ssb = m * np.sum((groups.mean().to_numpy() - y.mean()) ** 2)
    s2, lam = ssw / (n * (m - 1)), ssb / n
    assert lam >= s2, "the closed form needs an interior optimum"
    return -0.5 * (N * np.log(2 * np.pi) + n * (m - 1) * np.log(s2) + n * np.log(lam) + N), ssw


def test_lmm_lrt_matches_balanced_closed_form():
    df = _balanced()
    r = stats.lmm_lrt(df, "A", "B")
    y, g = df.metric.to_numpy(), df.iteration.to_numpy()
    x = (df.method == "A").to_numpy(float)
    llf0, ssw0 = _ml_closed_form(y, g)
    llf1, ssw1 = _ml_closed_form(y, g, x)
    n, m = 10, 6
    assert r.llf_null == pytest.approx(llf0, abs=1e-5)
    assert r.llf_alternative == pytest.approx(llf1, abs=1e-5)
    # LR = 2 (llf1 - llf0) = n (m - 1) log(SSW_null / SSW_alt)
    assert r.lr_statistic == pytest.approx(n * (m - 1) * np.log(ssw0 / ssw1), abs=1e-4)
    assert r.p_value == pytest.approx(sps.chi2.sf(r.lr_statistic, 1), rel=1e-3)
    assert r.effect == pytest.approx(y[x == 1].mean() - y[x == 0].mean(), abs=1e-6)
    assert r.df == 1 and r.n_obs == 60 and r.n_groups == 10 and r.converged


def _direct_max_llf(y, g, x):
    """ML of the random-intercept model by direct optimisation of the dense MVN log-density."""
    Z = (g[:, None] == np.unique(g)[None, :]).astype(float)
    X = np.column_stack([np.ones_like(y), x])

    def neg(theta):
        s2, su2 = np.exp(theta)
        V = s2 * np.eye(y.size) + su2 * Z @ Z.T
        L = np.linalg.cholesky(V)
        Xw, yw = np.linalg.solve(L, X), np.linalg.solve(L, y)
        beta = np.linalg.lstsq(Xw, yw, rcond=None)[0]  # GLS
        return -sps.multivariate_normal(X @ beta, V).logpdf(y)

    res = optimize.minimize(
        neg, x0=np.log([0.3, 0.5]), method="Nelder-Mead", options=dict(xatol=1e-9, fatol=1e-10, maxiter=4000)
    )
    return -res.fun


def test_lmm_llf_matches_dense_mvn_density_unbalanced():
    df = _balanced(n_iter=6, n_seeds=3, seed=4)
    df = df.drop(index=[0, 7, 20, 33]).reset_index(drop=True)  # unbalanced
    r = stats.lmm_lrt(df, "A", "B")
    y, g = df.metric.to_numpy(), df.iteration.to_numpy()
    x = (df.method == "A").to_numpy(float)
    assert r.llf_alternative == pytest.approx(_direct_max_llf(y, g, x), abs=1e-4)


def test_lmm_reports_boundary_without_leaking_warnings():
    rng = np.random.default_rng(1)
    # no iteration effect at all: sigma_u^2 -> 0, the MLE sits on the boundary
    df = pd.DataFrame(
        dict(
            method=np.repeat(["A", "B"], 40),
            iteration=np.tile(np.arange(8), 10),
            seed=np.tile(np.repeat(np.arange(5), 8), 2),
            metric=rng.normal(size=80),
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = stats.lmm_lrt(df, "A", "B")
    assert np.isfinite(r.lr_statistic) and 0 <= r.p_value <= 1
    assert isinstance(r.fit_warnings, tuple)


def test_lmm_validation():
    df = _balanced(n_iter=4)
    with pytest.raises(ValueError):
        stats.lmm_lrt(df, "A", "A")
    with pytest.raises(ValueError):
        stats.lmm_lrt(df, "A", "C")
    with pytest.raises(ValueError):
        stats.lmm_lrt(df.drop(columns="metric"), "A", "B")
    with pytest.raises(ValueError):
        stats.lmm_lrt(df.assign(metric=np.nan), "A", "B")
    with pytest.raises(ValueError):
        stats.lmm_lrt(df.assign(iteration=0), "A", "B")
    with pytest.raises(TypeError):
        stats.lmm_lrt(df.to_dict(), "A", "B")


def test_paired_seed_test_by_hand():
    df = _balanced(n_iter=5, n_seeds=4, seed=2)
    r = stats.paired_seed_test(df, "A", "B")
    table = {
        (m, s): metrics.aubc(g.sort_values("iteration").metric.to_numpy())
        for (m, s), g in df.groupby(["method", "seed"])
    }
    d = np.array([table[("A", s)] - table[("B", s)] for s in range(4)])
    np.testing.assert_allclose(r.differences_S, d)
    t = d.mean() / (d.std(ddof=1) / 2.0)
    assert r.t_statistic == pytest.approx(t)
    assert r.p_value_t == pytest.approx(2 * sps.t.sf(abs(t), 3))
    flips = [abs(np.dot(sg, d)) / 4 for sg in itertools.product((1, -1), repeat=4)]
    assert r.p_value_permutation == pytest.approx(np.mean(np.array(flips) >= abs(d.mean()) - 1e-12))
    assert r.exact and r.n_permutations == 16 and r.min_attainable_p == pytest.approx(2 / 16)


def test_three_seeds_cannot_reach_five_percent():
    df = _balanced(n_iter=20, n_seeds=3, effect=2.0, sd_noise=0.05)
    r = stats.paired_seed_test(df, "A", "B")
    assert np.all(r.differences_S > 0)
    assert r.p_value_permutation == pytest.approx(0.25)  # 2 of the 8 sign patterns are as extreme
    lrt = stats.lmm_lrt(df, "A", "B")
    assert lrt.p_value < 1e-20  # the pseudo-replicated LMM claims overwhelming evidence


def test_paired_monte_carlo_and_mean_summary():
    df = _balanced(n_iter=3, n_seeds=6, seed=5)
    exact = stats.paired_seed_test(df, "A", "B", summary="mean")
    mc = stats.paired_seed_test(df, "A", "B", summary="mean", max_exact_seeds=3, n_permutations=20000, random_state=0)
    assert not mc.exact and mc.p_value_permutation == pytest.approx(exact.p_value_permutation, abs=0.02)
    per_seed = stats.per_seed_summary(df, summary="mean")
    np.testing.assert_allclose(exact.differences_S, (per_seed["A"] - per_seed["B"]).to_numpy())


def test_paired_validation():
    df = _balanced(n_iter=3, n_seeds=3)
    with pytest.raises(ValueError):
        stats.paired_seed_test(df[~((df.method == "A") & (df.seed == 2))], "A", "B")  # unpaired
    with pytest.raises(ValueError):
        stats.paired_seed_test(df[df.seed == 0], "A", "B")  # one seed
    with pytest.raises(ValueError):
        stats.paired_seed_test(df, "A", "B", summary="median")
    with pytest.raises(ValueError):
        stats.paired_seed_test(pd.concat([df, df.iloc[:1]]), "A", "B")  # duplicate row
    with pytest.raises(ValueError):
        stats.paired_seed_test(df[~((df.method == "A") & (df.seed == 1) & (df.iteration == 2))], "A", "B")


def _aa_frame(seed_sd: float, point_sd: float, n_seeds: int = 8, n_iter: int = 20, rs: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(rs)
    rows = []
    for s in range(n_seeds):
        offset = rng.normal(0, seed_sd)
        for i in range(n_iter):
            rows.append(
                {
                    "method": "random",
                    "seed": s,
                    "iteration": i,
                    "metric": 0.5 + 0.02 * i + offset + rng.normal(0, point_sd),
                }
            )
    return pd.DataFrame(rows)


def test_lmm_aa_calibration_flags_seed_effects_as_differences():
    """Whole-curve seed offsets are pseudo-replicated by the LMM: most A/A splits look 'significant'."""
    from mcal_utils.stats import lmm_aa_calibration

    cal = lmm_aa_calibration(_aa_frame(seed_sd=0.02, point_sd=0.002), "random")
    assert cal.n_seeds == 8 and cal.n_splits == 35 and cal.p_values_R.shape == (35,)
    assert cal.false_positive_rate > 0.5


def test_lmm_aa_calibration_is_near_alpha_without_seed_effects():
    from mcal_utils.stats import lmm_aa_calibration

    cal = lmm_aa_calibration(_aa_frame(seed_sd=0.0, point_sd=0.01, rs=3), "random")
    assert cal.false_positive_rate <= 0.2


def test_lmm_aa_calibration_refuses_too_few_seeds():
    from mcal_utils.stats import lmm_aa_calibration

    with pytest.raises(ValueError, match="at least 4 seeds"):
        lmm_aa_calibration(_aa_frame(0.01, 0.01, n_seeds=3), "random")


# --------------------------------------------------------------------------------------------
# McNemar, the z-test and the minimum test against published numbers, Bonferroni
# --------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_mcnemar_exact_matches_statsmodels(pairs):
    a_N = np.array([p[0] for p in pairs])
    b_N = np.array([p[1] for p in pairs])
    r = stats.mcnemar_exact(a_N, b_N)
    assert r.n_only_a == int(np.sum(a_N & ~b_N)) and r.n_only_b == int(np.sum(~a_N & b_N))
    table = [[int(np.sum(a_N & b_N)), r.n_only_a], [r.n_only_b, int(np.sum(~a_N & ~b_N))]]
    expected = sm_mcnemar(table, exact=True).pvalue if r.n_discordant else 1.0
    assert r.p_value == pytest.approx(min(1.0, expected), rel=1e-9, abs=1e-12)


def test_mcnemar_exact_small_case_and_validation():
    a = np.array([True, True, True, False])
    b = np.array([False, False, False, False])
    r = stats.mcnemar_exact(a, b)
    assert (r.n_only_a, r.n_only_b) == (3, 0) and r.p_value == pytest.approx(2 / 8)  # 2 * (1/2)^3
    assert stats.mcnemar_exact(a, a).p_value == 1.0
    with pytest.raises(TypeError):
        stats.mcnemar_exact(a.astype(int), b)
    with pytest.raises(ValueError):
        stats.mcnemar_exact(a, b[:3])


def test_z_test_against_published_by_hand():
    v = np.array([0.9, 0.95, 1.0, 0.97])
    r = stats.z_test_against_published(v, 0.93, 200)
    sd = v.std(ddof=1)
    z = (v.mean() - 0.93) / np.sqrt(sd**2 / 4 + sd**2 / 200)
    assert r.z == pytest.approx(z) and r.p_value == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert np.isnan(stats.z_test_against_published([0.9], 0.8, 200).z)  # one value: no spread
    assert np.isnan(stats.z_test_against_published([1.0, 1.0], 0.8, 200).p_value)  # sd = 0
    with pytest.raises(TypeError):
        stats.z_test_against_published(v, 0.9, 200.0)
    with pytest.raises(ValueError):
        stats.z_test_against_published(v, 0.9, 0)


def _min_test_by_enumeration(n, m, k):
    """P(K >= k), P(K <= k) by enumerating every placement of our n ranks among n + m."""
    ks = []
    for ours in itertools.combinations(range(n + m), n):
        first_published = min(set(range(n + m)) - set(ours))
        ks.append(sum(r < first_published for r in ours))
    ks = np.array(ks)
    return np.mean(ks >= k), np.mean(ks <= k)


@pytest.mark.parametrize("n, m", [(3, 2), (4, 4), (5, 3), (2, 6)])
def test_published_minimum_test_is_the_exact_permutation_test(n, m):
    values = np.arange(1.0, n + 1.0)  # ours: 1, 2, ..., n
    for k in range(n + 1):
        r = stats.published_minimum_test(values, k + 0.5, m)  # exactly k of ours below the published minimum
        ge, le = _min_test_by_enumeration(n, m, k)
        assert r.n_below == k
        assert r.p_value == pytest.approx(min(1.0, 2 * min(ge, le)))


def test_bonferroni_matches_statsmodels():
    p = np.array([0.001, 0.02, np.nan, 0.2, 0.004])
    r = stats.bonferroni(p)
    finite = ~np.isnan(p)
    reject, _, _, alpha_bonf = multipletests(p[finite], alpha=0.05, method="bonferroni")
    assert r.n_tests == 4 and r.threshold == pytest.approx(alpha_bonf)
    np.testing.assert_array_equal(r.reject_M[finite], reject)
    assert not r.reject_M[2]
    assert r.z_critical == pytest.approx(sps.norm.isf(0.05 / 8))
    with pytest.raises(ValueError):
        stats.bonferroni([np.nan])
    with pytest.raises(ValueError):
        stats.bonferroni([0.1], alpha=1.5)
