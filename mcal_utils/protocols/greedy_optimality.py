"""DEIMOS Appendix A as data (notebook 04): how far from optimal is the greedy batch?

DEIMOS (Nagpal & Knowles) builds a batch greedily, one point at a time, each maximising the drop of
the trace of the joint predictive covariance ``V`` given the points already picked. Appendix A asks
how much this loses against the best batch found by exhaustive search:

* a 3 x 3 counter-example, batch 2, where greedy reaches about 86 % of the optimum
  (``references.DEIMOS_APPENDIX_A_EXAMPLE`` / ``..._RATIO``);
* a simulation, 200 random covariances per configuration (points, batch, samples), whose
  Figure A.1 shows six histograms (3 and 50 samples) with the caption "all ratios of greedy trace
  reduction to optimal trace reduction are above 0.97" (``references.DEIMOS_APPENDIX_A_FLOOR``);
  the authors' repository holds the ratios of nine configurations (also 2 samples), whose means and
  minima are ``references.DEIMOS_APPENDIX_A_RATIOS``.

The claim tested (:func:`floor_comparison`): the minimum ratio of each of Figure A.1's six panels
lies above 0.97, judged by :func:`mcal_utils.compare.paired` with the six panels as the units. The
reproduction checks (:func:`reproduction_tests`): our mean and minimum of each configuration
against the repository's, a z-test and an exact permutation test per configuration, Bonferroni
over all of them (:mod:`mcal_utils.stats`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import checks, compare, environment, optimality, references, stats
from ..acquisition import deimos_from_covariance

__all__ = [
    "CONFIGS",
    "FIGURE_A1_CONFIGS",
    "PAPER_TRIALS",
    "FLOOR",
    "Config",
    "ExampleCheck",
    "appendix_a_example_check",
    "example_text",
    "configuration_seeds",
    "trials_for",
    "SimulationRun",
    "run_simulation",
    "summary_table",
    "ReproductionTests",
    "reproduction_tests",
    "reproduction_text",
    "WorstTrial",
    "recheck_worst_trial",
    "BelowFloor",
    "below_floor",
    "below_floor_text",
    "reading_text",
    "floor_comparison",
    "paper_scale_seconds",
    "format_duration",
    "finding",
]

Config = tuple[int, int, int]  # (points, batch, samples per point)

#: the nine configurations of the authors' repository, in the notebook's order
CONFIGS: tuple[Config, ...] = optimality.PAPER_CONFIGS
#: the six configurations of Figure A.1 (3 and 50 samples; with 2 samples greedy is provably optimal)
FIGURE_A1_CONFIGS: tuple[Config, ...] = tuple(c for c in CONFIGS if c[2] > 2)
#: random covariances per configuration in DEIMOS's simulation (Appendix A; the repository's arrays
#: BatchOptimality/EmpiricalOptimalityRatios/BS{b}Samp{s}OptRatios.npy hold 200 ratios each)
PAPER_TRIALS: int = 200
#: Figure A.1's caption: every greedy/optimal ratio lies above this
FLOOR: float = references.DEIMOS_APPENDIX_A_FLOOR.value
#: (greedy, optimal) trace reduction of the 3 x 3 example as the paper prints them (one decimal)
PAPER_EXAMPLE: tuple[float, float] = references.DEIMOS_APPENDIX_A_EXAMPLE.value
PAPER_EXAMPLE_RATIO: float = references.DEIMOS_APPENDIX_A_EXAMPLE_RATIO.value


def config_label(cfg: Config) -> str:
    """``"30/5/50"``: points / batch / samples."""
    return "/".join(str(v) for v in cfg)


# ------------------------------------------------------------------------------------------------
# the 3 x 3 example
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExampleCheck:
    """The 3 x 3 example: greedy, the library's DEIMOS and exhaustive search on the same ``V``.

    ``pair_values``: f(S) of every pair (1-based labels, as in the paper); ``library_total``:
    the summed gains of ``acquisition.deimos_from_covariance``; ``matches_paper``: both totals equal
    the paper's to its one decimal; ``outer_pair_best``: the best pair is {1, 3} and greedy starts
    with the middle point.
    """

    V: np.ndarray
    greedy: optimality.GreedyResult
    best: optimality.ExhaustiveResult
    library_indices: np.ndarray
    library_total: float
    pair_values: pd.DataFrame
    matches_paper: bool
    outer_pair_best: bool

    @property
    def ratio(self) -> float:
        return self.greedy.total / self.best.total


def appendix_a_example_check() -> ExampleCheck:
    """Run greedy, ``deimos_from_covariance`` and exhaustive search on the Appendix A example (batch 2).

    Raises ``AssertionError`` if the library's DEIMOS picks differ from :func:`optimality.greedy_trace_reduction`.
    """
    V = optimality.appendix_a_example()
    greedy = optimality.greedy_trace_reduction(V, 2)
    best = optimality.exhaustive_best(V, 2)
    library = deimos_from_covariance(V, 2)
    library_indices = np.asarray(library.indices)
    if not np.array_equal(library_indices, greedy.indices):
        raise AssertionError(f"deimos_from_covariance picks {library_indices}, greedy {greedy.indices}")
    pairs = pd.DataFrame(
        [(f"{{{i + 1}, {j + 1}}}", optimality.trace_reduction(V, [i, j])) for i, j in [(0, 1), (0, 2), (1, 2)]],
        columns=["pair (1-based, as in the paper)", "trace reduction f(S)"],
    )
    paper_greedy, paper_best = PAPER_EXAMPLE
    return ExampleCheck(
        V=V,
        greedy=greedy,
        best=best,
        library_indices=library_indices,
        library_total=float(np.asarray(library.scores).sum()),
        pair_values=pairs,
        matches_paper=round(greedy.total, 1) == paper_greedy and round(best.total, 1) == paper_best,
        outer_pair_best=sorted(best.indices.tolist()) == [0, 2] and greedy.indices[0] == 1,
    )


def example_lines(ex: ExampleCheck) -> list[str]:
    """The picks and totals of the three searches, one line each (1-based indices)."""
    return [
        f"greedy picks (1-based): {(ex.greedy.indices + 1).tolist()} gains: {ex.greedy.gains.round(4).tolist()} "
        f"total: {round(ex.greedy.total, 4)}",
        f"acquisition.deimos_from_covariance picks (1-based): {(ex.library_indices + 1).tolist()} "
        f"total: {round(ex.library_total, 4)}",
        f"optimal pair (1-based): {(ex.best.indices + 1).tolist()} total: {round(ex.best.total, 4)}",
    ]


def example_text(ex: ExampleCheck) -> str:
    """What the example shows, against the paper's numbers (markdown)."""
    paper_greedy, paper_best = PAPER_EXAMPLE
    paper = f'{paper_greedy:g} vs {paper_best:g} ("around {PAPER_EXAMPLE_RATIO * 100:.0f} %")'
    text = (
        f"Greedy reaches **{ex.greedy.total:.2f}**, the best pair **{ex.best.total:.2f}**: "
        f"a ratio of **{ex.ratio:.1%}**; "
        + (
            f"the same as the paper's {paper}. "
            if ex.matches_paper
            else f"the paper reports {paper}, which we do **not** reproduce. "
        )
    )
    if ex.outer_pair_best:
        text += (
            "The middle point is individually the most informative because it is correlated with both others, "
            "but once it is labelled the two outer points, which are large and nearly independent of each other, "
            "remain mostly unexplained; labelling the two outer points explains nearly all of the variance at once."
        )
    return text


# ------------------------------------------------------------------------------------------------
# the simulation
# ------------------------------------------------------------------------------------------------
def configuration_seeds(seed: int) -> dict[Config, np.random.SeedSequence]:
    """One independent random stream per configuration, all spawned from ``SeedSequence(seed)``."""
    seed = checks.check_int(seed, "seed", ge=0)
    return dict(zip(CONFIGS, np.random.SeedSequence(seed).spawn(len(CONFIGS))))


def trials_for(cfg: Config, n_trials: int, n_trials_b10: int) -> int:
    """Trials of a configuration: ``n_trials_b10`` for the two costliest (batch 10), else ``n_trials``."""
    return n_trials_b10 if cfg[1] == 10 else n_trials


@dataclass(frozen=True)
class SimulationRun:
    """Per configuration: the simulation's result, its wall time (s) and its random stream."""

    results: Mapping[Config, optimality.SimulationResult]
    seconds: Mapping[Config, float]
    seeds: Mapping[Config, np.random.SeedSequence]

    @property
    def n_trials_total(self) -> int:
        return int(sum(r.n_trials for r in self.results.values()))

    @property
    def lowest_ratio(self) -> float:
        return float(min(r.ratios_T.min() for r in self.results.values()))

    @property
    def at_paper_scale(self) -> bool:
        """Every configuration ran at least the paper's 200 trials."""
        return all(r.n_trials >= PAPER_TRIALS for r in self.results.values())


def run_simulation(n_trials: int, n_trials_b10: int, seed: int, *, progress: bool | None = False) -> SimulationRun:
    """:func:`optimality.simulate` for every configuration of :data:`CONFIGS`, each on its own stream."""
    seeds = configuration_seeds(seed)
    results, seconds = {}, {}
    for cfg in CONFIGS:
        n_points, batch, n_samples = cfg
        t0 = time.perf_counter()
        results[cfg] = optimality.simulate(
            n_points,
            batch,
            n_samples,
            trials_for(cfg, n_trials, n_trials_b10),
            np.random.default_rng(seeds[cfg]),
            progress=progress,
        )
        seconds[cfg] = time.perf_counter() - t0
    return SimulationRun(results=results, seconds=seconds, seeds=seeds)


def summary_table(run: SimulationRun) -> pd.DataFrame:
    """One row per configuration: ours (trials, mean ± s.e., minimum, share optimal) and the repository's."""
    rows = []
    for cfg in CONFIGS:
        r, (paper_mean, paper_min) = run.results[cfg], optimality.PAPER_RESULTS[cfg]
        se = r.ratios_T.std(ddof=1) / np.sqrt(r.n_trials) if r.n_trials > 1 else np.nan
        rows.append(
            {
                "points": cfg[0],
                "batch": cfg[1],
                "samples": cfg[2],
                "trials": r.n_trials,
                "mean ratio": r.ratios_T.mean(),
                "± s.e.": se,
                "min ratio": r.ratios_T.min(),
                "greedy optimal": r.greedy_is_optimal_T.mean(),
                "paper mean": paper_mean,
                "paper min": paper_min,
                "seconds": run.seconds[cfg],
            }
        )
    return pd.DataFrame(rows)


SUMMARY_FORMATS = {
    "mean ratio": "{:.6f}",
    "± s.e.": "{:.6f}",
    "min ratio": "{:.6f}",
    "greedy optimal": "{:.0%}",
    "paper mean": "{:.6f}",
    "paper min": "{:.6f}",
    "seconds": "{:.1f}",
}
SUMMARY_CAPTION = (
    "Ours (left) vs DEIMOS's Appendix A simulation (right, 'paper' columns: mean and min of the 200 ratios in the "
    "authors' repository, BatchOptimality/EmpiricalOptimalityRatios/; the paper shows only histograms, Figure A.1; "
    "the 20/10/3 mean is 1.0 to six decimals)"
)


# ------------------------------------------------------------------------------------------------
# are the differences from the repository's arrays sampling noise?
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReproductionTests:
    """Per Figure A.1 configuration: a z-test of our mean and an exact test of where the repository's
    minimum falls among our ratios, with Bonferroni over every test made.

    ``table``: index = configuration label, columns ``z (mean)`` (NaN where the published mean is 1
    or we have no spread), ``ours below paper min``, ``p (min)``; ``bad_mean`` / ``bad_min``: the
    configurations whose mean / minimum differs beyond Bonferroni.
    """

    table: pd.DataFrame
    correction: stats.Bonferroni
    bad_mean: list[str]
    bad_min: list[str]

    @property
    def noise(self) -> bool:
        """Every difference from the repository's arrays is within sampling noise."""
        return not self.bad_mean and not self.bad_min


def reproduction_tests(run: SimulationRun, alpha: float = compare.ALPHA) -> ReproductionTests:
    """Our ratios against the repository's 200 per configuration (means: z-test; minima: permutation test).

    The published mean of 20/10/3, printed only as "approximately 1", is left out of the z-tests.
    """
    rows, p_z = [], []
    for cfg in FIGURE_A1_CONFIGS:
        ratios_T, (paper_mean, paper_min) = run.results[cfg].ratios_T, optimality.PAPER_RESULTS[cfg]
        z = stats.z_test_against_published(ratios_T, paper_mean, PAPER_TRIALS) if paper_mean < 1.0 else None
        minimum = stats.published_minimum_test(ratios_T, paper_min, PAPER_TRIALS)
        rows.append(
            {
                "config": config_label(cfg),
                "z (mean)": np.nan if z is None else z.z,
                "ours below paper min": minimum.n_below,
                "p (min)": minimum.p_value,
            }
        )
        p_z.append(np.nan if z is None else z.p_value)
    table = pd.DataFrame(rows).set_index("config")
    p_min = table["p (min)"].to_numpy(np.float64)
    correction = stats.bonferroni(np.concatenate([p_z, p_min]), alpha)
    n = len(table)
    return ReproductionTests(
        table=table,
        correction=correction,
        bad_mean=table.index[correction.reject_M[:n]].tolist(),
        bad_min=table.index[correction.reject_M[n:]].tolist(),
    )


def reproduction_caption(tests: ReproductionTests) -> str:
    c = tests.correction
    return (
        f"Ours vs the paper, per configuration (Bonferroni: {c.n_tests} tests at {c.alpha * 100:g} %, "
        f"|z| > {c.z_critical:.2f} or p < {c.threshold:.4f} is a real difference)"
    )


def reproduction_text(
    run: SimulationRun, table: pd.DataFrame, tests: ReproductionTests, profile: str, n_trials: int, n_trials_b10: int
) -> str:
    """The comparison with the repository's arrays in words, every judgement computed (markdown).

    ``table``: :func:`summary_table` of ``run``.
    """
    ours_min = table["min ratio"].min()
    worst = table.loc[table["min ratio"].idxmin()]
    nontrivial = table["samples"] > 2
    losses = np.concatenate([1 - r.ratios_T[~r.greedy_is_optimal_T] for r in run.results.values()])
    loss_text = (
        f"when it is not, it loses {losses.mean():.2%} of the optimum on average (at worst {losses.max():.2%})"
        if losses.size
        else "it was optimal in every trial"
    )
    rank_one_min = table.loc[~nontrivial, "min ratio"].min()
    z_abs = tests.table["z (mean)"].abs()
    c = tests.correction
    lines = [
        f'**Do we reproduce "all ratios above {FLOOR:g}"?** '
        + ("Yes" if ours_min > FLOOR else "No")
        + f": over all {run.n_trials_total} random covariances the smallest ratio is **{ours_min:.4f}** "
        f"({int(worst.points)} points, batch {int(worst.batch)}, {int(worst.samples)} samples; "
        f"paper minimum there: {worst['paper min']:.4f}).",
        f"With 2 samples per point every ratio is {rank_one_min:.6f} "
        + (
            "(greedy provably optimal for a rank-one covariance), as in the paper."
            if rank_one_min == 1.0
            else "although greedy is provably optimal for a rank-one covariance: **a bug to look into**."
        ),
        "For the other six configurations our mean ratios lie within "
        f"{np.abs(table.loc[nontrivial, 'mean ratio'] - table.loc[nontrivial, 'paper mean']).max():.4f} of the "
        "authors' (repository arrays); the greedy batch is the exact optimum in "
        f"{table.loc[nontrivial, 'greedy optimal'].min():.0%}–{table.loc[nontrivial, 'greedy optimal'].max():.0%} "
        f"of the trials; {loss_text}.",
    ]
    if tests.noise:
        lines.append(
            "**Are the differences sampling noise?** Yes, by the tests above: no mean differs from the authors' by "
            f"more than {z_abs.max() if z_abs.notna().any() else float('nan'):.1f} combined standard errors "
            f"(threshold {c.z_critical:.2f}) and no minimum of the authors' is unusually placed among our ratios "
            f"(smallest exact p = {tests.table['p (min)'].min():.3f}). The paper used its own random draws (its seeds "
            "are not published) and we use independent streams from `SeedSequence(P.seed)`; the minimum of 200 "
            "ratios is an extreme-value statistic governed by a handful of unlucky covariances, so minima move "
            "noticeably from one set of draws to another while the means are stable to about their standard error."
        )
    else:
        lines.append(
            "**Are the differences sampling noise?** Not all of them: beyond what independent random draws explain "
            f"(Bonferroni {c.alpha * 100:g} %) differ the mean ratio of {tests.bad_mean or 'no configuration'} and the "
            f"minimum of {tests.bad_min or 'no configuration'}. Either the paper's simulation differs from ours in a "
            "detail (covariance, τ, candidate set) or its draws were unusual; see the table above."
        )
    if not bool((table["trials"] == PAPER_TRIALS).all()):
        lines.append(
            f"This run used fewer than the paper's {PAPER_TRIALS} trials for some configurations "
            f"(profile `{profile}`: {n_trials} trials, {n_trials_b10} for batch 10), so its minima are less "
            f"extreme than a {PAPER_TRIALS}-trial run would give and the tests have little power."
        )
    return "\n\n".join(lines)


# ------------------------------------------------------------------------------------------------
# the worst trial, re-checked; ratios below the floor
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorstTrial:
    """The trial with the lowest ratio, rebuilt from its stream and searched with plain Cholesky."""

    config: Config
    trial: int
    greedy: optimality.GreedyResult
    best: optimality.ExhaustiveResult
    simulated_ratio: float

    @property
    def ratio(self) -> float:
        return self.greedy.total / self.best.total

    def line(self) -> str:
        return (
            f"worst trial: {self.config}, trial {self.trial}; greedy {np.sort(self.greedy.indices).tolist()} -> "
            f"{self.greedy.total:.6f}, best {self.best.indices.tolist()} -> {self.best.total:.6f}; ratio "
            f"{self.ratio:.6f} (simulation: {self.simulated_ratio:.6f})"
        )


def recheck_worst_trial(run: SimulationRun) -> WorstTrial:
    """Rebuild the lowest-ratio trial's covariance (trial t is the t-th draw of its stream) and search every
    batch with the per-batch Cholesky evaluation, independently of the simulation's tree search."""
    cfg = min(run.results, key=lambda c: run.results[c].ratios_T.min())
    trial = int(np.argmin(run.results[cfg].ratios_T))
    n_points, batch, n_samples = cfg
    V = optimality.simulation_trial_covariance(n_points, n_samples, trial, run.seeds[cfg])
    return WorstTrial(
        config=cfg,
        trial=trial,
        greedy=optimality.greedy_trace_reduction(V, batch),
        best=optimality.exhaustive_best(V, batch, method="cholesky"),
        simulated_ratio=float(run.results[cfg].ratios_T[trial]),
    )


@dataclass(frozen=True)
class BelowFloor:
    """Ratios below :data:`FLOOR`: per configuration, in all, and the rate among the 50-sample trials.

    ``p_all_above``: the chance that :data:`PAPER_TRIALS` trials at that rate all stay above the floor.
    """

    counts: Mapping[Config, int]
    n_below: int
    n_trials: int
    k_50: int
    n_50: int

    @property
    def rate_50(self) -> float:
        return self.k_50 / self.n_50

    @property
    def p_all_above(self) -> float:
        return (1 - self.rate_50) ** PAPER_TRIALS


def below_floor(run: SimulationRun) -> BelowFloor:
    counts = {cfg: int(np.sum(r.ratios_T < FLOOR)) for cfg, r in run.results.items()}
    fifty = [cfg for cfg in run.results if cfg[2] == 50]
    return BelowFloor(
        counts=counts,
        n_below=sum(counts.values()),
        n_trials=run.n_trials_total,
        k_50=sum(counts[c] for c in fifty),
        n_50=sum(run.results[c].n_trials for c in fifty),
    )


def below_floor_text(b: BelowFloor) -> str:
    if not b.n_below:
        return (
            f"**How rare are ratios below {FLOOR:g}?** None of our {b.n_trials} trials fell below {FLOOR:g}, "
            "consistent with the paper's caption."
        )
    where = ", ".join(f"{config_label(c)}: {k}" for c, k in b.counts.items() if k)
    return (
        f"**How rare are ratios below {FLOOR:g}?** {b.n_below} of {b.n_trials} trials ({where}). "
        f"Taking the rate in our 50-sample configurations, {b.k_50}/{b.n_50} = {b.rate_50:.2%} per trial, a set "
        f"of {PAPER_TRIALS} trials stays entirely above {FLOOR:g} with probability (1 − {b.rate_50:.4f})"
        f"^{PAPER_TRIALS} ≈ {b.p_all_above:.2f}. The paper’s “all above {FLOOR:g}” therefore describes its "
        f"particular draws rather than a bound: ratios below {FLOOR:g} are rare but not impossible, and the "
        "3 × 3 example shows how low they can go."
    )


def reading_text(table: pd.DataFrame) -> str:
    """Is greedy near-optimal on these covariances (every mean >= 0.99, every ratio >= 0.9)? (markdown)"""
    nontrivial = table["samples"] > 2
    mean_nontrivial = table.loc[nontrivial, "mean ratio"].min()
    ours_min = table["min ratio"].min()
    near_optimal = mean_nontrivial >= 0.99 and ours_min >= 0.9
    return (
        "**Reading.** "
        + (
            f"The greedy construction DEIMOS uses is near-optimal on these random covariances (every mean ratio "
            f"≥ {mean_nontrivial:.4f}, every ratio ≥ {ours_min:.4f}): the loss concentrates in rare configurations "
            "like the $3\\times3$ example, where one point is individually most informative only because it "
            "correlates with points that are better labelled together. "
            if near_optimal
            else f"The greedy construction loses more than 1 % on average in some configuration (lowest mean ratio "
            f"{mean_nontrivial:.4f}, lowest ratio {ours_min:.4f}), unlike the paper's simulation. "
        )
        + "The simulation is limited to small problems (exhaustive search grows as $\\binom{n}{b}$), and i.i.d. "
        'Gaussian "predictions" are not the structured covariances of a trained network, so it '
        + (
            "supports — but does not prove — the paper's claim that greedy batches lose little in practice."
            if near_optimal
            else "does not support the paper's claim that greedy batches lose little in practice."
        )
    )


# ------------------------------------------------------------------------------------------------
# the central claim and the finding
# ------------------------------------------------------------------------------------------------
def floor_comparison(run: SimulationRun) -> compare.Comparison:
    """The package's rule on Figure A.1's claim: each panel's minimum ratio against :data:`FLOOR`.

    The six panels (3 and 50 samples) are the units; "better" = the minimum lies above the floor.
    Supported when the 95 % CI of the mean margin lies above 0 and the sign-flip p < 0.05 (with six
    panels that needs all six above the floor).
    """
    minima = [float(run.results[c].ratios_T.min()) for c in FIGURE_A1_CONFIGS]
    return compare.paired(
        minima,
        [FLOOR] * len(minima),
        a="panel minimum",
        b=f"{FLOOR:g}",
        metric="greedy/optimal ratio",
        seeds=[config_label(c) for c in FIGURE_A1_CONFIGS],
    )


def floor_sentence(c: compare.Comparison, *, verdict: bool = True) -> str:
    """The rule's result in the panels' terms: margin, interval, p and (``verdict``) the verdict in bold."""
    text = (
        f"the minimum greedy/optimal ratio of each of Figure A.1's {c.n_seeds} panels minus {FLOOR:g} is "
        f"{c.interval(4)} (above in {c.n_a_better} of {c.n_seeds}; sign-flip p = {c.p_value:.3g})"
    )
    return f"{text}: **{c.verdict}**" if verdict else text


def paper_scale_seconds(run: SimulationRun) -> float:
    """Seconds the simulation would take at :data:`PAPER_TRIALS` per configuration, from this run's
    seconds per trial of each configuration (trials cost alike within a configuration)."""
    return float(sum(run.seconds[c] / run.results[c].n_trials * PAPER_TRIALS for c in CONFIGS))


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3.5 min"``, ``"1.2 h"``."""
    seconds = checks.check_float(seconds, "seconds", ge=0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def hardware() -> str:
    """This machine's CPU and core count, for cost estimates."""
    return f"{environment.cpu_model()} ({os.cpu_count()} cores)"


def finding(run: SimulationRun, table: pd.DataFrame, tests: ReproductionTests, b: BelowFloor) -> str:
    """The notebook's finding: the claim's verdict (or why it is not tested here), then the summary."""
    c = floor_comparison(run)
    if run.at_paper_scale:
        claim = f"**Central claim** (DEIMOS, Figure A.1): {floor_sentence(c)}. "
    else:
        trials = sorted({r.n_trials for r in run.results.values()})
        claim = (
            f"**Central claim** (DEIMOS, Figure A.1): not tested here: needs {PAPER_TRIALS} random covariances "
            f"per configuration (this run: {', '.join(map(str, trials))}), est. "
            f"{format_duration(paper_scale_seconds(run))} on {hardware()}. In this run's smaller draws "
            f"(minima of fewer ratios are less extreme) {floor_sentence(c, verdict=False)}. "
        )
    nontrivial = table["samples"] > 2
    ours_min = table["min ratio"].min()
    return (
        claim + f"Greedy DEIMOS batches reach on average {table.loc[nontrivial, 'mean ratio'].mean():.2%} of the best "
        f"batch's trace reduction (worst {ours_min:.4f} over {b.n_trials} random covariances); the paper's \"all "
        f'above {FLOOR:g}" '
        + ("holds in our draws" if ours_min > FLOOR else f"fails in {b.n_below} of them")
        + (
            ", and the differences from its table are sampling noise."
            if tests.noise
            else ", but some differences from its table exceed sampling noise."
        )
    )
