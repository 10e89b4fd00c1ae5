"""Notebook 04's protocol (DEIMOS Appendix A): configurations, streams, tests, the claim's verdict."""

import numpy as np
import pytest

from mcal_utils import compare, optimality, references
from mcal_utils.protocols import greedy_optimality as protocol


@pytest.fixture(scope="module")
def small_run():
    return protocol.run_simulation(2, 1, 0)


def _fake_run(n_trials, minima):
    """A SimulationRun whose Figure A.1 panels have the given minimum ratios (others all 1)."""
    results, seconds = {}, {}
    for cfg in protocol.CONFIGS:
        ratios = np.ones(n_trials)
        if cfg in protocol.FIGURE_A1_CONFIGS:
            ratios[0] = minima[protocol.FIGURE_A1_CONFIGS.index(cfg)]
        results[cfg] = optimality.SimulationResult(
            n_points=cfg[0],
            batch=cfg[1],
            n_samples=cfg[2],
            greedy_T=ratios,
            optimal_T=np.ones(n_trials),
            ratios_T=ratios,
            greedy_is_optimal_T=ratios == 1.0,
        )
        seconds[cfg] = 0.01 * n_trials
    return protocol.SimulationRun(results=results, seconds=seconds, seeds=protocol.configuration_seeds(0))


def test_configurations_and_references():
    assert len(protocol.CONFIGS) == 9 and len(protocol.FIGURE_A1_CONFIGS) == 6
    assert all(c[2] in (3, 50) for c in protocol.FIGURE_A1_CONFIGS)
    assert protocol.FLOOR == references.DEIMOS_APPENDIX_A_FLOOR.value
    assert protocol.trials_for((20, 10, 3), 5, 2) == 2 and protocol.trials_for((30, 5, 3), 5, 2) == 5
    a, b = protocol.configuration_seeds(3), protocol.configuration_seeds(3)
    assert [s.entropy for s in a.values()] == [s.entropy for s in b.values()]
    assert len({tuple(s.spawn_key) for s in a.values()}) == 9  # one independent stream per configuration


def test_example_reproduces_the_paper():
    ex = protocol.appendix_a_example_check()
    assert ex.matches_paper and ex.outer_pair_best
    assert ex.ratio == pytest.approx(ex.greedy.total / ex.best.total)
    assert ex.pair_values["trace reduction f(S)"].max() == pytest.approx(ex.best.total)
    assert "the same as the paper's" in protocol.example_text(ex)
    assert len(protocol.example_lines(ex)) == 3


def test_small_run_tables_and_checks(small_run):
    table = protocol.summary_table(small_run)
    assert list(table["trials"]) == [2, 2, 2, 2, 2, 2, 1, 1, 1]
    assert (table["min ratio"] <= table["mean ratio"]).all() and (table["mean ratio"] <= 1.0).all()
    assert table.loc[table["samples"] == 2, "min ratio"].eq(1.0).all()  # rank one: greedy is optimal
    tests = protocol.reproduction_tests(small_run)
    assert list(tests.table.index) == [protocol.config_label(c) for c in protocol.FIGURE_A1_CONFIGS]
    assert tests.correction.n_tests == int(tests.table["z (mean)"].notna().sum()) + 6
    worst = protocol.recheck_worst_trial(small_run)
    assert worst.ratio == pytest.approx(worst.simulated_ratio, rel=1e-9)
    assert worst.simulated_ratio == small_run.lowest_ratio
    below = protocol.below_floor(small_run)
    assert below.n_trials == small_run.n_trials_total == 15
    text = protocol.reproduction_text(small_run, table, tests, "smoke", 2, 1)
    assert "fewer than the paper's 200 trials" in text


def test_finding_is_not_tested_below_paper_scale(small_run):
    table = protocol.summary_table(small_run)
    finding = protocol.finding(
        small_run, table, protocol.reproduction_tests(small_run), protocol.below_floor(small_run)
    )
    assert finding.startswith("**Central claim** (DEIMOS, Figure A.1): not tested here: needs 200 random covariances")
    assert "est. " in finding and not any(f"**{v}**" in finding for v in compare.VERDICTS)
    assert protocol.paper_scale_seconds(small_run) > 0


@pytest.mark.parametrize(
    "minima, verdict",
    [
        ([0.99, 0.985, 0.992, 0.98, 0.995, 0.99], compare.SUPPORTED),  # every panel above the floor
        ([0.99, 0.985, 0.95, 0.98, 0.995, 0.99], compare.NOT_RESOLVED),  # one panel below
        ([0.90, 0.92, 0.91, 0.93, 0.89, 0.94], compare.CONTRADICTED),  # every panel below
    ],
)
def test_claim_verdict_at_paper_scale(minima, verdict):
    run = _fake_run(200, minima)
    c = protocol.floor_comparison(run)
    assert c.n_seeds == 6 and c.verdict == verdict
    assert c.effect == pytest.approx(np.mean(minima) - protocol.FLOOR)
    table = protocol.summary_table(run)
    finding = protocol.finding(run, table, protocol.reproduction_tests(run), protocol.below_floor(run))
    assert finding.startswith("**Central claim** (DEIMOS, Figure A.1): the minimum") and f"**{verdict}**" in finding


def test_below_floor_rate():
    run = _fake_run(200, [0.96, 0.95, 0.99, 0.99, 0.99, 0.99])  # two ratios below 0.97: 200/2/3 and 200/2/50
    b = protocol.below_floor(run)
    assert b.n_below == 2 and b.k_50 == 1 and b.n_50 == 600
    assert b.p_all_above == pytest.approx((1 - 1 / 600) ** 200)
    assert "2 of 1800 trials" in protocol.below_floor_text(b)


def test_format_duration():
    assert protocol.format_duration(42) == "42 s"
    assert protocol.format_duration(300) == "5.0 min"
    assert protocol.format_duration(7200) == "2.0 h"
    with pytest.raises(ValueError):
        protocol.format_duration(-1.0)
