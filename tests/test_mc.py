"""Tests of mcal_utils.mc: shapes, fixed-mask invariances, the shared trunk, agreement with the
naive reference loop, restored state, seeding and input validation. Populations: tests/test_population.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mcal_utils import mc
from mcal_utils.models import MODEL_NAMES, Dropout, MCModel, build_model, mc_mode

torch.set_num_threads(1)

SMALL = {"image_regression_cnn": dict(in_channels=1, image_size=28)}  # keep the 200x200 net out of the tests


def _model(name: str, **kw) -> MCModel:
    return build_model(name, seed=0, **{**SMALL.get(name, {}), **kw})


def _x(model: MCModel, n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *model.input_shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------
# Shapes and values
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("masks", ["fresh", "fixed"])
def test_shapes(name, masks):
    model = _model(name)
    x = _x(model, 6)
    out = mc.predict(model, x, 4, masks=masks, random_state=0, batch_size=4)
    det = mc.deterministic(model, x, batch_size=4)
    assert out.dtype == torch.float32 and det.dtype == torch.float32
    if model.kind == "classification":
        assert out.shape == (6, 4, model.n_outputs) and det.shape == (6, model.n_outputs)
        assert torch.allclose(out.sum(-1), torch.ones(6, 4), atol=1e-5)
        log_out = mc.predict(model, x, 4, masks=masks, random_state=0, batch_size=4, log_probs=True)
        assert torch.allclose(log_out.exp(), out, atol=1e-6)
    else:
        assert out.shape == (6, 4) and det.shape == (6,)
    assert torch.isfinite(out).all()


def test_deterministic_is_softmax_of_eval_forward():
    model = _model("kirillov_cnn")
    x = _x(model, 5)
    with torch.no_grad():
        expected = torch.softmax(model.eval()(x), dim=1)
    assert torch.allclose(mc.deterministic(model, x, batch_size=2), expected, atol=1e-6)
    assert torch.allclose(mc.deterministic(model, x, log_probs=True).exp(), expected, atol=1e-6)


@pytest.mark.parametrize("masks", ["fresh", "fixed"])
def test_zero_dropout_gives_the_deterministic_prediction(masks):
    model = _model("deimos_mnist10", p=0.0)
    x = _x(model, 7)
    out = mc.predict(model, x, 3, masks=masks, random_state=0)
    det = mc.deterministic(model, x)
    assert torch.allclose(out, det[:, None, :].expand(7, 3, 10), atol=1e-6)


def test_empty_input():
    for name, shape in [("deimos_mnist10", (0, 5, 10)), ("mlp1d", (0, 5))]:
        model = _model(name)
        x = torch.zeros(0, *model.input_shape)
        assert mc.predict(model, x, 5, random_state=0).shape == shape
        assert mc.naive_predict(model, x, 5, random_state=0).shape == shape
        assert mc.deterministic(model, x).shape == (shape[0], *shape[2:])


def test_numpy_and_torch_inputs_agree():
    model = _model("mlp1d")
    x = _x(model, 9)
    a = mc.predict(model, x, 5, masks="fixed", random_state=1)
    b = mc.predict(model, x.numpy().astype(np.float64), 5, masks="fixed", random_state=1)
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------
# Fixed masks: invariance to chunking and order, sharing across inputs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["deimos_mnist10", "kirillov_cnn", "splicing_cnn", "mlp1d"])
def test_fixed_masks_do_not_depend_on_chunking_or_order(name):
    model = _model(name)
    x = _x(model, 23)
    T = 6
    ref = mc.predict(model, x, T, masks="fixed", random_state=5, batch_size=23)
    small = mc.predict(model, x, T, masks="fixed", random_state=5, batch_size=4, max_head_elements=1)
    perm = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    permuted = mc.predict(model, x[perm], T, masks="fixed", random_state=5, batch_size=7)
    subset = mc.predict(model, x[:3], T, masks="fixed", random_state=5)
    assert torch.allclose(ref, small, atol=1e-6, rtol=0)
    assert torch.allclose(ref[perm], permuted, atol=1e-6, rtol=0)
    assert torch.allclose(ref[:3], subset, atol=1e-6, rtol=0)


def test_fixed_masks_are_shared_by_all_inputs():
    model = _model("deimos_mnist10")
    x = _x(model, 1).expand(4, 1, 28, 28)
    fixed = mc.predict(model, x, 8, masks="fixed", random_state=2)
    fresh = mc.predict(model, x, 8, masks="fresh", random_state=2)
    assert torch.equal(fixed, fixed[:1].expand_as(fixed))  # identical inputs, identical pass t
    assert not torch.allclose(fixed[0, 0], fixed[0, 1])  # but the passes differ
    assert not torch.allclose(fresh[0], fresh[1])  # fresh masks differ between inputs


def test_fixed_pass_t_equals_a_manual_forward_with_mask_t():
    """Reference for the block layout: rebuild pass t by hand from the layers' banks."""
    model = _model("deimos_mnist10")
    x = _x(model, 5)
    T = 4
    out = mc.predict(model, x, T, masks="fixed", random_state=3)
    drop1, lin1, _, drop2, lin2 = model.head
    with mc_mode(model, "fixed", T=T, random_state=3), torch.no_grad():
        h = model.trunk(x)
        bank1 = drop1.mask_bank(h)
        bank2 = drop2.mask_bank(lin1(h))
        for t in range(T):
            a = torch.relu(lin1(h * ((bank1[t] >= 0.25).float() / 0.75)))
            logits = lin2(a * ((bank2[t] >= 0.25).float() / 0.75))
            assert torch.allclose(out[:, t], torch.softmax(logits, 1), atol=1e-6)


# ---------------------------------------------------------------------------
# The trunk runs once; the head T times
# ---------------------------------------------------------------------------
def _count_rows(module: nn.Module) -> list[int]:
    rows: list[int] = []
    module.register_forward_hook(lambda m, inp, out: rows.append(inp[0].shape[0]))
    return rows


@pytest.mark.parametrize("name", ["kirillov_cnn", "deimos_mnist10", "gal_mnist"])
def test_trunk_runs_once_per_input(name):
    model = _model(name)
    x = _x(model, 10)
    trunk_rows, head_rows = _count_rows(model.trunk), _count_rows(model.head)
    mc.predict(model, x, 7, masks="fresh", random_state=0, batch_size=4)
    assert sum(trunk_rows) == 10 and len(trunk_rows) == 3
    assert sum(head_rows) == 70
    trunk_rows.clear()
    mc.naive_predict(model, x, 7, random_state=0, batch_size=4)
    assert sum(trunk_rows) == 70  # the reference pays the trunk T times


def test_head_chunks_are_bounded():
    model = _model("kirillov_cnn")
    head_rows = _count_rows(model.head)
    per_input = 32 * 16 * 16  # block-1 output
    mc.predict(model, _x(model, 12), 5, random_state=0, batch_size=12, max_head_elements=3 * 5 * per_input)
    assert max(head_rows) == 15 and sum(head_rows) == 60


# ---------------------------------------------------------------------------
# Agreement with the naive loop
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["deimos_mnist10", "mlp1d"])
def test_fresh_predict_agrees_in_distribution_with_naive(name):
    model = _model(name)
    x = _x(model, 3)
    T = 600 if name == "deimos_mnist10" else 2000
    ours = mc.predict(model, x, T, masks="fresh", random_state=0).double()
    naive = mc.naive_predict(model, x, T, random_state=1, batch_size=3).double()
    # means of T draws: the difference is N(0, s^2 (2 / T)) per entry; allow 5 standard errors
    se = torch.sqrt((ours.var(dim=1) + naive.var(dim=1)) / T)
    assert (ours.mean(dim=1) - naive.mean(dim=1)).abs().le(5 * se + 1e-6).all()
    # spreads agree too: total variance per input (summed over classes), as a ratio of standard deviations
    v_o, v_n = ours.var(dim=1), naive.var(dim=1)
    if v_o.dim() == 2:
        v_o, v_n = v_o.sum(-1), v_n.sum(-1)
    assert (v_n > 1e-6).all()
    assert ((v_o / v_n).sqrt() - 1).abs().max() < 0.1


def test_naive_and_fresh_t1_with_single_dropout_layer_match_in_law():
    """With T = 1 a dropout-0 trunk + Dropout(0.5) on a constant gives factors in {0, 2}."""
    trunk = nn.Sequential(nn.Identity())
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    model = MCModel(
        trunk, nn.Sequential(Dropout(0.5), lin, nn.Flatten(0)), kind="regression", n_outputs=1, input_shape=(1,)
    )
    out = mc.predict(model, torch.ones(4000, 1), 1, random_state=0)
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert abs(float((out == 0).double().mean()) - 0.5) < 4 * math.sqrt(0.25 / 4000)


# ---------------------------------------------------------------------------
# State, seeding, validation
# ---------------------------------------------------------------------------
def test_modes_and_training_flags_restored_and_bn_stats_untouched():
    model = _model("kirillov_cnn").train()
    for layer in model.dropout_layers():
        layer.configure("fixed", T=2, seed=1)
    bn = model.trunk[0][2]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mc.predict(model, _x(model, 9), 5, masks="fresh", random_state=0)
    mc.predict(model, _x(model, 9), 5, masks="fixed", random_state=0)
    mc.naive_predict(model, _x(model, 9), 2, random_state=0)
    mc.deterministic(model, _x(model, 9))
    assert all(m.training for m in model.modules())
    assert all(m.mode == "fixed" and m.T == 2 and m._seed == 1 for m in model.dropout_layers())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert int(bn.num_batches_tracked) == 0


def test_state_restored_after_an_exception_inside_the_head():
    model = _model("deimos_mnist10").train()

    def boom(module, inputs):
        raise RuntimeError("boom")

    handle = model.head[1].register_forward_pre_hook(boom)
    with pytest.raises(RuntimeError, match="boom"):
        mc.predict(model, _x(model, 3), 4, masks="fixed", random_state=0)
    handle.remove()
    assert all(m.training for m in model.modules())
    assert all(m.mode == "off" for m in model.dropout_layers())


@pytest.mark.parametrize("masks", ["fresh", "fixed"])
def test_seeded_determinism(masks):
    model = _model("kirillov_cnn")
    x = _x(model, 6)
    state = torch.get_rng_state()
    a = mc.predict(model, x, 5, masks=masks, random_state=11)
    b = mc.predict(model, x, 5, masks=masks, random_state=11)
    c = mc.predict(model, x, 5, masks=masks, random_state=12)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    d = mc.predict(model, x, 5, masks=masks, random_state=g1)
    e = mc.predict(model, x, 5, masks=masks, random_state=g2)
    f = mc.predict(model, x, 5, masks=masks, random_state=np.random.default_rng(0))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and torch.equal(d, e)
    assert not torch.allclose(a, c) and not torch.allclose(a, f)
    n1 = mc.naive_predict(model, x, 3, random_state=1)
    assert torch.equal(n1, mc.naive_predict(model, x, 3, random_state=1))


def test_input_validation():
    model = _model("deimos_mnist10")
    x = _x(model, 2)
    with pytest.raises(ValueError, match="T must be"):
        mc.predict(model, x, 0, random_state=0)
    with pytest.raises(TypeError, match="T must be an int"):
        mc.predict(model, x, 2.0, random_state=0)
    with pytest.raises(ValueError, match="masks"):
        mc.predict(model, x, 2, masks="shared", random_state=0)
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\)"):
        mc.predict(model, torch.rand(2, 28, 28), 2, random_state=0)
    with pytest.raises(ValueError, match="batch_size"):
        mc.predict(model, x, 2, random_state=0, batch_size=0)
    with pytest.raises(ValueError, match="numpy array or a torch tensor"):
        mc.deterministic(model, [[0.0]])
    with pytest.raises(TypeError, match="random_state"):
        mc.predict(model, x, 2, random_state="seed")
    with pytest.raises(TypeError, match="batch_size must be an int"):
        mc.predict(model, x, 2, random_state=0, batch_size=True)
    with pytest.raises(ValueError, match="device"):
        if torch.cuda.is_available():
            raise ValueError("device check skipped: CUDA present")
        mc.predict(model, x, 2, random_state=0, device="cuda")


def test_torch_dropout_is_refused():
    net = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="torch.nn dropout"):
        mc.predict(net, torch.rand(3, 2), 4, random_state=0)
    with pytest.raises(ValueError, match="torch.nn dropout"):
        mc.naive_predict(net, torch.rand(3, 2), 4, random_state=0)
    assert mc.deterministic(net, torch.rand(3, 2)).shape == (3, 2)  # no dropout needed here


def test_generic_module_without_trunk():
    net = nn.Sequential(nn.Linear(2, 8), Dropout(0.5), nn.Linear(8, 3))
    out = mc.predict(net, torch.rand(5, 2), 4, masks="fixed", random_state=0)
    assert out.shape == (5, 4, 3)
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_progress_bar_runs():
    model = _model("mlp1d")
    out = mc.predict(model, _x(model, 5), 2, random_state=0, progress=True, batch_size=2)
    assert out.shape == (5, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_for_fixed_masks():
    model = _model("kirillov_cnn")
    x = _x(model, 8)
    cpu = mc.predict(model, x, 4, masks="fixed", random_state=0, device="cpu")
    gpu = mc.predict(model, x, 4, masks="fixed", random_state=0, device="cuda")
    assert torch.allclose(cpu, gpu, atol=1e-4)
    assert next(model.parameters()).device.type == "cpu"  # moved back


def test_outputs_are_plain_tensors():
    model = _model("mlp1d")
    for out in (
        mc.predict(model, _x(model, 4), 3, random_state=0),
        mc.deterministic(model, _x(model, 4)),
        mc.naive_predict(model, _x(model, 4), 3, random_state=0),
    ):
        assert not out.requires_grad and not out.is_inference()
        out += 1.0  # in-place use downstream must work


_MLP = build_model("mlp1d", seed=0)
_X_MLP = torch.linspace(-3, 3, 16).reshape(16, 1)
_REF_MLP = mc.predict(_MLP, _X_MLP, 5, masks="fixed", random_state=9)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 16), batch_size=st.integers(1, 17), max_head=st.integers(1, 5000), seed=st.integers(0, 2**31))
def test_property_fixed_masks_invariant_to_subset_order_and_chunks(n, batch_size, max_head, seed):
    idx = torch.randperm(16, generator=torch.Generator().manual_seed(seed))[:n]
    out = mc.predict(
        _MLP, _X_MLP[idx], 5, masks="fixed", random_state=9, batch_size=batch_size, max_head_elements=max_head
    )
    assert torch.allclose(out, _REF_MLP[idx], atol=1e-6, rtol=0)
