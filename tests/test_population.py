"""Tests of mcal_utils.population: the population fit against the sequential ``fit`` member by
member (bit-identical on the CPU path), ``predict_population`` / ``evaluate_population`` against
``mc.predict`` / ``evaluate``, and the masks-from-outside hook the engine uses."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mcal_utils import mc, population
from mcal_utils.models import build_model
from mcal_utils.population import evaluate_population, fit_population, predict_population
from mcal_utils.training import DEIMOS_ADAM, KIRILLOV_SGD, evaluate, fit

CPU = dict(device="cpu", progress=False)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models: one intra-op thread is as fast and avoids oversubscribing shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyClassifier(nn.Module):
    """Dense net with dropout, a fake 'regulariser' and DEIMOS-style l2_parameters."""

    kind = "classification"

    def __init__(self, d_in=4, n_classes=3, seed=0, reg_value=0.0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.fc1 = nn.Linear(d_in, 16)
            self.drop = nn.Dropout(0.3)
            self.fc2 = nn.Linear(16, n_classes)
        self.reg_value = reg_value

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(x))))

    def regularisation(self):
        # depends on parameters so that it changes the gradient
        return self.reg_value * self.fc1.weight.sum()

    def l2_parameters(self):
        return [self.fc1.weight, self.fc2.weight]

    def dropout_rates(self):
        return [0.3]


def _x(model, n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *model.input_shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------
# population fit == sequential fit, member by member
# ---------------------------------------------------------------------------
def _images(n, size, n_classes, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.randint(0, n_classes, (n,), generator=g)


# vectorize=True: float32 rounding of batched (grouped) kernels vs one model's kernels, after a few
# steps; vectorize=False (the CPU path): the same kernels on the same layouts, bit-identical
WEIGHT_ATOL = 1e-5


def _assert_member_equals_sequential(member, seq, exact=False):
    if exact:
        assert [dict(h, seconds=0) for h in member.history] == [dict(h, seconds=0) for h in seq.history]
        assert (member.best_epoch, member.best_val_metric) == (seq.best_epoch, seq.best_val_metric)
        sa, sb = member.model.state_dict(), seq.model.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        return
    assert member.best_epoch == seq.best_epoch
    if seq.best_val_metric is None:
        assert member.best_val_metric is None
    else:
        assert member.best_val_metric == pytest.approx(seq.best_val_metric, abs=1e-6)
    assert len(member.history) == len(seq.history)
    for a, b in zip(member.history, seq.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert (a["val_metric"] is None) == (b["val_metric"] is None)
        if b["val_metric"] is not None:
            assert a["val_metric"] == pytest.approx(b["val_metric"], abs=1e-6)
        assert a["dropout_rates"] == pytest.approx(b["dropout_rates"], abs=1e-6)
    sa, sb = member.model.state_dict(), seq.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=WEIGHT_ATOL, msg=k)


@pytest.mark.parametrize(
    "name, cfg, size, n_classes, kwargs",
    [
        # DEIMOS 7-vs-9 net: Bernoulli dropout, Adam, L2 on the dense weights, final weights
        ("deimos_mnist79", DEIMOS_ADAM.with_(epochs=3, batch_size=16, l2_dense=5e-4), 28, 2, {}),
        # the MC-dropout-entropy paper's CNN: BatchNorm + Concrete Dropout (scaled by N), SGD, best-val checkpoint
        (
            "kirillov_cnn",
            KIRILLOV_SGD.with_(epochs=3, batch_size=8, concrete_scale="n_train"),
            8,
            10,
            dict(image_size=8),
        ),
    ],
)
@pytest.mark.parametrize("vectorize", [True, False])
def test_population_member_equals_sequential_fit(name, cfg, size, n_classes, kwargs, vectorize):
    cfg = cfg.with_(**CPU)  # channels_last: None (on for the sequential CPU fit and the loop path)
    M = 3
    data = [_images(20, size, n_classes, seed=m) for m in range(M)]
    x_val, y_val = _images(12, size, n_classes, seed=99)
    pop = fit_population(
        [build_model(name, seed=10 + m, **kwargs) for m in range(M)],
        [d[0] for d in data],
        [d[1] for d in data],
        xs_val=[x_val] * M,
        ys_val=[y_val] * M,
        config=cfg,
        random_states=[100 + m for m in range(M)],
        vectorize=vectorize,
    )
    assert len(pop.members) == M
    for m in range(M):
        seq = fit(
            build_model(name, seed=10 + m, **kwargs),
            *data[m],
            x_val=x_val,
            y_val=y_val,
            config=cfg,
            random_state=100 + m,
        )
        _assert_member_equals_sequential(pop.members[m], seq, exact=not vectorize)
    # members differ from each other (own data, init, masks)
    first = next(iter(pop.members[0].model.state_dict()))
    assert not torch.equal(pop.members[0].model.state_dict()[first], pop.members[1].model.state_dict()[first])


def test_population_members_predict_exactly_as_sequential_fits():
    """The CPU path leaves each member's conv weights channels-last, as ``fit`` does: MC predictions
    of a member (the loop's scores) then run the same kernels and are bit-identical."""
    cfg = KIRILLOV_SGD.with_(epochs=2, batch_size=8, concrete_scale="n_train", checkpoint="last", **CPU)
    data = [_images(20, 8, 10, seed=m) for m in range(2)]
    pop = fit_population(
        [build_model("kirillov_cnn", seed=10 + m, image_size=8) for m in range(2)],
        [d[0] for d in data],
        [d[1] for d in data],
        config=cfg,
        random_states=[100, 101],
        vectorize=False,
    )
    seq = fit(build_model("kirillov_cnn", seed=10, image_size=8), *data[0], config=cfg, random_state=100)
    for (k, a), b in zip(pop.members[0].model.named_parameters(), seq.model.parameters()):
        assert a.stride() == b.stride(), k
    x = _images(30, 8, 10, seed=5)[0]
    assert torch.equal(
        mc.predict(pop.members[0].model, x, 5, random_state=1), mc.predict(seq.model, x, 5, random_state=1)
    )


def test_population_regression_with_own_validation_sets_and_determinism():
    cfg = DEIMOS_ADAM.with_(epochs=3, batch_size=8, checkpoint="best_val", **CPU)
    g = torch.Generator().manual_seed(0)
    xs = [torch.rand(18, 1, generator=g) * 4 - 2 for _ in range(2)]
    ys = [torch.sin(x[:, 0]) for x in xs]
    xv = [torch.rand(9, 1, generator=g) for _ in range(2)]
    yv = [x[:, 0] ** 2 for x in xv]

    def population():
        return fit_population(
            [build_model("mlp1d", seed=m, hidden=16) for m in range(2)],
            xs,
            ys,
            xs_val=xv,
            ys_val=yv,
            config=cfg,
            random_states=[5, 6],
            vectorize=True,
        )

    a, b = population(), population()
    for m in range(2):
        seq = fit(
            build_model("mlp1d", seed=m, hidden=16),
            xs[m],
            ys[m],
            x_val=xv[m],
            y_val=yv[m],
            config=cfg,
            random_state=5 + m,
        )
        _assert_member_equals_sequential(a.members[m], seq)
        for k, v in a.members[m].model.state_dict().items():
            assert torch.equal(v, b.members[m].model.state_dict()[k]), k  # bit-identical on CPU


def test_population_nan_guard_is_per_member_and_global_rng_untouched():
    cfg = DEIMOS_ADAM.with_(epochs=2, batch_size=8, channels_last=False, **CPU)
    x0, y0 = _images(16, 28, 2, seed=0)
    x1 = x0.clone()
    x1[3] = float("inf")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    pop = fit_population(
        [build_model("deimos_mnist79", seed=m) for m in range(2)],
        [x0, x1],
        [y0, y0],
        config=cfg,
        random_states=[1, 2],
        vectorize=True,
    )
    assert torch.equal(torch.rand(3), expected)
    assert isinstance(pop.members[1], FloatingPointError) and "epoch 1" in str(pop.members[1])
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(build_model("deimos_mnist79", seed=1), x1, y0, config=cfg, random_state=2)
    seq = fit(build_model("deimos_mnist79", seed=0), x0, y0, config=cfg, random_state=1)
    _assert_member_equals_sequential(pop.members[0], seq)


def test_population_refuses_members_that_cannot_align():
    cfg = DEIMOS_ADAM.with_(epochs=1, batch_size=8, **CPU)
    x, y = _images(16, 28, 2, seed=0)
    with pytest.raises(ValueError, match="architecture"):
        fit_population(
            [build_model("deimos_mnist79", seed=0), build_model("deimos_mnist10", seed=0)],
            [x, x],
            [y, y],
            config=cfg,
            random_states=[0, 1],
        )
    with pytest.raises(ValueError, match="equally many points"):
        fit_population(
            [build_model("deimos_mnist79", seed=m) for m in range(2)],
            [x, x[:12]],
            [y, y[:12]],
            config=cfg,
            random_states=[0, 1],
        )
    with pytest.raises(ValueError, match="random_states"):
        fit_population(
            [build_model("deimos_mnist79", seed=m) for m in range(2)], [x, x], [y, y], config=cfg, random_states=[0]
        )
    with pytest.raises(ValueError, match="torch.nn dropout"):
        fit_population(
            [TinyClassifier(), TinyClassifier()], [x.flatten(1)[:, :4]] * 2, [y] * 2, config=cfg, random_states=[0, 1]
        )
    with pytest.raises(ValueError, match="needs xs_val"):
        fit_population(
            [build_model("deimos_mnist79", seed=0)],
            [x],
            [y],
            config=cfg.with_(checkpoint="best_val"),
            random_states=[0],
        )


@pytest.mark.parametrize("T", [0, 5])
def test_evaluate_population_equals_evaluate(T):
    models = [build_model("deimos_mnist79", seed=m) for m in range(3)]
    x, y = _images(30, 28, 2, seed=4)
    got = evaluate_population(models, x, y, T=T, random_states=[1, 2, 3], device="cpu")
    want = [evaluate(m, x, y, T=T, random_state=rs, device="cpu") for m, rs in zip(models, [1, 2, 3])]
    assert got == want
    with pytest.raises(ValueError, match="one entry per member"):
        evaluate_population(models, x, y, random_states=[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_population_on_cuda_matches_sequential_cuda_fits():
    """The GPU path (vmap; masks from per-member CUDA generators seeded as fit seeds the CUDA RNG)."""
    cfg = KIRILLOV_SGD.with_(epochs=2, batch_size=8, device="cuda", progress=False)
    data = [_images(20, 8, 10, seed=m) for m in range(3)]
    x_val, y_val = _images(12, 8, 10, seed=99)
    pop = fit_population(
        [build_model("kirillov_cnn", seed=m, image_size=8) for m in range(3)],
        [d[0] for d in data],
        [d[1] for d in data],
        xs_val=[x_val] * 3,
        ys_val=[y_val] * 3,
        config=cfg,
        random_states=[0, 1, 2],
    )
    for m in range(3):
        seq = fit(
            build_model("kirillov_cnn", seed=m, image_size=8),
            *data[m],
            x_val=x_val,
            y_val=y_val,
            config=cfg,
            random_state=m,
        )
        a, b = pop.members[m].model.state_dict(), seq.model.state_dict()
        for k in a:  # TF32 / cuDNN algorithms differ between grouped and plain convolutions
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-3, msg=k)
    models = [r.model for r in pop.members]
    probs = predict_population(models, x_val, 4, masks="fixed", random_states=[0, 1, 2], device="cuda")
    for m in range(3):
        torch.testing.assert_close(
            probs[m], mc.predict(models[m], x_val, 4, masks="fixed", random_state=m, device="cuda"), rtol=0, atol=1e-4
        )


@pytest.mark.parametrize("with_val", [False, True])
def test_population_batch_orders_drawn_in_blocks_and_deferred_epochs(monkeypatch, with_val):
    """Batch orders pre-drawn PERM_EPOCHS epochs at a time, and epochs finished at the end when no
    validation data needs them: still bit-identical to the sequential fits on the CPU path."""
    monkeypatch.setattr(population, "PERM_EPOCHS", 2)
    cfg = DEIMOS_ADAM.with_(epochs=5, batch_size=8, checkpoint="best_val" if with_val else "last", **CPU)
    g = torch.Generator().manual_seed(3)
    xs = [torch.rand(20, 1, generator=g) for _ in range(2)]
    ys = [x[:, 0] ** 2 for x in xs]
    val = dict(xs_val=[xs[0]] * 2, ys_val=[ys[0]] * 2) if with_val else {}
    pop = fit_population(
        [build_model("mlp1d", seed=m, hidden=8) for m in range(2)],
        xs,
        ys,
        config=cfg,
        random_states=[0, 1],
        vectorize=False,
        **val,
    )
    for m in range(2):
        seq = fit(
            build_model("mlp1d", seed=m, hidden=8),
            xs[m],
            ys[m],
            config=cfg,
            random_state=m,
            **(dict(x_val=xs[0], y_val=ys[0]) if with_val else {}),
        )
        _assert_member_equals_sequential(pop.members[m], seq, exact=True)


# ---------------------------------------------------------------------------
# populations
# ---------------------------------------------------------------------------
POPULATION_ATOL = 1e-6  # float32 rounding of batched (grouped) kernels vs one model's kernels


@pytest.mark.parametrize("name", ["deimos_mnist79", "kirillov_cnn", "mlp1d", "splicing_cnn"])
@pytest.mark.parametrize("masks", ["fresh", "fixed"])
@pytest.mark.parametrize("shared_inputs", [True, False])
def test_predict_population_member_equals_predict(name, masks, shared_inputs):
    kw = dict(image_size=8) if name == "kirillov_cnn" else {}
    models = [build_model(name, seed=m, **kw) for m in range(3)]
    xs = _x(models[0], 21) if shared_inputs else [_x(models[0], 21, seed=m) for m in range(3)]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    opts = dict(masks=masks, batch_size=8, device="cpu", max_head_elements=500)
    pop = predict_population(models, xs, 4, random_states=[7, 8, np.random.default_rng(9)], **opts)
    refs = [
        mc.predict(models[m], xs if shared_inputs else xs[m], 4, random_state=rs, **opts)
        for m, rs in enumerate([7, 8, np.random.default_rng(9)])
    ]
    assert pop.shape == (3, *refs[0].shape) and pop.dtype == torch.float32
    for m in range(3):
        torch.testing.assert_close(pop[m], refs[m], rtol=0, atol=POPULATION_ATOL)
    assert not torch.equal(pop[0], pop[1])
    for model, state in zip(models, before):  # models untouched, dropout layers still off
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
        assert all(layer.mode == "off" for layer in model.dropout_layers())


def test_predict_population_log_probs_and_empty_and_validation():
    models = [build_model("deimos_mnist79", seed=m) for m in range(2)]
    x = _x(models[0], 5)
    lp = predict_population(models, x, 3, masks="fixed", random_states=[0, 1], device="cpu", log_probs=True)
    p = predict_population(models, x, 3, masks="fixed", random_states=[0, 1], device="cpu")
    torch.testing.assert_close(lp.exp(), p, rtol=1e-5, atol=1e-6)
    assert predict_population(models, x[:0], 3, random_states=[0, 1], device="cpu").shape == (2, 0, 3, 2)
    with pytest.raises(ValueError, match="random_states"):
        predict_population(models, x, 3, random_states=[0], device="cpu")
    with pytest.raises(ValueError, match="architecture"):
        predict_population([models[0], build_model("deimos_mnist10", seed=0)], x, 3, random_states=[0, 1])
    with pytest.raises(ValueError, match="one shape"):
        predict_population(models, [x, x[:4]], 3, random_states=[0, 1], device="cpu")
    with pytest.raises(ValueError, match="masks"):
        predict_population(models, x, 3, masks="shared", random_states=[0, 1])


def test_arguments_of_the_wrong_type_raise_type_error():
    models = [build_model("mlp1d", seed=m, hidden=8) for m in range(2)]
    x = torch.rand(5, 1, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="T must be an int"):
        predict_population(models, x, 2.0, random_states=[0, 1], device="cpu")
    with pytest.raises(TypeError, match="T must be an int"):
        evaluate_population(models, x, x[:, 0], T=True, random_states=[0, 1], device="cpu")
    with pytest.raises(ValueError, match="T must be an int >= 0"):
        evaluate_population(models, x, x[:, 0], T=-1, random_states=[0, 1], device="cpu")
    with pytest.raises(TypeError, match="random_state"):
        predict_population(models, x, 2, random_states=[0, "1"], device="cpu")
    with pytest.raises(TypeError, match="random_state"):
        fit_population(
            models, [x, x], [x[:, 0]] * 2, config=DEIMOS_ADAM.with_(epochs=1, **CPU), random_states=[0, None]
        )


def test_the_callers_models_keep_their_own_masks():
    """The engine feeds masks to its template's layers only: the members come back without a mask
    source, in mode "off", and draw their own masks afterwards."""
    models = [build_model("kirillov_cnn", seed=m, image_size=8) for m in range(2)]
    data = [_images(10, 8, 10, seed=m) for m in range(2)]
    pop = fit_population(
        models,
        [d[0] for d in data],
        [d[1] for d in data],
        config=KIRILLOV_SGD.with_(epochs=1, batch_size=5, checkpoint="last", **CPU),
        random_states=[0, 1],
        vectorize=True,
    )
    predict_population(models, data[0][0], 2, random_states=[0, 1], device="cpu")
    for result in pop.members:
        assert all(layer.mask_source is None and layer.mode == "off" for layer in result.model.dropout_layers())


def test_engine_modules_import_each_other_only_at_the_top():
    """No function-local import and no private name imported across the engine's modules."""
    root = Path(population.__file__).parent
    for name in ("models", "training", "mc", "population", "device"):
        tree = ast.parse((root / f"{name}.py").read_text())
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                assert id(node) in top, f"{name}.py:{node.lineno}: import inside a function or class"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mcal_utils"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{name}.py:{node.lineno}: private names imported: {private}"
