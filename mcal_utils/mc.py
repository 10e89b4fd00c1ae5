"""Monte Carlo dropout inference (Gal & Ghahramani 2016), with the trunk run once per input.

:func:`predict` evaluates T stochastic passes of ``model.head`` on ``model.trunk(x)``: the
trunk (deterministic layers before the first dropout) runs once per input, its output is
repeated T times in block layout ``(T * B, ...)`` (block t = all B inputs through pass t) and
the head processes all T passes in one batched call, in chunks bounded by
``max_head_elements``. BatchNorm stays in eval mode.

* ``masks="fresh"``: an independent mask per input and pass (MC dropout; the MC-dropout-entropy paper's EntropyD,
  BALD, max-entropy). Reproducible for equal ``random_state``, ``batch_size`` and
  ``max_head_elements`` (the chunking decides which draws go to which input).
* ``masks="fixed"``: T masks drawn once and shared by every input (pass t uses mask t for
  all inputs; DEIMOS, BatchBALD). The result does not depend on ``batch_size``, on the
  chunking or on the order of the inputs, and equal ``random_state`` gives equal masks for
  different inputs (e.g. X_samp and the test set).

:func:`predict_population` runs :func:`predict` for M models of one architecture at once
(``vmap`` over their stacked weights; the masks each member would get from :func:`predict`).
:func:`naive_predict` is the plain reference: T full forward passes with fresh masks.
:func:`deterministic` is one pass with dropout off.

Outputs are float32 CPU tensors: ``(N, T, C)`` softmax probabilities (or log-softmax) for
classification, ``(N, T)`` outputs for regression.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mcal_utils.device import resolve_device
from mcal_utils.models import dropout_layers, mc_mode

MASKS: tuple[str, ...] = ("fresh", "fixed")
DEFAULT_BATCH_SIZE = 512
# Bound on the elements of one head input (T * b * trunk features): 2**23 floats = 32 MiB.
DEFAULT_MAX_HEAD_ELEMENTS = 2**23


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _as_inputs(model: nn.Module, x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``x`` as a tensor ``(N, *model.input_shape)`` (no copy where possible; dtype fixed per chunk)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, ...) with at least 2 dims, got {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)):
        raise ValueError(f"x must hold real numbers, got dtype {x.dtype}")
    expected = getattr(model, "input_shape", None)
    if expected is not None and tuple(x.shape[1:]) != tuple(expected):
        raise ValueError(f"x must have shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
    return x


_TORCH_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _check_mc_model(model: nn.Module) -> None:
    """torch.nn dropout layers would silently stay off in eval(): refuse them."""
    found = [name for name, m in model.named_modules() if isinstance(m, _TORCH_DROPOUT)]
    if found:
        raise ValueError(f"MC inference needs mcal_utils.models dropout layers (Dropout / ConcreteDropout); "
                         f"torch.nn dropout stays off in eval(): {found}")


def _trunk_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    _check_mc_model(model)
    trunk = getattr(model, "trunk", None)
    head = getattr(model, "head", None)
    if trunk is None or head is None:
        return nn.Identity(), model
    if dropout_layers(trunk):
        raise ValueError("model.trunk contains dropout layers; MC inference runs the trunk once per input")
    return trunk, head


def _model_device(model: nn.Module) -> torch.device | None:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return None


def _is_classification(model: nn.Module, out: torch.Tensor) -> bool:
    kind = getattr(model, "kind", None)
    if kind is not None:
        return kind == "classification"
    return out.dim() == 2


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


class _OnDevice:
    """Move ``model`` to ``device`` for the block and back afterwards (also on exceptions)."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device
        self.original = _model_device(model)

    def __enter__(self) -> nn.Module:
        if self.original is not None and self.original != self.device:
            self.model.to(self.device)
        return self.model

    def __exit__(self, *exc: object) -> None:
        if self.original is not None and self.original != self.device:
            self.model.to(self.original)


def _finish(out: torch.Tensor, classification: bool, log_probs: bool) -> torch.Tensor:
    """Logits ``(..., C)`` -> probabilities / log-probabilities; regression ``(...,)`` as is."""
    out = out.float()
    if not classification:
        return out
    return torch.log_softmax(out, dim=-1) if log_probs else torch.softmax(out, dim=-1)


def _empty(model: nn.Module, T: int | None) -> torch.Tensor:
    """The result for N = 0 inputs: ``(0, T, C)`` / ``(0, T)``, or ``(0, C)`` / ``(0,)`` when ``T`` is None."""
    lead = (0,) if T is None else (0, T)
    if getattr(model, "kind", None) == "regression":
        return torch.empty(lead, dtype=torch.float32)
    n_out = getattr(model, "n_outputs", None)
    if n_out is None:
        raise ValueError("x is empty and the model has no n_outputs to size the result")
    return torch.empty(lead + (n_out,), dtype=torch.float32)


def predict(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    T: int,
    *,
    masks: str = "fresh",
    random_state: int | np.random.Generator | torch.Generator,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    progress: bool = False,
    log_probs: bool = False,
    max_head_elements: int = DEFAULT_MAX_HEAD_ELEMENTS,
) -> torch.Tensor:
    """T MC-dropout passes over ``x`` (N inputs): ``probs_N_T_C`` (``log_probs``: log-softmax)
    for classification, ``preds_N_T`` for regression; float32 on the CPU.

    ``batch_size`` inputs go through the trunk at a time; the head then takes
    ``T * b`` rows with ``b`` chosen so that one head input holds at most
    ``max_head_elements`` numbers (``b >= 1``). Modes, training flags and the model's
    device are restored afterwards, also on exceptions.
    """
    T = _check_positive_int(T, "T")
    batch_size = _check_positive_int(batch_size, "batch_size")
    max_head_elements = _check_positive_int(max_head_elements, "max_head_elements")
    if masks not in MASKS:
        raise ValueError(f"masks must be one of {MASKS}, got {masks!r}")
    x = _as_inputs(model, x)
    dev = resolve_device(device)
    trunk, head = _trunk_head(model)
    N = x.shape[0]
    n_masks = T if masks == "fixed" else None

    out_N_T: torch.Tensor | None = None
    with _OnDevice(model, dev), mc_mode(model, masks, n_masks=n_masks, random_state=random_state), torch.no_grad():
        bar = tqdm(total=N, disable=not progress, unit="input", desc=f"MC x{T} ({masks})")
        try:
            for start, stop in _chunks(N, batch_size):
                h_b = trunk(x[start:stop].to(dev, torch.float32))
                per_input = math.prod(h_b.shape[1:])
                b_head = max(1, max_head_elements // (T * per_input))
                for s, e in _chunks(h_b.shape[0], b_head):
                    h_sub = h_b[s:e]
                    n = h_sub.shape[0]
                    reps = (T,) + (1,) * (h_sub.dim() - 1)
                    y_TB = head(h_sub.repeat(*reps))  # block t = all n inputs through pass t
                    if out_N_T is None:
                        classification = _is_classification(model, y_TB)
                        shape = (N, T, y_TB.shape[1]) if classification else (N, T)
                        out_N_T = torch.empty(shape, dtype=torch.float32)
                    y_T_n = y_TB.reshape(T, n, *y_TB.shape[1:])
                    out_N_T[start + s : start + e] = _finish(y_T_n.transpose(0, 1), classification, log_probs).cpu()
                bar.update(stop - start)
        finally:
            bar.close()
    return _empty(model, T) if out_N_T is None else out_N_T


def naive_predict(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    T: int,
    *,
    random_state: int | np.random.Generator | torch.Generator,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    progress: bool = False,
    log_probs: bool = False,
) -> torch.Tensor:
    """Reference MC dropout: T full forward passes of ``model`` with fresh masks, in a plain
    loop (the trunk runs T times). Same output as :func:`predict` in distribution."""
    T = _check_positive_int(T, "T")
    batch_size = _check_positive_int(batch_size, "batch_size")
    _check_mc_model(model)
    x = _as_inputs(model, x)
    dev = resolve_device(device)
    N = x.shape[0]
    if N == 0:
        return _empty(model, T)
    passes: list[torch.Tensor] = []
    with _OnDevice(model, dev), mc_mode(model, "fresh", random_state=random_state), torch.no_grad():
        for _ in tqdm(range(T), disable=not progress, desc="naive MC passes"):
            out = torch.cat([model(x[s:e].to(dev, torch.float32)) for s, e in _chunks(N, batch_size)])
            passes.append(_finish(out, _is_classification(model, out), log_probs).cpu())
    return torch.stack(passes, dim=1)


def deterministic(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "auto",
    log_probs: bool = False,
) -> torch.Tensor:
    """One pass with dropout off: ``probs_N_C`` (or log-probs) for classification, ``preds_N``
    for regression; float32 on the CPU."""
    batch_size = _check_positive_int(batch_size, "batch_size")
    x = _as_inputs(model, x)
    dev = resolve_device(device)
    N = x.shape[0]
    if N == 0:
        return _empty(model, None)
    with _OnDevice(model, dev), mc_mode(model, "off"), torch.no_grad():
        out = torch.cat([model(x[s:e].to(dev, torch.float32)) for s, e in _chunks(N, batch_size)])
    return _finish(out, _is_classification(model, out), log_probs).cpu()


# ---------------------------------------------------------------------------
# populations: M models of one architecture at once
# ---------------------------------------------------------------------------
class _Part(nn.Module):
    """``forward`` = the trunk or the head of ``model`` (for ``functional_call`` on stacked states)."""

    def __init__(self, model: nn.Module, trunk: nn.Module, head: nn.Module, which: str) -> None:
        super().__init__()
        self.m = model
        self._part = [trunk if which == "trunk" else head]  # a list: not registered as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._part[0](x)


def _population_inputs(models, xs, n_members: int) -> tuple[torch.Tensor, bool]:
    """``(x_V_N_..., shared)``: one input set shared by all members (``V = 1``) or one per member."""
    if isinstance(xs, (list, tuple)):
        if len(xs) != n_members:
            raise ValueError(f"xs must be one input set or a list with one per member ({n_members}), got {len(xs)}")
        if all(x is xs[0] for x in xs):
            return _as_inputs(models[0], xs[0]).unsqueeze(0), True
        sets = [_as_inputs(models[0], x) for x in xs]
        if any(s.shape != sets[0].shape for s in sets):
            raise ValueError(f"the members' input sets must have one shape, got {sorted({tuple(s.shape) for s in sets})}")
        return torch.stack(sets), False
    return _as_inputs(models[0], xs).unsqueeze(0), True


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
    """:func:`predict` for M models of one architecture in one batched computation
    (``torch.func.vmap`` over their stacked weights): ``probs_M_N_T_C`` (``preds_M_N_T`` for
    regression), float32 on the CPU; slice m equals
    ``predict(models[m], xs[m], T, masks=masks, random_state=random_states[m], ...)`` up to
    float32 rounding of the batched kernels (the same masks: each member's layers draw from
    generators seeded exactly as :func:`mcal_utils.models.set_dropout_mode` seeds them, with the
    same chunking).

    xs: one input set ``(N, ...)`` for every member, or a list with one per member (equal shapes).
    The models are not modified.
    """
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    from mcal_utils.models import _layer_seeds, as_seed
    from mcal_utils.training import _check_same_architecture

    T = _check_positive_int(T, "T")
    batch_size = _check_positive_int(batch_size, "batch_size")
    max_head_elements = _check_positive_int(max_head_elements, "max_head_elements")
    if masks not in MASKS:
        raise ValueError(f"masks must be one of {MASKS}, got {masks!r}")
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError("models must be a non-empty list of models (one per member)")
    M = len(models)
    if not isinstance(random_states, (list, tuple)) or len(random_states) != M:
        raise ValueError(f"random_states must be a list with one entry per member ({M})")
    _check_same_architecture(models)
    x_V, shared = _population_inputs(models, xs, M)
    dev = resolve_device(device)
    N = x_V.shape[1]
    if N == 0:
        return torch.stack([_empty(models[0], T)] * M)

    template = copy.deepcopy(models[0]).to(dev).eval()
    trunk, head = _trunk_head(template)
    layers = dropout_layers(template)
    params, buffers = stack_module_state(list(models))
    state = ({f"m.{k}": v.detach().to(dev) for k, v in params.items()},
             {f"m.{k}": v.to(dev) for k, v in buffers.items()})
    trunk_part, head_part = _Part(template, trunk, head, "trunk"), _Part(template, trunk, head, "head")
    seeds_M_L = [_layer_seeds(as_seed(rs), len(layers)) for rs in random_states]

    # every dropout layer takes its noise from `feed` (one member's slice inside vmap)
    feed: list[torch.Tensor] = []
    pre = []
    for layer in layers:
        if masks == "fixed":
            layer.configure("fixed", n_masks=T, seed=0)
            layer.mask_bank = lambda x, _feed=feed: _feed.pop(0)
            pre.append(None)
        else:
            layer.configure("fresh")
            layer._uniform = lambda shape, device, _feed=feed: _feed.pop(0)
            fixed_p = not list(layer.parameters(recurse=False))
            pre.append(layer._apply_fresh if fixed_p else None)
            if fixed_p:  # the factor is built outside vmap by the layer's own code (no in-place op inside)
                layer._apply_fresh = lambda x, factor: x * factor.to(x.dtype)

    def head_fn(p, b, h, noise):
        feed[:] = list(noise)
        return functional_call(head_part, (p, b), (h,))

    trunk_vm = vmap(lambda p, b, x: functional_call(trunk_part, (p, b), (x,)), in_dims=(0, 0, None if shared else 0))
    head_vm = vmap(head_fn, randomness="error")

    # noise shapes: one probe forward of member 0 (no randomness used: constant noise)
    with torch.no_grad():
        h0 = functional_call(trunk_part, ({k: v[0] for k, v in state[0].items()}, {k: v[0] for k, v in state[1].items()}),
                             (x_V[0, :1].to(dev, torch.float32),))
        shapes_L = _probe_noise_shapes(template, head_part, state, h0, layers, masks, T)

    if masks == "fresh":
        gens = [[torch.Generator(device=dev).manual_seed(s) for s in seeds] for seeds in seeds_M_L]
    else:
        banks = [torch.stack([torch.rand((T, *shapes_L[li]), generator=torch.Generator().manual_seed(seeds[li]))
                              for seeds in seeds_M_L]).to(dev) for li in range(len(layers))]

    out_M_N_T = None
    with torch.no_grad():
        for start, stop in _chunks(N, batch_size):
            h_M_b = trunk_vm(*state, (x_V[0, start:stop] if shared else x_V[:, start:stop]).to(dev, torch.float32))
            per_input = math.prod(h_M_b.shape[2:])
            b_head = max(1, max_head_elements // (T * per_input))
            for s, e in _chunks(h_M_b.shape[1], b_head):
                h_sub = h_M_b[:, s:e]
                n = h_sub.shape[1]
                h_rep = h_sub.repeat(1, T, *([1] * (h_sub.dim() - 2)))  # block t = all n inputs through pass t
                if masks == "fresh":
                    noise = []
                    for li, shape in enumerate(shapes_L):
                        u = torch.stack([torch.rand((T * n, *shape), generator=g[li], device=dev) for g in gens])
                        noise.append(u if pre[li] is None else pre[li](torch.ones_like(u), u))
                else:
                    noise = banks
                y_M_TB = head_vm(*state, h_rep, tuple(noise))
                if out_M_N_T is None:
                    classification = _is_classification(models[0], y_M_TB[0])
                    shape = (M, N, T, y_M_TB.shape[2]) if classification else (M, N, T)
                    out_M_N_T = torch.empty(shape, dtype=torch.float32)
                y_M_T_n = y_M_TB.reshape(M, T, n, *y_M_TB.shape[2:])
                out_M_N_T[:, start + s:start + e] = _finish(y_M_T_n.transpose(1, 2), classification, log_probs).cpu()
    return out_M_N_T


def _probe_noise_shapes(template, head_part, state, h0, layers, masks, T) -> list[tuple[int, ...]]:
    """Per-input noise shape of every dropout layer (in layer order), from one head forward of
    member 0 on one input with recording stand-ins for the noise."""
    from torch.func import functional_call

    shapes: dict[int, tuple[int, ...]] = {}
    saved = [(layer.__dict__.get("_uniform"), layer.__dict__.get("mask_bank")) for layer in layers]
    for i, layer in enumerate(layers):
        def record(x, _i=i, _layer=layer):
            shapes[_i] = tuple(_layer.noise_shape(x))
            return torch.full((T, *shapes[_i]), 0.5, device=x.device)

        def record_fresh(shape, device, _i=i):
            shapes[_i] = tuple(shape[1:])
            return torch.full(tuple(shape), 0.5, device=device)

        layer.mask_bank = record
        layer._uniform = record_fresh
    try:
        functional_call(head_part, ({k: v[0] for k, v in state[0].items()}, {k: v[0] for k, v in state[1].items()}),
                        (h0.repeat(T, *([1] * (h0.dim() - 1))),))
    finally:
        for layer, (uniform, bank) in zip(layers, saved):
            for attr, value in (("_uniform", uniform), ("mask_bank", bank)):
                if value is None:
                    layer.__dict__.pop(attr, None)
                else:
                    setattr(layer, attr, value)
    if len(shapes) != len(layers):
        raise ValueError("a dropout layer of the head was not used by its forward pass; cannot prepare its masks")
    return [shapes[i] for i in range(len(layers))]
