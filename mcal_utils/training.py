"""Training: one seeded, checkpointed fit of an ``MCModel`` (or any ``nn.Module``).

The objective of one mini-batch of size B out of N training points is

    loss = data_loss + model.regularisation() + l2_dense / N * sum_w ||w||^2

* ``data_loss``: batch-mean cross-entropy on logits (classification) or batch-mean
  squared error (regression, model output ``(B,)``).
* ``model.regularisation()`` (when the model has it): the Concrete Dropout regulariser of the
  MC-dropout-entropy paper (Kirillov, 2026) (weight term + dropout-entropy term, summed over
  layers, *not* divided by N; ``TrainConfig.concrete_scale="n_train"`` divides it by N).
* the L2 term of DEIMOS (when ``l2_dense > 0``): Keras ``l2(l2_dense / N)`` on the weights
  that ``model.l2_parameters()`` yields (the dense layers), i.e. ``lambda * sum w^2``.

Seed discipline: the model is initialised by ``models.build_model(..., seed=...)``; ``fit``
draws the batch order from a ``torch.Generator`` and runs under ``torch.random.fork_rng`` so
that the dropout masks of training are reproducible without touching the caller's global RNG.
On CPU two fits with the same ``random_state`` give bit-identical weights.

Tensors live on the device for the whole fit; batches are taken by indexing (no DataLoader).

:func:`evaluate` gives test metrics from one deterministic pass or the mean of T MC-dropout passes.

Populations (M models of one architecture trained in lockstep, each member exactly as :func:`fit`
trains it) live in :mod:`mcal_utils.population`; they share this module's building blocks
(:func:`task_kind`, :func:`as_xy`, :func:`data_loss`, :func:`make_optimizer`, :func:`batch_bounds`,
:func:`validation_metric`, :func:`fit_settings`, :func:`fit_seed`, :func:`prediction_metrics`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mcal_utils import mc
from mcal_utils.checks import check_choice, check_float, check_int, check_seed
from mcal_utils.device import resolve_device
from mcal_utils.models import ConcreteDropout, mc_mode
from mcal_utils.progress import progress_enabled

__all__ = [
    "OPTIMIZERS",
    "CHECKPOINTS",
    "TrainConfig",
    "FitResult",
    "KIRILLOV_SGD",
    "DEIMOS_ADAM",
    "DEIMOS_RMSPROP",
    "BATCHINGS",
    "CONCRETE_SCALES",
    "fit",
    "evaluate",
]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "rmsprop")
CHECKPOINTS: tuple[str, ...] = ("best_val", "last")
BATCHINGS: tuple[str, ...] = ("even", "keras")
CONCRETE_SCALES: tuple[str, ...] = ("none", "n_train")
#: Inputs per forward pass of a validation / test evaluation.
EVAL_BATCH_SIZE = 1024


@dataclass(frozen=True)
class TrainConfig:
    """How to fit a model.

    optimizer: ``"sgd"`` (momentum ``momentum``), ``"adam"`` or ``"rmsprop"`` (Keras defaults:
        Adam betas (0.9, 0.999), eps 1e-7; RMSprop rho 0.9, eps 1e-7).
    lr: learning rate. epochs: passes over the training set (>= 1). batch_size: mini-batch size.
    l2_dense: DEIMOS's L2 coefficient before division by N (loss += l2_dense / N * sum w^2).
    checkpoint: ``"best_val"`` keeps the epoch with the best validation metric (needs x_val),
        ``"last"`` keeps the final weights.
    device: ``"auto"`` | ``"cpu"`` | ``"cuda"`` (see :func:`mcal_utils.device.resolve_device`).
    progress: ``None`` -> on only in an interactive terminal; ``True`` / ``False`` force it.
    channels_last: store 4-D inputs and the model in channels-last (NHWC) memory format;
        ``None`` -> on for 4-D inputs on CPU (measured on 2 shared cores, 1 thread: kirillov_cnn
        ~1.5x, DEIMOS MNIST net ~1.6x, Gal MNIST net ~1.1x faster per training step).
    num_threads: CPU threads for this fit (restored afterwards); ``None`` keeps torch's setting.
        Tiny models (the 1-D MLP) are overhead-bound: 1 thread is as fast, and far faster when
        the cores are shared.
    batching: ``"even"``: ``ceil(N / batch_size)`` mini-batches whose sizes differ by at most one
        (130 points at batch 128 -> 65 + 65, not 128 + 2: a batch of two makes Adam overshoot
        for that step in DEIMOS's MNIST runs); ``"keras"``: full batches plus the remainder, as
        the DEIMOS authors' Keras code (a remainder of one joins the previous batch, since a
        batch of one breaks BatchNorm in training mode).
    concrete_scale: ``"none"``: the Concrete Dropout regularisers as the MC-dropout-entropy paper
        (Kirillov, 2026) coded them, not divided by N (layers keep the ``scale_by_n`` they were
        built with); ``"n_train"``: Gal, Hron & Kendall's 1/N form, every ``ConcreteDropout``
        regulariser divided by the number N of training points of this fit (restored afterwards).
    """

    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    epochs: int = 200
    batch_size: int = 64
    l2_dense: float = 0.0
    checkpoint: str = "best_val"
    device: Any = "auto"
    progress: bool | None = None
    channels_last: bool | None = None
    num_threads: int | None = None
    batching: str = "even"
    concrete_scale: str = "none"

    def __post_init__(self):
        # the fields keep the values given (a TrainConfig's repr and equality are cache keys)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_choice(self.batching, "batching", BATCHINGS)
        check_choice(self.concrete_scale, "concrete_scale", CONCRETE_SCALES)
        check_choice(self.checkpoint, "checkpoint", CHECKPOINTS)
        check_int(self.epochs, "epochs", ge=1)
        check_int(self.batch_size, "batch_size", ge=1)
        check_float(self.lr, "lr", gt=0)
        check_float(self.momentum, "momentum", ge=0, lt=1)
        check_float(self.l2_dense, "l2_dense", ge=0)
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be None, True or False, got {self.progress!r}")
        if self.num_threads is not None:
            check_int(self.num_threads, "num_threads", ge=1)
        if self.channels_last is not None and not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be None, True or False, got {self.channels_last!r}")

    def with_(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


#: The MC-dropout-entropy paper (Kirillov, 2026), Table 1 / training section: SGD lr 0.001,
#: momentum 0.9, batch 64, 200 epochs, checkpoint of the best validation accuracy.
KIRILLOV_SGD = TrainConfig(optimizer="sgd", lr=1e-3, momentum=0.9, epochs=200, batch_size=64, checkpoint="best_val")
#: DEIMOS (reference table, "Experiments as coded"): Adam, 300 epochs, batch 128, final weights.
#: The task-specific L2 goes in with ``DEIMOS_ADAM.with_(l2_dense=...)`` (MNIST 0-9: 0.01,
#: 7-vs-9: 0.0005, UTKFace: 2.0 with 250 epochs; the 1D toy uses an absolute 5e-4, i.e. 5e-4 * N).
DEIMOS_ADAM = TrainConfig(optimizer="adam", lr=1e-3, epochs=300, batch_size=128, checkpoint="last")
#: DEIMOS 5' splicing: RMSprop, 300 epochs, batch 128, L2 0.025 / N.
DEIMOS_RMSPROP = TrainConfig(
    optimizer="rmsprop", lr=1e-3, epochs=300, batch_size=128, l2_dense=0.025, checkpoint="last"
)


@dataclass(frozen=True)
class FitResult:
    """``model`` (on the training device, eval mode, chosen checkpoint loaded), ``history``
    (one dict per epoch: ``epoch`` (1-based), ``train_loss`` (mean objective over batches),
    ``val_metric`` (accuracy or -MSE; None without validation data), ``dropout_rates``,
    ``seconds``), ``best_epoch`` (1-based), ``best_val_metric`` (None without validation),
    ``seconds`` (wall time of the whole fit)."""

    model: nn.Module
    history: list = field(repr=False)
    best_epoch: int
    best_val_metric: float | None
    seconds: float


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def fit_seed(random_state) -> int:
    """The seed of one fit, ``check_seed(random_state) mod (2**63 - 1)`` (int >= 0, numpy or torch
    Generator): the batch order uses it, the training masks ``seed + 1`` (which must fit in 64 bits)."""
    return check_seed(random_state) % (2**63 - 1)


def task_kind(model: nn.Module, y: torch.Tensor) -> str:
    """``model.kind`` if it has one, else integer targets -> classification, float -> regression."""
    kind = getattr(model, "kind", None)
    if kind is None:
        kind = "regression" if torch.is_floating_point(y) else "classification"
    if kind not in ("classification", "regression"):
        raise ValueError(f"model.kind must be 'classification' or 'regression', got {kind!r}")
    return kind


def as_xy(x, y, kind: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` as float32 ``(N, ...)`` inputs and ``(N,)`` targets (int64 class indices for
    classification, float32 for regression); ``ValueError`` (prefixed ``name``) for bad shapes or dtypes."""
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if x.ndim < 2:
        raise ValueError(f"{name}: x must have shape (N, ...) with at least 2 dims, got {tuple(x.shape)}")
    if y.ndim != 1:
        raise ValueError(f"{name}: y must have shape (N,), got {tuple(y.shape)}")
    if len(x) != len(y):
        raise ValueError(f"{name}: x has {len(x)} rows but y has {len(y)}")
    if len(x) == 0:
        raise ValueError(f"{name}: no data (N = 0)")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name}: x must be floating point, got {x.dtype}")
    if kind == "classification":
        if torch.is_floating_point(y) or y.dtype == torch.bool:
            raise ValueError(f"{name}: classification targets must be integer class indices, got {y.dtype}")
        y = y.long()
    else:
        y = y.float()
    return x.float(), y


def data_loss(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Batch-mean cross-entropy of logits ``out`` ``(B, C)`` (classification) or squared error of
    ``out`` ``(B,)`` (regression) against ``y`` ``(B,)``; a 0-d tensor."""
    if kind == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out.reshape(y.shape), y)


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``params`` with the Keras defaults of :class:`TrainConfig`."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999), eps=1e-7)
    return torch.optim.RMSprop(params, lr=config.lr, alpha=0.9, eps=1e-7)


def dropout_rates_of(model: nn.Module) -> list[float]:
    """``model.dropout_rates()`` as floats (``[]`` for a model without that method)."""
    rates = getattr(model, "dropout_rates", None)
    return [float(p) for p in rates()] if callable(rates) else []


def batch_bounds(n: int, batch_size: int, batching: str) -> list[tuple[int, int]]:
    """Consecutive [start, stop) slices covering ``range(n)`` (see ``TrainConfig.batching``).

    ``"even"``: k = ceil(n / batch_size) batches, the first ``n % k`` of size ``n // k + 1``, the
    rest ``n // k``. ``"keras"``: full batches plus the remainder; a trailing batch of one joins
    the previous one (a batch of one would break BatchNorm in training mode)."""
    check_choice(batching, "batching", BATCHINGS)
    if batching == "even":
        k = -(-n // batch_size)
        small, n_big = divmod(n, k)
        stops = np.cumsum([small + 1] * n_big + [small] * (k - n_big)).tolist()
        return list(zip([0] + stops[:-1], stops))
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2] = (bounds[-2][0], n)
        bounds.pop()
    return bounds


def _dropout_off(model: nn.Module):
    """Context: eval mode with every MC-dropout layer in mode "off", whatever mode it was left in
    (plain ``eval()`` for modules without ``dropout_layers()``)."""
    if callable(getattr(model, "dropout_layers", None)):
        return mc_mode(model, "off")
    return contextlib.nullcontext()


@torch.no_grad()
def _forward_eval(
    model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device, channels_last: bool = False
) -> torch.Tensor:
    """Deterministic outputs (eval mode, dropout off) in chunks, on ``device``."""
    outs = []
    with _dropout_off(model):
        model.eval()
        for s in range(0, len(x), batch_size):
            xb = x[s : s + batch_size].to(device, non_blocking=True)
            if channels_last and xb.ndim == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            outs.append(model(xb))
    return torch.cat(outs)


def validation_metric(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Accuracy of logits ``out`` ``(N, C)`` (classification) or -MSE of ``out`` ``(N,)``
    (regression) against ``y`` ``(N,)``, as a 0-d tensor (no sync); higher is better."""
    if kind == "classification":
        return (out.argmax(dim=1) == y).float().mean()
    return -((out.reshape(y.shape) - y) ** 2).mean()


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
def fit(
    model: nn.Module, x_train, y_train, *, x_val=None, y_val=None, config: TrainConfig = KIRILLOV_SGD, random_state=0
) -> FitResult:
    """Train ``model`` in place and return it with the chosen checkpoint loaded.

    x_train: ``(N, ...)`` float; y_train: ``(N,)`` int64 class indices or float targets.
    x_val / y_val: optional validation data; required for ``checkpoint="best_val"``.
    random_state: int >= 0, numpy or torch Generator (:func:`fit_seed`); seeds the batch order and
    the dropout masks.
    Raises ``FloatingPointError`` (naming epoch and batch) as soon as an epoch saw a NaN/inf loss.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    with fit_settings(model, config, x_train):
        return _fit(model, x_train, y_train, x_val, y_val, config, random_state)


@contextlib.contextmanager
def fit_settings(model: nn.Module, config: TrainConfig, x_train) -> Iterator[None]:
    """Context of one fit: ``config.num_threads`` and ``config.concrete_scale`` applied to the
    process / to ``model``'s ``ConcreteDropout`` layers, restored on exit (also on exceptions)."""
    try:
        n = len(x_train)
    except TypeError:  # not a sequence: _fit refuses it
        n = 0
    layers = [m for m in model.modules() if isinstance(m, ConcreteDropout)] if isinstance(model, nn.Module) else []
    scales = [layer.scale_by_n for layer in layers]
    before = torch.get_num_threads()
    try:
        if config.concrete_scale == "n_train" and n >= 1:
            for layer in layers:
                layer.scale_by_n = n
        if config.num_threads is not None:
            torch.set_num_threads(int(config.num_threads))
        yield
    finally:
        for layer, scale in zip(layers, scales):
            layer.scale_by_n = scale
        if config.num_threads is not None:
            torch.set_num_threads(before)


def _fit(model, x_train, y_train, x_val, y_val, config: TrainConfig, random_state) -> FitResult:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if (x_val is None) != (y_val is None):
        raise ValueError("pass both x_val and y_val, or neither")
    if config.checkpoint == "best_val" and x_val is None:
        raise ValueError("checkpoint='best_val' needs x_val / y_val; use checkpoint='last' without validation data")
    kind = task_kind(model, torch.as_tensor(y_train))
    x_train, y_train = as_xy(x_train, y_train, kind, "train")
    if x_val is not None:
        x_val, y_val = as_xy(x_val, y_val, kind, "validation")
        if x_val.shape[1:] != x_train.shape[1:]:
            raise ValueError(f"x_val has item shape {tuple(x_val.shape[1:])}, x_train {tuple(x_train.shape[1:])}")
    seed = fit_seed(random_state)
    device = resolve_device(config.device)
    n = len(x_train)
    use_cl = device.type == "cpu" if config.channels_last is None else config.channels_last
    channels_last = use_cl and x_train.ndim == 4

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks it
        x_train = x_train.contiguous(memory_format=torch.channels_last)
    x_train, y_train = x_train.to(device), y_train.to(device)
    if x_val is not None:
        x_val, y_val = x_val.to(device), y_val.to(device)

    regularisation: Any = getattr(model, "regularisation", None)
    has_reg = callable(regularisation)
    l2_parameters = getattr(model, "l2_parameters", None)
    l2_params = list(l2_parameters()) if config.l2_dense > 0 and l2_parameters is not None else []
    if config.l2_dense > 0 and l2_parameters is None:
        raise ValueError("l2_dense > 0 needs a model with l2_parameters() (the dense weights of DEIMOS)")
    l2_coef = config.l2_dense / n
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config)

    shuffle_gen = torch.Generator().manual_seed(seed)
    bounds = batch_bounds(n, config.batch_size, config.batching)
    history: list[dict] = []
    best_metric = -math.inf
    best_epoch = 0
    best_state = None
    show = progress_enabled(config.progress)
    fork_devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )

    t_fit = time.perf_counter()
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed + 1)  # dropout masks of training; distinct stream from the batch order
        bar = tqdm(range(1, config.epochs + 1), desc="fit", unit="epoch", disable=not show, leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=shuffle_gen).to(device)
            losses_B = torch.empty(len(bounds), device=device)
            for b, (s, e) in enumerate(bounds):
                idx = perm[s:e]
                xb, yb = x_train[idx], y_train[idx]
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                loss = data_loss(model(xb), yb, kind)
                if has_reg:
                    loss = loss + regularisation()
                if l2_params:
                    loss = loss + l2_coef * sum(w.pow(2).sum() for w in l2_params)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses_B[b] = loss.detach()
            finite_B = torch.isfinite(losses_B)
            if not bool(finite_B.all()):
                bad = int((~finite_B).nonzero()[0, 0])
                raise FloatingPointError(
                    f"non-finite training loss ({float(losses_B[bad])}) at epoch {epoch}, batch {bad + 1} "
                    f"of {len(bounds)} (optimizer={config.optimizer}, lr={config.lr}); lower the learning rate "
                    f"or check the inputs"
                )
            train_loss = float(losses_B.mean())
            val_metric = None
            if x_val is not None:
                model.eval()
                val_metric = float(
                    validation_metric(_forward_eval(model, x_val, EVAL_BATCH_SIZE, device, channels_last), y_val, kind)
                )
            if config.checkpoint == "best_val" and val_metric is not None and val_metric > best_metric:
                best_metric, best_epoch = val_metric, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.append(
                dict(
                    epoch=epoch,
                    train_loss=train_loss,
                    val_metric=val_metric,
                    dropout_rates=dropout_rates_of(model),
                    seconds=time.perf_counter() - t0,
                )
            )
            if show:
                bar.set_postfix(
                    loss=f"{train_loss:.4g}", **({} if val_metric is None else {"val": f"{val_metric:.4g}"})
                )
        bar.close()

    if config.checkpoint == "best_val":
        if best_state is None:
            raise FloatingPointError("the validation metric was never finite; no checkpoint to restore")
        model.load_state_dict(best_state)
        best_val = best_metric
    else:
        best_epoch = config.epochs
        best_val = history[-1]["val_metric"]
    model.eval()
    return FitResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        best_val_metric=best_val,
        seconds=time.perf_counter() - t_fit,
    )


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------
def evaluate(
    model: nn.Module, x, y, *, T: int = 0, random_state=0, batch_size: int = EVAL_BATCH_SIZE, device="auto"
) -> dict:
    """Test metrics of ``model`` on ``(x, y)`` (N inputs).

    T == 0: one deterministic pass (dropout off). T > 0: the mean of T MC-dropout passes from
    :func:`mcal_utils.mc.predict` (fresh masks; probabilities for classification, outputs for
    regression), seeded by ``random_state``; the predicted class is the argmax of the mean.
    Returns ``{"accuracy", "n", "T"}`` (classification) or ``{"mse", "rmse", "n", "T"}`` (regression;
    MSE in squared target units).
    """
    T = check_int(T, "T", ge=0)
    batch_size = check_int(batch_size, "batch_size", ge=1)
    kind = task_kind(model, torch.as_tensor(y))
    x, y = as_xy(x, y, kind, "evaluate")
    dev = resolve_device(device)
    if T == 0:
        was_training = model.training
        model.to(dev).eval()
        out = _forward_eval(model, x, batch_size, dev, channels_last=x.ndim == 4 and dev.type == "cpu").cpu()
        model.train(was_training)
        pred = out.argmax(dim=1) if kind == "classification" else out.reshape(y.shape)
    else:
        preds = mc.predict(
            model, x, T, masks="fresh", random_state=random_state, batch_size=batch_size, device=dev
        ).cpu()
        pred = preds.mean(dim=1)  # (N, C) mean probabilities or (N,) mean output
        if kind == "classification":
            pred = pred.argmax(dim=1)
    return prediction_metrics(pred, y, kind, T)


def prediction_metrics(pred: torch.Tensor, y: torch.Tensor, kind: str, T: int) -> dict:
    """The dict of :func:`evaluate` from predicted classes / outputs ``pred`` ``(N,)`` against ``y``
    ``(N,)`` (``T``: the MC passes behind ``pred``, recorded as is)."""
    result: dict = {"n": len(y), "T": int(T)}
    if kind == "classification":
        result["accuracy"] = float((pred == y).double().mean())
    else:
        mse = float(((pred.double() - y.double()) ** 2).mean())
        result["mse"] = mse
        result["rmse"] = math.sqrt(mse)
    return result
