"""Lockstep grids (mcal_utils.loop.lockstep): grouping, equality with the sequential records,
resume after a kill in the middle of a step, and the benchmark's runner contract."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mcal_utils import loop
from mcal_utils.loop import lockstep
from test_loop import FAST, HERE, ROOT, cfg, strip_timings

TESTS = HERE


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _grid(n_steps=2, **changes):
    base = cfg(n_steps=n_steps, train={**FAST, "epochs": 2}, **changes)
    return loop.grid_configs(base, ["entropy", "random"], seeds=[0, 1])


def _records(root, configs):
    return {(c.method, c.seed): strip_timings(loop.read_records(loop.run_dir_for(root, c))) for c in configs}


# ---------------------------------------------------------------------------
# grouping
# ---------------------------------------------------------------------------
def test_mixed_grids_group_by_the_alignment_fields():
    a = _grid()                                            # 4 aligned runs
    b = _grid(model_options={"n_in": 8, "n_classes": 3})   # other model options: another group
    c = [a[0].replace(train={**FAST, "epochs": 3}, label="3 epochs")]  # other training settings
    d = [a[0].replace(k=4, label="k4"), a[1].replace(k=4, label="k4")]
    e = [a[0].replace(n_steps=1, label="short")]
    same_key = [a[0].replace(T=7, label="T7"), a[0].replace(init="fixed", label="fixed init")]
    configs = a + b + c + d + e + same_key
    groups = lockstep.group_configs(configs)
    # sampling-only differences (T, init) align; the others split
    assert groups == [[0, 1, 2, 3, 12, 13], [4, 5, 6, 7], [8], [9, 10], [11]]
    for idx in groups:
        assert len({lockstep.lockstep_key(configs[i]) for i in idx}) == 1
    keys = [lockstep.lockstep_key(configs[g[0]]) for g in groups]
    assert len(set(keys)) == len(keys)


def test_plan_units_slices_groups_and_turns_off(tmp_path):
    configs = _grid()
    todo = [(c, loop.run_dir_for(tmp_path, c)) for c in configs]
    units = lockstep.plan_units(todo, True, max_members=3)
    assert [len(cs) for cs, _ in units] == [3, 1]
    assert [c for cs, _ in units for c in cs] == configs
    assert [d for _, ds in units for d in ds] == [d for _, d in todo]
    assert [len(cs) for cs, _ in lockstep.plan_units(todo, False)] == [1, 1, 1, 1]
    assert [len(cs) for cs, _ in lockstep.plan_units(todo, None)] == [1, 1, 1, 1]  # device "cpu": does not pay
    assert lockstep.lockstep_pays("cpu") is False
    with pytest.raises(ValueError, match="max_members"):
        lockstep.plan_units(todo, True, max_members=0)


def test_run_group_refuses_unaligned_configs(tmp_path):
    a, b = _grid()[0], _grid()[0].replace(k=4, label="k4")
    with pytest.raises(ValueError, match="aligned"):
        lockstep.run_group([a, b], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="equally many"):
        lockstep.run_group([a], [tmp_path / "a", tmp_path / "b"])


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------
def test_lockstep_records_equal_sequential_records(tmp_path, one_thread):
    """On the CPU (vectorize=False) a lockstep grid writes exactly the sequential records."""
    configs = _grid() + [_grid()[0].replace(k=4, label="k4")]  # two groups, one a lone run
    lockstep.run_lockstep(configs, tmp_path / "lockstep")
    for c in configs:
        loop.run_experiment(c, loop.run_dir_for(tmp_path / "sequential", c))
    got, want = _records(tmp_path / "lockstep", configs), _records(tmp_path / "sequential", configs)
    assert got == want
    assert all(len(r) == c.n_steps + 1 for c, r in zip(configs, got.values()))
    df = loop.load_results(tmp_path / "lockstep")  # the store reads back as usual
    assert len(df) == sum(c.n_steps + 1 for c in configs)


def tiny_image_task(*, data_dir=None, random_state=0):
    """The tiny blob task as 1x6x6 images (conv nets: channels-last weights on the CPU)."""
    from test_loop import tiny_task

    t = tiny_task(random_state=random_state)
    rng = np.random.default_rng(random_state)
    proj = rng.normal(size=(8, 36)).astype(np.float32)
    return dataclasses.replace(t, x_train=(t.x_train @ proj).reshape(-1, 1, 6, 6),
                               x_test=(t.x_test @ proj).reshape(-1, 1, 6, 6))


def tiny_conv_model(*, seed):
    from torch import nn

    from mcal_utils.models import ConcreteDropout, MCModel

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        trunk = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten())
        head = nn.Sequential(ConcreteDropout(64), nn.Sequential(nn.Linear(64, 16), nn.ReLU()), nn.Linear(16, 3))
    return MCModel(trunk, head, kind="classification", n_outputs=3, input_shape=(1, 6, 6), name="tiny_conv")


def test_lockstep_conv_records_equal_sequential_records_scores_included(tmp_path, one_thread):
    """Conv nets on the CPU: the population fit leaves channels-last weights as fit does, so the
    scores (MC predictions of the fitted model) are bit-identical too, not only the picks."""
    configs = _grid(n_steps=1, task=f"{__name__}:tiny_image_task", model=f"{__name__}:tiny_conv_model")
    configs = loop.grid_configs(configs[0], ["bald", "entropy"], seeds=[0, 1])
    lockstep.run_lockstep(configs, tmp_path / "lockstep")
    for c in configs:
        loop.run_experiment(c, loop.run_dir_for(tmp_path / "sequential", c))
    got, want = _records(tmp_path / "lockstep", configs), _records(tmp_path / "sequential", configs)
    assert [r["scores"] for k in want for r in got[k]] == [r["scores"] for k in want for r in want[k]]
    assert got == want


def test_run_grid_in_lockstep_writes_the_sequential_records(tmp_path, one_thread):
    configs = _grid(n_steps=1)
    loop.run_grid(configs, tmp_path / "lockstep", max_workers=0, lockstep=True)
    loop.run_grid(configs, tmp_path / "sequential", max_workers=0, lockstep=False)
    assert _records(tmp_path / "lockstep", configs) == _records(tmp_path / "sequential", configs)


def test_vectorized_lockstep_agrees_within_float_tolerance(tmp_path, one_thread):
    """The GPU path (vmap; MC test evaluation batched too), run on the CPU: step-0 metrics agree
    to float32 rounding."""
    configs = _grid(n_steps=1, T_eval=3)
    lockstep.run_lockstep(configs, tmp_path / "vmap", vectorize=True)
    for c in configs:
        loop.run_experiment(c, loop.run_dir_for(tmp_path / "sequential", c))
    got, want = _records(tmp_path / "vmap", configs), _records(tmp_path / "sequential", configs)
    for key in want:
        g, w = got[key][0], want[key][0]
        assert g["budget"] == w["budget"] and g["best_epoch"] == w["best_epoch"]
        assert g["metrics"]["accuracy"] == pytest.approx(w["metrics"]["accuracy"], abs=1e-6)
        assert g["best_val_metric"] == pytest.approx(w["best_val_metric"], abs=1e-6)
        assert g["dropout_rates"] == pytest.approx(w["dropout_rates"], abs=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lockstep_on_cuda_agrees_with_sequential_cuda_runs(tmp_path):
    configs = _grid(n_steps=1, train={**FAST, "epochs": 2, "device": "cuda"})
    lockstep.run_lockstep(configs, tmp_path / "gpu")   # vectorize=None -> the vmap path on CUDA
    for c in configs:
        loop.run_experiment(c, loop.run_dir_for(tmp_path / "sequential", c))
    got, want = _records(tmp_path / "gpu", configs), _records(tmp_path / "sequential", configs)
    for key in want:
        assert got[key][0]["budget"] == want[key][0]["budget"]
        assert got[key][0]["metrics"]["accuracy"] == pytest.approx(want[key][0]["metrics"]["accuracy"], abs=0.02)
        assert got[key][0]["dropout_rates"] == pytest.approx(want[key][0]["dropout_rates"], abs=1e-3)


def test_max_seconds_stops_between_steps_and_resumes(tmp_path, one_thread):
    configs = _grid(n_steps=1)
    lockstep.run_lockstep(configs, tmp_path / "g", max_seconds=0)
    assert all(not loop.run_dir_for(tmp_path / "g", c).joinpath("steps").exists() or
               not loop.read_records(loop.run_dir_for(tmp_path / "g", c)) for c in configs)
    lockstep.run_lockstep(configs, tmp_path / "g")
    assert all(len(loop.read_records(loop.run_dir_for(tmp_path / "g", c))) == 2 for c in configs)


@pytest.mark.slow
def test_lockstep_grid_killed_mid_step_resumes_to_the_same_records(tmp_path, one_thread):
    configs = _grid(n_steps=4)
    # a pause after each record write makes the kill land between two runs' writes of one group step
    code = ("import sys, time; sys.path[:0] = sys.argv[2].split(':'); import torch; torch.set_num_threads(1); "
            "from mcal_utils import loop; from mcal_utils.loop import lockstep; "
            "commit = lockstep.commit_step; "
            "lockstep.commit_step = lambda state, rec: (commit(state, rec), time.sleep(0.3)); "
            "cs = [loop.ExperimentConfig.from_json(text) for text in sys.argv[3:]]; "
            "lockstep.run_lockstep(cs, sys.argv[1])")
    env = dict(os.environ)
    root = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), f"{TESTS}:{ROOT}",
                             *(c.to_json() for c in configs)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # kill once the first run has written step 2 and before the last run has (the middle of a group step)
    first = loop.run_dir_for(root, configs[0]) / "steps" / "step_0002.json"
    last = loop.run_dir_for(root, configs[-1]) / "steps" / "step_0002.json"
    deadline = time.monotonic() + 120
    try:
        while not first.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the subprocess never wrote step 2"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    counts = [len(loop.read_records(loop.run_dir_for(root, c))) for c in configs]
    assert proc.returncode == -signal.SIGKILL
    assert counts[0] == 3 and not last.exists() and counts[-1] == 2  # killed in the middle of step 2
    lockstep.run_lockstep(configs, root)  # the lagging runs catch up first, then the group goes on
    lockstep.run_lockstep(configs, tmp_path / "fresh")
    assert _records(root, configs) == _records(tmp_path / "fresh", configs)


# ---------------------------------------------------------------------------
# the benchmark's runner contract (quick sizes)
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_lockstep_quick_rows():
    path = ROOT / "benchmarks" / "bench_lockstep.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.run(quick=True, device="cpu")
    assert [r["case"].split(",")[0] for r in rows] == ["deimos_mnist79", "kirillov_cnn"]
    for r in rows:
        assert {"benchmark", "case", "ours_s", "baseline", "baseline_s", "ratio", "target", "met", "notes"} <= set(r)
        assert r["ours_s"] > 0 and r["baseline_s"] > 0 and r["ratio"] == pytest.approx(r["baseline_s"] / r["ours_s"])
        assert r["met"] is None  # no target on the CPU
        assert "max |dw| = 0" in r["notes"]  # the CPU path is bit-identical to the sequential fit


def test_gpu_grid_cost_model_hand_computed():
    path = ROOT / "benchmarks" / "gpu_grid.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def rec(step, train, ev, sel):
        return dict(step=step, budget=10 + step, timings=dict(train_s=train, eval_s=ev, select_s=sel))

    # two runs, three measured steps (budgets 10..12: one mini-batch each); step 0 (warm-up) is left out
    records = {("a", 0): [rec(0, 9.0, 1.0, 2.0), rec(1, 1.0, 0.5, 0.25), rec(2, 1.0, 0.5, 0.25)],
               ("b", 0): [rec(0, 9.0, 1.0, 2.0), rec(1, 2.0, 0.5, 0.75), rec(2, 2.0, 0.5, 0.75)]}
    got = module.cost_model(records, n_steps=200)
    batches = 119 * 1 + 82 * 2  # budgets 10..128 -> 1 batch of <= 128, 129..210 -> 2
    assert got["measured_steps"] == 3
    assert got["train_per_batch_s"] == pytest.approx(3.0) and got["train_s"] == pytest.approx(3.0 * batches)
    assert got["eval_s"] == pytest.approx(1.0 * 201) and got["select_s"] == pytest.approx(1.0 * 200)
    assert got["total_s"] == pytest.approx(got["train_s"] + got["eval_s"] + got["select_s"])
    assert len(module.paper_configs()) == 15 and {c.n_steps for c in module.paper_configs()} == {200}
    assert len(lockstep.group_configs(module.paper_configs())) == 1  # the protocol is one lockstep group
