"""Tests of mcal_utils.models: architectures, Concrete Dropout, dropout modes."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mcal_utils import mc, models
from mcal_utils.acquisition import deimos
from mcal_utils.models import (
    MODEL_NAMES,
    ConcreteDropout,
    Dropout,
    MCDropoutBase,
    MCModel,
    PatchedModel,
    build_model,
    check_same_architecture,
    external_masks,
    layer_seeds,
    mc_mode,
    patch_dropout,
    set_dropout_mode,
)
from mcal_utils.training import TrainConfig, fit

torch.set_num_threads(1)

EXPECTED = {  # name -> (kind, n_outputs, input_shape, features dim)
    "kirillov_cnn": ("classification", 10, (1, 32, 32), 32),
    "deimos_mnist10": ("classification", 10, (1, 28, 28), 128),
    "deimos_mnist79": ("classification", 2, (1, 28, 28), 128),
    "gal_mnist": ("classification", 10, (1, 28, 28), 128),
    "mlp1d": ("regression", 1, (1,), 256),
    "image_regression_cnn": ("regression", 1, (3, 200, 200), 150),
    "splicing_cnn": ("regression", 1, (4, 101), 50),
}


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------
def test_model_names_listed():
    assert set(MODEL_NAMES) == set(EXPECTED)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shapes_and_split(name):
    kind, n_out, in_shape, d_feat = EXPECTED[name]
    model = build_model(name, seed=0).eval()
    assert (model.kind, model.n_outputs, model.input_shape) == (kind, n_out, in_shape)
    x = torch.rand(3, *in_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        assert out.shape == ((3, n_out) if kind == "classification" else (3,))
        assert torch.equal(out, model.head(model.trunk(x)))
        assert model.features(x).shape == (3, d_feat)
    assert not models.dropout_layers(model.trunk)
    assert len(model.dropout_layers()) >= 1
    assert all(isinstance(m, MCDropoutBase) for m in model.dropout_layers())


def test_same_seed_same_model_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = build_model("kirillov_cnn", seed=3)
    b = build_model("kirillov_cnn", seed=3)
    c = build_model("kirillov_cnn", seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["trunk.0.0.weight"], sc["trunk.0.0.weight"])


def test_build_model_rejects_bad_names_and_kwargs():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", seed=0)
    with pytest.raises(ValueError, match="unknown argument"):
        build_model("deimos_mnist10", seed=0, filters=3)
    with pytest.raises(ValueError, match="dropout"):
        build_model("kirillov_cnn", seed=0, dropout="gaussian")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        build_model("mlp1d", seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        build_model("mlp1d", seed=1.0)
    a, b = build_model("mlp1d", seed=np.random.default_rng(3)), build_model("mlp1d", seed=np.random.default_rng(3))
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_kirillov_cnn_parameter_count_matches_table1():
    conv = lambda c_in, c_out, k: c_in * c_out * k * k + c_out  # noqa: E731
    dense = lambda d_in, d_out: d_in * d_out + d_out  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731  (gamma, beta; running stats are buffers)
    expected_weights = (
        conv(1, 32, 3)
        + bn(32)
        + conv(32, 32, 3)
        + bn(32)
        + conv(32, 64, 3)
        + bn(64)
        + dense(64 * 4 * 4, 128)
        + dense(128, 32)
        + dense(32, 10)
    )
    concrete = build_model("kirillov_cnn", seed=0)
    fixed = build_model("kirillov_cnn", seed=0, dropout="fixed", p=0.2)
    assert _n_params(concrete) == expected_weights + 4  # one p_logit per Concrete Dropout layer
    assert _n_params(fixed) == expected_weights
    assert _n_params(concrete.trunk) == conv(1, 32, 3) + bn(32)


def test_kirillov_cnn_dropout_layers():
    model = build_model("kirillov_cnn", seed=0)
    layers = model.dropout_layers()
    assert [type(m) for m in layers] == [ConcreteDropout] * 4
    assert [m.n_features for m in layers] == [32, 32, 1024, 128]
    assert model.dropout_rates() == pytest.approx([0.1] * 4, abs=1e-7)
    assert all(m.temperature == 0.1 and m.eps == 1e-7 for m in layers)
    assert all(m.weight_regulariser == 1e-5 and m.dropout_regulariser == 1e-3 for m in layers)
    fixed = build_model("kirillov_cnn", seed=0, dropout="fixed", p=0.3)
    assert [type(m) for m in fixed.dropout_layers()] == [Dropout] * 4
    assert fixed.dropout_rates() == [0.3] * 4
    assert float(fixed.regularisation()) == 0.0
    # no dropout before the last layer: head ends with fc2 block, then Linear(32, 10)
    assert isinstance(model.head[-1], nn.Linear) and model.head[-1].in_features == 32
    assert not isinstance(model.head[-2], MCDropoutBase)


@pytest.mark.parametrize(
    "name, kwargs, flat",
    [
        ("deimos_mnist10", {}, 40 * 3 * 3),  # 28 -> 25 -> 11 (stride 2) -> 3 (pool 3)
        ("deimos_mnist79", {}, 35 * 3 * 3),
        ("gal_mnist", {}, 32 * 11 * 11),  # 28 -> 25 -> 22 -> 11
        ("splicing_cnn", {}, 50 * 9),  # 101 -> 98 -> 32 -> 29 -> 9
        ("image_regression_cnn", {}, 100 * 6 * 6),  # 200 -> 99 -> 49 -> 24 -> 22 -> 20 -> 6
        ("image_regression_cnn", dict(in_channels=1, image_size=28), 100 * 1 * 1),  # same: 14, 7, 3, 3, 3, 1
        ("image_regression_cnn", dict(in_channels=1, image_size=28, padding="same"), 100),
        ("image_regression_cnn", dict(in_channels=1, image_size=64, padding="same"), 100 * 2 * 2),  # 32, 16, 8, 8, 8, 2
    ],
)
def test_flattened_sizes(name, kwargs, flat):
    model = build_model(name, seed=0, **kwargs)
    first_dense = next(m for m in model.head if isinstance(m, nn.Linear))
    assert first_dense.in_features == flat
    x = torch.rand(2, *model.input_shape)
    with torch.no_grad():
        expected = (2,) if model.kind == "regression" else (2, model.n_outputs)
        assert model.eval()(x).shape == expected


def test_image_regression_cnn_valid_padding_too_small_raises():
    with pytest.raises(ValueError, match="too small"):
        build_model("image_regression_cnn", seed=0, in_channels=1, image_size=28, padding="valid")


def test_dropout_p_overridable_and_defaults():
    assert build_model("deimos_mnist10", seed=0).dropout_rates() == [0.25, 0.25]
    assert build_model("deimos_mnist79", seed=0).dropout_rates() == pytest.approx([0.3, 0.3])
    assert build_model("gal_mnist", seed=0).dropout_rates() == [0.25, 0.5]
    assert build_model("mlp1d", seed=0).dropout_rates() == pytest.approx([0.2] * 3)
    assert build_model("image_regression_cnn", seed=0).dropout_rates() == [0.5, 0.5]
    assert build_model("splicing_cnn", seed=0).dropout_rates() == pytest.approx([0.15, 0.15])
    assert build_model("deimos_mnist10", seed=0, p=0.1).dropout_rates() == pytest.approx([0.1, 0.1])
    assert build_model("gal_mnist", seed=0, p=0.3).dropout_rates() == pytest.approx([0.3, 0.3])


def test_l2_parameters_are_dense_weights():
    model = build_model("deimos_mnist10", seed=0)
    shapes = [tuple(w.shape) for w in model.l2_parameters()]
    assert shapes == [(128, 360), (10, 128)]
    assert all(w is m.weight for w, m in zip(model.l2_parameters(), [model.head[1], model.head[4]]))


def test_features_are_penultimate_activations():
    model = build_model("deimos_mnist10", seed=0).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        expected = torch.relu(model.head[1](model.trunk(x)))
        assert torch.allclose(model.features(x), expected)
        assert torch.allclose(model.head[4](model.features(x)), model(x))


# ---------------------------------------------------------------------------
# Concrete Dropout
# ---------------------------------------------------------------------------
def _tiny_concrete_model(p1=0.3, p2=0.6, scale_by_n=None) -> MCModel:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        trunk = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        head = nn.Sequential(
            ConcreteDropout(3, init_p=p1, scale_by_n=scale_by_n),
            nn.Sequential(nn.Linear(3, 4), nn.ReLU()),
            ConcreteDropout(4, init_p=p2, scale_by_n=scale_by_n),
            nn.Linear(4, 2),
        )
    return MCModel(trunk, head, kind="classification", n_outputs=2, input_shape=(2,))


def test_concrete_regulariser_matches_hand_computation():
    model = _tiny_concrete_model()
    w1, b1 = model.head[1][0].weight.detach().double(), model.head[1][0].bias.detach().double()
    w2, b2 = model.head[3].weight.detach().double(), model.head[3].bias.detach().double()

    def reg(p, K, sum_sq):
        return 1e-5 * sum_sq / (1 - p) + 1e-3 * K * (p * math.log(p) + (1 - p) * math.log(1 - p))

    expected = reg(0.3, 3, float((w1**2).sum() + (b1**2).sum())) + reg(0.6, 4, float((w2**2).sum() + (b2**2).sum()))
    assert float(model.regularisation().detach()) == pytest.approx(expected, rel=1e-5)
    assert model.dropout_rates() == pytest.approx([0.3, 0.6], rel=1e-6)
    scaled = _tiny_concrete_model(scale_by_n=250)
    assert float(scaled.regularisation().detach()) == pytest.approx(expected / 250, rel=1e-5)
    # the regulariser is differentiable in p_logit and in the following weights
    model.regularisation().backward()
    assert model.head[0].p_logit.grad is not None and model.head[1][0].weight.grad is not None


def test_concrete_single_layer_regulariser():
    layer = ConcreteDropout(5, init_p=0.2)
    sum_sq = torch.tensor(7.0)
    expected = 1e-5 * 7.0 / 0.8 + 1e-3 * 5 * (0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert float(layer.regulariser(sum_sq).detach()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("logit", [-1e4, -200.0, -30.0, 30.0, 200.0, 1e4])
def test_concrete_p_strictly_inside_unit_interval(logit):
    layer = ConcreteDropout(4)
    with torch.no_grad():
        layer.p_logit.fill_(logit)
    p = float(layer.p.detach())
    assert 0.0 < p < 1.0 and 0.0 < layer.rate < 1.0
    reg = layer.regulariser(torch.tensor(1.0))
    assert torch.isfinite(reg)
    x = torch.ones(8, 4, requires_grad=True)
    out = layer.train()(x)
    assert torch.isfinite(out).all()
    (out.sum() + reg).backward()
    assert torch.isfinite(x.grad).all()


def test_concrete_off_mode_is_identity_in_eval():
    layer = ConcreteDropout(3, init_p=0.5).eval()
    x = torch.randn(6, 3, 5, 5)
    assert torch.equal(layer(x), x)
    assert layer.mode == "off"


def test_concrete_relaxation_formula():
    # one channel, u given by a seeded generator: recompute the MC-dropout-entropy paper's formula in float64
    layer = ConcreteDropout(1, init_p=0.3).eval()
    layer.configure("fixed", T=5, seed=11)
    x = torch.ones(5, 1)
    with torch.no_grad():
        out = layer(x)
    u = layer.mask_bank(x).double().reshape(5)
    logit = math.log(0.3 / 0.7)
    z = torch.sigmoid((logit + torch.log(u + 1e-7) - torch.log(1 - u + 1e-7)) / 0.1)
    assert torch.allclose(out.double().reshape(5), (1 - z) / 0.7, atol=1e-6)


def test_concrete_noise_is_channelwise_on_4d_and_elementwise_on_2d():
    layer = ConcreteDropout(6, init_p=0.5)
    layer.configure("fresh", seed=0)
    layer.eval()
    with torch.no_grad():
        out = layer(torch.ones(10, 6, 4, 4))
        out2 = layer(torch.ones(10, 6))
    # whole channels share one factor
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out))
    assert out[:, :, 0, 0].unique().numel() > 10  # but channels and inputs differ
    assert out2.unique().numel() > 30
    with pytest.raises(ValueError, match="6 features"):
        layer(torch.ones(2, 5))


def _expected_concrete_factor(p: float, t: float = 0.1, eps: float = 1e-7, n: int = 2_000_001) -> float:
    """E[(1 - z) / (1 - p)] for u ~ U(0, 1) by the midpoint rule in float64."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    logit = math.log(p / (1 - p))
    z = torch.sigmoid((logit + torch.log(u + eps) - torch.log(1 - u + eps)) / t)
    return float(((1 - z) / (1 - p)).mean())


@pytest.mark.parametrize("p", [0.1, 0.4])
def test_concrete_inverted_scaling_keeps_the_mean(p):
    layer = ConcreteDropout(1, init_p=p).eval()
    layer.configure("fresh", seed=123)
    with torch.no_grad():
        out = layer(torch.ones(200_000, 1)).double()
    expected = _expected_concrete_factor(p)
    assert expected == pytest.approx(1.0, abs=0.02)  # the relaxation is nearly mean-preserving
    se = float(out.std()) / math.sqrt(out.numel())
    assert abs(float(out.mean()) - expected) < 4 * se


def test_dropout_bernoulli_rate_and_scaling():
    layer = Dropout(0.3).eval()
    layer.configure("fresh", seed=5)
    out = layer(torch.ones(1000, 200))
    values = out.unique()
    assert values.numel() == 2 and values[0] == 0 and float(values[1]) == pytest.approx(1 / 0.7)
    zero_frac = float((out == 0).double().mean())
    assert abs(zero_frac - 0.3) < 4 * math.sqrt(0.3 * 0.7 / out.numel())
    se = float(out.double().std()) / math.sqrt(out.numel())
    assert abs(float(out.double().mean()) - 1.0) < 4 * se


def test_dropout_validation_and_channelwise():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)
    layer = Dropout(0.5, channelwise=True)
    layer.configure("fresh", seed=0)
    layer.eval()
    out = layer(torch.ones(4, 3, 5, 5))
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out))
    assert torch.equal(Dropout(0.5).eval()(out), out)  # mode "off": identity


# ---------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------
def test_fixed_mode_block_layout():
    layer = Dropout(0.5).eval()
    layer.configure("fixed", T=4, seed=9)
    out_small = layer(torch.ones(4 * 2, 50)).reshape(4, 2, 50)
    out_large = layer(torch.ones(4 * 7, 50)).reshape(4, 7, 50)
    # every input of block j sees mask j, whatever the block size
    assert torch.equal(out_small[:, :1].expand(4, 7, 50), out_large)
    assert not torch.equal(out_small[0, 0], out_small[1, 0])
    with pytest.raises(ValueError, match="block layout"):
        layer(torch.ones(10, 50))


def test_fixed_bank_depends_only_on_seed():
    a, b = Dropout(0.5), Dropout(0.5)
    a.configure("fixed", T=3, seed=1)
    b.configure("fixed", T=3, seed=1)
    x = torch.ones(6, 8)
    assert torch.equal(a.eval()(x), b.eval()(x))
    b.configure("fixed", T=3, seed=2)
    assert not torch.equal(a(x), b(x))


def test_train_mode_is_fresh_whatever_the_mode():
    layer = Dropout(0.5)
    layer.configure("fixed", T=4, seed=0)
    layer.train()
    out = layer(torch.ones(10, 30))  # 10 rows is no multiple of 4: fine in training
    assert out.shape == (10, 30)
    assert not torch.equal(out[0], out[1])


def test_configure_validation():
    layer = Dropout(0.2)
    with pytest.raises(ValueError, match="mode"):
        layer.configure("always")
    with pytest.raises(ValueError, match="seed"):
        layer.configure("fixed", T=3)
    with pytest.raises(ValueError, match="T"):
        layer.configure("fixed", T=0, seed=1)
    with pytest.raises(TypeError, match="T must be an int"):
        layer.configure("fixed", T=True, seed=1)
    with pytest.raises(ValueError, match="T"):
        layer.configure("fresh", T=3, seed=1)
    model = build_model("mlp1d", seed=0)
    with pytest.raises(ValueError, match="random_state"):
        set_dropout_mode(model, "fixed", T=3)
    with pytest.raises(TypeError, match="random_state"):
        set_dropout_mode(model, "fresh", random_state="7")
    with pytest.raises(TypeError, match="scale_by_n must be an int"):
        ConcreteDropout(3, scale_by_n=2.5)
    with pytest.raises(ValueError, match="mode"):
        set_dropout_mode(model, "sometimes")


def test_mc_mode_restores_everything_even_on_error():
    model = build_model("kirillov_cnn", seed=0).train()
    model.head[1].eval()  # a mixed state must come back as it was
    flags = {name: m.training for name, m in model.named_modules()}
    with pytest.raises(RuntimeError, match="boom"):
        with mc_mode(model, "fixed", T=3, random_state=0):
            assert not any(m.training for m in model.modules())
            assert all(m.mode == "fixed" and m.T == 3 for m in model.dropout_layers())
            raise RuntimeError("boom")
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert all(m.mode == "off" and m.T is None for m in model.dropout_layers())


def test_layer_seeds_are_distinct_and_reproducible():
    model = build_model("deimos_mnist10", seed=0)
    set_dropout_mode(model, "fixed", T=2, random_state=7)
    seeds = [m._seed for m in model.dropout_layers()]
    set_dropout_mode(model, "fixed", T=2, random_state=np.random.default_rng(0))
    set_dropout_mode(model, "fixed", T=2, random_state=7)
    assert [m._seed for m in model.dropout_layers()] == seeds and len(set(seeds)) == 2


def test_layer_seeds_come_from_one_seed_sequence():
    seeds = layer_seeds(7, 3)
    words = np.random.SeedSequence(7).generate_state(3, dtype=np.uint64)
    assert seeds == [int(w) & (2**63 - 1) for w in words] and layer_seeds(7, 0) == []
    assert layer_seeds(7, 2) == seeds[:2]


def test_check_same_architecture():
    a, b = build_model("mlp1d", seed=0), build_model("mlp1d", seed=1)
    assert check_same_architecture([a, b]) is a
    with pytest.raises(ValueError, match=r"models\[1\] does not have the architecture"):
        check_same_architecture([a, build_model("mlp1d", seed=0, hidden=8)])


# ---------------------------------------------------------------------------
# Masks from outside: MCDropoutBase.mask_source / external_masks
# ---------------------------------------------------------------------------
def test_mask_source_gives_the_factor_in_fresh_and_training_mode():
    layer = Dropout(0.5).eval()
    x = torch.arange(12.0).reshape(3, 4)
    asked = []

    def source(lay, shape, device):
        asked.append((lay, shape, device))
        return torch.full(shape, 2.0, device=device)

    layer.configure("fresh")
    with external_masks([layer], source):
        assert layer.mask_source is source
        assert torch.equal(layer(x), 2 * x)
        layer.train()
        assert torch.equal(layer(x), 2 * x)
    assert asked == [(layer, (3, 4), x.device)] * 2
    assert layer.mask_source is None
    layer.configure("off")
    layer.eval()
    with external_masks([layer], source):
        assert torch.equal(layer(x), x) and len(asked) == 2  # mode "off" never asks


def test_mask_source_gives_the_bank_in_fixed_mode():
    layer = Dropout(0.5, channelwise=True).eval()
    layer.configure("fixed", T=2, seed=0)
    x = torch.ones(2 * 3, 4, 5)  # J = 2 blocks of B = 3 inputs, 4 channels
    factor_J = torch.tensor([1.0, 0.0]).reshape(2, 1, 1).expand(2, 4, 1)  # (J, *noise_shape)
    asked = []
    with external_masks([layer], lambda lay, shape, device: asked.append(shape) or factor_J):
        out = layer(x)
    assert asked == [(2, 4, 1)]
    assert torch.equal(out[:3], x[:3]) and torch.equal(out[3:], torch.zeros_like(x[3:]))


def test_mask_source_replaying_the_layer_draws_equals_its_own_masks():
    """A source that draws what the layer would draw and applies ``fresh_factor`` reproduces the
    layer's own fresh masks bit for bit (the population engine relies on it)."""
    model = build_model("kirillov_cnn", seed=0, image_size=8)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    seeds = dict(zip(map(id, model.dropout_layers()), layer_seeds(11, len(model.dropout_layers()))))
    gens = {i: torch.Generator().manual_seed(s) for i, s in seeds.items()}

    def replay(layer, shape, device):
        return layer.fresh_factor(torch.rand(shape, generator=gens[id(layer)], device=device))

    with torch.no_grad(), mc_mode(model, "fresh", random_state=11):
        own = model(x)
    with torch.no_grad(), mc_mode(model, "fresh"), external_masks(model.dropout_layers(), replay):
        fed = model(x)
    assert torch.equal(own, fed)


def test_copies_drop_the_mask_source():
    layer = Dropout(0.2)
    layer.mask_source = lambda lay, shape, device: torch.ones(shape)
    assert copy.deepcopy(layer).mask_source is None
    assert layer.mask_source is not None


def test_fresh_mode_with_seed_is_reproducible_and_leaves_global_rng():
    model = build_model("deimos_mnist10", seed=0)
    x = torch.rand(5, 1, 28, 28)
    state = torch.get_rng_state()
    with torch.no_grad():
        with mc_mode(model, "fresh", random_state=3):
            a = model(x)
        with mc_mode(model, "fresh", random_state=3):
            b = model(x)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a[0], model.eval()(x)[0])


def test_deepcopy_and_pickle_after_sampling():
    model = build_model("kirillov_cnn", seed=0)
    set_dropout_mode(model, "fresh", random_state=0)
    with torch.no_grad():
        model.eval()(torch.rand(2, 1, 32, 32))
    clone = copy.deepcopy(model)
    pickle.loads(pickle.dumps(model))
    assert all(m.mode == "fresh" for m in clone.dropout_layers())


# ---------------------------------------------------------------------------
# Bring your own model: patch_dropout
# ---------------------------------------------------------------------------
def _own_cnn(p2d: float = 0.25, p: float = 0.5, n_classes: int = 10) -> nn.Sequential:
    """A torchvision-free CNN as a user would write it, with plain torch dropout."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 6, 3),
            nn.ReLU(),
            nn.BatchNorm2d(6),
            nn.MaxPool2d(2),
            nn.Dropout2d(p2d),
            nn.Conv2d(6, 8, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 2 * 2, 16),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(16, n_classes),
        )


class _Functional(nn.Module):
    """Not a Sequential: forward order unknown from the children (registered out of order)."""

    def __init__(self, n_out: int = 1) -> None:
        super().__init__()
        self.out = nn.Linear(8, n_out)
        self.hidden = nn.Linear(3, 8)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.hidden(x))))


def test_patch_dropout_replaces_layers_and_finds_the_trunk():
    net = _own_cnn()
    model = patch_dropout(net, input_shape=(1, 10, 10))
    assert isinstance(model, PatchedModel) and isinstance(model, MCModel)
    assert (model.kind, model.n_outputs, model.input_shape) == ("classification", 10, (1, 10, 10))
    assert [type(m) for m in model.trunk] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d, nn.MaxPool2d]
    layers = model.dropout_layers()
    assert [(type(m), m.p, m.channelwise) for m in layers] == [(Dropout, 0.25, True), (Dropout, 0.5, False)]
    assert not any(isinstance(m, nn.Dropout2d) for m in model.modules())
    # the user's network is untouched (copy=True), and in place it is patched
    assert isinstance(net[4], nn.Dropout2d)
    patch_dropout(net, input_shape=(1, 10, 10), copy=False)
    assert isinstance(net[4], Dropout)


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    cut=st.integers(0, 3),
    nested=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_patched_split_equals_the_original_forward(widths, cut, nested, seed):
    """trunk + head in eval with dropout off = the user's network in eval, bit for bit."""
    cut = min(cut, len(widths) - 1)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        d_in = 3
        for i, w in enumerate(widths):
            if i == cut:
                layers.append(nn.Dropout(0.3))
            layers += [nn.Linear(d_in, w), nn.Tanh()]
            d_in = w
        layers.append(nn.Linear(d_in, 2))
    net = (
        nn.Sequential(nn.Sequential(*layers[: cut * 2 + 1]), *layers[cut * 2 + 1 :])
        if nested
        else nn.Sequential(*layers)
    )
    model = patch_dropout(net, input_shape=(3,))
    assert len([m for m in model.trunk.modules() if isinstance(m, nn.Linear)]) == cut
    x = torch.randn(7, 3, generator=g)
    net.eval()
    with torch.no_grad(), mc_mode(model, "off"):
        assert torch.equal(model(x), net(x))
        assert torch.equal(model.head(model.trunk(x)), net(x))


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0.05, 0.9), channels=st.integers(1, 5), size=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_patched_dropout2d_masks_whole_channels(p, channels, size, seed):
    """nn.Dropout2d -> one Bernoulli draw per (input, channel), scaled by 1 / (1 - p)."""
    model = patch_dropout(
        nn.Sequential(nn.Dropout2d(p), nn.Flatten(), nn.Linear(channels * size * size, 2)),
        input_shape=(channels, size, size),
    )
    layer = model.dropout_layers()[0]
    x = torch.rand(6, channels, size, size, dtype=torch.float64) + 0.5
    with mc_mode(model, "fresh", random_state=seed):
        factor = layer(x) / x
    per_channel = factor.reshape(6, channels, -1)
    torch.testing.assert_close(per_channel, per_channel[..., :1].expand_as(per_channel), rtol=1e-12, atol=0)
    kept = per_channel[..., 0]
    assert torch.all((kept == 0) | torch.isclose(kept, torch.full_like(kept, 1.0 / (1.0 - p))))


def test_patched_fixed_masks_reproducible_and_chunk_free():
    model = patch_dropout(_own_cnn(), input_shape=(1, 10, 10))
    x = torch.rand(9, 1, 10, 10, generator=torch.Generator().manual_seed(3))
    a = mc.predict(model, x, 6, masks="fixed", random_state=5)
    b = mc.predict(model, x, 6, masks="fixed", random_state=5, batch_size=2)
    c = mc.predict(model, x[[4]], 6, masks="fixed", random_state=5)
    assert a.shape == (9, 6, 10)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a[[4]], c, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a[:, 0], a[:, 1])  # masks differ between passes
    assert not torch.equal(a, mc.predict(model, x, 6, masks="fixed", random_state=6))


def test_patched_train_mode_samples_fresh_like_torch_dropout():
    model = patch_dropout(nn.Sequential(nn.Linear(2, 4000), nn.Dropout(0.3), nn.Linear(4000, 2)), input_shape=(2,))
    layer = model.dropout_layers()[0]
    layer.train()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = layer(torch.ones(5, 4000))
    assert abs(float((out == 0).double().mean()) - 0.3) < 0.01
    assert torch.allclose(out[out != 0], torch.tensor(1 / 0.7))


def test_patched_module_without_sequential_has_no_trunk_and_hooks_features():
    model = patch_dropout(_Functional(), input_shape=(3,), kind="regression")
    assert len(model.trunk) == 0 and model.kind == "regression"
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    with mc_mode(model, "off"), torch.no_grad():
        out = model(x)
        hidden = torch.relu(model.head[0].hidden(x))
        assert out.shape == (4,)
        assert torch.equal(model.features(x), hidden)
    assert mc.predict(model, x, 5, masks="fixed", random_state=0).shape == (4, 5)
    assert model.l2_parameters()[0] is model.head[0].out.weight
    assert float(model.regularisation()) == 0.0


def test_patched_model_trains_and_runs_deimos():
    model = patch_dropout(_own_cnn(n_classes=2), input_shape=(1, 10, 10))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(12, 1, 10, 10, generator=g), torch.arange(12) % 2
    result = fit(
        model, x, y, config=TrainConfig(optimizer="adam", epochs=2, batch_size=4, checkpoint="last"), random_state=0
    )
    preds_J_S_C = mc.predict(result.model, x, 5, masks="fixed", random_state=0).transpose(0, 1)
    batch = deimos(preds_J_S_C, 3, 1e-3)
    assert len(batch) == 3 and model.features(x).shape == (12, 16)


@pytest.mark.parametrize(
    "net, kwargs, message",
    [
        (nn.Sequential(nn.Linear(3, 2)), {}, "no dropout layer"),
        (nn.Sequential(nn.Linear(3, 4), nn.AlphaDropout(0.2), nn.Linear(4, 2)), {}, "AlphaDropout"),
        (nn.Sequential(nn.Linear(3, 4), nn.Dropout(1.0), nn.Linear(4, 2)), {}, r"p=1.0"),
        (nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2), nn.Softmax(dim=1)), {}, "logits"),
        (nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 1)), {}, "kind='regression'"),
        (nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2)), dict(kind="regression"), r"\(B,\) or \(B, 1\)"),
        (nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2)), dict(input_shape=(0,)), "input_shape"),
        (nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2)), dict(kind="ordinal"), "kind must be one of"),
        (nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2)), dict(trunk="first"), "trunk must be"),
        (nn.Dropout(0.2), {}, "not the layer itself"),
        (nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2)), dict(input_shape=(4,)), "input_shape=\\(4,\\)"),
    ],
)
def test_patch_dropout_refuses_with_a_clear_message(net, kwargs, message):
    kwargs = dict(dict(input_shape=(3,)), **kwargs)
    with pytest.raises(ValueError, match=message):
        patch_dropout(net, **kwargs)


def test_patch_dropout_refuses_mcmodels_and_concrete_dropout():
    with pytest.raises(ValueError, match="already an MCModel"):
        patch_dropout(build_model("mlp1d", seed=0), input_shape=(1,))
    net = nn.Sequential(nn.Linear(3, 4), ConcreteDropout(4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="ConcreteDropout"):
        patch_dropout(net, input_shape=(3,))
