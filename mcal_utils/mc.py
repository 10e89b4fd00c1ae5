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

:func:`naive_predict` is the plain reference: T full forward passes with fresh masks.
:func:`deterministic` is one pass with dropout off. For M models of one architecture at once see
:func:`mcal_utils.population.predict_population` (the masks each member would get here), which
shares this module's building blocks (:func:`as_inputs`, :func:`trunk_and_head`, :func:`chunks`,
:func:`to_outputs`, ...).

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

from mcal_utils.checks import check_choice, check_int
from mcal_utils.device import resolve_device
from mcal_utils.models import dropout_layers, mc_mode

MASKS: tuple[str, ...] = ("fresh", "fixed")
DEFAULT_BATCH_SIZE = 512
# Bound on the elements of one head input (T * b * trunk features): 2**23 floats = 32 MiB.
DEFAULT_MAX_HEAD_ELEMENTS = 2**23


def as_inputs(model: nn.Module, x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``x`` as a tensor ``(N, *model.input_shape)`` (no copy where possible; dtype fixed per chunk).

    ``ValueError`` for anything but a numpy array / tensor of real numbers of that shape."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (N, ...) with at least 2 dims, got {tuple(x.shape)}")
    if not (
        x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)
    ):
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
        raise ValueError(
            f"MC inference needs mcal_utils.models dropout layers (Dropout / ConcreteDropout); "
            f"torch.nn dropout stays off in eval(): {found}"
        )


def trunk_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(model.trunk, model.head)``; ``(Identity, model)`` for a model without them (it then runs
    whole on every pass). ``ValueError`` for torch.nn dropout anywhere or dropout in the trunk."""
    _check_mc_model(model)
    trunk = getattr(model, "trunk", None)
    head = getattr(model, "head", None)
    if trunk is None or head is None:
        return nn.Identity(), model
    if dropout_layers(trunk):
        raise ValueError("model.trunk contains dropout layers; MC inference runs the trunk once per input")
    return trunk, head


def _model_device(model: nn.Module) -> torch.device | None:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return None


def is_classification(model: nn.Module, out: torch.Tensor) -> bool:
    """``model.kind == "classification"``; without a ``kind``: whether ``out`` is 2-D logits ``(B, C)``."""
    kind = getattr(model, "kind", None)
    if kind is not None:
        return kind == "classification"
    return out.dim() == 2


def chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` slices of ``range(n)``, ``size`` long (the last one shorter)."""
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


def to_outputs(out: torch.Tensor, classification: bool, log_probs: bool) -> torch.Tensor:
    """Logits ``(..., C)`` -> probabilities / log-probabilities; regression ``(...,)`` as is."""
    out = out.float()
    if not classification:
        return out
    return torch.log_softmax(out, dim=-1) if log_probs else torch.softmax(out, dim=-1)


def empty_outputs(model: nn.Module, T: int | None) -> torch.Tensor:
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
    T = check_int(T, "T", ge=1)
    batch_size = check_int(batch_size, "batch_size", ge=1)
    max_head_elements = check_int(max_head_elements, "max_head_elements", ge=1)
    check_choice(masks, "masks", MASKS)
    x = as_inputs(model, x)
    dev = resolve_device(device)
    trunk, head = trunk_and_head(model)
    N = x.shape[0]
    n_masks = T if masks == "fixed" else None

    out_N_T: torch.Tensor | None = None
    with _OnDevice(model, dev), mc_mode(model, masks, T=n_masks, random_state=random_state), torch.no_grad():
        bar = tqdm(total=N, disable=not progress, unit="input", desc=f"MC x{T} ({masks})")
        try:
            for start, stop in chunks(N, batch_size):
                h_b = trunk(x[start:stop].to(dev, torch.float32))
                per_input = math.prod(h_b.shape[1:])
                b_head = max(1, max_head_elements // (T * per_input))
                for s, e in chunks(h_b.shape[0], b_head):
                    h_sub = h_b[s:e]
                    n = h_sub.shape[0]
                    reps = (T,) + (1,) * (h_sub.dim() - 1)
                    y_TB = head(h_sub.repeat(*reps))  # block t = all n inputs through pass t
                    if out_N_T is None:
                        classification = is_classification(model, y_TB)
                        shape = (N, T, y_TB.shape[1]) if classification else (N, T)
                        out_N_T = torch.empty(shape, dtype=torch.float32)
                    y_T_n = y_TB.reshape(T, n, *y_TB.shape[1:])
                    out_N_T[start + s : start + e] = to_outputs(y_T_n.transpose(0, 1), classification, log_probs).cpu()
                bar.update(stop - start)
        finally:
            bar.close()
    return empty_outputs(model, T) if out_N_T is None else out_N_T


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
    T = check_int(T, "T", ge=1)
    batch_size = check_int(batch_size, "batch_size", ge=1)
    _check_mc_model(model)
    x = as_inputs(model, x)
    dev = resolve_device(device)
    N = x.shape[0]
    if N == 0:
        return empty_outputs(model, T)
    passes: list[torch.Tensor] = []
    with _OnDevice(model, dev), mc_mode(model, "fresh", random_state=random_state), torch.no_grad():
        for _ in tqdm(range(T), disable=not progress, desc="naive MC passes"):
            out = torch.cat([model(x[s:e].to(dev, torch.float32)) for s, e in chunks(N, batch_size)])
            passes.append(to_outputs(out, is_classification(model, out), log_probs).cpu())
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
    batch_size = check_int(batch_size, "batch_size", ge=1)
    x = as_inputs(model, x)
    dev = resolve_device(device)
    N = x.shape[0]
    if N == 0:
        return empty_outputs(model, None)
    with _OnDevice(model, dev), mc_mode(model, "off"), torch.no_grad():
        out = torch.cat([model(x[s:e].to(dev, torch.float32)) for s, e in chunks(N, batch_size)])
    return to_outputs(out, is_classification(model, out), log_probs).cpu()
