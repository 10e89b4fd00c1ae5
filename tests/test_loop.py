"""Tests of mcal_utils.loop on a tiny task and a tiny net (import-path hooks), so that they
depend only on the loop's contracts, not on real data. Run dirs live in tmp_path."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mcal_utils import acquisition, loop
from mcal_utils.acquisition.strategies import Strategy
from mcal_utils.models import ConcreteDropout, Dropout, MCModel, Squeeze
from mcal_utils.training import TrainConfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MOD = __name__  # "test_loop" under pytest's default rootdir import mode


# ---------------------------------------------------------------------------
# fakes: a 3-class blob task (with or without its own validation split) and two tiny nets
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeTask:
    name: str
    kind: str
    n_classes: int | None
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    description: str = ""


def tiny_task(*, data_dir=None, random_state=0, n_train=150, n_test=60, with_val=False, kind="classification"):
    """3 Gaussian blobs in 8-d; x[:, 0] = index / n_train encodes the train index."""
    rng = np.random.default_rng(random_state)
    centres = rng.normal(0, 2.0, size=(3, 8))

    def draw(n):
        y = np.arange(n) % 3
        x = (centres[y] + rng.normal(0, 1.0, size=(n, 8))).astype(np.float32)
        return x, y.astype(np.int64)

    x_tr, y_tr = draw(n_train)
    x_tr[:, 0] = np.arange(n_train, dtype=np.float32) / n_train
    x_te, y_te = draw(n_test)
    x_va, y_va = draw(40) if with_val else (None, None)
    if kind == "regression":
        y_tr, y_te = x_tr[:, 1].copy(), x_te[:, 1].copy()
        x_va = y_va = None
    return FakeTask("tiny", kind, 3 if kind == "classification" else None, x_tr, y_tr, x_te, y_te, x_va, y_va)


def tiny_model(*, seed, n_in=8, n_classes=3):
    """Linear-ReLU trunk, Concrete Dropout head (so learned rates are recorded)."""
    sleep = float(os.environ.get("MCAL_TEST_STEP_SLEEP", "0"))
    if sleep:
        time.sleep(sleep)  # lets the SIGKILL test catch a run between steps; no effect on results
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        trunk = nn.Sequential(nn.Linear(n_in, 16), nn.ReLU())
        head = nn.Sequential(ConcreteDropout(16), nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
                             nn.Linear(16, n_classes))
    return MCModel(trunk, head, kind="classification", n_outputs=n_classes, input_shape=(n_in,), name="tiny")


class _Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))  # the only trainable parameter; output ignores it

    def forward(self, x):
        zero = torch.zeros_like(x[:, 0])
        return torch.stack([x[:, 0], zero, zero - 30.0], dim=1) + 0.0 * self.dummy


def decoder_model(*, seed, n_in=8):
    """A net whose output does not train: logits (x0, 0, -30), so logit(p_0) = index / n_train
    (to 1e-13) reveals which train point a row is; features = the logits (x0 first)."""
    return MCModel(nn.Sequential(nn.Identity()), nn.Sequential(_Decoder(), nn.Linear(3, 3)), kind="classification",
                   n_outputs=3, input_shape=(n_in,), name="decoder")


def _decoder_fix(model):
    # head = [_Decoder, Linear]: make the Linear an identity that never trains
    lin = model.head[1]
    with torch.no_grad():
        lin.weight.copy_(torch.eye(3))
        lin.bias.zero_()
    lin.weight.requires_grad_(False)
    lin.bias.requires_grad_(False)
    return model


def decoder_model_fixed(*, seed, n_in=8):
    return _decoder_fix(decoder_model(seed=seed, n_in=n_in))


class _DecoderReg(nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x[:, :1] + 0.0 * self.dummy


def decoder_regression(*, seed, n_in=8):
    """Regression twin of ``decoder_model_fixed``: output = x0 = index / n_train."""
    model = MCModel(nn.Sequential(nn.Identity()), nn.Sequential(_DecoderReg(), nn.Linear(1, 1), Squeeze()),
                    kind="regression", n_outputs=1, input_shape=(n_in,), name="decoder_regression")
    lin = model.head[1]
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.zero_()
    lin.weight.requires_grad_(False)
    lin.bias.requires_grad_(False)
    return model


def tiny_regression_model(*, seed, n_in=8):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        trunk = nn.Sequential(nn.Linear(n_in, 16), nn.ReLU())
        head = nn.Sequential(Dropout(0.2), nn.Linear(16, 1), Squeeze())
    return MCModel(trunk, head, kind="regression", n_outputs=1, input_shape=(n_in,), name="tiny_regression")


FAST = dict(optimizer="adam", lr=0.01, epochs=3, batch_size=16, checkpoint="best_val", device="cpu")


def cfg(**changes) -> loop.ExperimentConfig:
    base = dict(task=f"{MOD}:tiny_task", model=f"{MOD}:tiny_model", strategy="entropy", seed=3,
                initial_size=9, initial="balanced", k=5, n_steps=3, val_size=20,
                T=4, train=FAST)
    base.update(changes)
    return loop.ExperimentConfig(**base)


def strip_timings(records):
    return [{k: v for k, v in r.items() if k != "timings"} for r in records]


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------
def test_config_json_round_trip():
    c = loop.ExperimentConfig(
        task="mnist32", model="kirillov_cnn", strategy="deimos", seed=7, label="DEIMOS (J=50)", initial_size=30,
        initial="random", k=100, n_steps=10, pool_size=5000, val_size=200, test_size=1000,
        T=50, n_candidates=2000, tau_inv=3e-5, strategy_options={"progress": False},
        train=TrainConfig(optimizer="adam", lr=1e-3, epochs=5, batch_size=128, checkpoint="last"),
        T_eval=100, task_options={"random_state": 1, "digits": (7, 9)}, model_options={"p": 0.25})
    assert c.train["optimizer"] == "adam" and "progress" not in c.train  # TrainConfig -> plain dict
    assert c.task_options["digits"] == [7, 9]  # tuples become lists, as JSON would
    back = loop.ExperimentConfig.from_json(c.to_json())
    assert back == c and back.to_dict() == c.to_dict()
    assert json.loads(c.to_json())["tau_inv"] == 3e-5
    assert c.method == "DEIMOS (J=50)" and cfg().method == "entropy"
    assert c.train_config() == TrainConfig(optimizer="adam", lr=1e-3, epochs=5, batch_size=128, checkpoint="last",
                                           progress=False)
    with pytest.raises(ValueError, match="unknown ExperimentConfig field"):
        loop.ExperimentConfig.from_dict({**c.to_dict(), "epochs": 3})
    with pytest.raises(ValueError, match="plain JSON"):
        cfg(strategy_options={"x": object()})
    with pytest.raises(TypeError, match="initial_size must be an int"):
        cfg(initial_size=2.5)
    with pytest.raises(ValueError, match="progress"):
        cfg(train={**FAST, "progress": True})


def test_derive_seed_depends_only_on_its_keys():
    a = loop.derive_seed(1, "step", 3, "fit")
    assert a == loop.derive_seed(1, "step", 3, "fit")
    assert len({a, loop.derive_seed(1, "step", 4, "fit"), loop.derive_seed(2, "step", 3, "fit"),
                loop.derive_seed(1, "step", 3, "init")}) == 4
    assert 0 <= a < 2**62


# ---------------------------------------------------------------------------
# split: a function of (task, seed) only
# ---------------------------------------------------------------------------
def test_split_is_the_same_for_every_strategy_of_a_seed():
    task = tiny_task()
    splits = [loop.make_split(cfg(strategy=s, label=s), task) for s in ("random", "entropy", "margin", "bald")]
    for sp in splits[1:]:
        for name in ("initial", "pool", "val", "test"):
            np.testing.assert_array_equal(getattr(sp, name), getattr(splits[0], name))
    sp = splits[0]
    assert np.bincount(task.y_train[sp.initial], minlength=3).tolist() == [3, 3, 3]  # balanced
    assert len(sp.val) == 20 and not sp.val_from_task
    everything = np.concatenate([sp.initial, sp.pool, sp.val])
    assert np.unique(everything).size == everything.size == 150  # disjoint, covering the train split
    other = loop.make_split(cfg(seed=4), task)
    assert not np.array_equal(other.initial, sp.initial)

    first = loop.make_split(cfg(initial="first", pool_size=60), task)
    universe = np.sort(np.concatenate([first.initial, first.pool]))
    np.testing.assert_array_equal(first.initial, universe[:9])  # the MC-dropout-entropy paper: the first points of the split
    assert universe.size == 60

    with_val = tiny_task(with_val=True)
    sv = loop.make_split(cfg(val_size=None), with_val)
    assert sv.val_from_task and sv.val.tolist() == list(range(40))
    assert np.unique(np.concatenate([sv.initial, sv.pool])).size == 150  # nothing held out of train
    assert len(loop.make_split(cfg(val_size=10, test_size=25), with_val).test) == 25


def test_runs_of_different_strategies_start_identically(tmp_path, one_thread):
    res = {s: loop.run_experiment(cfg(strategy=s, n_steps=1), tmp_path / s) for s in ("random", "entropy")}
    r0, e0 = res["random"].records[0], res["entropy"].records[0]
    assert r0["metrics"] == e0["metrics"] and r0["budget"] == e0["budget"] == 9  # same model, same data
    assert r0["dropout_rates"] == e0["dropout_rates"] and len(r0["dropout_rates"]) == 1
    splits = [json.loads((tmp_path / s / "split.json").read_text()) for s in ("random", "entropy")]
    assert splits[0].pop("config_hash") != splits[1].pop("config_hash")  # bound to its own config
    assert splits[0] == splits[1]
    assert res["random"].records[1]["budget"] == 14 and res["random"].records[1]["acquired"] == []


# ---------------------------------------------------------------------------
# validation before any training
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("changes, match", [
    (dict(strategy="nope"), r"unknown strategy 'nope'.*'entropy'"),
    (dict(task="nope"), r"unknown task/dataset 'nope'; valid: \[.*mnist"),
    (dict(model="nope"), r"unknown model 'nope'; valid: .*kirillov_cnn"),
    (dict(task=f"{MOD}:no_such_factory"), "cannot import task factory"),
    (dict(n_steps=100), r"budget too large.*9 \+ 100 \* 5 = 509.*130 \(initial set included\)"),
    (dict(pool_size=1000), "pool_size=1000 is larger"),
    (dict(initial_size=0), "initial_size must be > 0"),
    (dict(k=-1), "k must be > 0"),
    (dict(T=0), "T must be > 0"),
    (dict(n_candidates=0), "n_candidates must be > 0"),
    (dict(n_candidates=3), "k=5 is larger than n_candidates=3"),
    (dict(test_size=1000), "test_size=1000 is larger"),
    (dict(initial_size=10), "divisible by n_classes=3"),
    (dict(initial="stratified"), "unknown initial='stratified'"),
    (dict(val_size=0), "best_val.*val_size=0"),
    (dict(val_size=None), "has no validation split"),
    (dict(train={**FAST, "epochs": 0}), "epochs must be an int >= 1"),
    (dict(train={**FAST, "epoch": 3}), r"unknown training setting\(s\) \['epoch'\]"),
    (dict(strategy="max_variance"), "needs a regression task"),
    (dict(strategy="deimos", n_candidates=50), "needs tau_inv"),
    (dict(strategy="deimos", n_candidates=115, tau_inv=1e-3, n_steps=3),
     r"n_candidates=115 exceeds the pool left at the last acquiring step \(111 = pool 121 - 2 x 5\)"),
])
def test_validation_errors_before_training(tmp_path, changes, match):
    with pytest.raises(ValueError, match=match):
        loop.run_experiment(cfg(**changes), tmp_path / "run")
    assert not (tmp_path / "run" / "steps").exists() or not any((tmp_path / "run" / "steps").iterdir())


def test_regression_task_refuses_classification_strategies(tmp_path):
    c = cfg(task_options={"kind": "regression"}, initial="random", train={**FAST, "checkpoint": "last"}, val_size=0)
    with pytest.raises(ValueError, match="needs a classification task"):
        loop.validate(c)
    with pytest.raises(ValueError, match="initial='balanced' needs a classification task"):
        loop.validate(c.replace(strategy="max_variance", initial="balanced"))


# ---------------------------------------------------------------------------
# picks map back to the right pool points
# ---------------------------------------------------------------------------
def _decode(values, n_train=150):
    """Train index from p_0 = sigmoid(index / n_train) or from x0 = index / n_train."""
    return np.rint(np.asarray(values, np.float64) * n_train).astype(np.int64)


@pytest.mark.parametrize("requires", ["probs_N_C", "probs_N_T_C", "log_probs_N_K_C", "features", "fixed_J_S",
                                      "preds_N_T"])
def test_picks_map_back_to_pool_indices(tmp_path, monkeypatch, requires):
    seen = []

    def logit_p0(p0):
        return torch.logit(torch.as_tensor(p0).double()).numpy()

    def select(k, *, random_state, **arrays):
        if requires == "features":
            rows = _decode(arrays["features"][:, 0])
            unl = np.flatnonzero(~arrays["labelled_mask"])
            picks = unl[[len(unl) - 1, 0, 2]]
        elif requires == "fixed_J_S":
            rows = _decode(logit_p0(arrays["preds"][0, :, 0]))
            picks = np.asarray(arrays["candidates"])[[4, 0, 1]]
        else:
            if requires == "preds_N_T":
                x0 = np.asarray(arrays["preds_N_T"])[:, 0]
            elif requires == "log_probs_N_K_C":
                x0 = logit_p0(torch.as_tensor(arrays["log_probs_N_K_C"])[:, 0, 0].double().exp())
            else:
                p = arrays["probs_N_C"] if requires == "probs_N_C" else arrays["probs_N_T_C"][:, 0]
                x0 = logit_p0(p[:, 0])
            rows = _decode(x0)
            picks = np.array([len(rows) - 1, 0, 2])
        seen.append(rows[picks])
        return acquisition.CandidateBatch(picks, np.zeros(3))

    monkeypatch.setitem(acquisition.STRATEGIES, "recorder",
                        Strategy("recorder", requires, "test double", select, optional=None))
    regression = requires == "preds_N_T"
    c = cfg(model=f"{MOD}:{'decoder_regression' if regression else 'decoder_model_fixed'}", strategy="recorder",
            k=3, n_steps=2, n_candidates=40, tau_inv=1e-3, val_size=0,
            train={**FAST, "epochs": 1, "checkpoint": "last"},
            **({"task_options": {"kind": "regression"}, "initial": "random"} if regression else {}))
    res = loop.run_experiment(c, tmp_path / "run")
    split = loop.make_split(c, tiny_task(**c.task_options))
    assert len(seen) == 2
    pool = set(split.pool.tolist())
    for rec, expected in zip(res.records, seen):
        assert rec["acquired"] == expected.tolist()
        assert set(rec["acquired"]) <= pool
        pool -= set(rec["acquired"])
    labelled = np.concatenate([split.initial, *[r["acquired"] for r in res.records]])
    assert np.unique(labelled).size == labelled.size == 9 + 2 * 3


@pytest.mark.parametrize("strategy", sorted(acquisition.STRATEGIES))
def test_every_registered_strategy_runs_in_the_loop(tmp_path, strategy, one_thread):
    """The real strategies, end to end: one acquisition each on the tiny task."""
    regression = acquisition.STRATEGIES[strategy].requires == "preds_N_T"
    opts = {"num_samples": 200} if strategy == "batchbald" else {}
    changes = dict(strategy=strategy, n_steps=1, k=4, n_candidates=30, tau_inv=1e-3,
                   strategy_options=opts, train={**FAST, "epochs": 1})
    if regression:
        changes.update(task_options={"kind": "regression"}, initial="random", val_size=0,
                       model=f"{MOD}:tiny_regression_model", train={**FAST, "epochs": 1, "checkpoint": "last"})
    c = cfg(**changes)
    res = loop.run_experiment(c, tmp_path / "run")
    acquired = res.records[0]["acquired"]
    split = loop.make_split(c, tiny_task(**c.task_options))
    assert len(acquired) == len(set(acquired)) == 4 and set(acquired) <= set(split.pool.tolist())
    assert ("rmse" if regression else "accuracy") in res.records[1]["metrics"]


def test_random_strategy_draws_from_the_pool(tmp_path):
    res = loop.run_experiment(cfg(strategy="random", n_steps=2, train={**FAST, "epochs": 1}), tmp_path / "r")
    split = loop.make_split(cfg(strategy="random"), tiny_task())
    got = [i for r in res.records for i in r["acquired"]]
    assert len(got) == len(set(got)) == 10 and set(got) <= set(split.pool.tolist())


# ---------------------------------------------------------------------------
# storage: atomic writes, refusal of a changed config, resume after SIGKILL
# ---------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_when_replace_fails(tmp_path, monkeypatch):
    target = tmp_path / "records.json"
    loop.atomic_write_text(target, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        loop.atomic_write_text(target, "new content")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.json"]  # no temp file left behind


def test_failed_step_write_leaves_earlier_steps_and_resumes(tmp_path, monkeypatch, one_thread):
    real_replace = os.replace
    calls = {"n": 0}

    def flaky(src, dst):
        if str(dst).endswith("step_0002.json"):
            calls["n"] += 1
            raise OSError("interrupted")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="interrupted"):
        loop.run_experiment(cfg(), tmp_path / "run")
    assert [r["step"] for r in loop.read_records(tmp_path / "run")] == [0, 1]
    assert not list((tmp_path / "run" / "steps").glob(".*tmp"))
    monkeypatch.setattr(os, "replace", real_replace)
    resumed = loop.run_experiment(cfg(), tmp_path / "run")
    assert resumed.resumed_from == 2
    fresh = loop.run_experiment(cfg(), tmp_path / "fresh")
    assert strip_timings(resumed.records) == strip_timings(fresh.records)


def test_changed_config_is_refused(tmp_path):
    loop.run_experiment(cfg(n_steps=1, train={**FAST, "epochs": 1}), tmp_path / "run")
    with pytest.raises(ValueError, match=r"different experiment.*k: stored 5, given 6.*"
                                         r"train: stored"):
        loop.run_experiment(cfg(n_steps=1, k=6, train={**FAST, "epochs": 2}), tmp_path / "run")
    records = loop.read_records(tmp_path / "run")
    assert len(records) == 2  # untouched


@pytest.mark.slow
def test_resume_after_sigkill_gives_identical_records(tmp_path, one_thread):
    c = cfg(n_steps=5)
    run_dir = tmp_path / "killed"
    code = ("import sys; sys.path[:0] = sys.argv[3].split(':'); from mcal_utils import loop; "
            "loop.run_experiment(loop.ExperimentConfig.from_json(sys.argv[1]), sys.argv[2], torch_threads=1)")
    env = {**os.environ, "MCAL_TEST_STEP_SLEEP": "0.3"}
    proc = subprocess.Popen([sys.executable, "-c", code, c.to_json(), str(run_dir), f"{HERE}:{ROOT}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    target = run_dir / "steps" / "step_0002.json"
    deadline = time.monotonic() + 40
    try:
        while not target.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the subprocess never wrote step 2"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = len(loop.read_records(run_dir))
    assert 3 <= done < 6 and proc.returncode == -signal.SIGKILL
    resumed = loop.run_experiment(c, run_dir, torch_threads=1)
    assert resumed.resumed_from == done
    fresh = loop.run_experiment(c, tmp_path / "fresh", torch_threads=1)
    assert len(fresh.records) == 6
    assert strip_timings(resumed.records) == strip_timings(fresh.records)
    assert strip_timings(loop.read_records(run_dir)) == strip_timings(fresh.records)


# ---------------------------------------------------------------------------
# grids and results
# ---------------------------------------------------------------------------
def _grid(n_steps=1):
    base = cfg(n_steps=n_steps, train={**FAST, "epochs": 1})
    return loop.grid_configs(base, ["random", {"strategy": "margin_inverted", "label": "Margin (inverted)"}],
                             seeds=[0, 1])


def _check_grid(root, configs):
    df = loop.load_results(root)
    assert sorted(df["method"].unique()) == ["Margin (inverted)", "random"]
    assert len(df) == len(configs) * 2 and sorted(df["seed"].unique()) == [0, 1]
    assert {"method", "seed", "step", "budget", "accuracy", "train_s"} <= set(df.columns)
    assert df.groupby(["method", "seed"])["budget"].apply(list).map(lambda b: b == [9, 14]).all()
    assert (df["acquired_total"] == df["budget"] - 9).all()
    assert df.groupby(["method", "seed"])["n_acquired_this_step"].apply(list).map(lambda n: n == [5, 0]).all()
    # same seed -> same step-0 model -> same accuracy for every method
    step0 = df[df.step == 0].pivot(index="seed", columns="method", values="accuracy")
    assert (step0["random"] == step0["Margin (inverted)"]).all()
    return df


def test_grid_on_a_thread_pool_and_in_process_agree(tmp_path, one_thread):
    configs = _grid()
    with ThreadPoolExecutor(2) as ex:
        dirs = loop.run_grid(configs, tmp_path / "a", executor=ex)
    assert dirs[1] == tmp_path / "a" / "random" / "seed_1" and dirs[2].name == "seed_0"
    df_a = _check_grid(tmp_path / "a", configs)
    loop.run_grid(configs, tmp_path / "b", max_workers=0)
    df_b = loop.load_results(tmp_path / "b", with_timings=False)
    assert df_a.drop(columns=["train_s", "eval_s", "select_s", "step_s", "run_dir"]).equals(
        df_b.drop(columns=["run_dir"]))
    one = loop.load_results(dirs[0])
    assert len(one) == 2 and one["method"].unique().tolist() == ["random"]

    class Refuse(ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            raise AssertionError("a finished run was resubmitted")

    with Refuse(1) as ex:
        loop.run_grid(configs, tmp_path / "a", executor=ex)  # everything done: nothing to submit


def test_grid_validates_everything_before_running(tmp_path):
    configs = _grid() + [cfg(strategy="entropy", n_steps=999)]
    with pytest.raises(ValueError, match="budget too large"):
        loop.run_grid(configs, tmp_path, max_workers=0)
    assert not any(tmp_path.rglob("step_*.json"))
    with pytest.raises(ValueError, match="same run directory"):
        loop.run_grid([cfg(), cfg(n_steps=2)], tmp_path, max_workers=0)


def test_grid_reports_failed_runs_after_the_others(tmp_path, monkeypatch):
    def broken(k, *, random_state, **arrays):
        raise ArithmeticError("strategy exploded")

    monkeypatch.setitem(acquisition.STRATEGIES, "broken", Strategy("broken", "probs_N_C", "fails", broken,
                                                                   optional=None))
    configs = [cfg(strategy="broken", n_steps=1, train={**FAST, "epochs": 1}),
               cfg(strategy="random", n_steps=1, train={**FAST, "epochs": 1})]
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed.*broken.*strategy exploded"):
        loop.run_grid(configs, tmp_path, max_workers=0)
    assert len(loop.read_records(tmp_path / "random" / "seed_3")) == 2


@pytest.mark.slow
def test_grid_on_a_process_pool(tmp_path):
    configs = _grid()
    loop.run_grid(configs, tmp_path, max_workers=1)  # a spawned worker imports the factories by path
    _check_grid(tmp_path, configs)


@pytest.mark.slow
def test_grid_on_a_dask_local_cluster(tmp_path, one_thread):
    distributed = pytest.importorskip("distributed")
    configs = _grid()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1",
                                  protocol="tcp", dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        loop.run_grid(configs, tmp_path, executor=client.get_executor())
    _check_grid(tmp_path, configs)


def test_load_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results"):
        loop.load_results(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no completed steps"):
        loop.load_results(tmp_path)


def test_code_fingerprint_is_stable_and_tracks_the_source(tmp_path, monkeypatch):
    from mcal_utils.loop import storage

    first = storage.code_fingerprint()
    assert first == storage.code_fingerprint() and len(first) == 12
    # a copy of the package with one changed source file gets another fingerprint
    import shutil
    from pathlib import Path

    src = Path(storage.__file__).resolve().parents[1]
    copy = tmp_path / "mcal_utils"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
    fake_file = copy / "loop" / "storage.py"
    monkeypatch.setattr(storage, "__file__", str(fake_file))
    assert storage.code_fingerprint() == first
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\n# changed\n")
    assert storage.code_fingerprint() != first
