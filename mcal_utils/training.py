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

Populations: :func:`fit_population` trains M models of one architecture in lockstep, each member
as :func:`fit` would train it (its own data, init, batch order, masks, optimiser state, checkpoint
and NaN guard); :func:`evaluate_population` evaluates them. The engine's lockstep grids
(:mod:`mcal_utils.loop.lockstep`) use them.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mcal_utils.device import resolve_device

__all__ = [
    "OPTIMIZERS",
    "CHECKPOINTS",
    "TrainConfig",
    "FitResult",
    "SEED1_SGD",
    "DEIMOS_ADAM",
    "DEIMOS_RMSPROP",
    "BATCHINGS",
    "CONCRETE_SCALES",
    "PopulationFitResult",
    "fit",
    "fit_population",
    "evaluate",
    "evaluate_population",
    "progress_enabled",
]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "rmsprop")
CHECKPOINTS: tuple[str, ...] = ("best_val", "last")
BATCHINGS: tuple[str, ...] = ("even", "keras")
CONCRETE_SCALES: tuple[str, ...] = ("none", "n_train")
EVAL_BATCH_SIZE = 1024
#: A population fit draws its members' batch orders this many epochs at a time.
PERM_EPOCHS = 20


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
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {list(OPTIMIZERS)}")
        if self.batching not in BATCHINGS:
            raise ValueError(f"unknown batching {self.batching!r}; valid: {list(BATCHINGS)}")
        if self.concrete_scale not in CONCRETE_SCALES:
            raise ValueError(f"unknown concrete_scale {self.concrete_scale!r}; valid: {list(CONCRETE_SCALES)}")
        if self.checkpoint not in CHECKPOINTS:
            raise ValueError(f"unknown checkpoint {self.checkpoint!r}; valid: {list(CHECKPOINTS)}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, np.integer)) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (isinstance(self.momentum, (int, float)) and 0.0 <= self.momentum < 1.0):
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if not (isinstance(self.l2_dense, (int, float)) and math.isfinite(self.l2_dense) and self.l2_dense >= 0):
            raise ValueError(f"l2_dense must be a finite number >= 0, got {self.l2_dense!r}")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be None, True or False, got {self.progress!r}")
        if self.num_threads is not None and (isinstance(self.num_threads, bool) or not isinstance(
                self.num_threads, (int, np.integer)) or self.num_threads < 1):
            raise ValueError(f"num_threads must be None or an integer >= 1, got {self.num_threads!r}")
        if self.channels_last is not None and not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be None, True or False, got {self.channels_last!r}")

    def with_(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


#: The MC-dropout-entropy paper (Kirillov, 2026), Table 1 / training section: SGD lr 0.001, momentum 0.9, batch 64, 200 epochs,
#: checkpoint of the best validation accuracy.
SEED1_SGD = TrainConfig(optimizer="sgd", lr=1e-3, momentum=0.9, epochs=200, batch_size=64, checkpoint="best_val")
#: DEIMOS (reference table, "Experiments as coded"): Adam, 300 epochs, batch 128, final weights.
#: The task-specific L2 goes in with ``DEIMOS_ADAM.with_(l2_dense=...)`` (MNIST 0-9: 0.01,
#: 7-vs-9: 0.0005, UTKFace: 2.0 with 250 epochs; the 1D toy uses an absolute 5e-4, i.e. 5e-4 * N).
DEIMOS_ADAM = TrainConfig(optimizer="adam", lr=1e-3, epochs=300, batch_size=128, checkpoint="last")
#: DEIMOS 5' splicing: RMSprop, 300 epochs, batch 128, L2 0.025 / N.
DEIMOS_RMSPROP = TrainConfig(optimizer="rmsprop", lr=1e-3, epochs=300, batch_size=128, l2_dense=0.025,
                             checkpoint="last")


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
def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to draw a progress bar: ``progress`` if given; else only when stderr is a TTY
    and we are not executed by papermill / nbval (their kernels are never TTYs)."""
    if progress is not None:
        return bool(progress)
    if any(name in sys.modules for name in ("papermill", "nbval")):
        return False
    if os.environ.get("PAPERMILL_EXECUTION") or os.environ.get("NBVAL"):
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # closed stream
        return False


def _seed_from(random_state) -> int:
    """An int seed from an int or a ``numpy.random.Generator``."""
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return int(random_state) % (2**63 - 1)  # torch seeds are 64-bit; seed + 1 must fit too
    raise ValueError(f"random_state must be an int or a numpy Generator, got {type(random_state).__name__}")


def _task_kind(model: nn.Module, y: torch.Tensor) -> str:
    """``model.kind`` if it has one, else integer targets -> classification, float -> regression."""
    kind = getattr(model, "kind", None)
    if kind is None:
        kind = "regression" if torch.is_floating_point(y) else "classification"
    if kind not in ("classification", "regression"):
        raise ValueError(f"model.kind must be 'classification' or 'regression', got {kind!r}")
    return kind


def _as_xy(x, y, kind: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
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


def _data_loss(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "classification":
        return F.cross_entropy(out, y)
    return F.mse_loss(out.reshape(y.shape), y)


def _make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999), eps=1e-7)
    return torch.optim.RMSprop(params, lr=config.lr, alpha=0.9, eps=1e-7)


def _dropout_rates(model: nn.Module) -> list[float]:
    rates = getattr(model, "dropout_rates", None)
    return [float(p) for p in rates()] if callable(rates) else []


def _batch_bounds(n: int, batch_size: int, batching: str) -> list[tuple[int, int]]:
    """Consecutive [start, stop) slices covering ``range(n)`` (see ``TrainConfig.batching``).

    ``"even"``: k = ceil(n / batch_size) batches, the first ``n % k`` of size ``n // k + 1``, the
    rest ``n // k``. ``"keras"``: full batches plus the remainder; a trailing batch of one joins
    the previous one (a batch of one would break BatchNorm in training mode)."""
    if batching not in BATCHINGS:
        raise ValueError(f"unknown batching {batching!r}; valid: {list(BATCHINGS)}")
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
        from mcal_utils.models import mc_mode

        return mc_mode(model, "off")
    return contextlib.nullcontext()


@torch.no_grad()
def _forward_eval(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device,
                  channels_last: bool = False) -> torch.Tensor:
    """Deterministic outputs (eval mode, dropout off) in chunks, on ``device``."""
    outs = []
    with _dropout_off(model):
        model.eval()
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size].to(device, non_blocking=True)
            if channels_last and xb.ndim == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            outs.append(model(xb))
    return torch.cat(outs)


def _metric(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Accuracy (classification) or -MSE (regression), as a 0-d tensor (no sync)."""
    if kind == "classification":
        return (out.argmax(dim=1) == y).float().mean()
    return -((out.reshape(y.shape) - y) ** 2).mean()


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
def fit(model: nn.Module, x_train, y_train, *, x_val=None, y_val=None, config: TrainConfig = SEED1_SGD,
        random_state=0) -> FitResult:
    """Train ``model`` in place and return it with the chosen checkpoint loaded.

    x_train: ``(N, ...)`` float; y_train: ``(N,)`` int64 class indices or float targets.
    x_val / y_val: optional validation data; required for ``checkpoint="best_val"``.
    random_state: int or ``numpy.random.Generator``; seeds the batch order and the dropout masks.
    Raises ``FloatingPointError`` (naming epoch and batch) as soon as an epoch saw a NaN/inf loss.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    with _fit_settings(model, config, x_train):
        return _fit(model, x_train, y_train, x_val, y_val, config, random_state)


@contextlib.contextmanager
def _fit_settings(model: nn.Module, config: TrainConfig, x_train):
    """Context of one fit: ``config.num_threads`` and ``config.concrete_scale`` applied to the
    process / to ``model``'s ``ConcreteDropout`` layers, restored on exit (also on exceptions)."""
    from mcal_utils.models import ConcreteDropout

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
    kind = _task_kind(model, torch.as_tensor(y_train))
    x_train, y_train = _as_xy(x_train, y_train, kind, "train")
    if x_val is not None:
        x_val, y_val = _as_xy(x_val, y_val, kind, "validation")
        if x_val.shape[1:] != x_train.shape[1:]:
            raise ValueError(f"x_val has item shape {tuple(x_val.shape[1:])}, x_train {tuple(x_train.shape[1:])}")
    seed = _seed_from(random_state)
    device = resolve_device(config.device)
    n = len(x_train)
    use_cl = device.type == "cpu" if config.channels_last is None else config.channels_last
    channels_last = use_cl and x_train.ndim == 4

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
    x_train, y_train = x_train.to(device), y_train.to(device)
    if x_val is not None:
        x_val, y_val = x_val.to(device), y_val.to(device)

    has_reg = callable(getattr(model, "regularisation", None))
    l2_params = list(model.l2_parameters()) if config.l2_dense > 0 and hasattr(model, "l2_parameters") else []
    if config.l2_dense > 0 and not hasattr(model, "l2_parameters"):
        raise ValueError("l2_dense > 0 needs a model with l2_parameters() (the dense weights of DEIMOS)")
    l2_coef = config.l2_dense / n
    optimizer = _make_optimizer([p for p in model.parameters() if p.requires_grad], config)

    shuffle_gen = torch.Generator().manual_seed(seed)
    bounds = _batch_bounds(n, config.batch_size, config.batching)
    history: list[dict] = []
    best_metric = -math.inf
    best_epoch = 0
    best_state = None
    show = progress_enabled(config.progress)
    fork_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []

    from tqdm.auto import tqdm

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
                loss = _data_loss(model(xb), yb, kind)
                if has_reg:
                    loss = loss + model.regularisation()
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
                    f"or check the inputs")
            train_loss = float(losses_B.mean())
            val_metric = None
            if x_val is not None:
                model.eval()
                val_metric = float(_metric(_forward_eval(model, x_val, EVAL_BATCH_SIZE, device, channels_last),
                                           y_val, kind))
            if config.checkpoint == "best_val" and val_metric > best_metric:
                best_metric, best_epoch = val_metric, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.append(dict(epoch=epoch, train_loss=train_loss, val_metric=val_metric,
                                dropout_rates=_dropout_rates(model), seconds=time.perf_counter() - t0))
            if show:
                bar.set_postfix(loss=f"{train_loss:.4g}",
                                **({} if val_metric is None else {"val": f"{val_metric:.4g}"}))
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
    return FitResult(model=model, history=history, best_epoch=best_epoch, best_val_metric=best_val,
                     seconds=time.perf_counter() - t_fit)


# ---------------------------------------------------------------------------
# population fit: M members of one architecture trained in lockstep
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PopulationFitResult:
    """``members``: one entry per member, in input order: its :class:`FitResult` (``model`` is
    the caller's model, trained in place; ``seconds`` and the history's ``seconds`` are the
    population's wall times) or the ``FloatingPointError`` the sequential :func:`fit` would have
    raised for it; ``seconds``: wall time of the whole population fit."""

    members: tuple
    seconds: float


class _Uniforms:
    """Stands in for the ``_uniform(shape, device)`` of the dropout layers of a population's
    template (``source(i)`` for layer i): serves pre-drawn uniforms in call order (inside
    ``vmap`` each member sees its own slice), or, while ``shapes`` is a list, records the
    per-input noise shape and the layer of every draw of one forward."""

    def __init__(self) -> None:
        self.queue: list[torch.Tensor] = []
        self.shapes: list[tuple[int, ...]] | None = None
        self.layer_calls: list[int] = []

    def source(self, i: int):
        def draw(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
            if self.shapes is not None:
                self.shapes.append(tuple(shape[1:]))
                self.layer_calls.append(i)
                return torch.full(tuple(shape), 0.5, device=device)
            if not self.queue:
                raise RuntimeError("population fit: a dropout layer asked for more masks than the probe forward")
            u = self.queue.pop(0)
            if tuple(u.shape) != tuple(shape):
                raise RuntimeError(f"population fit: mask of shape {tuple(u.shape)} prepared, {tuple(shape)} asked")
            return u

        return draw


def _member_layout(stacked: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``stacked`` ``(M, ...)``; with ``channels_last``, 4-D members (conv weights) are stored so that
    each member's slice is channels-last, the layout ``fit`` gives a model's weights."""
    if not channels_last or stacked.ndim != 5:
        return stacked
    M, O, I, H, W = stacked.shape
    out = torch.empty((M, O, H, W, I), dtype=stacked.dtype, device=stacked.device).permute(0, 1, 4, 2, 3)
    return out.copy_(stacked)


def _times_factor(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return x * factor.to(x.dtype)


class _Objective(nn.Module):
    """``forward(x, y)`` = the loss of one mini-batch exactly as :func:`fit` composes it."""

    def __init__(self, model: nn.Module, kind: str, has_reg: bool, l2_coef: float) -> None:
        super().__init__()
        self.model, self.kind, self.has_reg, self.l2_coef = model, kind, has_reg, l2_coef

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = _data_loss(self.model(x), y, self.kind)
        if self.has_reg:
            loss = loss + self.model.regularisation()
        if self.l2_coef > 0:
            loss = loss + self.l2_coef * sum(w.pow(2).sum() for w in self.model.l2_parameters())
        return loss


def _check_same_architecture(models) -> nn.Module:
    """``models[0]``; ``ValueError`` unless every model has its type and its state shapes."""
    first = models[0]
    if not isinstance(first, nn.Module):
        raise ValueError(f"models[0] must be a torch.nn.Module, got {type(first).__name__}")
    shapes = {k: tuple(v.shape) for k, v in first.state_dict().items()}
    for i, model in enumerate(models):
        if type(model) is not type(first) or {k: tuple(v.shape) for k, v in model.state_dict().items()} != shapes:
            raise ValueError(f"models[{i}] does not have the architecture of models[0]: a population holds "
                             f"members of one architecture (group runs by model and model options)")
    return first


def _check_population(models, xs_train, ys_train, xs_val, ys_val, random_states) -> int:
    """The number of members M; ``ValueError`` naming the argument when the members cannot align."""
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError("models must be a non-empty list of nn.Module (one per member)")
    M = len(models)
    for name, seq in (("xs_train", xs_train), ("ys_train", ys_train), ("random_states", random_states)):
        if not isinstance(seq, (list, tuple)) or len(seq) != M:
            raise ValueError(f"{name} must be a list with one entry per member ({M}), got "
                             f"{len(seq) if isinstance(seq, (list, tuple)) else type(seq).__name__}")
    if (xs_val is None) != (ys_val is None):
        raise ValueError("pass both xs_val and ys_val, or neither")
    if xs_val is not None and not (isinstance(xs_val, (list, tuple)) and isinstance(ys_val, (list, tuple))
                                   and len(xs_val) == len(ys_val) == M):
        raise ValueError(f"xs_val and ys_val must be lists with one entry per member ({M})")
    first = _check_same_architecture(models)
    torch_dropout = [n for n, m in first.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if torch_dropout:
        raise ValueError(f"a population fit draws each member's masks itself and needs mcal_utils.models "
                         f"dropout layers (Dropout / ConcreteDropout), not torch.nn dropout: {torch_dropout}")
    return M


def _stack_member_data(xs, ys, kind: str, name: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(x_M_N_..., y_M_N, shared)``; one shared copy ``(1, N, ...)`` when every member got the
    same object (e.g. one validation set), else every member's rows stacked (equal N required)."""
    shared = all(x is xs[0] for x in xs) and all(y is ys[0] for y in ys)
    pairs = [_as_xy(xs[0], ys[0], kind, f"{name}[0]")] if shared else \
        [_as_xy(x, y, kind, f"{name}[{i}]") for i, (x, y) in enumerate(zip(xs, ys))]
    n, item = len(pairs[0][0]), tuple(pairs[0][0].shape[1:])
    for i, (x, _) in enumerate(pairs):
        if len(x) != n or tuple(x.shape[1:]) != item:
            raise ValueError(f"{name}[{i}] has shape {tuple(x.shape)} but {name}[0] has {(n, *item)}: members of "
                             f"a population train on equally many points of one shape (group runs by budget)")
    return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs]), shared


def fit_population(models, xs_train, ys_train, *, xs_val=None, ys_val=None, config: TrainConfig = SEED1_SGD,
                   random_states, vectorize: bool | None = None) -> PopulationFitResult:
    """Train M models of one architecture together, member m exactly as
    ``fit(models[m], xs_train[m], ys_train[m], x_val=xs_val[m], y_val=ys_val[m], config=config,
    random_state=random_states[m])`` would (same objective, batch order, dropout masks,
    optimiser, checkpoint and NaN guard), in one batched computation (``torch.func``:
    ``stack_module_state`` + ``functional_call`` + ``vmap``; convolutions become grouped
    convolutions, matmuls batched ones).

    Each member keeps its own data (equal N for all), initial weights (the models passed),
    batch order (``torch.Generator`` seeded like ``fit``), training masks (uniforms drawn from a
    per-member generator seeded ``seed + 1``, in the order ``fit``'s global-RNG draws take),
    optimiser state (the optimisers are element-wise, so one optimiser over the stacked
    parameters is M independent ones), best-validation checkpoint and NaN guard (a member with
    a non-finite loss gets the ``FloatingPointError`` ``fit`` raises; the others go on).
    BatchNorm (running statistics stacked per member) and Concrete Dropout work.

    vectorize: ``True``: one ``vmap``-ed forward/backward for all members (the GPU path: one
    kernel launch per layer instead of M); ``False``: the members' forward passes one after the
    other on views of the stacked parameters, then one backward and one optimiser step (the CPU
    path: CPU kernels are compute-bound and oneDNN's grouped-convolution backward is slower than
    M plain ones; ``channels_last`` applies as in ``fit``); ``None``: ``True`` on CUDA only.

    Equivalence (tested on CPU): with ``vectorize=False`` a member's history, checkpoint and
    weights are bit-identical to the sequential fit's (same kernels, same memory layouts); with
    ``vectorize=True`` they agree up to float32 rounding of the batched kernels (grouped
    convolutions sum in another order): ~1e-6 absolute on the weights after a few steps, growing
    with the number of steps. Deterministic on CPU.
    The models must use ``mcal_utils.models`` dropout layers.

    xs_val / ys_val: lists (one entry per member); pass the same object for every member to
    share one validation set without copying it M times.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    M = _check_population(models, xs_train, ys_train, xs_val, ys_val, random_states)
    if config.checkpoint == "best_val" and xs_val is None:
        raise ValueError("checkpoint='best_val' needs xs_val / ys_val; use checkpoint='last' without validation data")
    import copy

    template = copy.deepcopy(models[0])
    with _fit_settings(template, config, xs_train[0]):
        return _fit_population(template, models, M, xs_train, ys_train, xs_val, ys_val, config, random_states,
                               vectorize)


def _fit_population(template, models, M, xs_train, ys_train, xs_val, ys_val, config, random_states, vectorize):
    from torch.func import functional_call, stack_module_state, vmap

    from mcal_utils.models import P_LOGIT_BOUND, ConcreteDropout, MCDropoutBase

    kind = _task_kind(template, torch.as_tensor(ys_train[0]))
    x_M, y_M, _ = _stack_member_data(xs_train, ys_train, kind, "xs_train")
    if xs_val is not None:
        x_val_V, y_val_V, val_shared = _stack_member_data(xs_val, ys_val, kind, "xs_val")
        if x_val_V.shape[2:] != x_M.shape[2:]:
            raise ValueError(f"xs_val items have shape {tuple(x_val_V.shape[2:])}, xs_train {tuple(x_M.shape[2:])}")
    seeds = [_seed_from(rs) for rs in random_states]
    device = resolve_device(config.device)
    n = x_M.shape[1]
    vectorize = device.type == "cuda" if vectorize is None else bool(vectorize)
    use_cl = device.type == "cpu" if config.channels_last is None else config.channels_last
    channels_last = use_cl and x_M.ndim == 5 and not vectorize
    x_M, y_M = x_M.to(device), y_M.to(device)
    if xs_val is not None:
        x_val_V, y_val_V = x_val_V.to(device), y_val_V.to(device)

    has_reg = callable(getattr(template, "regularisation", None))
    if config.l2_dense > 0 and not hasattr(template, "l2_parameters"):
        raise ValueError("l2_dense > 0 needs a model with l2_parameters() (the dense weights of DEIMOS)")
    objective = _Objective(template, kind, has_reg, config.l2_dense / n).to(device)
    params, buffers = stack_module_state(list(models))
    params = {k: _member_layout(v.detach().to(device), channels_last).requires_grad_(v.requires_grad)
              for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    obj_state = ({f"model.{k}": v for k, v in params.items()}, {f"model.{k}": v for k, v in buffers.items()})
    optimizer = _make_optimizer([p for p in params.values() if p.requires_grad], config)

    # masks: every dropout layer draws through `uniforms`; a probe forward records the noise shapes
    layers = [m for m in template.modules() if isinstance(m, MCDropoutBase)]
    uniforms = _Uniforms()
    # a layer without parameters (fixed p) turns uniforms into its factor before vmap (its own
    # `_apply_fresh` on ones: the same numbers), then only multiplies inside it
    pre = []
    for i, layer in enumerate(layers):
        layer.configure("fresh")
        layer._uniform = uniforms.source(i)
        fixed_p = not list(layer.parameters(recurse=False))
        pre.append(layer._apply_fresh if fixed_p else None)
        if fixed_p:
            layer._apply_fresh = _times_factor
    uniforms.shapes = []
    template.eval()
    with torch.no_grad():
        functional_call(template, ({k: v[0] for k, v in params.items()}, {k: v[0] for k, v in buffers.items()}),
                        (x_M[0, :min(n, 2)],))
    noise_shapes, uniforms.shapes = uniforms.shapes, None
    pre_calls = [pre[call] for call in uniforms.layer_calls]
    for layer in layers:
        layer.configure("off")
    p_names = {id(layer): f"{name}.p_logit" for name, layer in template.named_modules()
               if isinstance(layer, ConcreteDropout)}

    def member_loss(p, b, xb, yb, us):
        uniforms.queue = list(us)
        return functional_call(objective, (p, b), (xb, yb))

    def member_out(p, b, xb):
        return functional_call(template, (p, b), (xb,))

    loss_fn = vmap(member_loss, randomness="error")
    out_fn = vmap(member_out, in_dims=(0, 0, None if xs_val is not None and val_shared else 0),
                  randomness="error")

    def as_member_input(x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def train_losses(xb_M, yb_M, us) -> torch.Tensor:
        if vectorize:
            return loss_fn(*obj_state, xb_M, yb_M, us)
        names = list(obj_state[0])
        per_member = zip(*[obj_state[0][k].unbind(0) for k in names])  # unbind: one stack in backward
        return torch.stack([member_loss(dict(zip(names, p)), {k: v[m] for k, v in obj_state[1].items()},
                                        as_member_input(xb_M[m]), yb_M[m], tuple(u[m] for u in us))
                            for m, p in enumerate(per_member)])

    def val_outputs(p, xb) -> torch.Tensor:
        if vectorize:
            return out_fn(p, buffers, xb[0] if val_shared else xb)
        return torch.stack([member_out({k: v[m] for k, v in p.items()}, {k: v[m] for k, v in buffers.items()},
                                       as_member_input(xb[0] if val_shared else xb[m])) for m in range(M)])

    def rates_now() -> list:
        """Every member's dropout rates now: per layer a device tensor ``(M,)`` (Concrete Dropout,
        read later: no synchronisation) or a float."""
        if not layers:
            return _dropout_rates(template)
        return [torch.sigmoid(params[p_names[id(layer)]].detach().clamp(-P_LOGIT_BOUND, P_LOGIT_BOUND))
                if id(layer) in p_names else layer.rate for layer in layers]

    def rates_M(rates: list) -> list[list[float]]:
        if not layers:
            return [list(rates)] * M
        cols = [r.tolist() if isinstance(r, torch.Tensor) else [r] * M for r in rates]
        return [[float(c[m]) for c in cols] for m in range(M)]

    def finish_epoch(epoch: int, losses_M_B: torch.Tensor, val_M, rates: list, seconds: float) -> None:
        """Per member: NaN guard, checkpoint and history of ``epoch`` (as ``fit`` does after an epoch)."""
        losses_M_B = losses_M_B.cpu()
        finite_M_B = torch.isfinite(losses_M_B)
        rates = rates_M(rates)
        for m in range(M):
            if errors[m] is not None:
                continue
            if not bool(finite_M_B[m].all()):
                bad = int((~finite_M_B[m]).nonzero()[0, 0])
                errors[m] = FloatingPointError(
                    f"non-finite training loss ({float(losses_M_B[m, bad])}) at epoch {epoch}, batch {bad + 1} "
                    f"of {len(bounds)} (optimizer={config.optimizer}, lr={config.lr}); lower the learning rate "
                    f"or check the inputs")
                continue
            val_metric = None if val_M is None else float(val_M[m])
            if config.checkpoint == "best_val" and val_metric > best_metric[m]:
                best_metric[m], best_epoch[m] = val_metric, epoch
                best_state[m] = {k: v[m].detach().clone() for k, v in (*params.items(), *buffers.items())}
            histories[m].append(dict(epoch=epoch, train_loss=float(losses_M_B[m].mean()), val_metric=val_metric,
                                     dropout_rates=rates[m], seconds=seconds))

    def permutations(first_epoch: int) -> torch.Tensor:
        """``perm_E_M_N`` of the next epochs (each member's generator draws one per epoch, as ``fit``),
        copied to the device without waiting for it (pinned memory on CUDA)."""
        count = min(PERM_EPOCHS, config.epochs - first_epoch + 1)
        perm = torch.stack([torch.stack([torch.randperm(n, generator=g) for g in shuffle_gens])
                            for _ in range(count)])
        if device.type == "cuda":
            return perm.pin_memory().to(device, non_blocking=True)
        return perm.to(device)

    shuffle_gens = [torch.Generator().manual_seed(s) for s in seeds]
    mask_gens = [torch.Generator(device=device).manual_seed(s + 1) for s in seeds]
    bounds = _batch_bounds(n, config.batch_size, config.batching)
    rows_M = torch.arange(M, device=device)[:, None]
    histories: list[list[dict]] = [[] for _ in range(M)]
    errors: list[FloatingPointError | None] = [None] * M
    best_metric, best_epoch, best_state = [-math.inf] * M, [0] * M, [None] * M
    show = progress_enabled(config.progress)

    from tqdm.auto import tqdm

    t_fit = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc=f"fit x{M}", unit="epoch", disable=not show, leave=False)
    pending = []  # epochs not yet finished (without validation data nothing needs the host before the end)
    for epoch in bar:
        t0 = time.perf_counter()
        template.train()
        if (epoch - 1) % PERM_EPOCHS == 0:
            perm_E_M = permutations(epoch)
        perm_M = perm_E_M[(epoch - 1) % PERM_EPOCHS]
        losses_M_B = torch.empty(M, len(bounds), device=device)
        for bi, (s, e) in enumerate(bounds):
            idx_M_b = perm_M[:, s:e]
            us = [torch.stack([torch.rand((e - s, *shape), generator=g, device=device) for g in mask_gens])
                  for shape in noise_shapes]
            us = tuple(u if f is None else f(torch.ones_like(u), u) for u, f in zip(us, pre_calls))
            loss_M = train_losses(x_M[rows_M, idx_M_b], y_M[rows_M, idx_M_b], us)
            optimizer.zero_grad(set_to_none=True)
            loss_M.sum().backward()
            optimizer.step()
            losses_M_B[:, bi] = loss_M.detach()
        val_M = None
        if xs_val is not None:
            template.eval()
            with torch.no_grad():
                member_params = {k: v.detach() for k, v in params.items()}
                outs = [val_outputs(member_params, x_val_V[:, s:s + EVAL_BATCH_SIZE])
                        for s in range(0, x_val_V.shape[1], EVAL_BATCH_SIZE)]
                val_M = vmap(_metric, in_dims=(0, None if val_shared else 0, None))(
                    torch.cat(outs, dim=1), y_val_V[0] if val_shared else y_val_V, kind).tolist()
        pending.append((epoch, losses_M_B, val_M, rates_now(), time.perf_counter() - t0))
        if xs_val is not None:  # the checkpoint needs this epoch now
            finish_epoch(*pending.pop())
    bar.close()
    for args in pending:
        finish_epoch(*args)

    members: list = []
    for m, model in enumerate(models):
        if errors[m] is None and config.checkpoint == "best_val" and best_state[m] is None:
            errors[m] = FloatingPointError("the validation metric was never finite; no checkpoint to restore")
        if errors[m] is not None:
            members.append(errors[m])
            continue
        state = best_state[m] if config.checkpoint == "best_val" else \
            {k: v[m].detach() for k, v in (*params.items(), *buffers.items())}
        keys = model.state_dict().keys()
        model.to(device)
        if channels_last:  # the layout fit leaves: later predictions then run the same conv kernels
            model.to(memory_format=torch.channels_last)
        model.load_state_dict({k: v for k, v in state.items() if k in keys})
        model.eval()
        last = config.checkpoint != "best_val"
        members.append(FitResult(model=model, history=histories[m],
                                 best_epoch=config.epochs if last else best_epoch[m],
                                 best_val_metric=histories[m][-1]["val_metric"] if last else best_metric[m],
                                 seconds=time.perf_counter() - t_fit))
    return PopulationFitResult(members=tuple(members), seconds=time.perf_counter() - t_fit)


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------
def evaluate(model: nn.Module, x, y, *, mc_samples: int = 0, random_state=0,
             batch_size: int = EVAL_BATCH_SIZE, device="auto") -> dict:
    """Test metrics of ``model`` on ``(x, y)``.

    mc_samples == 0: one deterministic pass (dropout off). mc_samples = T > 0: the mean of T
    MC-dropout passes from :func:`mcal_utils.mc.predict` (fresh masks; probabilities for
    classification, outputs for regression), seeded by ``random_state``.
    Returns ``{"accuracy", "n"}`` (classification) or ``{"mse", "rmse", "n"}`` (regression),
    plus ``"mc_samples"``.
    """
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, (int, np.integer)) or mc_samples < 0:
        raise ValueError(f"mc_samples must be an integer >= 0, got {mc_samples!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    kind = _task_kind(model, torch.as_tensor(y))
    x, y = _as_xy(x, y, kind, "evaluate")
    dev = resolve_device(device)
    if mc_samples == 0:
        was_training = model.training
        model.to(dev).eval()
        out = _forward_eval(model, x, batch_size, dev, channels_last=x.ndim == 4 and dev.type == "cpu").cpu()
        model.train(was_training)
        pred = out.argmax(dim=1) if kind == "classification" else out.reshape(y.shape)
    else:
        from mcal_utils import mc

        preds = mc.predict(model, x, int(mc_samples), masks="fresh", random_state=random_state,
                           batch_size=batch_size, device=dev).cpu()
        pred = preds.mean(dim=1)  # (N, C) mean probabilities or (N,) mean output
        if kind == "classification":
            pred = pred.argmax(dim=1)
    return _test_metrics(pred, y, kind, mc_samples)


def _test_metrics(pred: torch.Tensor, y: torch.Tensor, kind: str, mc_samples: int) -> dict:
    """The dict of :func:`evaluate` from predicted classes / outputs ``pred`` ``(N,)``."""
    result: dict = {"n": len(y), "mc_samples": int(mc_samples)}
    if kind == "classification":
        result["accuracy"] = float((pred == y).double().mean())
    else:
        mse = float(((pred.double() - y.double()) ** 2).mean())
        result["mse"] = mse
        result["rmse"] = math.sqrt(mse)
    return result


def evaluate_population(models, x, y, *, mc_samples: int = 0, random_states, batch_size: int = EVAL_BATCH_SIZE,
                        device="auto") -> list[dict]:
    """``[evaluate(models[m], x, y, mc_samples=mc_samples, random_state=random_states[m], ...)]``
    for M models of one architecture on one test set; ``mc_samples > 0`` runs all members' MC
    passes in one batched computation (:func:`mcal_utils.mc.predict_population`: the same masks
    as :func:`evaluate`, equal up to float32 rounding of the batched kernels)."""
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, (int, np.integer)) or mc_samples < 0:
        raise ValueError(f"mc_samples must be an integer >= 0, got {mc_samples!r}")
    if not isinstance(models, (list, tuple)) or not isinstance(random_states, (list, tuple)) or \
            len(models) != len(random_states) or not models:
        raise ValueError("models and random_states must be non-empty lists of equal length (one entry per member)")
    if mc_samples == 0:
        return [evaluate(m, x, y, batch_size=batch_size, device=device) for m in models]
    from mcal_utils import mc

    kind = _task_kind(models[0], torch.as_tensor(y))
    x, y = _as_xy(x, y, kind, "evaluate")
    preds = mc.predict_population(list(models), x, int(mc_samples), masks="fresh", random_states=list(random_states),
                                  batch_size=batch_size, device=device)
    pred_M = preds.mean(dim=2)  # (M, N, C) mean probabilities or (M, N) mean outputs
    if kind == "classification":
        pred_M = pred_M.argmax(dim=2)
    return [_test_metrics(pred, y, kind, mc_samples) for pred in pred_M]
