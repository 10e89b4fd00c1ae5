"""DEIMOS's regression protocols: configs, thresholds from the data's range, crossings (falling below an
error level), missing-file messages, and the UTKFace / splicing sections on tiny fixture files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcal_utils import data, loop, profiles
from mcal_utils.protocols import deimos_regression as rp
from tests.data_fixtures import write_jpeg, write_splicing_tsv


def long_frame(curves: dict[str, np.ndarray], xs) -> pd.DataFrame:
    """{method: (S, P) error curves} at acquisitions ``xs`` -> the loop's long format."""
    rows = [
        {"method": m, "seed": s, "step": i, "acquired_total": x, "mse": float(c[s, i])}
        for m, c in curves.items()
        for s in range(c.shape[0])
        for i, x in enumerate(xs)
    ]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# crossings: acquisitions until the error falls to a level
# ---------------------------------------------------------------------------
def test_crossings_table_counts_falling_below_an_error_level():
    xs = [0, 5, 10, 15]
    df = long_frame(
        {
            "DEIMOS": np.array([[1.0, 0.8, 0.5, 0.4], [1.0, 0.6, 0.6, 0.2]]),  # mean 1, .7, .55, .3
            "Random": np.array([[1.0, 0.9, 0.9, 0.7], [1.0, 0.9, 0.7, 0.7]]),
        },  # mean 1, .9, .8, .7
        xs,
    )
    table = rp.crossings_table(df, "mse", [0.71, 0.7, 0.56, 0.31, 0.1])
    assert table.loc[0.71, "DEIMOS"] == 5 and table.loc[0.71, "Random"] == 15
    assert table.loc[0.56, "DEIMOS"] == 10 and np.isnan(table.loc[0.56, "Random"])
    assert table.loc[0.31, "DEIMOS"] == 15 and np.isnan(table.loc[0.1, "DEIMOS"])
    # each seed's own first crossing: DEIMOS seed 0 falls to 0.5 at 10, seed 1 stays at 0.6 until 15
    assert table.loc[0.56, "DEIMOS: per seed"] == "10 / 15"
    assert table.loc[0.1, "Random: per seed"] == "— / —"
    # an error equal to the level counts as reached (<=)
    assert table.loc[0.7, "Random"] == 15 and table.loc[0.7, "Random: per seed"] == "15 / 10"


def _first_reached(xs, mean_P, t):
    for x, v in zip(xs, mean_P):
        if v <= t:
            return x
    return None


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(2, 8), st.integers(0, 2**31 - 1), st.floats(0.05, 0.95))
def test_crossings_match_a_plain_loop(n_seeds, n_points, seed, q):
    rng = np.random.default_rng(seed)
    c = rng.uniform(0, 1, size=(n_seeds, n_points))
    xs = list(range(0, 3 * n_points, 3))
    t = float(np.quantile(c.mean(axis=0), q))
    table = rp.crossings_table(long_frame({"A": c}, xs), "mse", [t])
    expected = _first_reached(xs, c.mean(axis=0), t)
    got = table.loc[t, "A"]
    assert np.isnan(got) if expected is None else got == expected
    per_seed = [_first_reached(xs, row, t) for row in c]
    assert table.loc[t, "A: per seed"] == " / ".join("—" if h is None else f"{h:g}" for h in per_seed)


def test_choose_thresholds_spans_the_data_range():
    xs = [0, 10, 20]
    df = long_frame(
        {
            "A": np.array([[2.0, 1.5, 1.0], [2.0, 1.3, 1.0]]),  # start 2, final 1.0
            "B": np.array([[2.0, 1.8, 1.6], [2.0, 1.8, 1.4]]),
        },  # final 1.5
        xs,
    )
    th = rp.choose_thresholds(df, "mse", fractions=(0.5, 1.0))
    np.testing.assert_allclose(th, [1.5, 1.0])  # start - f (start - best final)
    th = rp.choose_thresholds(df, "mse", fractions=(0.3333,), digits=2)
    np.testing.assert_allclose(th, [1.7])  # 2 - 0.3333 = 1.6667 -> 2 significant digits
    table = rp.crossings_table(df, "mse", rp.choose_thresholds(df, "mse"))
    assert table["A"].notna().all()  # the best method reaches every level
    assert np.isnan(table["B"].iloc[-1])  # the worse one not the tightest


def test_choose_thresholds_refuses_curves_that_do_not_fall():
    df = long_frame({"A": np.array([[1.0, 1.2, 1.1]])}, [0, 1, 2])
    with pytest.raises(ValueError, match="no method lowers"):
        rp.choose_thresholds(df, "mse")
    with pytest.raises(ValueError, match="fractions"):
        rp.choose_thresholds(df, "mse", fractions=(0.0, 0.5))
    with pytest.raises(ValueError, match="lacks column"):
        rp.choose_thresholds(df, "rmse")


# ---------------------------------------------------------------------------
# protocols and configs
# ---------------------------------------------------------------------------
def test_paper_protocols_as_the_paper_states_them():
    utk, spl = rp.PAPER_PROTOCOLS["utkface"], rp.PAPER_PROTOCOLS["splicing"]
    assert (utk.initial_size, utk.k_values, utk.n_acquired, utk.n_candidates) == (150, (100, 200), 2000, 5000)
    assert utk.train["optimizer"] == "adam" and utk.train["epochs"] == 250 and utk.train["l2_dense"] == 2.0
    assert utk.model_options["p"] == 0.5 and utk.T_eval == 300 and utk.tau_inv == {"auto": 0.1}
    assert (spl.initial_size, spl.k_values, spl.n_acquired, spl.n_candidates) == (75, (1,), 600, 5000)
    assert spl.train["optimizer"] == "rmsprop" and spl.train["epochs"] == 300 and spl.tau_inv == 2.5e-4
    assert utk.n_steps(100) == 20 and utk.n_steps(200) == 10
    with pytest.raises(ValueError, match="not one of"):
        utk.n_steps(50)


def test_configs_share_the_split_of_a_seed_and_label_the_methods():
    proto = rp.PAPER_PROTOCOLS["splicing"]
    cfgs = proto.configs(1, [0, 1])
    assert [c.method for c in cfgs] == ["DEIMOS"] * 2 + ["Max variance"] * 2 + ["Random"] * 2
    assert {c.strategy for c in cfgs} == set(rp.METHODS)
    strip = lambda c: {k: v for k, v in c.to_dict().items() if k not in ("strategy", "label")}  # noqa: E731
    assert strip(cfgs[0]) == strip(cfgs[2]) == strip(cfgs[4])  # same seed: identical but for the strategy
    assert cfgs[0].n_steps == 600 and cfgs[0].initial == "random"


def test_file_protocol_scales_down_and_zero_keeps_the_paper():
    assert rp.file_protocol("splicing") == rp.PAPER_PROTOCOLS["splicing"]
    small = rp.file_protocol(
        "utkface",
        n_steps=3,
        epochs=5,
        pool_size=500,
        test_size=100,
        n_candidates=200,
        T_eval=10,
        image_size=64,
    )
    assert small.k_values == (100,) and small.n_acquired == 300 and small.train["epochs"] == 5
    assert small.task_options == {"size": 64, "n_train": 500, "n_test": 100}
    assert small.model_options["image_size"] == 64 and small.n_candidates == 200 and small.T_eval == 10
    with pytest.raises(ValueError, match="n_steps must be an int >= 0"):
        rp.file_protocol("utkface", n_steps=-1)
    with pytest.raises(ValueError, match="unknown file protocol"):
        rp.file_protocol("svhn")
    with pytest.raises(ValueError, match="not a multiple"):
        small.replace(n_acquired=250)


def test_rotated_protocol_from_profile_settings():
    P = profiles.resolve("06_deimos_regression", "smoke")
    proto = rp.rotated_mnist_protocol_from(P)
    cfg = proto.configs(P.k_values[0], [0])[0]
    assert cfg.task_options["n_train"] == P.pool_size + P.val_size and cfg.val_size == P.val_size
    assert cfg.tau_inv == {"auto": P.tau_factor} and cfg.model_options == {"in_channels": 1, "image_size": 28, "p": P.p}
    assert cfg.task_options["max_angle"] == P.rotated_max_angle and cfg.train["epochs"] == P.epochs
    with pytest.raises(ValueError, match="settings lack"):
        rp.rotated_mnist_protocol_from({"pool_size": 10})


def test_profile_refuses_budgets_that_do_not_fit():
    with pytest.raises(ValueError, match="not a multiple"):
        profiles.resolve("06_deimos_regression", "smoke", n_acquired=25)
    with pytest.raises(ValueError, match="fewer than n_candidates"):
        profiles.resolve("06_deimos_regression", "smoke", n_candidates=500)
    with pytest.raises(ValueError, match="file_sections"):
        profiles.resolve("06_deimos_regression", "smoke", file_sections=("svhn",))


# ---------------------------------------------------------------------------
# the data-present sections, on tiny fixture files
# ---------------------------------------------------------------------------
def write_utkface(folder, n: int, seed: int = 0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        age = int(rng.integers(1, 90))
        write_jpeg(
            folder / f"{age}_{i % 2}_{i % 5}_2017010{i % 10}{i:06d}.jpg.chip.jpg",
            rgb=tuple(int(v) for v in rng.integers(0, 256, 3)),
            size=(24, 24),
        )


def write_splicing(path, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [
        ("".join(rng.choice(list("ACGT"), 101)), int(rng.integers(0, 50)), int(rng.integers(0, 50))) for _ in range(n)
    ]
    write_splicing_tsv(path, rows)


def test_missing_data_names_the_file_and_turns_none_when_present(tmp_path):
    assert rp.missing_data("rotated_mnist", tmp_path) is None
    msg = rp.missing_data("utkface", tmp_path)
    assert "UTKFace" in msg and str(tmp_path) in msg and "Download" in msg
    assert "splicing_5ss.tsv" in rp.missing_data("splicing", tmp_path)
    write_utkface(tmp_path / "UTKFace", 3)
    write_splicing(tmp_path / "splicing_5ss.tsv", 3)
    assert rp.missing_data("utkface", tmp_path) is None and rp.missing_data("splicing", tmp_path) is None
    with pytest.raises(ValueError, match="unknown data set"):
        rp.missing_data("svhn", tmp_path)


@pytest.mark.parametrize("name", ["utkface", "splicing"])
def test_file_section_runs_on_fixture_files(tmp_path, name):
    if name == "utkface":
        write_utkface(tmp_path / "UTKFace", 80)
    else:
        write_splicing(tmp_path / "splicing_5ss.tsv", 80)
    assert rp.missing_data(name, tmp_path) is None
    proto = rp.file_protocol(name, n_steps=2, epochs=1, n_candidates=20, T_eval=3, image_size=32)
    proto = proto.replace(
        initial_size=10,
        k_values=(5,),
        n_acquired=10,
        T=3,
        task_options={**proto.task_options, "n_val": 5},
    )
    cfgs = proto.configs(5, [0, 1])
    loop.run_grid(cfgs, tmp_path / "runs", max_workers=0, torch_threads=1, data_dir=tmp_path, progress=False)
    df = loop.load_results(tmp_path / "runs")
    assert set(df["method"]) == set(rp.METHODS.values()) and len(df) == 3 * 2 * 3
    assert df["mse"].notna().all() and (df["acquired_total"].max() == 10)
    start = df[df["step"] == 0].groupby("seed")["mse"].nunique()
    assert (start == 1).all()  # shared initial set and step-0 model: one starting error per seed
    rec = loop.read_records(tmp_path / "runs" / "DEIMOS" / "seed_0")
    taus = {r["tau_inv"] for r in rec}
    assert len(taus) == 1 and next(iter(taus)) > 0  # computed once (UTKFace) or the paper's constant (splicing)
    if name == "splicing":
        assert taus == {2.5e-4}
    table = rp.crossings_table(df, "mse", [float(df["mse"].max()) + 1.0])
    assert (table[list(rp.METHODS.values())] == 0).all().all()  # a level above every error: reached at once


# ---------------------------------------------------------------------------
# notebook 06: the stand-in run of the smoke profile, and what the notebook reads from it
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_run():
    try:
        data.load_mnist()
    except FileNotFoundError as e:
        pytest.skip(f"real MNIST unavailable: {e}")
    P = profiles.resolve("06_deimos_regression", "smoke")
    proto = rp.rotated_mnist_protocol_from(P)
    grids = {b: proto.configs(b, [0, 1]) for b in proto.k_values}
    run = rp.run_batches(grids, section="rotated_mnist", profile="test", workers=0, resume=False)
    return P, proto, grids, run


def test_run_batches_reads_every_grid_back_in_order(smoke_run):
    P, proto, grids, run = smoke_run
    df = run.results
    assert list(df["method"].cat.categories) == list(rp.METHODS.values())
    assert df["batch"].unique().tolist() == list(proto.k_values) and len(df) == 3 * 2 * 3
    assert df[["batch", "method", "seed", "step"]].equals(
        df.sort_values(["batch", "method", "seed", "step"])[["batch", "method", "seed", "step"]]
    )
    assert run.summary().startswith("6 runs, 18 steps in ")
    # tau^-1 as the run records hold it
    tau = {r["tau_inv"] for r in loop.read_records(loop.run_dir_for(run.roots[10], grids[10][0]))}
    text = rp.tau_sentence(df, P, np.zeros(3))
    assert (
        f"τ⁻¹ = {np.mean([next(iter(tau)), df[(df.method == 'DEIMOS') & (df.step == 0)].tau_inv.iloc[1]]):.3g}" in text
        and "over 2 runs" in text
    )


def test_claims_are_compare_with_lmm_per_batch(smoke_run):
    _, _, _, run = smoke_run
    claims = rp.claims(run.results, "rmse")
    assert list(claims) == [10]
    claim = claims[10]
    assert [(c.b, c.metric) for c in claim.comparisons] == [
        ("Max variance", "final rmse"),
        ("Random", "final rmse"),
        ("Max variance", "AUBC rmse"),
        ("Random", "AUBC rmse"),
    ]
    assert not claim.comparisons[0].higher_is_better and isinstance(claim.aa, str)  # 2 seeds: no A/A split
    assert rp.lmm_markdown(10, claim).startswith("*DEIMOS's LMM test (the paper's method), batch 10:* DEIMOS vs Max")
    assert rp.claims_markdown("T", claims).startswith("**T, per batch size.**\n\n* batch 10: DEIMOS − Max variance")


def test_angle_queries_read_the_picks_of_each_method(smoke_run):
    P, proto, grids, run = smoke_run
    task = loop.load_task_for(grids[10][0])
    split = loop.validate(grids[10][0])
    q = rp.angle_queries(run.results, task.y_train, split.pool, P.rotated_max_angle)
    assert q.edge == 0.75 * P.rotated_max_angle and q.share_column == "share |angle| > 33.75°"
    assert q.table.loc["DEIMOS picks", "points"] == 2 * 20 and q.table.loc["pool", "points"] == len(split.pool)
    assert len(q.first_batch["DEIMOS"]) == 10
    deimos = loop.read_records(loop.run_dir_for(run.roots[10], grids[10][0]))
    np.testing.assert_array_equal(q.first_batch["DEIMOS"], deimos[0]["acquired"])
    assert [c.a for c in q.over] == ["DEIMOS picks", "Max variance picks"] and q.over[0].n_seeds == 2
    assert rp.angle_sentence(q).startswith("Of the pool, ")


def test_crossing_tables_say_why_there_is_none(smoke_run):
    _, _, _, run = smoke_run
    flat = run.results.assign(rmse=1.0)
    got = rp.crossing_tables(flat, "rmse")
    assert isinstance(got[10], str) and "no crossing table" in got[10]
    falling = run.results.assign(rmse=lambda d: 10.0 - d["step"] - 0.1 * (d["method"] == "DEIMOS"))
    table = rp.crossing_tables(falling, "rmse")[10]
    assert isinstance(table, rp.CrossingTable) and table.start == pytest.approx(10.0 - 0.1 / 3)
    assert "best final" in table.caption("rmse")


def test_cost_and_finding(smoke_run):
    P, proto, grids, run = smoke_run
    paper = profiles.resolve("06_deimos_regression", "paper")
    cost = rp.stand_in_cost(run.results, proto, P, paper, n_test=100)
    assert cost.workers_here == 1 and cost.paper_n_test == 10000 and cost.paper_n_seeds == paper.n_seeds
    table, wall = rp.predict_cost(cost.model, cost.paper, 10000, paper.n_seeds, 2)
    assert wall == pytest.approx(cost.paper_s) and sorted(table["batch"].unique()) == [100, 200]
    assert cost.paper_hours().index.names == ["batch", "method"]
    assert list(cost.rates().columns) == ["train (s per unit)", "eval (s per unit)", "select (s per unit)"]
    plans = rp.cost_plans(proto, 100)
    assert plans["Random"].n_candidates == 0 and plans["DEIMOS"].mc_passes == proto.T
    text = rp.finding(rp.claims(run.results, "rmse"), proto, cost, P)
    assert "Batch 10: supported against" in text and "vs Max variance" in text
    assert (
        text.endswith(f"est. {cost.paper_s / 3600:.0f} h on 2 CPU cores.")
        and "not tested here: needs 150 → 2150" in text
    )
    assert "**Time.**" in rp.time_sentence(cost, run.results, 1.0, "smoke")


def test_protocol_table_notes_and_paper_sentences():
    P = profiles.resolve("06_deimos_regression", "smoke")
    proto = rp.rotated_mnist_protocol_from(P)
    table = rp.protocol_table(P, proto, 2)
    assert table.loc["train/pool (initial set included)", "DEIMOS, UTKFace"] == "all (90 % of 23 708 minus 50)"
    assert table.loc["τ⁻¹", "DEIMOS, UTKFace"].endswith("(5.5477)") and table.loc["seeds"].tolist() == ["2", "3"]
    assert table.loc["training", "DEIMOS, UTKFace"] == "Adam, 250 epochs, batch 128, L2 2.0/N, last weights"
    assert "21 times per run for 250 epochs on up to 2150 images" in rp.scaled_down_note(P)
    assert rp.scaled_down_note(profiles.resolve("06_deimos_regression", "paper")) == ""
    text = rp.paper_claims_sentence("smoke")
    assert "p = 2.1e-278 and 6.9e-34" in text and "p < 8e-3 and p < 9e-3" in text and "11.69" in text
    assert rp.PAPER_PROTOCOLS["splicing"].metric == "mse" and proto.metric == "rmse"
    frame = pd.DataFrame(
        {"method": ["DEIMOS", "Random"], "batch": [100, 100], "acquired_total": [2000, 2000], "rmse": [11.0, 12.0]}
    )
    utk, caption = rp.utk_rmse_table(frame)
    assert utk.loc["DEIMOS", "authors' arrays"] == 11.95 and caption == "RMSE (years) at 2000 acquired, batch 100"
    assert rp.utk_rmse_table(frame.assign(acquired_total=100)) is None
