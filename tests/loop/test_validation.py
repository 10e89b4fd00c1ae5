"""Everything checkable is checked before training; degenerate scores are refused with a clear error."""
from __future__ import annotations

import os

import numpy as np
import pytest

from mcal_utils import acquisition, loop
from mcal_utils.acquisition.strategies import Strategy
from test_loop import FAST, cfg

QUICK = dict(n_steps=1, train={**FAST, "epochs": 1})


@pytest.fixture
def no_training(monkeypatch):
    """Any call to fit fails the test: the refusal must come before training."""
    import mcal_utils.training as training

    monkeypatch.setattr(training, "fit", lambda *a, **k: pytest.fail("trained before refusing"))


@pytest.mark.parametrize("changes, match", [
    (dict(strategy="batchbald", strategy_options={"num_sample": 10}),
     r"batchbald' does not take option\(s\) \['num_sample'\]; its options: \['num_samples', 'candidates'"),
    (dict(strategy="deimos", tau_inv=1e-3, n_candidates=30, strategy_options={"progres": False}),
     r"'deimos' does not take option\(s\) \['progres'\]; its options: \['progress'"),
    (dict(strategy="deimos", tau_inv=1e-3, n_candidates=30, strategy_options={"candidates": [1, 2]}),
     r"set \['candidates'\], which the loop computes"),
    (dict(strategy="entropy", strategy_options={"top": 3}), r"'entropy' does not take option\(s\) \['top'\]"),
    (dict(strategy="kcenter_robust", strategy_options={"max_points": 30}),
     r"N=\d+ points \(labelled \+ candidates\) exceed max_points=30"),
    (dict(strategy="bald", T=1), r"strategy 'bald' needs at least 2 MC-dropout passes \(T >= 2\)"),
    (dict(strategy="batchbald", T=1), r"at least 2 MC-dropout passes"),
    (dict(strategy="deimos", tau_inv=1e-3, n_candidates=30, T=1), r"at least 2 MC-dropout passes"),
])
def test_refused_before_training(tmp_path, no_training, changes, match):
    with pytest.raises(ValueError, match=match):
        loop.run_experiment(cfg(**{**QUICK, **changes}), tmp_path / "run")
    with pytest.raises(ValueError, match=match):
        loop.run_grid([cfg(**{**QUICK, **changes})], tmp_path / "grid", max_workers=0)
    assert not (tmp_path / "run").exists() and not (tmp_path / "grid").exists()


def test_valid_options_pass_and_entropy_mc_allows_one_pass(tmp_path):
    loop.validate(cfg(strategy="batchbald", strategy_options={"num_samples": 100}))
    loop.validate(cfg(strategy="kcenter_robust", strategy_options={"outlier_fraction": 0.01, "max_points": 500}))
    loop.validate(cfg(strategy="entropy_mc", T=1))  # entropy of one pass: a valid (if poor) score


def test_read_only_run_dir_refused_before_training(tmp_path, no_training, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(p) == str(ro) else real(p, mode, **k))
    with pytest.raises(PermissionError, match=rf"cannot write results under {ro} \(read-only\)"):
        loop.run_experiment(cfg(**QUICK), ro / "run")
    with pytest.raises(PermissionError, match="read-only"):
        loop.run_grid([cfg(**QUICK)], ro, max_workers=0)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_run_dir_by_permissions(tmp_path, no_training):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="read-only"):
            loop.run_experiment(cfg(**QUICK), ro / "run")
    finally:
        ro.chmod(0o755)


def test_non_finite_scores_from_any_strategy_are_refused(tmp_path, monkeypatch):
    def nan_scores(k, *, random_state, **arrays):
        return acquisition.CandidateBatch(np.arange(k), np.full(k, np.nan))

    monkeypatch.setitem(acquisition.STRATEGIES, "nan_scores",
                        Strategy("nan_scores", "probs_N_C", "test double", nan_scores, optional=None))
    with pytest.raises(ValueError, match=r"strategy 'nan_scores' produced 5 non-finite score\(s\)"):
        loop.run_experiment(cfg(**QUICK, strategy="nan_scores"), tmp_path / "run")
    assert len(loop.read_records(tmp_path / "run")) == 0  # nothing written for the failed step


def test_strategy_select_refuses_one_pass_for_spread_scores():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=(10, 1))
    with pytest.raises(ValueError, match=r"strategy 'bald' needs at least 2 MC-dropout passes"):
        acquisition.STRATEGIES["bald"].select(2, random_state=0, probs_N_T_C=p)
    with pytest.raises(ValueError, match="at least 2"):
        acquisition.STRATEGIES["max_variance"].select(2, random_state=0, preds_N_T=rng.normal(size=(10, 1)))
    with pytest.raises(ValueError, match="at least 2"):
        acquisition.STRATEGIES["deimos"].select(2, random_state=0, preds=p.transpose(1, 0, 2), tau_inv=1e-3)
    assert len(acquisition.STRATEGIES["entropy_mc"].select(2, random_state=0, probs_N_T_C=p)) == 2


def test_one_registration_is_a_new_strategy(tmp_path, monkeypatch):
    """A new strategy: one Strategy with a Requirement object; the loop computes its inputs."""
    from mcal_utils.acquisition.requirements import REQUIREMENTS

    def lowest_max_prob(k, *, random_state, probs_N_T_C, temperature=1.0):
        return acquisition.top_k(-np.asarray(probs_N_T_C).mean(1).max(1) / temperature, k)

    new = Strategy("lowest_max_prob", REQUIREMENTS["probs_N_T_C"], "test: 1 - max of the MC mean",
                   lowest_max_prob, required=("probs_N_T_C",), optional=("temperature",))
    assert new.requires == "probs_N_T_C" and new.inputs is REQUIREMENTS["probs_N_T_C"]
    monkeypatch.setitem(acquisition.STRATEGIES, new.name, new)
    res = loop.run_experiment(cfg(**QUICK, strategy=new.name, strategy_options={"temperature": 2.0}), tmp_path / "r")
    assert len(res.records[0]["acquired"]) == 5
    with pytest.raises(ValueError, match=r"does not take option\(s\) \['temp'\]"):
        loop.validate(cfg(**QUICK, strategy=new.name, strategy_options={"temp": 2.0}))


def test_task_cache_follows_the_data_directory_environment(tmp_path, monkeypatch):
    """Two loads with data_dir=None under different $MCAL_DATA_DIR must not share a cached task."""
    from mcal_utils.loop import registry

    seen = []

    def fake_load(task, options_json, data_dir):
        seen.append(data_dir)
        return data_dir

    monkeypatch.setattr(registry, "_load_task_cached", fake_load)
    config = loop.ExperimentConfig(task="toy1d", model="mlp1d", strategy="random")
    monkeypatch.setenv("MCAL_DATA_DIR", str(tmp_path / "a"))
    first = registry.load_task_for(config)
    monkeypatch.setenv("MCAL_DATA_DIR", str(tmp_path / "b"))
    second = registry.load_task_for(config)
    assert first != second and first.endswith("a") and second.endswith("b")
