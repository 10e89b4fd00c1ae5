"""The MC-dropout-entropy paper's strategy comparison (notebook 02): configs from a profile, the declared
comparisons, the tables, the class balance of the picks, the MC-noise probe and the cost estimates -- on
synthetic frames and on a tiny grid of the loop's test task."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_loop import tiny_task

from mcal_utils import compare, loop, metrics, profiles, references
from mcal_utils.protocols import entropy_mnist_svhn as es

TINY = {"task": "test_loop:tiny_task", "model": "test_loop:tiny_model"}


def settings_with(**changes) -> dict:
    """The smoke profile's settings of notebook 02, with ``changes``."""
    return {**profiles.resolve("02_strategy_comparison", "smoke"), **changes}


def curves_frame(values: dict[str, np.ndarray], budgets=None) -> pd.DataFrame:
    """{method: (S, P) accuracy curves} -> the loop's long format (step, budget, seed, method, accuracy)."""
    rows = []
    for m, c in values.items():
        for s in range(c.shape[0]):
            for i in range(c.shape[1]):
                budget = (budgets or list(range(10, 10 * (c.shape[1] + 1), 10)))[i]
                rows.append({"method": m, "seed": s, "step": i, "budget": budget, "accuracy": float(c[s, i])})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# strategies, claims, the experiment's configs
# ---------------------------------------------------------------------------
def test_strategy_labels_name_power_bald_by_its_beta_or_leave_it_out():
    assert list(es.STRATEGIES)[:6] == ["random", "var_ratio", "margin", "margin_inverted", "entropy", "entropy_mc"]
    assert es.strategy_labels(1.0)["power_bald"] == "Power BALD (β = 1)"
    assert es.strategy_labels(0.5)["power_bald"] == "Power BALD (β = 0.5)"
    assert "power_bald" not in es.strategy_labels(0.0)
    assert es.MC_STRATEGIES <= set(es.STRATEGIES)


def test_central_claim_is_the_uncertainty_strategies_against_random():
    assert [(c.a, c.b) for c in es.CENTRAL] == [
        ("EntropyD", "Random"),
        ("Entropy", "Random"),
        ("VarRatio", "Random"),
        ("Margin", "Random"),
    ]
    assert set(es.CENTRAL) <= set(es.CLAIMS)


def _old_notebook_configs(P: dict, dataset: str, n_train: int) -> list[loop.ExperimentConfig]:
    """Notebook 02's grid as its cells built it before the protocol module (the regression reference)."""
    labels = {
        "random": "Random",
        "var_ratio": "VarRatio",
        "margin": "Margin",
        "margin_inverted": "Margin (inverted: the paper's bug)",
        "entropy": "Entropy",
        "entropy_mc": "EntropyD",
        "bald": "BALD",
        "power_bald": f"Power BALD (β = {P['power_beta']:g})",
    }
    if P["power_beta"] == 0:
        del labels["power_bald"]
    options = {"power_bald": {"beta": P["power_beta"]}}
    train = dict(
        optimizer="sgd",
        lr=P["lr"],
        momentum=P["momentum"],
        epochs=P["epochs"],
        batch_size=P["batch_size"],
        checkpoint="best_val",
        concrete_scale=P["concrete_scale"],
    )
    probe = loop.ExperimentConfig(
        task=dataset,
        task_options={"download": False} if dataset == "svhn" else {},
        model="kirillov_cnn",
        strategy="random",
    )
    val_size = P["val_size"] or (None if dataset == "svhn" else n_train // 5)
    base = probe.replace(
        initial=P["initial"],
        initial_size=P["initial_size"],
        k=P["k"],
        n_steps=P["n_steps"],
        pool_size=P["pool_size"] or None,
        val_size=val_size,
        test_size=P["test_size"] or None,
        T=P["T"],
        n_candidates=P["n_candidates"] or None,
        train=train,
        init=P["init"],
    )

    def entry(strategy, label, **changes):
        return {"strategy": strategy, "label": label, "strategy_options": options.get(strategy, {}), **changes}

    seeds = list(range(P["n_seeds"]))
    configs = loop.grid_configs(base, [entry(s, label) for s, label in labels.items()], seeds)
    other_init = {"fixed": "per_step", "per_step": "fixed"}[P["init"]]
    other_scale = {"none": "n_train", "n_train": "none"}[P["concrete_scale"]]
    init_name = {"fixed": "fixed init", "per_step": "per-step init"}
    scale_name = {"none": "paper's regulariser", "n_train": "1/N regulariser"}
    init_runs = {labels[s]: f"{labels[s]} · {init_name[other_init]}" for s in P["compare_init"]}
    scale_runs = {labels[s]: f"{labels[s]} · {scale_name[other_scale]}" for s in P["compare_scale"]}
    s_of = {label: s for s, label in labels.items()}
    configs += loop.grid_configs(base, [entry(s_of[m], o, init=other_init) for m, o in init_runs.items()], seeds)
    configs += loop.grid_configs(
        base, [entry(s_of[m], o, train={**train, "concrete_scale": other_scale}) for m, o in scale_runs.items()], seeds
    )
    return configs


@pytest.mark.parametrize("profile", profiles.PROFILE_NAMES)
@pytest.mark.parametrize("dataset", ["mnist32", "svhn"])
def test_configs_are_those_the_notebook_built_before(profile, dataset):
    P = dict(profiles.resolve("02_strategy_comparison", profile))
    experiment = es.experiment_from(P, dataset=dataset, n_train=60000)
    assert experiment.configs() == _old_notebook_configs(P, dataset, 60000)
    assert [loop.config_hash(c) for c in experiment.configs()] == [
        loop.config_hash(c) for c in _old_notebook_configs(P, dataset, 60000)
    ]


def test_experiment_from_smoke_settings():
    experiment = es.experiment_from(settings_with(val_size=0), dataset="mnist32", n_train=60000)
    assert experiment.base.val_size == 12000  # MNIST: a fifth of the train split, as SVHN's fixed 20 %
    assert experiment.name == "MNIST-32" and experiment.window == 1 and experiment.seeds == (0, 1, 2, 3)
    assert experiment.init_runs == {"Random": "Random · per-step init"}
    assert experiment.scale_runs == {"Random": "Random · 1/N regulariser"}
    assert experiment.other_init == "per_step" and experiment.other_scale == "n_train"
    configs = experiment.configs()
    assert len(configs) == (8 + 1 + 1) * 4
    power = [c for c in configs if c.strategy == "power_bald"]
    assert power and all(c.strategy_options == {"beta": 1.0} for c in power)
    rerun = [c for c in configs if c.method == "Random · 1/N regulariser"]
    assert all(c.train["concrete_scale"] == "n_train" and c.strategy == "random" for c in rerun)
    assert ("Power BALD (β = 1)", "BALD") in [(c.a, c.b) for c in experiment.claims]
    assert experiment.central == es.CENTRAL
    assert experiment.strategy_of("EntropyD") == "entropy_mc"
    assert not experiment.same_budgets_as_paper and es.paper_reference_points(experiment) is None


def test_experiment_without_power_bald_drops_its_claim_and_checks_arguments():
    experiment = es.experiment_from(
        settings_with(power_beta=0.0, compare_init=(), compare_scale=()), dataset="svhn", n_train=1000
    )
    assert "power_bald" not in experiment.labels
    assert all("Power" not in c.a for c in experiment.claims)
    assert len(experiment.configs()) == 7 * 4
    assert experiment.base.task_options == {"download": False}
    with pytest.raises(ValueError, match="dataset"):
        es.experiment_from(settings_with(), dataset="cifar", n_train=10)
    with pytest.raises(TypeError):
        es.experiment_from(settings_with(), dataset="svhn", n_train=1.5)


def test_leave_out_drops_strategies_and_their_claims_but_never_the_central_ones():
    experiment = es.experiment_from(
        settings_with(power_beta=0.0, compare_init=(), compare_scale=(), leave_out=("bald", "margin_inverted")),
        dataset="mnist32",
        n_train=1000,
    )
    assert list(experiment.labels) == ["random", "var_ratio", "margin", "entropy", "entropy_mc"]
    assert {c.strategy for c in experiment.configs()} == set(es.CENTRAL_STRATEGIES)
    assert experiment.claims == (*es.CENTRAL, es.CLAIMS[4])  # BALD's and the inverted Margin's claims go
    with pytest.raises(ValueError, match="central claim compares"):
        es.experiment_from(settings_with(leave_out=("random",)), dataset="mnist32", n_train=1000)


@pytest.mark.parametrize("profile, n_gaps", [("smoke", 2), ("default", 2), ("long", 0), ("paper", 0)])
def test_claim_scale_gaps_name_what_a_profile_lacks_for_the_central_claim(profile, n_gaps):
    P = profiles.resolve("02_strategy_comparison", profile)
    experiment = es.experiment_from(P, dataset="mnist32", n_train=60000)
    gaps = es.claim_scale_gaps(experiment, n_pool=30000)
    assert len(gaps) == n_gaps
    if profile == "default":
        assert "≥ 500 labels (this grid starts from 20)" in gaps[0]
        assert "≥ 2000 candidates per step (this grid scores 100: its top 20 is 20 % of them" in gaps[1]
        assert "the paper's 2.8 %" in gaps[1]
    # a pool smaller than MIN_CANDIDATES scored whole is not a gap
    whole = experiment.replace(base=experiment.base.replace(n_candidates=None, initial_size=500))
    assert es.claim_scale_gaps(whole, n_pool=800) == []


def test_paper_budgets_put_the_reference_points_on_the_curve():
    P = settings_with(initial_size=es.PAPER.initial_size, k=es.PAPER.k)
    experiment = es.experiment_from(P, dataset="svhn", n_train=50000)
    points = es.paper_reference_points(experiment)
    assert points is not None and points["EntropyD"] == ([34000], [0.919561])
    assert es.PAPER.budgets[0] == 1000 and es.PAPER.budgets[-1] == 37000 and len(es.PAPER.budgets) == 37


def test_resolve_dataset_prefers_svhn_when_its_files_are_there(tmp_path):
    assert es.resolve_dataset("auto", tmp_path) == "mnist32"
    assert es.resolve_dataset("mnist32", tmp_path) == "mnist32"
    with pytest.raises(FileNotFoundError, match="train_32x32.mat"):
        es.resolve_dataset("svhn", tmp_path)
    for name in es.SVHN_FILES:
        (tmp_path / name).write_bytes(b"")
    assert es.resolve_dataset("auto", tmp_path) == "svhn"
    with pytest.raises(ValueError, match="dataset"):
        es.resolve_dataset("SVHN", tmp_path)


# ---------------------------------------------------------------------------
# tables and claims on synthetic curves
# ---------------------------------------------------------------------------
def test_highest_and_window_tables():
    df = curves_frame({"A": np.array([[0.5, 0.7, 0.6], [0.5, 0.6, 0.8]]), "B": np.array([[0.5, 0.5, 0.5]] * 2)})
    high = es.highest_table(df)
    assert high.loc["A", "highest (mean)"] == pytest.approx(0.75)
    assert high.loc["A", "± std"] == pytest.approx(np.std([0.7, 0.8], ddof=1))
    assert high.loc["A", "budget of the mean curve's max"] == 30  # mean curve 0.5, 0.65, 0.7
    window = es.window_table(df, 1)
    assert window.loc["A", "AUBC"] == pytest.approx(np.mean([metrics.aubc([0.5, 0.7]), metrics.aubc([0.5, 0.6])]))
    assert window.loc["B", "TP"] == 0.0 and list(window.columns) == [
        "max",
        "max ± std",
        "AUBC",
        "AUBC ± std",
        "TP",
        "TP ± std",
    ]


def test_paper_tables_come_from_the_references():
    name, table = es.paper_window_table(10)
    assert name == "Table 2" and table.loc["EntropyD", "AUBC"] == references.KIRILLOV_FIRST10["EntropyD"].value[1]
    assert es.paper_window_table(20)[0] == "Table 3" and es.paper_window_table(5) is None
    assert es.paper_aubc(20)["Random"] == references.KIRILLOV_FIRST20["Random"].value[1]
    with pytest.raises(ValueError):
        es.paper_aubc(7)
    assert es.paper_highest_table().loc["Random", "budget"] == 36000
    rates = es.paper_rates_table()
    assert tuple(rates.iloc[0]) == references.KIRILLOV_LEARNED_P.value and list(rates.columns) == [
        "p1",
        "p2",
        "p3",
        "p4",
    ]


def test_judge_claims_and_verdict_reading():
    rng = np.random.default_rng(0)
    random_ = 0.5 + rng.normal(0, 0.01, size=(8, 3))
    better = random_ + 0.05 + rng.normal(0, 0.005, size=(8, 3))
    df = curves_frame({"EntropyD": better, "Random": random_})
    claims = [es.Claim("EntropyD", "Random", "t"), es.Claim("Random", "EntropyD", "u")]
    out = es.judge_claims(df, claims, upto=2)
    assert out[("EntropyD", "Random")].verdict == compare.SUPPORTED
    assert out[("Random", "EntropyD")].verdict == compare.CONTRADICTED
    assert es.verdict_reading(out[("EntropyD", "Random")]).startswith("EntropyD picks better examples than Random")
    assert es.verdict_reading(out[("Random", "EntropyD")]).startswith("EntropyD picks better examples than Random")
    few = es.judge_claims(curves_frame({"EntropyD": better[:3], "Random": random_[:3]}), claims[:1], upto=2)
    assert "fewer than 6 seeds can never resolve" in es.verdict_reading(few[("EntropyD", "Random")])


def test_lmm_check_pairs_the_rule_with_deimos_test():
    rng = np.random.default_rng(1)
    df = curves_frame({"EntropyD": 0.6 + rng.normal(0, 0.01, (4, 3)), "Random": 0.5 + rng.normal(0, 0.01, (4, 3))})
    comparisons = es.judge_claims(df, [es.Claim("EntropyD", "Random", "t")], upto=2)
    check = es.lmm_check(df, comparisons, upto=2)
    assert check.aa is not None and "splits" in check.aa_line and check.n_seeds == 4
    assert check.table.loc[0, "points"] == 2 * 4 * 3 and check.n_significant == 1
    two = es.lmm_check(
        df[df["seed"] < 2], es.judge_claims(df[df["seed"] < 2], [es.Claim("EntropyD", "Random", "")], upto=2), upto=2
    )
    assert two.aa is None and "needs at least 4 seeds; this run has 2" in two.aa_line


# ---------------------------------------------------------------------------
# picks and their class balance
# ---------------------------------------------------------------------------
def picks_frame(picks: dict[tuple[str, int], list[list[int]]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"method": m, "seed": s, "step": i, "acquired": a}
            for (m, s), steps in picks.items()
            for i, a in enumerate(steps)
        ]
    )


def test_picks_by_run_concatenates_steps_in_order_and_same_picks_compares_them():
    df = picks_frame({("A", 0): [[3, 1], [7], []], ("B", 0): [[3, 1], [7], []], ("C", 0): [[1, 3], [7], []]})
    df = df.sample(frac=1.0, random_state=0)  # the order of the rows does not matter, the step does
    assert es.picks_by_run(df)[("A", 0)].tolist() == [3, 1, 7]
    assert es.same_picks(df, "A", "B") and not es.same_picks(df, "A", "C")


def test_pick_balance_against_a_hand_count():
    y_N = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    pools = {0: np.arange(8), 1: np.arange(6)}  # seed 1: an exactly balanced pool
    df = picks_frame(
        {
            ("A", 0): [[0, 1], [6]],
            ("A", 1): [[2, 3], [4]],  # labels 0,0,0 / 1,1,2
            ("B", 0): [[0, 2], [4]],
            ("B", 1): [[1, 3], [5]],
        }
    )  # labels 0,1,2 / 0,1,2
    balance = es.pick_balance(df, y_N, pools, 3, methods=["A", "B"], n_null=50, random_state=0)
    # seed 0's pool: 3/8, 3/8, 2/8; A's picks all class 0 -> TV = 1 - 3/8
    np.testing.assert_allclose(balance.tv_S["A"], [5 / 8, 1 / 3])
    np.testing.assert_allclose(balance.tv_S["B"], [0.5 * (abs(1 / 3 - 3 / 8) * 2 + abs(1 / 3 - 2 / 8)), 0.0])
    assert balance.table.loc["A", "least-picked class"] == 2 and balance.table.loc["A", "most share"] == 0.5
    np.testing.assert_allclose(balance.fractions_C["B"], [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(balance.pool_fractions_C, [5 / 14, 5 / 14, 4 / 14])
    assert balance.n_picks == 3 and 0 <= balance.null_tv_95 <= 1
    again = es.pick_balance(df, y_N, pools, 3, methods=["A", "B"], n_null=50, random_state=0)
    assert again.null_tv_95 == balance.null_tv_95  # seeded
    with pytest.raises(ValueError, match="different numbers"):
        es.pick_balance(picks_frame({("A", 0): [[0]], ("A", 1): [[2, 3]]}), y_N, pools, 3, methods=["A"])


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 5), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_pick_balance_tv_is_half_the_l1_distance(n_classes, n_seeds, seed):
    rng = np.random.default_rng(seed)
    y_N = rng.integers(0, n_classes, size=40)
    pools = {s: np.sort(rng.choice(40, size=30, replace=False)) for s in range(n_seeds)}
    picks = {("A", s): [rng.choice(pools[s], size=5, replace=False).tolist()] for s in range(n_seeds)}
    balance = es.pick_balance(picks_frame(picks), y_N, pools, n_classes, methods=["A"], n_null=5)
    for s in range(n_seeds):
        f_C = np.bincount(y_N[picks[("A", s)][0]], minlength=n_classes) / 5
        r_C = np.bincount(y_N[pools[s]], minlength=n_classes) / 30
        assert balance.tv_S["A"][s] == pytest.approx(0.5 * np.abs(f_C - r_C).sum())


# ---------------------------------------------------------------------------
# a tiny grid of the loop's test task: the reruns, the probe, the rates, the cost model
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    P = settings_with(
        n_seeds=2,
        initial_size=9,
        k=5,
        n_steps=1,
        epochs=1,
        batch_size=16,
        T=3,
        n_candidates=30,
        val_size=20,
        pool_size=0,
        test_size=0,
    )
    experiment = es.experiment_from(P, dataset="mnist32", n_train=150)
    experiment = experiment.replace(base=experiment.base.replace(**TINY))
    grid = loop.run_cached_grid(
        "02_test", "tiny", experiment.configs(), workers=0, run_root=tmp_path_factory.mktemp("runs")
    )
    return experiment, tiny_task(), grid


def test_tiny_grid_reruns_and_balance(tiny):
    experiment, task, grid = tiny
    df = experiment.main_results(grid.results)
    assert list(df["method"].cat.categories) == list(experiment.labels.values())
    assert es.same_picks(grid.results, "Random", "Random · per-step init")  # Random's picks ignore the network
    splits = experiment.splits(task)
    balance = es.pick_balance(
        grid.results,
        task.y_train,
        {s: sp.pool for s, sp in splits.items()},
        3,
        methods=list(experiment.labels.values()),
        n_null=20,
    )
    assert balance.n_picks == 5 and list(balance.table.index) == list(experiment.labels.values())


def test_tiny_grid_rates_and_cost(tiny):
    experiment, task, grid = tiny
    runs = experiment.scale_runs
    rates = es.dropout_rates_long(grid.results, [*runs, *runs.values()])
    assert set(rates["layer"]) == {"p1"} and set(rates["method"]) == {"Random", "Random · 1/N regulariser"}
    table = es.final_rates_table(grid.results, runs, ("paper's regulariser", "1/N regulariser"))
    assert table.shape == (2, 1) and ((table > 0) & (table < 1)).all().all()
    split = experiment.splits(task)[0]
    cost = es.cost_estimates(grid.results, experiment, split, workers=0)
    assert cost.n_workers == 1 and cost.grid_wall_s > 0 and cost.paper_s > cost.grid_wall_s
    assert cost.paper_methods == len(experiment.labels)
    need = es.profile_cost(cost.model, profiles.resolve("02_strategy_comparison", "default"), n_pool=100, n_test=60)
    assert need.wall_s > 0 and need.n_seeds == 8
    # left-out strategies cost nothing: the same settings without BALD and Power BALD predict less
    every = es.profile_cost(cost.model, settings_with(leave_out=()), n_pool=100, n_test=60)
    fewer = es.profile_cost(cost.model, settings_with(leave_out=("bald", "power_bald")), n_pool=100, n_test=60)
    assert 0 < fewer.wall_s < every.wall_s
    note = es.time_note(grid, cost, profile="smoke", resume=True)
    assert str(grid.root) in note and f"{cost.paper_methods} strategies" in note


def test_mc_noise_probe_is_seeded_and_bounded(tiny):
    experiment, task, _ = tiny
    config = experiment.base.replace(seed=0, strategy="bald")
    split = experiment.splits(task)[0]
    probe = es.mc_noise_probe(config, task, split, (2, 3), k=5, n_candidates=30)
    assert probe.n_candidates == 30 and probe.k == 5 and probe.n_labelled == 9
    assert list(probe.table["score"]) == ["BALD", "EntropyD"] * 2 and list(probe.table["T"]) == [2, 2, 3, 3]
    assert all(0 <= probe.overlap(s, T) <= 1 for s in ("BALD", "EntropyD") for T in (2, 3))
    again = es.mc_noise_probe(config, task, split, (2, 3), k=5, n_candidates=30)
    pd.testing.assert_frame_equal(probe.table, again.table)
    with pytest.raises(TypeError):
        es.mc_noise_probe(config, task, split, (2,), k=2.0, n_candidates=30)


def test_notes_name_the_data_set_and_the_scaling(tiny, tmp_path):
    experiment, task, _ = tiny
    split = experiment.splits(task)[0]
    note = es.dataset_note(experiment, task, tmp_path)
    assert "MNIST-32" in note and "not** comparable" in note
    scaling = es.scaling_note(experiment, split, "smoke")
    assert "profile `smoke`" in scaling and f"{len(split.val)} validation" in scaling
    table = es.protocol_table(experiment, split, "smoke")
    assert table.loc["pool (initial set included)", "the paper"] == str(references.KIRILLOV_N_TRAIN.value)
