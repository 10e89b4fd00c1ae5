"""ExperimentConfig.init ("per_step" | "fixed") and tau_inv={"auto": factor} (DEIMOS Appendix E)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcal_utils import acquisition, loop, mc
from mcal_utils.acquisition import auto_tau_inv
from test_loop import FAST, cfg, strip_timings, tiny_model

BUILT: list[int] = []


def recording_model(*, seed, **kwargs):
    """tiny_model, remembering the init seed of every model the loop builds."""
    BUILT.append(seed)
    return tiny_model(seed=seed, **kwargs)


def _weights(model):
    return [p.detach().clone() for p in model.state_dict().values()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------
# init
# ---------------------------------------------------------------------------
def test_fixed_init_reuses_one_initial_network_per_seed(tmp_path):
    BUILT.clear()
    fixed = [cfg(model="loop.test_engine_options:recording_model", init="fixed", strategy=s, label=s,
                 train={**FAST, "epochs": 1}) for s in ("entropy", "random")]
    for c in fixed:
        loop.run_experiment(c, tmp_path / c.strategy)
    assert len(BUILT) == 2 * (fixed[0].n_steps + 1)
    assert set(BUILT) == {loop.derive_seed(fixed[0].seed, "init")}  # every step, every strategy
    inits = [_weights(loop.build_step_model(c, s)) for c in fixed for s in range(c.n_steps + 1)]
    assert all(_same(inits[0], w) for w in inits[1:])
    # another seed: another initial network
    assert not _same(inits[0], _weights(loop.build_step_model(fixed[0].replace(seed=4), 0)))


def test_per_step_init_differs_between_steps(tmp_path):
    BUILT.clear()
    c = cfg(model="loop.test_engine_options:recording_model", train={**FAST, "epochs": 1})
    assert c.init == "per_step"
    loop.run_experiment(c, tmp_path / "run")
    assert BUILT == [loop.derive_seed(c.seed, "step", s, "init") for s in range(c.n_steps + 1)]
    assert len(set(BUILT)) == c.n_steps + 1
    w0, w1 = (_weights(loop.build_step_model(c, s)) for s in (0, 1))
    assert not _same(w0, w1)
    # the same strategy-independent step-s network for every strategy of a seed
    assert _same(w1, _weights(loop.build_step_model(c.replace(strategy="random"), 1)))


def test_init_is_validated_and_bound_into_the_config():
    with pytest.raises(ValueError, match=r"init must be one of \['per_step', 'fixed'\]"):
        cfg(init="shared")
    assert loop.config_hash(cfg(init="fixed")) != loop.config_hash(cfg())
    assert loop.ExperimentConfig.from_json(cfg(init="fixed").to_json()).init == "fixed"


# ---------------------------------------------------------------------------
# tau_inv = {"auto": factor}
# ---------------------------------------------------------------------------
def test_auto_tau_inv_hand_computed():
    preds_N_T = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])  # Var_t: 2/3 and 2 -> mean 4/3
    assert auto_tau_inv(preds_N_T, 0.15) == pytest.approx(0.15 * 4 / 3, rel=1e-15)
    probs_N_T_C = np.array([[[0.2, 0.8], [0.6, 0.4]]])  # per-class Var_t: 0.04, 0.04
    assert auto_tau_inv(probs_N_T_C, 0.01) == pytest.approx(4e-4, rel=1e-12)
    assert auto_tau_inv(torch.tensor(probs_N_T_C, dtype=torch.float32), 0.01) == pytest.approx(4e-4, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 MC-dropout passes"):
        auto_tau_inv(preds_N_T[:, :1], 0.1)
    with pytest.raises(ValueError, match="variance on the validation set is 0"):
        auto_tau_inv(np.ones((4, 5)), 0.1)
    with pytest.raises(ValueError, match="positive finite"):
        auto_tau_inv(preds_N_T, -1.0)
    with pytest.raises(ValueError, match="must be finite"):
        auto_tau_inv(np.array([[1.0, np.nan]]), 0.1)


def _deimos_auto(**changes):
    base = dict(strategy="deimos", tau_inv={"auto": 0.01}, n_candidates=30, n_steps=3, k=3,
                train={**FAST, "epochs": 1})
    return cfg(**{**base, **changes})


def test_auto_tau_computed_once_recorded_and_kept(tmp_path, monkeypatch):
    c = _deimos_auto()
    assert c.tau_auto == 0.01 and c.to_dict()["tau_inv"] == {"auto": 0.01}
    res = loop.run_experiment(c, tmp_path / "run")
    taus = [r["tau_inv"] for r in res.records]
    assert taus[0] > 0 and taus == [taus[0]] * len(taus)

    # the rule by hand on the step-0 model: factor x mean MC variance on the validation set
    with loop.open_run(c, tmp_path / "again") as state:
        seeds = loop.step_seeds(c, 0)
        with torch.random.fork_rng():
            torch.manual_seed(seeds("global"))
            model = loop.fit_step_model(state, 0).model
        x_val = state.task.x_train[state.split.val]
        probs = mc.predict(model, x_val, c.T, masks="fresh", random_state=seeds("tau")).double().numpy()
        assert probs.shape == (20, c.T, 3)
        hand = 0.01 * probs.var(axis=1).mean()
        assert loop.resolve_tau_inv(state, model) == pytest.approx(hand, rel=1e-12)
        assert state.tau_inv == pytest.approx(taus[0], rel=1e-12)

    # resume: tau comes back from step 0's record, never recomputed
    (tmp_path / "run" / "steps" / "step_0003.json").unlink()
    (tmp_path / "run" / "steps" / "step_0002.json").unlink()
    monkeypatch.setattr(acquisition, "auto_tau_inv", lambda *a, **k: pytest.fail("tau recomputed on resume"))
    resumed = loop.run_experiment(c, tmp_path / "run")
    assert resumed.resumed_from == 2
    assert strip_timings(resumed.records) == strip_timings(res.records)


def test_fixed_tau_is_recorded_and_unused_tau_is_none(tmp_path):
    res = loop.run_experiment(_deimos_auto(tau_inv=1e-3, n_steps=1), tmp_path / "d")
    assert [r["tau_inv"] for r in res.records] == [1e-3, 1e-3]
    res = loop.run_experiment(cfg(n_steps=1, train={**FAST, "epochs": 1}), tmp_path / "e")
    assert [r["tau_inv"] for r in res.records] == [None, None]


@pytest.mark.parametrize("changes, error, match", [
    (dict(val_size=0, train={**FAST, "epochs": 1, "checkpoint": "last"}), ValueError, r"validation set.*val_size=0"),
    (dict(tau_inv={"auto": 0.0}), ValueError, "positive finite"),
    (dict(tau_inv={"auto": 0.1, "x": 1}), ValueError, r"\{'auto': factor\}"),
    (dict(tau_inv="auto"), TypeError, r"a number, \{'auto': factor\} or None"),
    (dict(T=1), ValueError, "at least 2 MC-dropout passes"),
])
def test_auto_tau_refused_before_training(tmp_path, changes, error, match):
    with pytest.raises(error, match=match):
        loop.run_experiment(_deimos_auto(**changes), tmp_path / "run")
    assert not (tmp_path / "run").exists()
