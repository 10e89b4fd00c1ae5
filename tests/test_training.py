"""Tests of mcal_utils.training: ``fit`` and ``evaluate`` against small hand-built modules and the
project's networks (models.py). Populations: tests/test_population.py."""

from __future__ import annotations

import io
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mcal_utils import mc, progress, training
from mcal_utils.models import ConcreteDropout, build_model, set_dropout_mode
from mcal_utils.training import DEIMOS_ADAM, KIRILLOV_SGD, TrainConfig, evaluate, fit


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


class TinyRegressor(nn.Module):
    kind = "regression"

    def __init__(self, seed=0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.fc1 = nn.Linear(1, 8)
            self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x))).squeeze(-1)


def _blobs(n=120, d=4, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    centres = torch.randn(c, d, generator=g) * 3
    x = centres[y] + torch.randn(n, d, generator=g)
    return x, y


CPU = dict(device="cpu", progress=False)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one intra-op thread is as fast and avoids oversubscribing shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_seeded_fits_are_bit_identical_on_cpu():
    x, y = _blobs()
    cfg = TrainConfig(optimizer="adam", lr=1e-2, epochs=3, batch_size=16, checkpoint="last", **CPU)
    states = []
    for _ in range(2):
        res = fit(TinyClassifier(seed=1), x, y, config=cfg, random_state=7)
        states.append(res.model.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    # a different random_state gives a different batch order / masks -> different weights
    other = fit(TinyClassifier(seed=1), x, y, config=cfg, random_state=8).model.state_dict()
    assert not torch.equal(other["fc1.weight"], states[0]["fc1.weight"])


class TinyConv(nn.Module):
    kind = "classification"

    def __init__(self, seed=0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Conv2d(1, 4, 3, padding=1),
                nn.ELU(),
                nn.BatchNorm2d(4),
                nn.MaxPool2d(2),
                nn.Dropout2d(0.2),
                nn.Flatten(),
                nn.Linear(4 * 4 * 4, 3),
            )

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("channels_last", [None, False, True])
def test_seeded_conv_fits_are_bit_identical(channels_last):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(50, 1, 8, 8, generator=g), torch.randint(0, 3, (50,), generator=g)
    cfg = TrainConfig(
        optimizer="sgd", lr=0.05, epochs=2, batch_size=16, checkpoint="best_val", channels_last=channels_last, **CPU
    )
    a = fit(TinyConv(), x, y, x_val=x, y_val=y, config=cfg, random_state=3)
    b = fit(TinyConv(), x, y, x_val=x, y_val=y, config=cfg, random_state=3)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert a.history == [dict(h, seconds=a.history[i]["seconds"]) for i, h in enumerate(b.history)]
    # 50 = 3 * 16 + 2: the last batch of 2 is kept (trailing batches of one would be merged)
    assert training.batch_bounds(50, 16, "keras") == [(0, 16), (16, 32), (32, 48), (48, 50)]
    assert training.batch_bounds(49, 16, "keras") == [(0, 16), (16, 32), (32, 49)]


def test_fit_leaves_global_rng_untouched():
    x, y = _blobs()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(
        TinyClassifier(),
        x,
        y,
        config=TrainConfig(epochs=1, batch_size=32, checkpoint="last", **CPU),
        random_state=np.random.default_rng(0),
    )
    assert torch.equal(torch.rand(3), expected)


def test_nan_loss_raises_naming_epoch_and_batch():
    x, y = _blobs()
    x = x.clone()
    cfg = TrainConfig(optimizer="sgd", lr=1e-2, epochs=2, batch_size=40, checkpoint="last", **CPU)
    # one NaN input: whichever batch holds it gives a NaN loss in epoch 1
    x[5, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch [123] of 3"):
        fit(TinyClassifier(), x, y, config=cfg, random_state=0)


def test_exploding_lr_raises():
    x, y = _blobs()
    cfg = TrainConfig(optimizer="sgd", lr=1e30, momentum=0.0, epochs=20, batch_size=8, checkpoint="last", **CPU)
    with pytest.raises(FloatingPointError, match=r"epoch \d+, batch \d+"):
        fit(TinyRegressor(), x[:, :1] * 100, y.float() * 1e3, config=cfg, random_state=0)


def test_best_val_checkpoint_restores_best_epoch():
    """Train on y = x, validate on y = 0.4 x: starting from ~0 output, the fit passes through
    the validation targets and then moves away, so validation improves and then gets worse;
    the weights of the best epoch (not the last) must be restored."""
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    y, y_val = x[:, 0].clone(), 0.4 * x[:, 0]
    cfg = TrainConfig(optimizer="sgd", lr=0.02, momentum=0.0, epochs=30, batch_size=16, checkpoint="best_val", **CPU)
    model = TinyRegressor(seed=2)
    with torch.no_grad():
        model.fc2.weight.mul_(0.01)
        model.fc2.bias.zero_()
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    res = fit(model, x, y, x_val=x, y_val=y_val, config=cfg, random_state=0)
    metrics = [h["val_metric"] for h in res.history]
    assert res.best_epoch == int(np.argmax(metrics)) + 1
    assert res.best_val_metric == max(metrics)
    assert 1 < res.best_epoch < len(metrics) and metrics[-1] < max(metrics)  # improved, then worse
    replay_model = TinyRegressor(seed=2)
    replay_model.load_state_dict(init_state)
    replay = fit(
        replay_model,
        x,
        y,
        x_val=x,
        y_val=y_val,
        config=cfg.with_(epochs=res.best_epoch, checkpoint="last"),
        random_state=0,
    )
    for k, v in replay.model.state_dict().items():
        assert torch.equal(v, res.model.state_dict()[k]), k
    assert -evaluate(res.model, x, y_val, device="cpu")["mse"] == pytest.approx(res.best_val_metric, rel=1e-5)


def test_l2_term_equals_hand_computed_value():
    """One full-batch SGD step (no momentum): the gradient must be that of CE + l2/N * sum w^2."""
    x, y = _blobs(n=50)
    l2 = 0.7
    model = TinyClassifier(seed=4)
    model.drop.p = 0.0
    ref = TinyClassifier(seed=4)
    ref.drop.p = 0.0
    lr = 0.1
    cfg = TrainConfig(
        optimizer="sgd", lr=lr, momentum=0.0, epochs=1, batch_size=50, l2_dense=l2, checkpoint="last", **CPU
    )
    res = fit(model, x, y, config=cfg, random_state=0)
    # hand computation
    loss = F.cross_entropy(ref(x), y) + l2 / 50 * (ref.fc1.weight.pow(2).sum() + ref.fc2.weight.pow(2).sum())
    loss.backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= lr * p.grad
    for name, p in ref.named_parameters():
        torch.testing.assert_close(res.model.state_dict()[name], p.detach(), rtol=1e-5, atol=1e-6)
    # the recorded loss includes the L2 term: recompute on the initial weights
    init = TinyClassifier(seed=4).requires_grad_(False).eval()
    penalty = l2 / 50 * sum(float(w.pow(2).sum()) for w in init.l2_parameters())
    ce = float(F.cross_entropy(init(x), y))
    assert res.history[0]["train_loss"] == pytest.approx(ce + penalty, rel=1e-5)
    # biases are not penalised
    assert math.isclose(penalty, l2 / 50 * (float(init.fc1.weight.pow(2).sum()) + float(init.fc2.weight.pow(2).sum())))


def test_regulariser_is_added_to_the_loss():
    x, y = _blobs(n=40)
    cfg = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0, epochs=1, batch_size=40, checkpoint="last", **CPU)
    plain = TinyClassifier(seed=5, reg_value=0.0)
    plain.drop.p = 0.0
    reg = TinyClassifier(seed=5, reg_value=0.5)
    reg.drop.p = 0.0
    r0 = fit(plain, x, y, config=cfg, random_state=0)
    r1 = fit(reg, x, y, config=cfg, random_state=0)
    init = TinyClassifier(seed=5).requires_grad_(False)
    assert r1.history[0]["train_loss"] - r0.history[0]["train_loss"] == pytest.approx(
        0.5 * float(init.fc1.weight.sum()), rel=1e-4, abs=1e-6
    )
    # d(0.5 * sum W)/dW = 0.5 everywhere: the extra step is -lr * 0.5 on every fc1 weight
    diff = r1.model.fc1.weight - r0.model.fc1.weight
    torch.testing.assert_close(diff, torch.full_like(diff, -0.1 * 0.5), rtol=0, atol=1e-6)


def test_history_fields_and_regression_metric():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-2, 2, 64).unsqueeze(1)
    y = torch.sin(x[:, 0]) + 0.05 * torch.randn(64, generator=g)
    cfg = DEIMOS_ADAM.with_(epochs=5, batch_size=16, lr=1e-2, checkpoint="best_val", **CPU)
    res = fit(TinyRegressor(), x, y, x_val=x, y_val=y, config=cfg, random_state=0)
    assert [h["epoch"] for h in res.history] == [1, 2, 3, 4, 5]
    assert set(res.history[0]) == {"epoch", "train_loss", "val_metric", "dropout_rates", "seconds"}
    assert res.history[0]["dropout_rates"] == []
    ev = evaluate(res.model, x, y, device="cpu")
    assert ev["mse"] == pytest.approx(-res.best_val_metric, rel=1e-5)
    assert ev["rmse"] == pytest.approx(math.sqrt(ev["mse"]))
    # classification history carries the dropout rates
    xc, yc = _blobs(n=32)
    r = fit(TinyClassifier(), xc, yc, config=TrainConfig(epochs=1, checkpoint="last", **CPU), random_state=0)
    assert r.history[0]["dropout_rates"] == [0.3] and r.best_val_metric is None and r.best_epoch == 1


def test_evaluate_classification_hand_computed():
    class Fixed(nn.Module):
        kind = "classification"

        def forward(self, x):
            return x  # logits = inputs

    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    y = torch.tensor([0, 0, 0, 1])
    assert evaluate(Fixed(), x, y, device="cpu")["accuracy"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(optimizer="adagrad"), "optimizer must be one of 'sgd', 'adam', 'rmsprop'"),
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1.0), "lr"),
        (dict(checkpoint="best"), "checkpoint"),
        (dict(l2_dense=-0.1), "l2_dense"),
        (dict(momentum=1.5), "momentum"),
        (dict(batching="uneven"), "batching must be one of 'even', 'keras'"),
        (dict(concrete_scale="n"), "concrete_scale must be one of 'none', 'n_train'"),
    ],
)
def test_bad_config_raises(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(epochs=True), "epochs must be an int"),
        (dict(epochs=2.0), "epochs must be an int"),
        (dict(batch_size="64"), "batch_size must be an int"),
        (dict(lr="0.1"), "lr must be a number"),
        (dict(momentum=None), "momentum must be a number"),
        (dict(num_threads=1.5), "num_threads must be an int"),
    ],
)
def test_config_of_the_wrong_type_raises_type_error(changes, match):
    with pytest.raises(TypeError, match=match):
        TrainConfig(**changes)


def test_bad_inputs_raise():
    x, y = _blobs(n=20)
    cfg = TrainConfig(epochs=1, checkpoint="last", **CPU)
    with pytest.raises(ValueError, match="rows"):
        fit(TinyClassifier(), x, y[:10], config=cfg)
    with pytest.raises(ValueError, match="shape \\(N,\\)"):
        fit(TinyClassifier(), x, y[:, None], config=cfg)
    with pytest.raises(ValueError, match="integer class"):
        fit(TinyClassifier(), x, y.float(), config=cfg)
    with pytest.raises(ValueError, match="needs x_val"):
        fit(TinyClassifier(), x, y, config=cfg.with_(checkpoint="best_val"))
    with pytest.raises(ValueError, match="both x_val and y_val"):
        fit(TinyClassifier(), x, y, x_val=x, config=cfg)
    with pytest.raises(ValueError, match="TrainConfig"):
        fit(TinyClassifier(), x, y, config={"epochs": 1})
    with pytest.raises(ValueError, match="l2_parameters"):
        fit(TinyRegressor(), x[:, :1], y.float(), config=cfg.with_(l2_dense=0.1))
    with pytest.raises(ValueError, match="T must be"):
        evaluate(TinyClassifier(), x, y, T=-1)
    with pytest.raises(TypeError, match="T must be an int"):
        evaluate(TinyClassifier(), x, y, T=2.0)
    with pytest.raises(TypeError, match="random_state"):
        fit(TinyClassifier(), x, y, config=cfg, random_state="0")
    with pytest.raises(ValueError, match="random_state"):
        fit(TinyClassifier(), x, y, config=cfg, random_state=-1)


def test_presets_match_the_papers():
    assert (
        KIRILLOV_SGD.optimizer,
        KIRILLOV_SGD.lr,
        KIRILLOV_SGD.momentum,
        KIRILLOV_SGD.epochs,
        KIRILLOV_SGD.batch_size,
        KIRILLOV_SGD.checkpoint,
    ) == ("sgd", 1e-3, 0.9, 200, 64, "best_val")
    assert (
        DEIMOS_ADAM.optimizer,
        DEIMOS_ADAM.lr,
        DEIMOS_ADAM.epochs,
        DEIMOS_ADAM.batch_size,
        DEIMOS_ADAM.checkpoint,
    ) == ("adam", 1e-3, 300, 128, "last")


def test_progress_auto_off_without_tty(monkeypatch):
    fake = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake)
    for mod in ("papermill", "nbval"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    assert progress.progress_enabled(None) is False
    assert progress.progress_enabled(True) is True
    x, y = _blobs(n=32)
    fit(TinyClassifier(), x, y, config=TrainConfig(epochs=2, checkpoint="last", device="cpu"), random_state=0)
    assert fake.getvalue() == ""
    fit(
        TinyClassifier(),
        x,
        y,
        config=TrainConfig(epochs=2, checkpoint="last", device="cpu", progress=True),
        random_state=0,
    )
    assert "fit" in fake.getvalue()


def test_progress_auto_off_under_papermill(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    monkeypatch.delitem(sys.modules, "nbval", raising=False)
    monkeypatch.delitem(sys.modules, "papermill", raising=False)
    monkeypatch.delenv("PAPERMILL_EXECUTION", raising=False)
    monkeypatch.delenv("NBVAL", raising=False)
    assert progress.progress_enabled(None) is True
    monkeypatch.setitem(sys.modules, "papermill", object())
    assert progress.progress_enabled(None) is False


def test_num_threads_is_restored():
    x, y = _blobs(n=32)
    before = torch.get_num_threads()
    fit(TinyClassifier(), x, y, config=TrainConfig(epochs=1, checkpoint="last", num_threads=1, **CPU), random_state=0)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads"):
        TrainConfig(num_threads=0)


def test_evaluate_mc_is_the_mean_of_mc_predict():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 1, generator=g) * 4 - 2
    y = torch.sin(x[:, 0])
    model = build_model("mlp1d", seed=0, p=0.2, hidden=16)
    res = fit(model, x, y, config=DEIMOS_ADAM.with_(epochs=3, batch_size=16, l2_dense=0.02, **CPU), random_state=0)
    ev = evaluate(res.model, x, y, T=7, random_state=5, device="cpu")
    mean_N = mc.predict(res.model, x, 7, masks="fresh", random_state=5, device="cpu").mean(dim=1)
    assert ev["mse"] == pytest.approx(float(((mean_N.double() - y.double()) ** 2).mean()), rel=1e-6)
    det = evaluate(res.model, x, y, device="cpu")
    assert det["mse"] == pytest.approx(
        float(((mc.deterministic(res.model, x, device="cpu").double() - y.double()) ** 2).mean()), rel=1e-6
    )
    assert det["mse"] != ev["mse"] and (ev["T"], det["T"]) == (7, 0)


def test_validation_ignores_a_persistent_mc_mode():
    """A model left with its dropout layers in "fresh" mode is still validated deterministically."""

    x = torch.linspace(-1, 1, 32).unsqueeze(1)
    y = x[:, 0] ** 2
    model = build_model("mlp1d", seed=0, p=0.5, hidden=8)
    set_dropout_mode(model, "fresh", random_state=0)
    cfg = DEIMOS_ADAM.with_(epochs=2, batch_size=16, checkpoint="best_val", **CPU)
    res = fit(model, x, y, x_val=x, y_val=y, config=cfg, random_state=0)
    assert [layer.mode for layer in res.model.dropout_layers()] == ["fresh"] * 3  # restored
    e1 = evaluate(res.model, x, y, device="cpu")
    e2 = evaluate(res.model, x, y, device="cpu")
    assert e1 == e2 and e1["mse"] == pytest.approx(-res.best_val_metric, rel=1e-5)


# ---------------------------------------------------------------------------
# batching
# ---------------------------------------------------------------------------
def test_even_batching_hand_checked():
    assert training.batch_bounds(130, 128, "even") == [(0, 65), (65, 130)]
    assert training.batch_bounds(130, 128, "keras") == [(0, 128), (128, 130)]
    assert training.batch_bounds(10, 128, "even") == [(0, 10)]
    assert training.batch_bounds(7, 3, "even") == [(0, 3), (3, 5), (5, 7)]
    assert training.batch_bounds(256, 128, "even") == [(0, 128), (128, 256)]
    assert TrainConfig().batching == "even" and TrainConfig().concrete_scale == "none"


@given(n=st.integers(1, 2000), batch_size=st.integers(1, 300), batching=st.sampled_from(["even", "keras"]))
@settings(max_examples=200, deadline=None)
def test_property_batches_cover_range_n(n, batch_size, batching):
    bounds = training.batch_bounds(n, batch_size, batching)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # consecutive, no overlap, no gap
    sizes = [e - s for s, e in bounds]
    assert min(sizes) >= 1
    assert bounds == training.batch_bounds(n, batch_size, batching)  # deterministic
    if batching == "even":
        assert len(bounds) == math.ceil(n / batch_size)
        assert max(sizes) - min(sizes) <= 1 and max(sizes) <= batch_size
    else:
        assert all(size == batch_size for size in sizes[:-2])
        assert sizes[-1] >= 2 or n == 1


def test_batching_option_changes_the_fit():
    x, y = _blobs(n=40)
    cfg = TrainConfig(optimizer="adam", lr=1e-2, epochs=2, batch_size=32, checkpoint="last", **CPU)
    even = fit(TinyClassifier(seed=1), x, y, config=cfg, random_state=0).model.state_dict()
    keras = fit(TinyClassifier(seed=1), x, y, config=cfg.with_(batching="keras"), random_state=0).model.state_dict()
    assert not torch.equal(even["fc1.weight"], keras["fc1.weight"])


# ---------------------------------------------------------------------------
# concrete_scale
# ---------------------------------------------------------------------------
def test_concrete_scale_n_train_divides_the_regulariser_by_n():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 1, 8, 8, generator=g), torch.randint(0, 10, (24,), generator=g)
    cfg = KIRILLOV_SGD.with_(epochs=1, batch_size=24, checkpoint="last", **CPU)
    reg0 = float(build_model("kirillov_cnn", seed=3, image_size=8).regularisation().detach())
    losses = {}
    for scale in ("none", "n_train"):
        model = build_model("kirillov_cnn", seed=3, image_size=8)
        losses[scale] = fit(model, x, y, config=cfg.with_(concrete_scale=scale), random_state=1).history[0][
            "train_loss"
        ]
        assert all(m.scale_by_n is None for m in model.modules() if isinstance(m, ConcreteDropout))  # restored
    # one batch: same data loss (same init, same masks); only the regulariser differs: reg - reg / N
    assert losses["none"] - losses["n_train"] == pytest.approx(reg0 * (1 - 1 / 24), rel=1e-4)
