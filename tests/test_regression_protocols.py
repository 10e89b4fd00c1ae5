"""DEIMOS's regression protocols: configs, thresholds from the data's range, crossings (falling below an
error level), missing-file messages, and the UTKFace / splicing sections on tiny fixture files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from mcal_utils import loop
from mcal_utils import regression_protocols as rp
from tests.data_fixtures import write_jpeg, write_splicing_tsv


def long_frame(curves: dict[str, np.ndarray], xs) -> pd.DataFrame:
    """{method: (S, P) error curves} at acquisitions ``xs`` -> the loop's long format."""
    rows = [{"method": m, "seed": s, "step": i, "acquired_total": x, "mse": float(c[s, i])}
            for m, c in curves.items() for s in range(c.shape[0]) for i, x in enumerate(xs)]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# crossings: acquisitions until the error falls to a level
# ---------------------------------------------------------------------------
def test_crossings_table_counts_falling_below_an_error_level():
    xs = [0, 5, 10, 15]
    df = long_frame({"DEIMOS": np.array([[1.0, 0.8, 0.5, 0.4], [1.0, 0.6, 0.6, 0.2]]),   # mean 1, .7, .55, .3
                     "Random": np.array([[1.0, 0.9, 0.9, 0.7], [1.0, 0.9, 0.7, 0.7]])},  # mean 1, .9, .8, .7
                    xs)
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
    assert (np.isnan(got) if expected is None else got == expected)
    per_seed = [_first_reached(xs, row, t) for row in c]
    assert table.loc[t, "A: per seed"] == " / ".join("—" if h is None else f"{h:g}" for h in per_seed)


def test_choose_thresholds_spans_the_data_range():
    xs = [0, 10, 20]
    df = long_frame({"A": np.array([[2.0, 1.5, 1.0], [2.0, 1.3, 1.0]]),   # start 2, final 1.0
                     "B": np.array([[2.0, 1.8, 1.6], [2.0, 1.8, 1.4]])},  # final 1.5
                    xs)
    th = rp.choose_thresholds(df, "mse", fractions=(0.5, 1.0))
    np.testing.assert_allclose(th, [1.5, 1.0])           # start - f (start - best final)
    th = rp.choose_thresholds(df, "mse", fractions=(0.3333,), digits=2)
    np.testing.assert_allclose(th, [1.7])                 # 2 - 0.3333 = 1.6667 -> 2 significant digits
    table = rp.crossings_table(df, "mse", rp.choose_thresholds(df, "mse"))
    assert table["A"].notna().all()                       # the best method reaches every level
    assert np.isnan(table["B"].iloc[-1])                  # the worse one not the tightest


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
    assert (utk.initial_size, utk.acquisition_sizes, utk.n_acquired, utk.n_candidates) == (150, (100, 200), 2000, 5000)
    assert utk.train["optimizer"] == "adam" and utk.train["epochs"] == 250 and utk.train["l2_dense"] == 2.0
    assert utk.model_options["p"] == 0.5 and utk.eval_mc_samples == 300 and utk.tau_inv == {"auto": 0.1}
    assert (spl.initial_size, spl.acquisition_sizes, spl.n_acquired, spl.n_candidates) == (75, (1,), 600, 5000)
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
    assert strip(cfgs[0]) == strip(cfgs[2]) == strip(cfgs[4])   # same seed: identical but for the strategy
    assert cfgs[0].n_steps == 600 and cfgs[0].initial == "random"


def test_file_protocol_scales_down_and_zero_keeps_the_paper():
    assert rp.file_protocol("splicing") == rp.PAPER_PROTOCOLS["splicing"]
    small = rp.file_protocol("utkface", n_steps=3, epochs=5, pool_size=500, test_size=100, n_candidates=200,
                             eval_mc_samples=10, image_size=64)
    assert small.acquisition_sizes == (100,) and small.n_acquired == 300 and small.train["epochs"] == 5
    assert small.task_options == {"size": 64, "n_train": 500, "n_test": 100}
    assert small.model_options["image_size"] == 64 and small.n_candidates == 200 and small.eval_mc_samples == 10
    with pytest.raises(ValueError, match="n_steps must be an int >= 0"):
        rp.file_protocol("utkface", n_steps=-1)
    with pytest.raises(ValueError, match="unknown file protocol"):
        rp.file_protocol("svhn")
    with pytest.raises(ValueError, match="not a multiple"):
        small.replace(n_acquired=250)


def test_rotated_protocol_from_profile_settings():
    from mcal_utils import profiles

    P = profiles.resolve("06_deimos_regression", "smoke")
    proto = rp.rotated_mnist_protocol_from(P)
    cfg = proto.configs(P.acquisition_sizes[0], [0])[0]
    assert cfg.task_options["n_train"] == P.pool_size + P.val_size and cfg.val_size == P.val_size
    assert cfg.tau_inv == {"auto": P.tau_factor} and cfg.model_options == {"in_channels": 1, "image_size": 28, "p": P.p}
    assert cfg.task_options["max_angle"] == P.rotated_max_angle and cfg.train["epochs"] == P.epochs
    with pytest.raises(ValueError, match="settings lack"):
        rp.rotated_mnist_protocol_from({"pool_size": 10})


def test_profile_refuses_budgets_that_do_not_fit():
    from mcal_utils import profiles

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
        write_jpeg(folder / f"{age}_{i % 2}_{i % 5}_2017010{i % 10}{i:06d}.jpg.chip.jpg",
                   rgb=tuple(int(v) for v in rng.integers(0, 256, 3)), size=(24, 24))


def write_splicing(path, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [("".join(rng.choice(list("ACGT"), 101)), int(rng.integers(0, 50)), int(rng.integers(0, 50)))
            for _ in range(n)]
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
    proto = rp.file_protocol(name, n_steps=2, epochs=1, n_candidates=20, eval_mc_samples=3, image_size=32)
    proto = proto.replace(initial_size=10, acquisition_sizes=(5,), n_acquired=10, mc_samples=3,
                          task_options={**proto.task_options, "n_val": 5})
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
