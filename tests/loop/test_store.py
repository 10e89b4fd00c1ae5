"""The run store cannot lie: records bound to their config, orphans refused, the lock, exclusive
config creation, temp-file cleanup, corrupt files named, kill points at every write resume exactly."""
from __future__ import annotations

import json
import os
import shutil
import warnings

import pytest

from mcal_utils import loop
from mcal_utils.loop import storage
from test_loop import FAST, cfg, strip_timings

QUICK = dict(n_steps=2, train={**FAST, "epochs": 1})


def _run(tmp_path, name="run", **changes):
    c = cfg(**{**QUICK, **changes})
    return c, loop.run_experiment(c, tmp_path / name)


def test_records_and_split_carry_the_config_hash(tmp_path):
    c, res = _run(tmp_path)
    h = loop.config_hash(c)
    assert len(h) == 16 and all(r["config_hash"] == h for r in res.records)
    assert json.loads((tmp_path / "run" / "split.json").read_text())["config_hash"] == h
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["config_hash"] == h and stored["format"] == loop.FORMAT_VERSION


def test_step_file_of_another_config_is_refused_naming_it(tmp_path):
    """An entropy step dropped into a margin run (same seed and sizes) is not adopted."""
    _run(tmp_path, "entropy", strategy="entropy")
    c, _ = _run(tmp_path, "margin", strategy="margin")
    foreign = tmp_path / "margin" / "steps" / "step_0001.json"
    (tmp_path / "margin" / "steps" / "step_0002.json").unlink()
    shutil.copy(tmp_path / "entropy" / "steps" / "step_0001.json", foreign)
    with pytest.raises(ValueError, match=rf"{foreign}.*another experiment.*Delete it"):
        loop.run_experiment(c, tmp_path / "margin")
    with pytest.raises(ValueError, match=rf"{foreign}.*another experiment"):
        loop.read_records(tmp_path / "margin")
    with pytest.raises(ValueError, match=rf"{foreign}.*another experiment"):
        loop.load_results(tmp_path)
    with pytest.warns(RuntimeWarning, match=rf"skipping run {tmp_path / 'margin'}.*another experiment"):
        df = loop.load_results(tmp_path, errors="warn")
    assert df["method"].unique().tolist() == ["entropy"]


def test_split_of_another_config_is_refused(tmp_path):
    _run(tmp_path, "entropy", strategy="entropy")
    c, _ = _run(tmp_path, "margin", strategy="margin")
    shutil.copy(tmp_path / "entropy" / "split.json", tmp_path / "margin" / "split.json")
    with pytest.raises(ValueError, match=r"split\.json was written by another experiment"):
        loop.run_experiment(c, tmp_path / "margin")


def test_orphaned_steps_without_config_are_refused(tmp_path):
    c, _ = _run(tmp_path)
    (tmp_path / "run" / "config.json").unlink()
    for other in (c, c.replace(strategy="random")):
        with pytest.raises(ValueError, match=r"no config\.json.*refusing to adopt"):
            loop.run_experiment(other, tmp_path / "run")
    with pytest.raises(ValueError, match=r"no config\.json"):
        loop.read_records(tmp_path / "run")
    # a grid refuses before anything trains
    grid_root = tmp_path / "g"
    shutil.copytree(tmp_path / "run", loop.run_dir_for(grid_root, c))
    with pytest.raises(ValueError, match=r"no config\.json"):
        loop.run_grid([c, c.replace(seed=4)], grid_root, max_workers=0)
    assert not loop.run_dir_for(grid_root, c.replace(seed=4)).exists()


def test_edited_config_json_is_refused(tmp_path):
    c, _ = _run(tmp_path)
    path = tmp_path / "run" / "config.json"
    stored = json.loads(path.read_text())
    stored["config"]["strategy"] = "random"  # relabel without the hash
    path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"config\.json: its config_hash .* was edited"):
        loop.load_results(tmp_path / "run")


def test_second_process_on_a_run_dir_fails_fast_naming_the_pid(tmp_path):
    c = cfg(**QUICK)
    with loop.lock_run_dir(tmp_path / "run"):
        with pytest.raises(loop.RunDirBusy, match=rf"in use by PID {os.getpid()}"):
            loop.run_experiment(c, tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()  # refused before writing anything
    loop.run_experiment(c, tmp_path / "run")  # released


def test_config_json_is_created_exclusively(tmp_path):
    path = tmp_path / "config.json"
    storage.write_json(path, {"a": 1}, exclusive=True)
    with pytest.raises(FileExistsError):
        storage.write_json(path, {"a": 2}, exclusive=True)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left


def test_config_json_written_by_someone_else_meanwhile_is_checked(tmp_path, monkeypatch):
    """A different config appears between the check and the exclusive creation: refused, not overwritten."""
    c, other = cfg(**QUICK), cfg(**QUICK, strategy="random")
    real = storage.write_json

    def racing(path, obj, *, exclusive=False):
        if exclusive:
            real(path, {"format": loop.FORMAT_VERSION, "config": other.to_dict(),
                        "config_hash": loop.config_hash(other)})
        return real(path, obj, exclusive=exclusive)

    monkeypatch.setattr(storage, "write_json", racing)
    with pytest.raises(ValueError, match=r"holds a different experiment.*strategy: stored 'random', given 'entropy'"):
        loop.run_experiment(c, tmp_path / "run")


def test_temporary_files_of_killed_writers_are_cleaned(tmp_path):
    c, _ = _run(tmp_path)
    run = tmp_path / "run"
    stale = [run / ".config.json.k1l2.part", run / ".split.json.x9.part", run / "steps" / ".step_0002.json.ab.part",
             run / "steps" / ".step_0002.json.123.tmp"]
    for p in stale:
        p.write_text("half a fi")
    loop.run_experiment(c, run)
    assert not any(p.exists() for p in stale)


@pytest.mark.parametrize("name, remedy", [("config.json", "Delete"), ("split.json", "Delete"),
                                          ("steps/step_0001.json", "Delete it and every later step file")])
def test_truncated_json_names_the_file(tmp_path, name, remedy):
    c, _ = _run(tmp_path)
    path = tmp_path / "run" / name
    path.write_text(path.read_text()[:40])
    with pytest.raises(ValueError, match=rf"{path} is corrupt \(not valid JSON.*{remedy}"):
        loop.run_experiment(c, tmp_path / "run")


def test_record_missing_a_key_names_the_file(tmp_path):
    c, _ = _run(tmp_path)
    path = tmp_path / "run" / "steps" / "step_0001.json"
    rec = json.loads(path.read_text())
    del rec["acquired"]
    path.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=rf"{path} is not a complete step record: missing \['acquired'\]"):
        loop.load_results(tmp_path / "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FileNotFoundError, match="no completed steps"):
            loop.load_results(tmp_path / "run", errors="warn")
    assert any(str(path) in str(w.message) for w in caught)


@pytest.mark.parametrize("kill_at", range(6))  # config.json, split.json, step 0, 1, 2 (+ one past the end)
def test_kill_at_every_write_point_resumes_to_identical_records(tmp_path, monkeypatch, kill_at):
    """An interrupt at the n-th atomic move (leaving its temporary file behind, as SIGKILL would)."""
    c = cfg(**QUICK)
    real_replace, real_link = os.replace, os.link
    calls = {"n": 0}

    def interrupted(real):
        def move(src, dst, *a, **k):
            if calls["n"] == kill_at:
                calls["n"] += 1
                shutil.copy(src, str(src)[:-len(".part")] + ".z.part")  # what a killed writer leaves behind
                raise KeyboardInterrupt("killed")
            calls["n"] += 1
            return real(src, dst, *a, **k)
        return move

    monkeypatch.setattr(os, "replace", interrupted(real_replace))
    monkeypatch.setattr(os, "link", interrupted(real_link))
    try:
        loop.run_experiment(c, tmp_path / "run")
        assert kill_at >= 5
    except KeyboardInterrupt:
        assert kill_at < 5
    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(os, "link", real_link)
    resumed = loop.run_experiment(c, tmp_path / "run")
    fresh = loop.run_experiment(c, tmp_path / "fresh")
    assert strip_timings(resumed.records) == strip_timings(fresh.records)
    assert not list((tmp_path / "run").rglob("*.part"))


def test_load_results_refuses_a_run_that_stopped_a_step_short(tmp_path):
    """Seed 4 lost its last step (killed, failed, still running): later steps would average fewer seeds."""
    configs = [cfg(**QUICK, seed=s) for s in (3, 4)]
    for c in configs:
        loop.run_experiment(c, loop.run_dir_for(tmp_path, c))
    short = loop.run_dir_for(tmp_path, configs[1])
    (short / "steps" / "step_0002.json").unlink()
    with pytest.raises(ValueError, match=rf"method 'entropy'.*seed 4 misses step 2 \({short}\).*errors='warn'"):
        loop.load_results(tmp_path)
    with pytest.warns(RuntimeWarning, match=r"method 'entropy'.*seed 4 misses step 2.*keeping only the steps"):
        df = loop.load_results(tmp_path, errors="warn")
    assert df.groupby("step")["seed"].apply(sorted).to_dict() == {0: [3, 4], 1: [3, 4]}
    assert len(loop.load_results(short)) == 2  # one run alone is consistent with itself


def test_config_json_records_the_environment_and_a_resume_elsewhere_warns(tmp_path):
    """config.json says what decided the bits; reopening it with other numerics (threads) is flagged."""
    import torch

    from mcal_utils import environment

    c = cfg()
    run_dir = tmp_path / "r"
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with storage.lock_run_dir(run_dir):
            storage.open_run_dir(run_dir, c)
        stored = json.loads((run_dir / "config.json").read_text())
        assert stored["environment"]["torch_threads"] == 1
        assert stored["environment"]["cpu"] == environment.cpu_model()
        with storage.lock_run_dir(run_dir):
            storage.open_run_dir(run_dir, c)  # same numerics: silent
        torch.set_num_threads(2)
        with pytest.warns(RuntimeWarning, match="started in another environment"), storage.lock_run_dir(run_dir):
            storage.open_run_dir(run_dir, c)
        stored = json.loads((run_dir / "config.json").read_text())
        assert [e["torch_threads"] for e in stored["resumed_environments"]] == [2]
        assert storage.read_config(run_dir) == c
    finally:
        torch.set_num_threads(before)


def test_cache_root_is_keyed_by_configs_code_and_kernels(tmp_path, monkeypatch):
    c = cfg()
    a = loop.cache_root("02_x", "default", [c], data_dir=tmp_path)
    assert a == loop.cache_root("02_x", "default", [c], data_dir=tmp_path)
    assert a.parent == tmp_path / "runs" / "02_x" and a.name.startswith("default-")
    assert loop.cache_root("02_x", "default", [c.replace(seed=4)], data_dir=tmp_path) != a
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # another instruction set: other runs, never reused
    assert loop.cache_root("02_x", "default", [c], data_dir=tmp_path) != a
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # threads of the notebook kernel: grid runs fix theirs
    assert loop.cache_root("02_x", "default", [c], data_dir=tmp_path) == a
    fresh = loop.cache_root("02_x", "default", [c], resume=False, data_dir=tmp_path)
    assert fresh.is_dir() and not list(fresh.iterdir())


def test_grid_runs_use_the_fixed_thread_count_whatever_the_caller_has(tmp_path):
    """In-process grid runs get environment.RUN_THREADS (recorded in config.json); the caller's count is restored."""
    import torch

    from mcal_utils import environment

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        dirs = loop.run_grid([cfg(n_steps=1)], tmp_path / "g", max_workers=0, progress=False, log=False)
        assert torch.get_num_threads() == 2
        stored = json.loads((dirs[0] / "config.json").read_text())
        assert stored["environment"]["torch_threads"] == environment.RUN_THREADS == 1
    finally:
        torch.set_num_threads(before)
