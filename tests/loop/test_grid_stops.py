"""Clean stops of a grid: workers die with the parent, Ctrl-C stops at once without starting queued
runs, a dead worker is reported with its run, a script without the main guard gets one clear
message, and a run without a terminal logs one line per completed step."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mcal_utils import loop
from test_loop import FAST, HERE, ROOT, cfg, strip_timings, tiny_model

QUICK = dict(n_steps=1, train={**FAST, "epochs": 1})
PATHS = f"{HERE}:{ROOT}"


def dying_model(*, seed, die=False, **kwargs):
    """tiny_model; with ``die=True`` and $MCAL_TEST_DIE=1 the process SIGKILLs itself (an OOM kill)."""
    if die and os.environ.get("MCAL_TEST_DIE") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return tiny_model(seed=seed, **kwargs)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _parent(root: Path, configs, env_extra=None, max_workers=2):
    """A parent process running run_grid on ``configs`` with the default process pool."""
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = {PATHS!r}.split(":")
        from mcal_utils import loop
        if __name__ == "__main__":
            configs = [loop.ExperimentConfig.from_json(t) for t in sys.argv[2:]]
            loop.run_grid(configs, sys.argv[1], max_workers={max_workers}, progress=False, log=False)
    """)
    path = root / "parent.py"
    path.write_text(script)
    env = {**os.environ, "MCAL_TEST_STEP_SLEEP": "1.0", **(env_extra or {})}
    return subprocess.Popen([sys.executable, str(path), str(root / "grid"), *[c.to_json() for c in configs]],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _worker_pids(root: Path, configs) -> set[int]:
    pids = set()
    for c in configs:
        lock = loop.run_dir_for(root / "grid", c) / ".lock"
        text = lock.read_text().strip() if lock.exists() else ""
        if text.isdigit():
            pids.add(int(text))
    return pids


@pytest.mark.slow
def test_workers_die_when_the_parent_is_killed(tmp_path):
    configs = [cfg(**{**QUICK, "n_steps": 20}, seed=s) for s in (0, 1)]
    proc = _parent(tmp_path, configs)
    try:
        _wait_for(lambda: len(_worker_pids(tmp_path, configs)) == 2, 90, "both workers to start their runs")
        workers = _worker_pids(tmp_path, configs)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _wait_for(lambda: not any(_alive(p) for p in workers), 10, f"workers {workers} to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.killpg(proc.pid, signal.SIGKILL) if _alive(proc.pid) else None


@pytest.mark.slow
def test_ctrl_c_stops_workers_promptly_and_starts_no_queued_run(tmp_path):
    configs = [cfg(**{**QUICK, "n_steps": 20}, seed=s) for s in (0, 1, 2)]
    proc = _parent(tmp_path, configs, max_workers=1)
    try:
        first = loop.run_dir_for(tmp_path / "grid", configs[0]) / "config.json"
        # the first run has started (its worker is known and it has written its config), the others are queued
        _wait_for(lambda: len(_worker_pids(tmp_path, configs)) == 1 and first.exists(), 90, "the first run to start")
        workers = _worker_pids(tmp_path, configs)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C in the parent's terminal
        proc.wait(timeout=10)
        stopped_s = time.monotonic() - t0
        _wait_for(lambda: not any(_alive(p) for p in workers), 5, "the worker to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and stopped_s < 5, (proc.returncode, stopped_s)
    assert "KeyboardInterrupt" in proc.stderr.read().decode()
    started = [c.seed for c in configs if (loop.run_dir_for(tmp_path / "grid", c) / "config.json").exists()]
    assert started == [0]  # the queued runs never started


@pytest.mark.slow
def test_dead_worker_is_reported_with_its_run_and_the_others_finish(tmp_path, monkeypatch):
    monkeypatch.setenv("MCAL_TEST_DIE", "1")
    model = "loop.test_grid_stops:dying_model"
    configs = [cfg(**QUICK, model=model, seed=0, model_options={"die": True}),
               cfg(**QUICK, model=model, seed=1)]
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed.*seed_0.*WorkerDied: worker process PID \d+ died "
                                           r"\(killed by SIGKILL \(out of memory\?\)\) while running entropy seed 0"):
        loop.run_grid(configs, tmp_path, max_workers=2, progress=False, log=False)
    assert len(loop.read_records(loop.run_dir_for(tmp_path, configs[1]))) == 2  # the other run completed
    monkeypatch.setenv("MCAL_TEST_DIE", "0")
    loop.run_grid(configs, tmp_path, max_workers=1, progress=False, log=False)  # rerun: it resumes and finishes
    assert len(loop.read_records(loop.run_dir_for(tmp_path, configs[0]))) == 2


@pytest.mark.slow
def test_script_without_main_guard_gets_one_clear_message(tmp_path):
    c = cfg(**QUICK)
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = {PATHS!r}.split(":")
        from mcal_utils import loop
        loop.run_grid([loop.ExperimentConfig.from_json({c.to_json()!r})], {str(tmp_path / 'g')!r}, max_workers=1,
                      progress=False, log=False)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    err = done.stderr
    assert err.count('`if __name__ == "__main__":`') >= 1, err[-3000:]
    assert "bootstrapping phase" not in err  # no wall of multiprocessing tracebacks
    assert "1 of 1 runs failed" in err


def test_log_lines_per_completed_step(tmp_path, capsys):
    c = cfg(**QUICK)
    loop.run_experiment(c, tmp_path / "one", log=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("entropy seed 3")]
    assert [ln.split(":")[1].split()[1] for ln in lines] == ["0/1", "1/1"]
    assert all(" acc=" in ln and ln.endswith(" s)") for ln in lines)
    configs = [c.replace(seed=0), c.replace(seed=1)]
    loop.run_grid(configs, tmp_path / "grid", max_workers=0, progress=False, log=True)
    err = capsys.readouterr().err
    for seed in (0, 1):
        assert sum(ln.startswith(f"entropy seed {seed}: step ") for ln in err.splitlines()) == 2
    # log=None without a terminal (pytest captures stderr): lines too; never inside a notebook kernel
    loop.run_experiment(c.replace(seed=5), tmp_path / "auto")
    assert "entropy seed 5: step 1/1" in capsys.readouterr().err


def test_lockstep_grid_gives_the_records_of_a_sequential_grid(tmp_path):
    """run_grid(lockstep=True): each aligned group is one executor task; the records do not change."""
    configs = loop.grid_configs(cfg(**QUICK), ["random", "entropy"], seeds=[0, 1])
    loop.run_grid(configs, tmp_path / "seq", max_workers=0, lockstep=False, log=False)
    loop.run_grid(configs, tmp_path / "lock", max_workers=0, lockstep=True, lockstep_members=3, log=False)
    cols = ["method", "seed", "step", "budget", "accuracy", "best_epoch"]
    seq = loop.load_results(tmp_path / "seq", with_timings=False)
    lock = loop.load_results(tmp_path / "lock", with_timings=False)
    assert seq[cols].equals(lock[cols])
    for c in configs:
        a = loop.read_records(loop.run_dir_for(tmp_path / "seq", c))
        b = loop.read_records(loop.run_dir_for(tmp_path / "lock", c))
        assert [r["acquired"] for r in a] == [r["acquired"] for r in b]


def _holder(root: Path, run_dir: Path, ref: Path, n_steps: int) -> subprocess.Popen:
    """Another process holding ``run_dir`` (as a second run_grid would): it takes the lock, then on
    ``root/go`` writes the first ``n_steps`` records of the finished run ``ref`` and releases it."""
    script = textwrap.dedent(f"""
        import shutil, sys, time
        from pathlib import Path
        sys.path[:0] = {PATHS!r}.split(":")
        from mcal_utils.loop import storage
        run_dir, ref, root = Path({str(run_dir)!r}), Path({str(ref)!r}), Path({str(root)!r})
        with storage.lock_run_dir(run_dir):
            (root / "locked").touch()
            while not (root / "go").exists():
                time.sleep(0.02)
            shutil.copy(ref / "config.json", run_dir)
            shutil.copy(ref / "split.json", run_dir)
            (run_dir / "steps").mkdir()
            for s in range({n_steps}):
                shutil.copy(ref / "steps" / f"step_{{s:04d}}.json", run_dir / "steps")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    _wait_for(lambda: (root / "locked").exists() or proc.poll() is not None, 60, "the other process to take the lock")
    assert proc.poll() is None, "the lock-holding process died"
    return proc


@pytest.mark.parametrize("n_written", [2, 1])  # the other process finishes the run / stops a step short
def test_busy_wait_waits_for_the_other_process_then_takes_the_run_as_done_or_resumes(tmp_path, capsys, n_written):
    c = cfg(**QUICK)
    ref = loop.run_experiment(c, tmp_path / "ref", torch_threads=1).records  # as run_grid runs it
    run_dir = loop.run_dir_for(tmp_path / "grid", c)
    proc = _holder(tmp_path, run_dir, tmp_path / "ref", n_written)
    try:
        with pytest.raises(RuntimeError, match=rf"1 of 1 runs failed.*RunDirBusy.*in use by PID {proc.pid}"):
            loop.run_grid([c], tmp_path / "grid", max_workers=0, progress=False, log=False)  # busy="raise"
        go = threading.Timer(1.0, (tmp_path / "go").touch)
        go.start()
        loop.run_grid([c], tmp_path / "grid", max_workers=0, progress=False, log=False, busy="wait", poll_s=0.05)
        go.join()
    finally:
        proc.wait(timeout=30)
    err = capsys.readouterr().err
    assert err.count(f"in use by PID {proc.pid}; waiting") == 1
    assert (f"PID {proc.pid} finished entropy seed 3" in err) == (n_written == 2)
    assert strip_timings(loop.read_records(run_dir)) == strip_timings(ref)


def test_busy_skip_leaves_the_run_to_the_other_process_and_names_it(tmp_path):
    c = cfg(**QUICK)
    loop.run_experiment(c, tmp_path / "ref", torch_threads=1)
    other = c.replace(seed=4)
    busy_dir = loop.run_dir_for(tmp_path / "grid", c)
    proc = _holder(tmp_path, busy_dir, tmp_path / "ref", 2)
    try:
        with pytest.warns(RuntimeWarning, match=rf"left 1 run\(s\) to another process: entropy seed 3 "
                                                rf"\({busy_dir}\): still running in PID {proc.pid} \(0 of 2 steps"):
            loop.run_grid([c, other], tmp_path / "grid", max_workers=0, progress=False, log=False, busy="skip")
        assert len(loop.read_records(loop.run_dir_for(tmp_path / "grid", other))) == 2  # the rest was done
        (tmp_path / "go").touch()
    finally:
        proc.wait(timeout=30)
    with pytest.raises(ValueError, match="busy must be one of"):
        loop.run_grid([c], tmp_path / "grid", max_workers=0, busy="later")
