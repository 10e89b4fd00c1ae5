"""The STRATEGIES registry: names, requirements, the common select() API."""

import numpy as np
import pytest
import torch

from mcal_utils.acquisition import (
    REQUIREMENTS,
    STRATEGIES,
    CandidateBatch,
    Requirement,
    bald,
    get_strategy,
    margin,
    predictive_entropy,
    var_ratio,
)
from mcal_utils.acquisition.deimos import deimos
from mcal_utils.acquisition.strategies import REQUIREMENTS as STRATEGY_REQUIREMENTS

NAMES = [
    "random",
    "var_ratio",
    "margin",
    "margin_inverted",
    "entropy",
    "entropy_mc",
    "variation_ratio_mc",
    "mean_std",
    "bald",
    "power_bald",
    "batchbald",
    "max_variance",
    "kcenter_greedy",
    "kcenter_robust",
    "deimos",
]


def _inputs(N=40, T=6, C=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, T, C)) * 2
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    labelled = np.zeros(N, bool)
    labelled[:5] = True
    return {
        "nothing": {"n": N},
        "probs_N_C": {"probs_N_C": np.exp(log_probs[:, 0])},
        "probs_N_T_C": {"probs_N_T_C": np.exp(log_probs)},
        "log_probs_N_K_C": {"log_probs_N_K_C": log_probs},
        "preds_N_T": {"preds_N_T": rng.normal(size=(N, T))},
        "features": {"features": rng.normal(size=(N, 3)), "labelled_mask": labelled},
        "fixed_J_S": {"preds": np.exp(log_probs).transpose(1, 0, 2), "tau_inv": 1e-3},
    }


def test_registry_names_and_requirements():
    assert sorted(STRATEGIES) == sorted(NAMES)
    for name, s in STRATEGIES.items():
        assert s.name == name and s.requires in REQUIREMENTS and s.description
    assert STRATEGY_REQUIREMENTS is REQUIREMENTS
    assert STRATEGIES["batchbald"].requires == "log_probs_N_K_C"
    assert STRATEGIES["deimos"].requires == "fixed_J_S"
    assert STRATEGIES["kcenter_robust"].requires == "features"
    with pytest.raises(ValueError, match="valid names.*bald"):
        get_strategy("maxent")
    assert get_strategy("bald") is STRATEGIES["bald"]


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_selects(name):
    s = STRATEGIES[name]
    arrays = _inputs()[s.requires]
    out = s.select(7, random_state=0, **arrays)
    assert isinstance(out, CandidateBatch)
    assert out.indices.dtype == np.int64 and out.scores.dtype == np.float64
    assert len(out) == 7 and len(set(out.indices.tolist())) == 7
    assert out.indices.min() >= 0 and out.indices.max() < 40
    if s.requires == "features":
        assert out.indices.min() >= 5  # never a labelled row
    again = s.select(7, random_state=0, **arrays)
    assert again.indices.tolist() == out.indices.tolist()
    with pytest.raises(ValueError):
        s.select(41, random_state=0, **arrays)


def test_top_k_strategies_use_their_scores():
    inp = _inputs()
    p = inp["probs_N_C"]["probs_N_C"]
    pt = inp["probs_N_T_C"]["probs_N_T_C"]
    out = STRATEGIES["var_ratio"].select(5, random_state=None, probs_N_C=p)
    np.testing.assert_array_equal(out.indices, np.argsort(-var_ratio(p), kind="stable")[:5])
    out = STRATEGIES["margin"].select(5, random_state=None, probs_N_C=p)
    np.testing.assert_array_equal(out.indices, np.argsort(margin(p), kind="stable")[:5])
    np.testing.assert_allclose(out.scores, np.sort(margin(p))[:5])
    out = STRATEGIES["entropy_mc"].select(5, random_state=None, probs_N_T_C=pt)
    np.testing.assert_array_equal(out.indices, np.argsort(-predictive_entropy(pt), kind="stable")[:5])
    out = STRATEGIES["bald"].select(5, random_state=None, probs_N_T_C=pt)
    np.testing.assert_array_equal(out.indices, np.argsort(-bald(pt), kind="stable")[:5])
    lp = inp["log_probs_N_K_C"]["log_probs_N_K_C"]
    out2 = STRATEGIES["bald"].select(5, random_state=None, log_probs_N_K_C=torch.tensor(lp))
    assert out2.indices.tolist() == out.indices.tolist()


def test_margin_inverted_is_reverse_of_margin():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(5), size=30)
    a = STRATEGIES["margin"].select(30, random_state=0, probs_N_C=p)
    b = STRATEGIES["margin_inverted"].select(30, random_state=0, probs_N_C=p)
    assert a.indices.tolist() == b.indices.tolist()[::-1]
    # the most confident point (largest margin) is what the inverted variant takes first
    assert b.indices[0] == int(np.argmax(margin(p)))


def test_random_strategy_length_from_any_array():
    inp = _inputs()
    a = STRATEGIES["random"].select(5, random_state=3, **inp["probs_N_T_C"])
    b = STRATEGIES["random"].select(5, random_state=3, n=40)
    assert a.indices.tolist() == b.indices.tolist()
    with pytest.raises(TypeError, match="random_state"):
        STRATEGIES["random"].select(5, random_state=None, n=40)


def test_keyword_errors():
    inp = _inputs()
    with pytest.raises(ValueError, match="needs keyword.*probs_N_C"):
        STRATEGIES["entropy"].select(3, random_state=0, probs_N_T_C=inp["probs_N_T_C"]["probs_N_T_C"])
    with pytest.raises(ValueError, match="does not take"):
        STRATEGIES["batchbald"].select(3, random_state=0, num_sample=10, **inp["log_probs_N_K_C"])
    with pytest.raises(ValueError, match="exactly one of"):
        STRATEGIES["bald"].select(3, random_state=0)
    with pytest.raises(ValueError, match="sum to 1"):
        STRATEGIES["entropy"].select(3, random_state=0, probs_N_C=np.full((5, 3), 0.5))
    with pytest.raises(ValueError, match="finite"):
        STRATEGIES["entropy_mc"].select(1, random_state=0, probs_N_T_C=np.full((5, 2, 2), np.nan))
    with pytest.raises(TypeError):
        STRATEGIES["entropy"].select(3, probs_N_C=inp["probs_N_C"]["probs_N_C"])  # random_state is explicit


def test_batchbald_options_forwarded():
    lp = _inputs()["log_probs_N_K_C"]["log_probs_N_K_C"]
    a = STRATEGIES["batchbald"].select(4, random_state=0, log_probs_N_K_C=lp, num_samples=20)
    b = STRATEGIES["batchbald"].select(4, random_state=0, log_probs_N_K_C=lp, num_samples=100_000)
    assert a.indices[:2].tolist() == b.indices[:2].tolist()  # exact for the first picks in both


def test_deimos_strategy_matches_function():
    inp = _inputs()["fixed_J_S"]
    cand = np.arange(10, 40)
    a = STRATEGIES["deimos"].select(3, random_state=0, candidates=cand, **inp)
    b = deimos(inp["preds"], 3, inp["tau_inv"], candidates=cand)
    assert a.indices.tolist() == b.indices.tolist()
    assert set(a.indices.tolist()) <= set(cand.tolist())


def test_every_strategy_carries_its_requirement_object():
    for s in STRATEGIES.values():
        assert isinstance(s.inputs, Requirement) and s.inputs is REQUIREMENTS[s.requires]
        assert s.inputs.keyword is None or s.inputs.keyword in s.keywords()
    assert REQUIREMENTS["fixed_J_S"].needs_tau and REQUIREMENTS["fixed_J_S"].needs_candidates
    assert REQUIREMENTS["preds_N_T"].kinds == ("regression",)
    with pytest.raises(ValueError, match="requires must be a Requirement or one of"):
        type(STRATEGIES["bald"])("x", "probs", "typo", lambda k, **a: None)


def test_options_are_checked_against_what_the_strategy_accepts():
    assert set(STRATEGIES["kcenter_robust"].accepted_options()) >= {"n_outliers", "max_points", "time_limit"}
    assert "num_samples" in STRATEGIES["batchbald"].accepted_options()
    STRATEGIES["batchbald"].check_options({"num_samples": 10})
    with pytest.raises(ValueError, match=r"does not take option\(s\) \['num_sample'\]"):
        STRATEGIES["batchbald"].check_options({"num_sample": 10})
    with pytest.raises(ValueError, match=r"set \['preds'\], which the loop computes"):
        STRATEGIES["deimos"].check_options({"preds": 1})
    with pytest.raises(ValueError, match=r"'entropy' does not take option\(s\) \['base'\]"):
        STRATEGIES["entropy"].check_options({"base": 2})


@pytest.mark.parametrize("name", ["bald", "mean_std", "variation_ratio_mc", "batchbald", "max_variance", "deimos"])
def test_spread_scores_refuse_one_pass(name):
    s = STRATEGIES[name]
    arrays = dict(_inputs(T=1)[s.requires])
    with pytest.raises(ValueError, match="at least 2 MC-dropout passes"):
        s.select(3, random_state=0, **arrays)
