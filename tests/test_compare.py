"""The report's one decision rule (mcal_utils.compare): known differences, ties, n = 2, NaN."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from mcal_utils import compare, metrics, stats


def test_min_seeds_for_alpha_005_is_6():
    assert compare.min_seeds() == 6
    assert 2 / 2**6 < compare.ALPHA <= 2 / 2**5


def test_consistent_large_effect_over_8_seeds_is_supported():
    rng = np.random.default_rng(0)
    b = rng.normal(0.90, 0.01, 8)
    a = b + 0.02 + rng.normal(0, 0.002, 8)
    c = compare.paired(a, b, a="A", b="B")
    assert c.verdict == compare.SUPPORTED
    assert c.ci_low > 0 and c.p_value == pytest.approx(2 / 256)
    assert c.n_a_better == 8 and np.isfinite(c.mde) and c.mde < 0.02


def test_the_other_direction_is_contradicted_and_lower_is_better_flips_it():
    b = np.linspace(0.1, 0.2, 8)
    a = b - 0.05 + np.linspace(-0.001, 0.001, 8)
    assert compare.paired(a, b).verdict == compare.CONTRADICTED
    # an error metric: lower a is better
    assert compare.paired(a, b, higher_is_better=False).verdict == compare.SUPPORTED


def test_t_interval_matches_scipy():
    d = np.array([0.3, -0.1, 0.5, 0.2, 0.4, 0.1, 0.0, 0.25])
    c = compare.paired(d, np.zeros(8))
    lo, hi = sps.t.interval(0.95, df=7, loc=d.mean(), scale=sps.sem(d))
    assert c.effect == pytest.approx(d.mean())
    assert (c.ci_low, c.ci_high) == pytest.approx((lo, hi))


def test_sign_flip_p_matches_brute_force():
    d = np.array([0.3, -0.1, 0.5, 0.2, 0.4])
    pats = np.array(list(itertools.product((1, -1), repeat=5)))
    want = np.mean(np.abs(pats @ d) >= abs(d.sum()) - 1e-12)
    assert compare.sign_flip_p(d) == pytest.approx(want)


def test_all_tied_is_not_resolved_with_p_one():
    c = compare.paired(np.full(8, 0.9), np.full(8, 0.9))
    assert c.effect == 0 and c.p_value == 1.0 and c.verdict == compare.NOT_RESOLVED
    assert c.ci_low == 0 == c.ci_high


def test_two_seeds_can_never_be_resolved():
    c = compare.paired([0.99, 0.98], [0.50, 0.51])
    assert c.p_value == 0.5 and c.verdict == compare.NOT_RESOLVED and c.mde == np.inf
    assert "too few seeds" in c.sentence()


def test_five_seeds_perfect_pattern_is_still_not_resolved():
    c = compare.paired(np.arange(5) + 10.0, np.arange(5.0))
    assert c.p_value == pytest.approx(2 / 32) and c.verdict == compare.NOT_RESOLVED


def test_nan_is_refused_unless_censored():
    with pytest.raises(ValueError, match="not finite for seed"):
        compare.paired([1.0, np.nan, 2.0], [1.0, 2.0, 3.0])
    c = compare.paired([10, np.nan, 12, 11, 10, 12, 13, 11], [20] * 8, censor_at=30, higher_is_better=False)
    assert c.n_censored == 1 and c.differences_S[1] == 10


@pytest.mark.parametrize("a,b", [([1.0], [2.0]), ([1.0, 2.0], [1.0, 2.0, 3.0])])
def test_bad_shapes_are_refused(a, b):
    with pytest.raises(ValueError):
        compare.paired(a, b)


def _results(curves: dict) -> pd.DataFrame:
    rows = []
    for m, per_seed in curves.items():
        for s, curve in enumerate(per_seed):
            for step, acc in enumerate(curve):
                rows.append({"method": m, "seed": s, "step": step, "acquired_total": 10 * step, "accuracy": acc})
    return pd.DataFrame(rows)


def test_compare_curves_pairs_by_seed_and_summarises():
    base = np.linspace(0.5, 0.9, 6)
    res = _results({"A": [base + 0.05 + 0.001 * s for s in range(8)], "B": [base + 0.001 * s for s in range(8)]})
    c = compare.compare_curves(res, "A", "B", summary="final")
    assert c.effect == pytest.approx(0.05) and c.verdict == compare.SUPPORTED and c.seeds == tuple(range(8))
    assert compare.compare_curves(res, "A", "B").effect == pytest.approx(0.05)


def test_compare_curves_tp_summary_is_the_papers_tp_per_seed():
    rng = np.random.default_rng(3)
    curves = {m: [np.clip(np.linspace(0.5, 0.9, 6) + rng.normal(0, 0.02, 6), 0, 1) for _ in range(8)] for m in "AB"}
    c = compare.compare_curves(_results(curves), "A", "B", summary="tp", upto=4)
    want = [metrics.tp(a[:5]) - metrics.tp(b[:5]) for a, b in zip(curves["A"], curves["B"])]
    assert c.metric == "TP accuracy" and np.allclose(c.differences_S, want)


def test_compare_curves_refuses_a_run_that_stopped_short():
    res = _results({"A": [np.linspace(0.5, 0.9, 6)] * 3, "B": [np.linspace(0.5, 0.9, 6)] * 3})
    res = res[~((res["method"] == "A") & (res["seed"] == 2) & (res["step"] == 5))]
    with pytest.raises(ValueError, match="stopped early"):
        compare.compare_curves(res, "A", "B")


def test_crossings_one_step_inside_the_spread_is_not_resolved():
    # A reaches 0.95 one step before B on average, but seeds scatter by several steps
    rng = np.random.default_rng(1)
    curves_a, curves_b = [], []
    for _ in range(8):
        shift_a, shift_b = rng.integers(0, 4), rng.integers(0, 4)
        curves_a.append(np.clip(np.linspace(0.80, 1.0, 12) - 0.015 * shift_a, 0, 1))
        curves_b.append(np.clip(np.linspace(0.80, 1.0, 12) - 0.015 * shift_b - 0.01, 0, 1))
    c = compare.compare_crossings(_results({"A": curves_a, "B": curves_b}), "A", "B", 0.95)
    assert c.verdict == compare.NOT_RESOLVED and not c.higher_is_better


def test_crossings_never_reached_is_censored_past_the_end():
    res = _results({"A": [np.linspace(0.9, 0.99, 5)] * 8, "B": [np.full(5, 0.5)] * 8})
    c = compare.compare_crossings(res, "A", "B", 0.95)
    assert c.n_censored == 8 and c.verdict == compare.SUPPORTED
    assert c.differences_S[0] == pytest.approx(30 - 50)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=10), st.floats(-2, 2, allow_nan=False))
def test_property_verdict_is_antisymmetric_and_shift_invariant_in_b(d, shift):
    d = np.asarray(d)
    fwd = compare.paired(d + shift, np.full(d.size, shift))
    rev = compare.paired(np.full(d.size, shift), d + shift)
    swap = {
        compare.SUPPORTED: compare.CONTRADICTED,
        compare.CONTRADICTED: compare.SUPPORTED,
        compare.NOT_RESOLVED: compare.NOT_RESOLVED,
    }
    assert rev.verdict == swap[fwd.verdict]
    assert rev.p_value == pytest.approx(fwd.p_value)
    if fwd.verdict == compare.SUPPORTED:
        assert fwd.ci_low > 0 and fwd.p_value < compare.ALPHA and d.size >= compare.min_seeds()


def test_compare_each_is_compare_curves_per_method_and_summary_in_order():
    base = np.linspace(0.9, 0.5, 6)  # an error curve: lower is better
    res = _results(
        {
            "A": [base - 0.05 + 0.001 * s for s in range(8)],
            "B": [base + 0.001 * s for s in range(8)],
            "C": [base - 0.06 + 0.002 * s for s in range(8)],
        }
    )
    got = compare.compare_each(
        res, "A", ["B", "C"], summaries=("final", "aubc"), metric="accuracy", higher_is_better=False
    )
    assert [(c.b, c.metric) for c in got] == [
        ("B", "final accuracy"),
        ("C", "final accuracy"),
        ("B", "AUBC accuracy"),
        ("C", "AUBC accuracy"),
    ]
    want = compare.compare_curves(res, "A", "C", summary="aubc", higher_is_better=False)
    assert got[3].effect == pytest.approx(want.effect) and got[3].verdict == want.verdict
    assert got[0].verdict == compare.SUPPORTED and not got[0].higher_is_better
    with pytest.raises(ValueError, match="among the methods"):
        compare.compare_each(res, "A", ["A", "B"])


def test_short_form_names_b_effect_p_and_verdict():
    c = compare.paired(np.arange(8) * 0.001 + 0.05, np.zeros(8), a="DEIMOS", b="Random")
    text = c.short()
    assert text.startswith("vs Random +0.0535 [95 % CI") and "p = 0.00781" in text and "**supported**" in text


def test_interval_never_prints_minus_zero():
    c = compare.paired([0.5, 0.5 - 1e-17, 0.5], [0.5, 0.5, 0.5])
    assert "-0.0000" not in c.interval() and c.interval().startswith("+0.0000")


# ---------------------------------------------------------------------------
# verdict_tally and compare_with_lmm: one method against several, the paper's LMM test beside
# ---------------------------------------------------------------------------
def test_verdict_tally_counts_each_verdict():
    up = compare.paired(np.arange(8) * 0.001 + 0.05, np.zeros(8))
    down = compare.paired(np.zeros(8), np.arange(8) * 0.001 + 0.05)
    tie = compare.paired(np.full(8, 0.5), np.full(8, 0.5))
    assert compare.verdict_tally([up, up, down, tie]) == (
        "supported against 2, contradicted against 1, not resolved against 1 of 4 methods"
    )
    with pytest.raises(ValueError, match="at least one"):
        compare.verdict_tally([])


def _noisy_results(n_seeds: int, n_steps: int, offsets: dict, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    curves = {
        m: [np.linspace(0.5, 0.9, n_steps) + off + rng.normal(0, 0.01, n_steps) for _ in range(n_seeds)]
        for m, off in offsets.items()
    }
    return _results(curves)


def test_compare_with_lmm_is_compare_each_plus_the_lmm_and_its_aa_rate():
    res = _noisy_results(8, 6, {"A": 0.05, "B": 0.0, "Random": 0.0})
    got = compare.compare_with_lmm(res, "A", ["B", "Random"], summaries=("aubc", "final"), x="acquired_total")
    want = compare.compare_each(res, "A", ["B", "Random"], summaries=("aubc", "final"), x="acquired_total")
    assert [(c.b, c.metric, c.effect) for c in got.comparisons] == [(c.b, c.metric, c.effect) for c in want]
    assert [c.b for c in got.of("aubc")] == ["B", "Random"] and all(
        c.metric == "final accuracy" for c in got.of("final")
    )
    lrt = stats.lmm_lrt(res, "A", "B", metric="accuracy", group="step")
    assert got.lmm["B"].effect == pytest.approx(lrt.effect) and got.lmm["B"].p_value == pytest.approx(lrt.p_value)
    assert isinstance(got.aa, stats.AACalibration) and got.aa.method == "Random" and got.aa.n_seeds == 8
    table = got.lmm_table()
    assert list(table.index) == ["B", "Random"] and table.index.name == "A vs"
    assert table.loc["B", "LMM: effect"] == pytest.approx(lrt.effect)
    assert got.aa_sentence().startswith(
        "on A/A runs (Random vs Random, different seeds) the LMM test calls p < 0.05 in "
    )
    assert got.aa_sentence().endswith(f"of {got.aa.n_splits} splits")
    assert f"A vs B: effect {lrt.effect:+.4g}, p = {lrt.p_value:.2g}" in got.lmm_sentence()
    assert list(got.table()["B"]) == ["B", "Random", "B", "Random"]
    with pytest.raises(ValueError, match="summary must be"):
        got.of("median")


def test_compare_with_lmm_reports_what_it_cannot_fit_instead_of_raising():
    res = _noisy_results(2, 1, {"A": 0.05, "Random": 0.0})  # 2 seeds: no A/A split; 1 step: no random intercept
    got = compare.compare_with_lmm(res, "A", ["Random"], x="acquired_total")
    assert isinstance(got.aa, str) and "at least 4 seeds" in got.aa
    assert got.aa_sentence() == f"no A/A calibration ({got.aa})"
    assert isinstance(got.lmm["Random"], str) and "not fitted" in got.lmm_sentence()
    assert (
        np.isnan(got.lmm_table().loc["Random", "LMM: effect"])
        and not got.lmm_table().loc["Random", "LMM fits converged"]
    )
    assert compare.compare_with_lmm(res, "A", ["Random"], aa_method=None).aa == "not asked for"
