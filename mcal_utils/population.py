"""Populations: M models of one architecture trained, evaluated and MC-sampled in lockstep.

* :func:`fit_population` trains M members together, member m exactly as
  :func:`mcal_utils.training.fit` trains it alone (its own data, init, batch order, dropout masks,
  optimiser state, checkpoint and NaN guard); the result is a :class:`PopulationFitResult`.
* :func:`predict_population` is :func:`mcal_utils.mc.predict` for the M members (the masks each
  member gets from ``predict``): ``probs_M_N_T_C`` / ``preds_M_N_T``.
* :func:`evaluate_population` is :func:`mcal_utils.training.evaluate` for the M members.

The lockstep grids (:mod:`mcal_utils.loop.lockstep`) use them.

How: ``torch.func.stack_module_state`` stacks the members' parameters and buffers along a new
leading dim M; a deep copy of ``models[0]`` (the *template*) runs each member on its slice through
``functional_call``, either under ``vmap`` (one batched kernel per layer, convolutions becoming
grouped ones: the GPU path) or in a loop over member views (the same kernels and memory layouts as
the sequential code: the CPU path, bit-identical to it).

Masks: ``vmap`` refuses in-graph randomness, so each member's uniforms are drawn before the
forward, from generators seeded exactly as the sequential code seeds them, and a mask feed hands
them to the template's dropout layers through their public hook
:attr:`mcal_utils.models.MCDropoutBase.mask_source` (set with :func:`mcal_utils.models.external_masks`).
A probe forward first records which layer draws which per-input noise shape, in call order.
A layer with a fixed p gets its factor computed before ``vmap`` by its own
:meth:`~mcal_utils.models.MCDropoutBase.fresh_factor` (no in-place op inside ``vmap``); a Concrete
Dropout layer turns the uniforms into its factor inside, with the member's own ``p_logit``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from mcal_utils.checks import check_choice, check_int, check_seed
from mcal_utils.device import resolve_device
from mcal_utils.mc import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_HEAD_ELEMENTS,
    MASKS,
    as_inputs,
    chunks,
    empty_outputs,
    is_classification,
    to_outputs,
    trunk_and_head,
)
from mcal_utils.models import (
    P_LOGIT_BOUND,
    ConcreteDropout,
    MCDropoutBase,
    check_same_architecture,
    dropout_layers,
    external_masks,
    layer_seeds,
)
from mcal_utils.progress import progress_enabled
from mcal_utils.training import (
    EVAL_BATCH_SIZE,
    KIRILLOV_SGD,
    FitResult,
    TrainConfig,
    as_xy,
    batch_bounds,
    data_loss,
    dropout_rates_of,
    evaluate,
    fit_seed,
    fit_settings,
    make_optimizer,
    prediction_metrics,
    task_kind,
    validation_metric,
)

__all__ = ["PopulationFitResult", "fit_population", "evaluate_population", "predict_population", "PERM_EPOCHS"]

#: A population fit draws its members' batch orders this many epochs at a time.
PERM_EPOCHS = 20


@dataclass(frozen=True)
class PopulationFitResult:
    """``members``: one entry per member, in input order: its :class:`~mcal_utils.training.FitResult`
    (``model`` is the caller's model, trained in place; ``seconds`` and the history's ``seconds`` are
    the population's wall times) or the ``FloatingPointError`` the sequential
    :func:`~mcal_utils.training.fit` would have raised for it; ``seconds``: wall time of the whole
    population fit."""

    members: tuple
    seconds: float


# ---------------------------------------------------------------------------
# masks from outside vmap
# ---------------------------------------------------------------------------
def _factor_is_shared(layer: MCDropoutBase) -> bool:
    """Whether ``layer``'s factor depends on the uniforms only (no parameters of its own: a fixed p),
    so that it can be computed before ``vmap``."""
    return not list(layer.parameters(recurse=False))


class _MaskFeed:
    """The mask source (:attr:`~mcal_utils.models.MCDropoutBase.mask_source`) of a template's
    dropout layers.

    While :meth:`probe` runs, it records every draw (layer index, per-input noise shape) and answers
    with ones. Otherwise it serves ``queue`` in call order (inside ``vmap`` each member sees its own
    slice): for a layer marked in ``precomputed`` the queued tensor is the factor itself, for the
    others uniforms that the layer's ``multiplier`` turns into its factor (with the member's parameters).
    """

    def __init__(self, layers: Sequence[MCDropoutBase], precomputed: Sequence[bool]) -> None:
        self.layers = list(layers)
        self.precomputed = list(precomputed)
        self.queue: list[torch.Tensor] = []
        self._index = {id(layer): i for i, layer in enumerate(self.layers)}
        self._calls: list[tuple[int, tuple[int, ...]]] | None = None

    def __call__(self, layer: MCDropoutBase, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        i = self._index[id(layer)]
        if self._calls is not None:
            self._calls.append((i, tuple(shape[1:])))
            return torch.ones(shape, device=device)
        if not self.queue:
            raise RuntimeError("population engine: a dropout layer asked for more masks than the probe forward")
        noise = self.queue.pop(0)
        if tuple(noise.shape) != tuple(shape):
            raise RuntimeError(f"population engine: mask of shape {tuple(noise.shape)} prepared, {tuple(shape)} asked")
        return noise if self.precomputed[i] else layer.multiplier(noise)

    def probe(self, forward: Callable[[], object]) -> list[tuple[int, tuple[int, ...]]]:
        """Run ``forward()``; ``[(layer index, per-input noise shape)]`` of its draws, in call order."""
        self._calls = []
        try:
            forward()
            return self._calls
        finally:
            self._calls = None

    def fresh_noise(
        self,
        calls: list[tuple[int, tuple[int, ...]]],
        rows: int,
        generators: Sequence[Sequence[torch.Generator]],
        device: torch.device,
    ) -> tuple[torch.Tensor, ...]:
        """One ``(M, rows, *shape)`` tensor per call of ``calls``: member m's uniforms from
        ``generators[m][layer index]`` (drawn in call order, as the member's sequential run draws them),
        already turned into factors for the ``precomputed`` layers."""
        noise = []
        for li, shape in calls:
            u = torch.stack([torch.rand((rows, *shape), generator=gens[li], device=device) for gens in generators])
            noise.append(self.layers[li].fresh_factor(u) if self.precomputed[li] else u)
        return tuple(noise)


def _slice(state: dict[str, torch.Tensor], m: int) -> dict[str, torch.Tensor]:
    """Member ``m``'s view of a stacked state ``{name: (M, ...)}``."""
    return {k: v[m] for k, v in state.items()}


# ---------------------------------------------------------------------------
# fit_population
# ---------------------------------------------------------------------------
def _member_layout(stacked: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``stacked`` ``(M, ...)``; with ``channels_last``, 4-D members (conv weights) are stored so that
    each member's slice is channels-last, the layout ``fit`` gives a model's weights."""
    if not channels_last or stacked.ndim != 5:
        return stacked
    M, O, I, H, W = stacked.shape
    out = torch.empty((M, O, H, W, I), dtype=stacked.dtype, device=stacked.device).permute(0, 1, 4, 2, 3)
    return out.copy_(stacked)


class _Objective(nn.Module):
    """``forward(x, y)`` = the loss of one mini-batch exactly as :func:`~mcal_utils.training.fit`
    composes it: data loss + ``regularisation()`` + ``l2_coef * sum_w ||w||^2``."""

    def __init__(self, model: nn.Module, kind: str, has_reg: bool, l2_coef: float) -> None:
        super().__init__()
        self.model, self.kind, self.has_reg, self.l2_coef = model, kind, has_reg, l2_coef

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        model: Any = self.model  # an MCModel-like module (regularisation, l2_parameters)
        loss = data_loss(model(x), y, self.kind)
        if self.has_reg:
            loss = loss + model.regularisation()
        if self.l2_coef > 0:
            loss = loss + self.l2_coef * sum(w.pow(2).sum() for w in model.l2_parameters())
        return loss


def _check_population(models, xs_train, ys_train, xs_val, ys_val, random_states) -> int:
    """The number of members M; ``ValueError`` naming the argument when the members cannot align."""
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError("models must be a non-empty list of nn.Module (one per member)")
    M = len(models)
    for name, seq in (("xs_train", xs_train), ("ys_train", ys_train), ("random_states", random_states)):
        if not isinstance(seq, (list, tuple)) or len(seq) != M:
            raise ValueError(
                f"{name} must be a list with one entry per member ({M}), got "
                f"{len(seq) if isinstance(seq, (list, tuple)) else type(seq).__name__}"
            )
    if (xs_val is None) != (ys_val is None):
        raise ValueError("pass both xs_val and ys_val, or neither")
    if xs_val is not None and not (
        isinstance(xs_val, (list, tuple)) and isinstance(ys_val, (list, tuple)) and len(xs_val) == len(ys_val) == M
    ):
        raise ValueError(f"xs_val and ys_val must be lists with one entry per member ({M})")
    first = check_same_architecture(models)
    torch_dropout = [n for n, m in first.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if torch_dropout:
        raise ValueError(
            f"a population fit draws each member's masks itself and needs mcal_utils.models "
            f"dropout layers (Dropout / ConcreteDropout), not torch.nn dropout: {torch_dropout}"
        )
    return M


def _stack_member_data(xs, ys, kind: str, name: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(x_M_N_..., y_M_N, shared)``; one shared copy ``(1, N, ...)`` when every member got the
    same object (e.g. one validation set), else every member's rows stacked (equal N required)."""
    shared = all(x is xs[0] for x in xs) and all(y is ys[0] for y in ys)
    pairs = (
        [as_xy(xs[0], ys[0], kind, f"{name}[0]")]
        if shared
        else [as_xy(x, y, kind, f"{name}[{i}]") for i, (x, y) in enumerate(zip(xs, ys))]
    )
    n, item = len(pairs[0][0]), tuple(pairs[0][0].shape[1:])
    for i, (x, _) in enumerate(pairs):
        if len(x) != n or tuple(x.shape[1:]) != item:
            raise ValueError(
                f"{name}[{i}] has shape {tuple(x.shape)} but {name}[0] has {(n, *item)}: members of "
                f"a population train on equally many points of one shape (group runs by budget)"
            )
    return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs]), shared


def fit_population(
    models,
    xs_train,
    ys_train,
    *,
    xs_val=None,
    ys_val=None,
    config: TrainConfig = KIRILLOV_SGD,
    random_states,
    vectorize: bool | None = None,
) -> PopulationFitResult:
    """Train M models of one architecture together, member m exactly as
    ``fit(models[m], xs_train[m], ys_train[m], x_val=xs_val[m], y_val=ys_val[m], config=config,
    random_state=random_states[m])`` would (same objective, batch order, dropout masks,
    optimiser, checkpoint and NaN guard), in one batched computation (``torch.func``:
    ``stack_module_state`` + ``functional_call`` + ``vmap``; convolutions become grouped
    convolutions, matmuls batched ones).

    Each member keeps its own data (``(N, ...)`` with one N for all), initial weights (the models
    passed), batch order (``torch.Generator`` seeded like ``fit``), training masks (uniforms drawn
    from a per-member generator seeded ``seed + 1``, in the order ``fit``'s global-RNG draws take),
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
    _check_population(models, xs_train, ys_train, xs_val, ys_val, random_states)
    if config.checkpoint == "best_val" and xs_val is None:
        raise ValueError("checkpoint='best_val' needs xs_val / ys_val; use checkpoint='last' without validation data")
    template = copy.deepcopy(models[0])
    with fit_settings(template, config, xs_train[0]):
        kind = task_kind(template, torch.as_tensor(ys_train[0]))
        x_M, y_M, _ = _stack_member_data(xs_train, ys_train, kind, "xs_train")
        val = None
        if xs_val is not None:
            val = _stack_member_data(xs_val, ys_val, kind, "xs_val")
            if val[0].shape[2:] != x_M.shape[2:]:
                raise ValueError(f"xs_val items have shape {tuple(val[0].shape[2:])}, xs_train {tuple(x_M.shape[2:])}")
        seeds = [fit_seed(rs) for rs in random_states]
        device = resolve_device(config.device)
        vectorize = device.type == "cuda" if vectorize is None else bool(vectorize)
        use_cl = device.type == "cpu" if config.channels_last is None else config.channels_last
        channels_last = use_cl and x_M.ndim == 5 and not vectorize
        x_M, y_M = x_M.to(device), y_M.to(device)
        if val is not None:
            val = (val[0].to(device), val[1].to(device), val[2])
        run = _LockstepFit(
            template,
            models,
            config,
            kind,
            x_M.shape[1],
            device,
            vectorize,
            channels_last,
            val_shared=val is not None and val[2],
        )
        return run.train(x_M, y_M, val, seeds)


class _LockstepFit:
    """One population fit: the members' stacked parameters, buffers and optimiser, the template's
    mask feed, and each member's bookkeeping (history, best checkpoint, error) as ``fit`` keeps it."""

    def __init__(
        self,
        template: nn.Module,
        models,
        config: TrainConfig,
        kind: str,
        n: int,
        device: torch.device,
        vectorize: bool,
        channels_last: bool,
        val_shared: bool,
    ) -> None:
        self.template, self.models, self.config, self.kind = template, list(models), config, kind
        self.M, self.n, self.device = len(models), n, device
        self.vectorize, self.channels_last, self.val_shared = vectorize, channels_last, val_shared
        has_reg = callable(getattr(template, "regularisation", None))
        if config.l2_dense > 0 and not hasattr(template, "l2_parameters"):
            raise ValueError("l2_dense > 0 needs a model with l2_parameters() (the dense weights of DEIMOS)")
        self.objective = _Objective(template, kind, has_reg, config.l2_dense / n).to(device)
        params, buffers = stack_module_state(self.models)
        self.params = {
            k: _member_layout(v.detach().to(device), channels_last).requires_grad_(v.requires_grad)
            for k, v in params.items()
        }
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        # the objective's view of the same tensors (its parameters live under "model.")
        self.obj_state = (
            {f"model.{k}": v for k, v in self.params.items()},
            {f"model.{k}": v for k, v in self.buffers.items()},
        )
        self.optimizer = make_optimizer([p for p in self.params.values() if p.requires_grad], config)
        self.layers = dropout_layers(template)
        self.feed = _MaskFeed(self.layers, [_factor_is_shared(layer) for layer in self.layers])
        self.p_names = {
            id(layer): f"{name}.p_logit"
            for name, layer in template.named_modules()
            if isinstance(layer, ConcreteDropout)
        }
        self.loss_fn = vmap(self._member_loss, randomness="error")
        self.out_fn = vmap(self._member_out, in_dims=(0, 0, None if val_shared else 0), randomness="error")
        self.bounds = batch_bounds(n, config.batch_size, config.batching)
        self.histories: list[list[dict]] = [[] for _ in range(self.M)]
        self.errors: list[FloatingPointError | None] = [None] * self.M
        self.best_metric = [-math.inf] * self.M
        self.best_epoch = [0] * self.M
        self.best_state: list[dict | None] = [None] * self.M

    # -- one member's forward (under vmap: its slice of the stacked state) ------
    def _member_loss(self, p, b, xb, yb, noise):
        self.feed.queue = list(noise)
        return functional_call(self.objective, (p, b), (xb, yb))

    def _member_out(self, p, b, xb):
        return functional_call(self.template, (p, b), (xb,))

    def _as_member_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _noise_calls(self, x_probe: torch.Tensor) -> list[tuple[int, tuple[int, ...]]]:
        """The draws of one training forward (member 0, eval mode, masks "fresh"), in call order."""
        for layer in self.layers:
            layer.configure("fresh")
        self.template.eval()
        with torch.no_grad():
            calls = self.feed.probe(
                lambda: functional_call(self.template, (_slice(self.params, 0), _slice(self.buffers, 0)), (x_probe,))
            )
        for layer in self.layers:
            layer.configure("off")
        return calls

    def train_losses(self, xb_M: torch.Tensor, yb_M: torch.Tensor, noise: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Every member's loss ``(M,)`` on its mini-batch ``xb_M`` ``(M, B, ...)``, ``yb_M`` ``(M, B)``."""
        if self.vectorize:
            return self.loss_fn(*self.obj_state, xb_M, yb_M, noise)
        names = list(self.obj_state[0])
        per_member = zip(*[self.obj_state[0][k].unbind(0) for k in names])  # unbind: one stack in backward
        return torch.stack(
            [
                self._member_loss(
                    dict(zip(names, p)),
                    _slice(self.obj_state[1], m),
                    self._as_member_input(xb_M[m]),
                    yb_M[m],
                    tuple(u[m] for u in noise),
                )
                for m, p in enumerate(per_member)
            ]
        )

    def val_outputs(self, params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        """Every member's outputs ``(M, b, ...)`` on validation inputs ``xb`` ``(V, b, ...)`` (V = 1: shared)."""
        if self.vectorize:
            return self.out_fn(params, self.buffers, xb[0] if self.val_shared else xb)
        return torch.stack(
            [
                self._member_out(
                    _slice(params, m),
                    _slice(self.buffers, m),
                    self._as_member_input(xb[0] if self.val_shared else xb[m]),
                )
                for m in range(self.M)
            ]
        )

    def val_metrics(self, x_val_V: torch.Tensor, y_val_V: torch.Tensor) -> list[float]:
        """Every member's validation metric (accuracy or -MSE) with dropout off."""
        self.template.eval()
        with torch.no_grad():
            params = {k: v.detach() for k, v in self.params.items()}
            outs = [
                self.val_outputs(params, x_val_V[:, s : s + EVAL_BATCH_SIZE])
                for s in range(0, x_val_V.shape[1], EVAL_BATCH_SIZE)
            ]
            return vmap(validation_metric, in_dims=(0, None if self.val_shared else 0, None))(
                torch.cat(outs, dim=1), y_val_V[0] if self.val_shared else y_val_V, self.kind
            ).tolist()

    def rates_now(self) -> list:
        """Every member's dropout rates now: per layer a device tensor ``(M,)`` (Concrete Dropout,
        read later: no synchronisation) or a float."""
        if not self.layers:
            return dropout_rates_of(self.template)
        return [
            torch.sigmoid(self.params[self.p_names[id(layer)]].detach().clamp(-P_LOGIT_BOUND, P_LOGIT_BOUND))
            if id(layer) in self.p_names
            else layer.rate
            for layer in self.layers
        ]

    def _rates_per_member(self, rates: list) -> list[list[float]]:
        if not self.layers:
            return [list(rates)] * self.M
        cols = [r.tolist() if isinstance(r, torch.Tensor) else [r] * self.M for r in rates]
        return [[float(c[m]) for c in cols] for m in range(self.M)]

    def finish_epoch(self, epoch: int, losses_M_B: torch.Tensor, val_M, rates: list, seconds: float) -> None:
        """Per member: NaN guard, checkpoint and history of ``epoch`` (as ``fit`` does after an epoch)."""
        config = self.config
        losses_M_B = losses_M_B.cpu()
        finite_M_B = torch.isfinite(losses_M_B)
        rates_M = self._rates_per_member(rates)
        for m in range(self.M):
            if self.errors[m] is not None:
                continue
            if not bool(finite_M_B[m].all()):
                bad = int((~finite_M_B[m]).nonzero()[0, 0])
                self.errors[m] = FloatingPointError(
                    f"non-finite training loss ({float(losses_M_B[m, bad])}) at epoch {epoch}, batch {bad + 1} "
                    f"of {len(self.bounds)} (optimizer={config.optimizer}, lr={config.lr}); lower the learning rate "
                    f"or check the inputs"
                )
                continue
            val_metric = None if val_M is None else float(val_M[m])
            if config.checkpoint == "best_val" and val_metric is not None and val_metric > self.best_metric[m]:
                self.best_metric[m], self.best_epoch[m] = val_metric, epoch
                self.best_state[m] = {
                    k: v[m].detach().clone() for k, v in (*self.params.items(), *self.buffers.items())
                }
            self.histories[m].append(
                dict(
                    epoch=epoch,
                    train_loss=float(losses_M_B[m].mean()),
                    val_metric=val_metric,
                    dropout_rates=rates_M[m],
                    seconds=seconds,
                )
            )

    def permutations(self, shuffle_gens: list[torch.Generator], first_epoch: int) -> torch.Tensor:
        """``perm_E_M_N`` of the next epochs (each member's generator draws one per epoch, as ``fit``),
        copied to the device without waiting for it (pinned memory on CUDA)."""
        count = min(PERM_EPOCHS, self.config.epochs - first_epoch + 1)
        perm = torch.stack(
            [torch.stack([torch.randperm(self.n, generator=g) for g in shuffle_gens]) for _ in range(count)]
        )
        if self.device.type == "cuda":
            return perm.pin_memory().to(self.device, non_blocking=True)
        return perm.to(self.device)

    def train(self, x_M: torch.Tensor, y_M: torch.Tensor, val, seeds: list[int]) -> PopulationFitResult:
        """All epochs on training data ``x_M`` ``(M, N, ...)``, ``y_M`` ``(M, N)`` (``val``:
        ``(x_val_V, y_val_V, shared)`` or None); the members' results."""
        config, device, M = self.config, self.device, self.M
        with external_masks(self.layers, self.feed):
            calls = self._noise_calls(x_M[0, : min(self.n, 2)])
            shuffle_gens = [torch.Generator().manual_seed(s) for s in seeds]
            mask_gens = [[torch.Generator(device=device).manual_seed(s + 1)] * len(self.layers) for s in seeds]
            rows_M = torch.arange(M, device=device)[:, None]
            show = progress_enabled(config.progress)
            t_fit = time.perf_counter()
            bar = tqdm(range(1, config.epochs + 1), desc=f"fit x{M}", unit="epoch", disable=not show, leave=False)
            pending = []  # epochs not yet finished (without validation data nothing needs the host before the end)
            for epoch in bar:
                t0 = time.perf_counter()
                self.template.train()
                if (epoch - 1) % PERM_EPOCHS == 0:
                    perm_E_M = self.permutations(shuffle_gens, epoch)
                perm_M = perm_E_M[(epoch - 1) % PERM_EPOCHS]
                losses_M_B = torch.empty(M, len(self.bounds), device=device)
                for bi, (s, e) in enumerate(self.bounds):
                    idx_M_b = perm_M[:, s:e]
                    noise = self.feed.fresh_noise(calls, e - s, mask_gens, device)
                    loss_M = self.train_losses(x_M[rows_M, idx_M_b], y_M[rows_M, idx_M_b], noise)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss_M.sum().backward()
                    self.optimizer.step()
                    losses_M_B[:, bi] = loss_M.detach()
                val_M = None if val is None else self.val_metrics(val[0], val[1])
                pending.append((epoch, losses_M_B, val_M, self.rates_now(), time.perf_counter() - t0))
                if val is not None:  # the checkpoint needs this epoch now
                    self.finish_epoch(*pending.pop())
            bar.close()
            for args in pending:
                self.finish_epoch(*args)
        return PopulationFitResult(members=tuple(self.member_results(t_fit)), seconds=time.perf_counter() - t_fit)

    def member_results(self, t_fit: float) -> list:
        """Each member's chosen weights loaded into the caller's model (its ``FitResult``), or its error."""
        config = self.config
        members: list = []
        for m, model in enumerate(self.models):
            if self.errors[m] is None and config.checkpoint == "best_val" and self.best_state[m] is None:
                self.errors[m] = FloatingPointError("the validation metric was never finite; no checkpoint to restore")
            error = self.errors[m]
            if error is not None:
                members.append(error)
                continue
            last = config.checkpoint != "best_val"
            state = (
                {k: v[m].detach() for k, v in (*self.params.items(), *self.buffers.items())}
                if last
                else self.best_state[m]
            )
            assert state is not None
            keys = model.state_dict().keys()
            model.to(self.device)
            if self.channels_last:  # the layout fit leaves: later predictions then run the same conv kernels
                model.to(memory_format=torch.channels_last)
            model.load_state_dict({k: v for k, v in state.items() if k in keys})
            model.eval()
            members.append(
                FitResult(
                    model=model,
                    history=self.histories[m],
                    best_epoch=config.epochs if last else self.best_epoch[m],
                    best_val_metric=self.histories[m][-1]["val_metric"] if last else self.best_metric[m],
                    seconds=time.perf_counter() - t_fit,
                )
            )
        return members


# ---------------------------------------------------------------------------
# predict_population / evaluate_population
# ---------------------------------------------------------------------------
class _Part(nn.Module):
    """``forward`` = the trunk or the head of ``model`` (for ``functional_call`` on stacked states:
    the parameter names stay those of ``model``, prefixed ``m.``)."""

    def __init__(self, model: nn.Module, part: nn.Module) -> None:
        super().__init__()
        self.m = model
        self._part = [part]  # a list: not registered as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._part[0](x)


def _population_inputs(models, xs, n_members: int) -> tuple[torch.Tensor, bool]:
    """``(x_V_N_..., shared)``: one input set shared by all members (``V = 1``) or one per member."""
    if isinstance(xs, (list, tuple)):
        if len(xs) != n_members:
            raise ValueError(f"xs must be one input set or a list with one per member ({n_members}), got {len(xs)}")
        if all(x is xs[0] for x in xs):
            return as_inputs(models[0], xs[0]).unsqueeze(0), True
        sets = [as_inputs(models[0], x) for x in xs]
        if any(s.shape != sets[0].shape for s in sets):
            raise ValueError(
                f"the members' input sets must have one shape, got {sorted({tuple(s.shape) for s in sets})}"
            )
        return torch.stack(sets), False
    return as_inputs(models[0], xs).unsqueeze(0), True


def _run_head(feed: _MaskFeed, head: _Part, p, b, h: torch.Tensor, noise: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """One member's head on ``h`` ``(T * n, ...)``, its layers fed ``noise`` (one tensor per draw)."""
    feed.queue = list(noise)
    return functional_call(head, (p, b), (h,))


def _run_part(part: _Part, p, b, x: torch.Tensor) -> torch.Tensor:
    return functional_call(part, (p, b), (x,))


def predict_population(
    models,
    xs,
    T: int,
    *,
    masks: str = "fresh",
    random_states,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    log_probs: bool = False,
    max_head_elements: int = DEFAULT_MAX_HEAD_ELEMENTS,
) -> torch.Tensor:
    """:func:`mcal_utils.mc.predict` for M models of one architecture in one batched computation
    (``torch.func.vmap`` over their stacked weights): ``probs_M_N_T_C`` (``preds_M_N_T`` for
    regression), float32 on the CPU; slice m equals
    ``predict(models[m], xs[m], T, masks=masks, random_state=random_states[m], ...)`` up to
    float32 rounding of the batched kernels (the same masks: each member's layers draw from
    generators seeded exactly as :func:`mcal_utils.models.set_dropout_mode` seeds them, with the
    same chunking).

    xs: one input set ``(N, ...)`` for every member, or a list with one per member (equal shapes).
    The models are not modified.
    """
    T = check_int(T, "T", ge=1)
    batch_size = check_int(batch_size, "batch_size", ge=1)
    max_head_elements = check_int(max_head_elements, "max_head_elements", ge=1)
    check_choice(masks, "masks", MASKS)
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError("models must be a non-empty list of models (one per member)")
    M = len(models)
    if not isinstance(random_states, (list, tuple)) or len(random_states) != M:
        raise ValueError(f"random_states must be a list with one entry per member ({M})")
    check_same_architecture(models)
    x_V, shared = _population_inputs(models, xs, M)
    dev = resolve_device(device)
    N = x_V.shape[1]
    if N == 0:
        return torch.stack([empty_outputs(models[0], T)] * M)

    template = copy.deepcopy(models[0]).to(dev).eval()
    trunk, head = trunk_and_head(template)
    layers = dropout_layers(template)
    params, buffers = stack_module_state(list(models))
    state = (
        {f"m.{k}": v.detach().to(dev) for k, v in params.items()},
        {f"m.{k}": v.to(dev) for k, v in buffers.items()},
    )
    trunk_part, head_part = _Part(template, trunk), _Part(template, head)
    seeds_M_L = [layer_seeds(check_seed(rs), len(layers)) for rs in random_states]
    for layer in layers:
        if masks == "fixed":
            layer.configure("fixed", T=T, seed=0)
        else:
            layer.configure("fresh")
    feed = _MaskFeed(layers, [masks == "fresh" and _factor_is_shared(layer) for layer in layers])
    trunk_vm = vmap(partial(_run_part, trunk_part), in_dims=(0, 0, None if shared else 0))
    head_vm = vmap(partial(_run_head, feed, head_part), randomness="error")

    with external_masks(layers, feed), torch.no_grad():
        # the draws of the head: one probe forward of member 0 on one input
        member0 = (_slice(state[0], 0), _slice(state[1], 0))
        h0 = functional_call(trunk_part, member0, (x_V[0, :1].to(dev, torch.float32),))
        calls = feed.probe(lambda: functional_call(head_part, member0, (h0.repeat(T, *([1] * (h0.dim() - 1))),)))
        if {li for li, _ in calls} != set(range(len(layers))):
            raise ValueError("a dropout layer of the head was not used by its forward pass; cannot prepare its masks")
        if masks == "fresh":
            gens = [[torch.Generator(device=dev).manual_seed(s) for s in seeds] for seeds in seeds_M_L]
        else:  # each member's bank of T masks per layer, drawn as mask_bank draws it (CPU generator)
            banks = [
                torch.stack(
                    [torch.rand((T, *shape), generator=torch.Generator().manual_seed(seeds[li])) for seeds in seeds_M_L]
                ).to(dev)
                for li, shape in calls
            ]

        out_M_N_T = None
        for start, stop in chunks(N, batch_size):
            h_M_b = trunk_vm(*state, (x_V[0, start:stop] if shared else x_V[:, start:stop]).to(dev, torch.float32))
            per_input = math.prod(h_M_b.shape[2:])
            b_head = max(1, max_head_elements // (T * per_input))
            for s, e in chunks(h_M_b.shape[1], b_head):
                h_sub = h_M_b[:, s:e]
                n = h_sub.shape[1]
                h_rep = h_sub.repeat(1, T, *([1] * (h_sub.dim() - 2)))  # block t = all n inputs through pass t
                noise = feed.fresh_noise(calls, T * n, gens, dev) if masks == "fresh" else tuple(banks)
                y_M_TB = head_vm(*state, h_rep, noise)
                if out_M_N_T is None:
                    classification = is_classification(models[0], y_M_TB[0])
                    shape = (M, N, T, y_M_TB.shape[2]) if classification else (M, N, T)
                    out_M_N_T = torch.empty(shape, dtype=torch.float32)
                y_M_T_n = y_M_TB.reshape(M, T, n, *y_M_TB.shape[2:])
                out_M_N_T[:, start + s : start + e] = to_outputs(
                    y_M_T_n.transpose(1, 2), classification, log_probs
                ).cpu()
    assert out_M_N_T is not None
    return out_M_N_T


def evaluate_population(
    models, x, y, *, T: int = 0, random_states, batch_size: int = EVAL_BATCH_SIZE, device="auto"
) -> list[dict]:
    """``[evaluate(models[m], x, y, T=T, random_state=random_states[m], ...)]`` for M models of one
    architecture on one test set ``x`` ``(N, ...)``, ``y`` ``(N,)``; ``T > 0`` runs all members' MC
    passes in one batched computation (:func:`predict_population`: the same masks as
    :func:`~mcal_utils.training.evaluate`, equal up to float32 rounding of the batched kernels)."""
    T = check_int(T, "T", ge=0)
    if (
        not isinstance(models, (list, tuple))
        or not isinstance(random_states, (list, tuple))
        or len(models) != len(random_states)
        or not models
    ):
        raise ValueError("models and random_states must be non-empty lists of equal length (one entry per member)")
    if T == 0:
        return [evaluate(m, x, y, batch_size=batch_size, device=device) for m in models]
    kind = task_kind(models[0], torch.as_tensor(y))
    x, y = as_xy(x, y, kind, "evaluate")
    preds = predict_population(
        list(models), x, T, masks="fresh", random_states=list(random_states), batch_size=batch_size, device=device
    )
    pred_M = preds.mean(dim=2)  # (M, N, C) mean probabilities or (M, N) mean outputs
    if kind == "classification":
        pred_M = pred_M.argmax(dim=2)
    return [prediction_metrics(pred, y, kind, T) for pred in pred_M]
