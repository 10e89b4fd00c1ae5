"""Notebook 05's protocol (mcal_utils.protocols.deimos_mnist): the configs of every profile exactly as the
notebook built them before, bad knobs refused before anything trains, Table 2 and the comparisons on
synthetic runs, the reference points, the cost prediction and the finding."""

import numpy as np
import pandas as pd
import pytest

from mcal_utils import compare, data, loop, metrics, profiles, references
from mcal_utils.cost import CostModel
from mcal_utils.plots import deimos as deimos_plots
from mcal_utils.protocols import deimos_mnist as protocol


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(n_seeds=1), "n_seeds >= 2"),
        (dict(experiments=("b1", "b7")), "experiments"),
        (dict(experiments=("b1", "b1")), "experiments"),
        (dict(experiments=()), "experiments"),
        (dict(n_candidates_10=60), "b100: n_candidates=60 is smaller than its batch of 100"),
        (dict(n_candidates_79=20), "b25: n_candidates=20 is smaller than its batch of 25"),
        (dict(pool_size=100), "at the last acquiring step, fewer than n_candidates"),
        (dict(pixel_scale="0-255"), "pixel_scale"),
        (dict(batching="torch"), "batching"),
        (dict(outlier_fraction=1.0), "outlier_fraction"),
        (dict(kcenter_time_limit=-1.0), "kcenter_time_limit"),
    ],
)
def test_profile_refuses_bad_knobs(overrides, message):
    with pytest.raises(ValueError, match=message):
        profiles.resolve("05_deimos_mnist", "smoke", **overrides)


def test_every_profile_of_05_is_valid():
    for name in profiles.PROFILE_NAMES:
        s = profiles.resolve("05_deimos_mnist", name)
        assert {"b1", "b100"} <= set(s.experiments) and s.n_seeds >= 2
        # the paired comparisons a finding rests on need >= 8 seeds outside smoke; smoke and paper run every experiment
        assert name == "smoke" or s.n_seeds >= 8
        assert name == "default" or set(s.experiments) == {"b1", "b25", "b100"}
    paper = profiles.resolve("05_deimos_mnist", "paper")
    assert (
        paper.n_acq_b1,
        paper.n_steps_b25,
        paper.n_steps_b100,
        paper.epochs,
        paper.T,
        paper.T_eval,
        paper.n_candidates_79,
        paper.n_candidates_10,
        paper.pixel_scale,
    ) == (200, 20, 10, 300, 50, 100, 2500, 2000, "raw")


def _mnist79_config(**changes):
    base = loop.ExperimentConfig(
        task="mnist79",
        task_options={"pixel_scale": "raw"},
        model="deimos_mnist79",
        strategy="kcenter_robust",
        initial_size=10,
        k=25,
        n_steps=2,
        val_size=0,
        n_candidates=2500,
        strategy_options={"outlier_fraction": 0.001, "time_limit": 5.0},
        train=dict(optimizer="adam", lr=0.001, epochs=1, batch_size=128, l2_dense=0.0005, checkpoint="last"),
    )
    return base.replace(**changes)


@pytest.fixture(scope="module")
def mnist_available():
    try:
        data.load_mnist()
    except FileNotFoundError as e:
        pytest.skip(f"real MNIST unavailable: {e}")


def test_robust_kcenter_at_paper_size_validates_and_too_large_is_refused(mnist_available):
    loop.validate(_mnist79_config())  # 10 + 25 labelled + 2500 candidates: fits
    too_big = _mnist79_config(strategy_options={"outlier_fraction": 0.001, "max_points": 2000})
    with pytest.raises(ValueError, match="max_points=2000"):
        loop.validate(too_big)
    with pytest.raises(ValueError, match="pixel_scale"):
        loop.validate(_mnist79_config(task_options={"pixel_scale": "bytes"}))


# ---------------------------------------------------------------------------
# configs: exactly what the notebook built before the refactor (its cache keys, its runs)
# ---------------------------------------------------------------------------
def notebook_configs_before(exp: str, P, seeds) -> list:
    """Notebook 05's `configs_for` as it was (commit e77181d), for the equivalence test."""
    paper = {
        "b1": dict(task="mnist79", model="deimos_mnist79", initial=10, k=1, l2=0.0005, second=("BALD", "bald")),
        "b25": dict(
            task="mnist79", model="deimos_mnist79", initial=10, k=25, l2=0.0005, second=("BatchBALD", "batchbald")
        ),
        "b100": dict(
            task="mnist", model="deimos_mnist10", initial=30, k=100, l2=0.01, second=("BatchBALD", "batchbald")
        ),
    }
    ours = {
        "b1": dict(n_steps=P.n_acq_b1, epochs=P.epochs, n_cand=P.n_candidates_79, tau=P.tau_inv_79),
        "b25": dict(n_steps=P.n_steps_b25, epochs=P.epochs, n_cand=P.n_candidates_79, tau=P.tau_inv_79),
        "b100": dict(n_steps=P.n_steps_b100, epochs=P.epochs_b100, n_cand=P.n_candidates_10, tau=P.tau_inv_10),
    }
    p, o = paper[exp], ours[exp]
    base = loop.ExperimentConfig(
        task=p["task"],
        task_options={"pixel_scale": P.pixel_scale},
        model=p["model"],
        strategy="random",
        initial_size=p["initial"],
        initial="balanced",
        k=p["k"],
        n_steps=o["n_steps"],
        pool_size=P.pool_size or None,
        val_size=0,
        test_size=P.test_size or None,
        T=P.T,
        n_candidates=o["n_cand"],
        tau_inv=o["tau"],
        T_eval=P.T_eval,
        train=dict(
            optimizer="adam",
            lr=0.001,
            epochs=o["epochs"],
            batch_size=128,
            l2_dense=p["l2"],
            checkpoint="last",
            batching=P.batching,
        ),
    )
    second_label, second = p["second"]
    methods = [
        ("DEIMOS", "deimos", {}, {}),
        (second_label, second, {"num_samples": P.batchbald_samples} if second == "batchbald" else {}, {}),
        ("MaxEnt", "entropy_mc", {}, {}),
        ("Random", "random", {}, {}),
        (
            "Robust k-center",
            "kcenter_robust",
            {"outlier_fraction": P.outlier_fraction, "time_limit": P.kcenter_time_limit},
            {},
        ),
    ]
    if exp == "b1" and P.whole_pool:
        n_total = min(P.pool_size or 12214, 12214)
        methods.append(
            (
                "DEIMOS (whole pool)",
                "deimos",
                {},
                {"n_candidates": n_total - p["initial"] - (o["n_steps"] - 1) * p["k"]},
            )
        )
    if exp == "b100" and P.tau_inv_10_alt > 0:
        methods.append((f"DEIMOS (tau^-1 {P.tau_inv_10_alt:g})", "deimos", {}, {"tau_inv": P.tau_inv_10_alt}))
    return [
        base.replace(strategy=s, label=label, strategy_options=opts, seed=seed, **changes)
        for label, s, opts, changes in methods
        for seed in seeds
    ]


@pytest.mark.parametrize("profile", profiles.PROFILE_NAMES)
@pytest.mark.parametrize("exp", ["b1", "b25", "b100"])
def test_configs_are_the_notebooks_configs_before_the_refactor(profile, exp):
    P = profiles.resolve("05_deimos_mnist", profile)
    seeds = list(range(P.n_seeds))
    got = [c.to_dict() for c in protocol.configs(exp, P, seeds)]
    assert got == [c.to_dict() for c in notebook_configs_before(exp, P, seeds)]
    assert [loop.config_hash(c) for c in protocol.configs(exp, P, seeds)] == [
        loop.config_hash(c) for c in notebook_configs_before(exp, P, seeds)
    ]


def test_experiments_carry_the_papers_protocol():
    b1, b25, b100 = (protocol.EXPERIMENTS[e] for e in ("b1", "b25", "b100"))
    assert (b1.n_acquired, b25.n_acquired, b100.n_acquired) == (200, 500, 1000)
    assert b1.tau_inv == references.DEIMOS_TAU_INV_79.value and b100.tau_inv == references.DEIMOS_TAU_INV_10.value
    assert (b1.n_train, b1.n_test) == references.DEIMOS_MNIST79_SIZES.value
    assert protocol.TABLE2_THRESHOLDS == (0.95, 0.96, 0.97, 0.975) and protocol.DECLARED_THRESHOLDS == (0.95, 0.96)
    P = profiles.resolve("05_deimos_mnist", "paper")
    assert [m.label for m in protocol.methods("b100", P)][-1] == "DEIMOS (tau^-1 0.0003)"
    assert protocol.run_sizes("b100", P) == protocol.RunSizes(10, 300, 2000, 3e-5)
    with pytest.raises(ValueError, match="unknown experiment"):
        protocol.run_sizes("b7", P)


def test_protocol_table_and_deviations_follow_the_settings():
    smoke = profiles.resolve("05_deimos_mnist", "smoke")
    table = protocol.protocol_table(smoke)
    assert table.loc[("MNIST 7-vs-9, batch 1", "acquisitions (labels)")].tolist() == ["2 (10 → 12)", "200 (10 → 210)"]
    assert table.columns[0] == "this run (smoke)"
    assert any("pixels in [0, 1]" in d for d in protocol.deviations(smoke))
    paper = profiles.resolve("05_deimos_mnist", "paper")
    assert not any("pixels in [0, 1]" in d for d in protocol.deviations(paper))
    assert protocol.batchbald_note(paper) == "" and "10 000" in protocol.batchbald_note(smoke)


# ---------------------------------------------------------------------------
# Table 2, final accuracies, verdicts on synthetic runs
# ---------------------------------------------------------------------------
METHODS = ["DEIMOS", "BALD", "MaxEnt", "Random", "Robust k-center", "DEIMOS (whole pool)"]


def synthetic_b1(n_seeds: int = 8, n_steps: int = 20, seed: int = 0) -> pd.DataFrame:
    """Accuracy curves rising towards 0.98, DEIMOS fastest, Random slowest; one row per (method, seed, step)."""
    rng = np.random.default_rng(seed)
    speed = {
        "DEIMOS": 0.25,
        "BALD": 0.2,
        "MaxEnt": 0.2,
        "Random": 0.08,
        "Robust k-center": 0.18,
        "DEIMOS (whole pool)": 0.25,
    }
    rows = []
    for m in METHODS:
        for s in range(n_seeds):
            acc = 0.98 - 0.2 * np.exp(-speed[m] * np.arange(n_steps + 1)) + rng.normal(0, 0.003, n_steps + 1)
            for step, a in enumerate(acc):
                rows.append(
                    dict(
                        method=m,
                        seed=s,
                        step=step,
                        acquired_total=step,
                        budget=10 + step,
                        accuracy=a,
                        acquired=[100 * s + step] if step < n_steps else [],
                        n_acquired_this_step=int(step < n_steps),
                        train_s=0.01 * (10 + step),
                        eval_s=0.2,
                        select_s=0.1 * (m != "Random") * (step < n_steps),
                        step_s=0.5,
                    )
                )
    df = pd.DataFrame(rows)
    df["method"] = pd.Categorical(df["method"], categories=METHODS, ordered=True)
    return df


def test_table2_counts_crossings_and_compares_at_the_declared_thresholds():
    df = synthetic_b1()
    t2 = protocol.table2(df)
    assert list(t2.seed_mean.index) == METHODS and list(t2.seed_mean.columns) == ["0.95", "0.96", "0.97", "0.975"]
    wide = df[df["method"] == "DEIMOS"].pivot_table(index="seed", columns="acquired_total", values="accuracy")
    want = metrics.threshold_crossings(wide.columns.to_numpy(), wide.to_numpy(), protocol.TABLE2_THRESHOLDS)
    assert t2.seed_mean.loc["DEIMOS", "0.95"] == f"{want.mean_K[0]:.0f}"
    assert t2.per_seed.loc["DEIMOS", "0.96"].count("/") == 7
    assert t2.paper.loc["Random"].tolist() == [48, 55, 113, 158]
    assert list(t2.comparisons) == [0.95, 0.96]
    assert [c.b for c in t2.comparisons[0.95]] == ["BALD", "MaxEnt", "Random", "Robust k-center"]  # no variants
    vs_random = t2.comparisons[0.95][2]
    assert vs_random.verdict == compare.SUPPORTED and vs_random.effect < 0
    assert len(t2.all_comparisons()) == 8


def test_table2_acquisitions_needed_reach_past_the_closest_baseline_of_every_threshold():
    # closest baselines in the paper: 21, 25, 39, 58 -> 58 -> 60
    assert protocol.table2_acquisitions_needed() == 60
    assert protocol.table2_acquisitions_needed(step=1) == 58


def test_final_table_and_reference_points():
    df = synthetic_b1(n_seeds=3, n_steps=4)
    table = protocol.final_table({"b1": df})
    row = table.loc[("MNIST 7-vs-9, batch 1", "DEIMOS")]
    curves = df[df["method"] == "DEIMOS"].pivot_table(index="seed", columns="acquired_total", values="accuracy")
    assert row["ours: final acc."] == pytest.approx(curves.mean().iloc[-1])
    assert row["ours: AUBC"] == pytest.approx(metrics.aubc(curves.mean().to_numpy()))
    assert row["authors' arrays: final acc."] == 0.9903 and row["paper: acquired"] == 200
    assert np.isnan(table.loc[("MNIST 7-vs-9, batch 1", "DEIMOS (whole pool)"), "authors' arrays: AUBC"])
    assert protocol.reference_points("b1", 20) is None  # the paper's point (200) lies beyond the run
    ref = protocol.reference_points("b100", 100)
    np.testing.assert_array_equal(ref["DEIMOS"][0], [0, 100])
    np.testing.assert_allclose(ref["Random"][1], references.DEIMOS_B100_CURVES["Random"].value[:2])


def test_verdicts_pair_deimos_with_each_baseline_and_variants_with_deimos():
    v = protocol.verdicts(synthetic_b1())
    baselines = ["BALD", "MaxEnt", "Random", "Robust k-center"]
    assert [(c.a, c.b) for c in v.claim.comparisons] == [("DEIMOS", b) for b in baselines] * 2
    assert [c.metric for c in v.claim.comparisons][:4] == ["AUBC accuracy"] * 4
    assert [(c.a, c.b) for c in v.variants] == [("DEIMOS (whole pool)", "DEIMOS")]
    assert list(v.claim.lmm) == baselines and v.claim.of("aubc")[2].verdict == compare.SUPPORTED
    text = protocol.verdict_lines(
        "b1", synthetic_b1(), v, protocol.table2(synthetic_b1()), profiles.resolve("05_deimos_mnist", "default")
    )
    assert (
        text.startswith("**MNIST 7-vs-9, batch 1** (8 seeds, 20 acquisitions)")
        and "(paper: DEIMOS 20, BALD 23)" in text
    )
    assert "BALD 2.3e-21" in protocol.lmm_paper_sentence()


def test_first_and_last_picks_per_seed():
    chosen = protocol.first_and_last_picks(synthetic_b1(n_seeds=2, n_steps=10))
    assert chosen[:5] == [(0, 0, 0), (0, 1, 1), (0, 2, 2), (0, 8, 8), (0, 9, 9)] and len(chosen) == 10
    assert protocol.first_and_last_picks(synthetic_b1(n_seeds=1, n_steps=3)) == [(0, 0, 0), (0, 1, 1), (0, 2, 2)]


# ---------------------------------------------------------------------------
# cost and finding
# ---------------------------------------------------------------------------
def test_paper_cost_is_the_cost_model_on_the_papers_units():
    P = profiles.resolve("05_deimos_mnist", "default")
    cfgs = [c for c in protocol.configs("b1", P, range(8))]
    df = synthetic_b1()
    df = df[df["method"].isin({c.method for c in cfgs})].assign(method=lambda d: d["method"].astype(str))
    cost = protocol.paper_cost("b1", df, cfgs, P, n_seeds=8)
    assert list(cost.table.index) == ["DEIMOS", "BALD", "MaxEnt", "Random", "Robust k-center", "DEIMOS (whole pool)"]
    deimos = next(c for c in cfgs if c.method == "DEIMOS")
    measured = protocol.step_plan(
        "b1", deimos, epochs=45, n_test=1000, eval_passes=10, passes=20, n_candidates=500, batchbald_samples=500
    )
    model = CostModel.fit(df[df["method"] == "DEIMOS"], {"DEIMOS": measured})
    paper_plan = protocol.step_plan(
        "b1",
        deimos.replace(n_steps=200),
        epochs=300,
        n_test=2037,
        eval_passes=100,
        passes=50,
        n_candidates=2500,
        batchbald_samples=10000,
    )
    want = model.predict_run("DEIMOS", [10 + s for s in range(201)], paper_plan)
    assert cost.table.loc["DEIMOS", "total h (8 seeds)"] == pytest.approx(8 * want.total / 3600)
    assert cost.wall_h == pytest.approx(cost.table["total h (8 seeds)"].sum() / 2)
    # the whole-pool DEIMOS is predicted from DEIMOS's rates, with the whole pool as candidates
    assert cost.table.loc["DEIMOS (whole pool)", "select h"] > cost.table.loc["DEIMOS", "select h"]
    table = protocol.paper_cost_table({"b1": cost})
    assert table.index[-1] == ("MNIST 7-vs-9, batch 1", "all methods, wall on 2 workers")
    long = protocol.table2_cost(synthetic_b1(), cfgs, P)
    assert list(long.table.index) == ["DEIMOS", "BALD", "MaxEnt", "Random", "Robust k-center"]
    assert long.wall_h < cost.wall_h


def test_finding_states_verdicts_where_reached_and_prices_the_rest():
    P = profiles.resolve("05_deimos_mnist", "default")
    df = synthetic_b1()
    t2 = protocol.table2(df)
    long = protocol.table2_cost(df, protocol.configs("b1", P, range(8)), P)
    text = protocol.finding(df, t2, long, P)
    assert "To 0.95: supported against" in text and "vs Random" in text and "**supported**" in text
    assert "not tested here: needs ≥ 60 acquisitions at 300 epochs (5 methods × 8 seeds), est. " in text
    assert text.endswith(f"est. {long.wall_h:.1f} h on 2 CPU cores.")
    flat = df.assign(accuracy=0.5)  # nothing reaches any threshold: nothing is tested
    text = protocol.finding(flat, protocol.table2(flat), long, P)
    assert "To 0.95" not in text and "Thresholds 0.95, 0.96, 0.97, 0.975: not tested here" in text


def test_kcenter_sentence_says_how_far_from_optimal():
    table = pd.DataFrame(
        {
            "exact": [True, False],
            "radius": [1.0, 2.0],
            "lower bound": [1.0, 1.6],
            "seconds": [0.5, 2.0],
            "DEIMOS select s (median)": [0.1, 0.2],
        }
    )
    text = protocol.kcenter_sentence(table, 2.0)
    assert text.startswith("1 of 2 selections were proved optimal within 2 s") and "at most 1.250 times" in text


def test_kcenter_check_selects_a_batch_at_the_papers_candidate_count(mnist_available):
    P = profiles.resolve("05_deimos_mnist", "smoke")
    config = next(c for c in protocol.configs("b1", P, [0]) if c.method == "Robust k-center")
    task = loop.load_task_for(config)
    check = protocol.kcenter_check("b1", config, task, synthetic_b1(n_seeds=1, n_steps=2), P)
    split = loop.make_split(config, task)
    assert check.n_points == len(split.initial) + min(2500, len(split.pool)) and check.k == 1
    assert check.lower_bound <= check.radius <= check.greedy_radius and check.deimos_select_s == pytest.approx(0.1)
    assert check.as_row()["experiment"] == "MNIST 7-vs-9, batch 1"


def test_convergence_refits_the_same_step0_model_at_each_epoch_count():
    settings = profiles.resolve("05_deimos_mnist", "smoke")
    conv = protocol.convergence(settings, epochs=(3, 1))
    assert list(conv.table["epochs"]) == [1, 3]
    assert len(conv.loss_by_epoch) == 3  # the longest fit's epochs
    assert conv.table["test_accuracy"].between(0, 1).all()
    again = protocol.convergence(settings, epochs=(1,))
    assert again.table.iloc[0].equals(conv.table.iloc[0])  # the 1-epoch fit is the same fit, whatever else ran
    assert "after 1 epochs" in conv.sentence() and "after 3 epochs" in conv.sentence()
    assert deimos_plots.convergence(conv) is not None
    with pytest.raises(ValueError, match="at least one"):
        protocol.convergence(settings, epochs=())


def test_kcenter_time_limit_zero_leaves_robust_kcenter_out():
    settings = profiles.resolve("05_deimos_mnist", "smoke", kcenter_time_limit=0.0)
    names = [m.label for m in protocol.methods("b1", settings)]
    assert "Robust k-center" not in names and names[:4] == ["DEIMOS", "BALD", "MaxEnt", "Random"]
    assert "Robust k-center" in [m.label for m in protocol.methods("b1", profiles.resolve("05_deimos_mnist", "smoke"))]


def test_a_crippled_batchbald_is_measured_but_not_judged():
    df = synthetic_b1()
    df["method"] = df["method"].cat.rename_categories({"BALD": "BatchBALD"})
    v = protocol.verdicts(df)
    default = profiles.resolve("05_deimos_mnist", "default")  # 500 samples, the authors' 10 000
    gap = protocol.batchbald_gap(df, default)
    # 8 seeds x 20 selections x 0.1 s, scaled by 10000 / 500 - 1 = 19, on 2 workers: 152 s
    assert gap.startswith("not tested here: needs BatchBALD with its authors' 10 000") and "est. +3 min" in gap
    text = protocol.verdict_lines("b100", df, v, None, default)
    batch_lines = [line for line in text.splitlines() if "BatchBALD" in line]
    assert len(batch_lines) == 2 and all("**" not in line and gap in line for line in batch_lines)
    assert text.count("**supported**") + text.count("**not resolved at this scale**") >= 6  # the others judged
    table = protocol.rule_table({"b100": v}, {"b100": "MNIST 0-9"}, default)
    verdict_of = table.reset_index().set_index(["metric", "B"])["verdict"]
    assert set(verdict_of.xs("BatchBALD", level="B")) == {"not tested here"}
    assert "not tested here" not in set(verdict_of.drop("BatchBALD", level="B"))
    # at the authors' samples (the paper profile) it is judged like any baseline
    paper = profiles.resolve("05_deimos_mnist", "paper")
    assert protocol.batchbald_gap(df, paper) == ""
    assert "**" in [line for line in protocol.verdict_lines("b100", df, v, None, paper).splitlines()
                    if "BatchBALD" in line][0]
    assert set(protocol.rule_table({"b100": v}, {"b100": "t"}, paper)["verdict"]) <= set(compare.VERDICTS)
