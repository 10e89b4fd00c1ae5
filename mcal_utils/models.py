"""Networks with MC-dropout layers, split into a deterministic trunk and a stochastic head.

Dropout layers
--------------
Every dropout layer subclasses :class:`MCDropoutBase`. In ``train()`` it samples a fresh
mask per input. In ``eval()`` its ``mode`` decides:

* ``"off"``   (default): identity.
* ``"fresh"``: an independent mask per input row, per pass (MC dropout, Gal & Ghahramani 2016).
* ``"fixed"``: a bank of J masks, drawn once, shared by every input (DEIMOS). The
  input must arrive in *block layout* ``(J * B, ...)``: rows ``j*B ... (j+1)*B - 1`` are the
  same B inputs seen through mask j. A row's output therefore depends only on its input and
  on j, never on B, on the chunking or on the order of the inputs.

A mask is a deterministic function of uniforms ``u ~ U(0, 1)`` of the layer's per-input
noise shape (the bank stores the uniforms, so a Concrete Dropout layer applies its current
p to it).

Masks from outside: a layer whose :attr:`MCDropoutBase.mask_source` is set (e.g. with
:func:`external_masks`) asks that callable for its factor instead of drawing one; the
population engine (:mod:`mcal_utils.population`) feeds every member its own masks this way.

Randomness
----------
:func:`set_dropout_mode` / :func:`mc_mode` take a ``random_state`` (int, numpy Generator or
torch Generator). It is turned into one root seed and, through ``numpy.random.SeedSequence``,
into one seed per dropout layer (in module order, :func:`layer_seeds`): layer i draws its fixed bank from a CPU
``torch.Generator`` seeded with seed i (so the bank is the same on every device), and its
fresh masks from a generator on the input's device seeded with seed i. Without a
``random_state`` fresh masks come from torch's global RNG (training; wrap it in
``torch.random.fork_rng`` + ``manual_seed`` to seed it); fixed mode always needs one.

Use::

    with mc_mode(model, "fixed", T=J, random_state=0):   # eval(), banks of J masks
        out_JB_C = model(x_B.repeat(J, 1, 1, 1))
    # training flags, modes, seeds and banks are restored here

Models
------
:func:`build_model` builds an :class:`MCModel` by name (:data:`MODEL_NAMES`); see the
``_build_*`` functions for the layer lists and their sources.

Your own network: :func:`patch_dropout` replaces its ``nn.Dropout`` / ``nn.Dropout1d/2d/3d``
layers by :class:`Dropout` layers (in the spirit of baal's ``patch_module``) and returns a
:class:`PatchedModel` (an :class:`MCModel`; the trunk is found automatically for an
``nn.Sequential``), which :mod:`mcal_utils.mc` and every acquisition strategy accept.
"""

from __future__ import annotations

import contextlib
import copy as _copy
import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mcal_utils.checks import check_int, check_seed

DROPOUT_MODES: tuple[str, ...] = ("off", "fresh", "fixed")
KINDS: tuple[str, ...] = ("classification", "regression")

# |p_logit| is clamped here so that p = sigmoid(p_logit) stays strictly inside (0, 1) in
# float32 (sigmoid(15) = 1 - 3.1e-7 < 1); the seed code has no clamp.
P_LOGIT_BOUND = 15.0


# ---------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------
def layer_seeds(root_seed: int, n_layers: int) -> list[int]:
    """One independent 63-bit seed per dropout layer: the first ``n_layers`` words of
    ``numpy.random.SeedSequence(root_seed)``, top bit cleared."""
    state = np.random.SeedSequence(root_seed).generate_state(max(n_layers, 1), dtype=np.uint64)
    return [int(s) & (2**63 - 1) for s in state[:n_layers]]


# ---------------------------------------------------------------------------
# Dropout layers
# ---------------------------------------------------------------------------
#: ``mask_source(layer, shape, device) -> factor``: see :attr:`MCDropoutBase.mask_source`.
MaskSource = Callable[["MCDropoutBase", tuple[int, ...], torch.device], torch.Tensor]


class MCDropoutBase(nn.Module):
    """Dropout with eval modes ``"off" | "fresh" | "fixed"`` (see the module docstring).

    Subclasses define :meth:`noise_shape` (per-input shape of the uniforms ``u``, broadcastable
    against one input) and :meth:`multiplier` (``u -> factor``, applied as ``x * factor``).

    ``mask_source`` (default ``None``: the layer draws its own uniforms): a callable
    ``mask_source(layer, shape, device)`` returning the factor that multiplies the input, of
    ``shape`` (or broadcastable to it) on ``device``; ``shape`` is ``(B, *noise_shape(x))`` in
    ``train()`` and in mode ``"fresh"`` (one mask per row), ``(J, *noise_shape(x))`` in mode
    ``"fixed"`` (mask j for block j). Mode ``"off"`` never calls it. Set it with
    :func:`external_masks`; copies and pickles of the layer drop it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mode: str = "off"
        self.T: int | None = None
        self.mask_source: MaskSource | None = None
        self._seed: int | None = None
        self._generators: dict[torch.device, torch.Generator] = {}
        self._bank: torch.Tensor | None = None  # (J, *noise_shape) uniforms, CPU

    # -- to implement ------------------------------------------------------
    def noise_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """Shape of the uniforms for ONE input of the batch ``x`` (without the batch dim)."""
        raise NotImplementedError

    def multiplier(self, u: torch.Tensor) -> torch.Tensor:
        """Factor multiplying the input, from uniforms ``u`` of shape ``(..., *noise_shape)``."""
        raise NotImplementedError

    def fresh_factor(self, u: torch.Tensor) -> torch.Tensor:
        """The factor of fresh uniforms ``u`` (training and mode ``"fresh"``): :meth:`multiplier`
        (a subclass may compute it in place, overwriting ``u``)."""
        return self.multiplier(u)

    @property
    def rate(self) -> float:
        """The current dropout probability p."""
        raise NotImplementedError

    # -- configuration -----------------------------------------------------
    def configure(self, mode: str, *, T: int | None = None, seed: int | None = None) -> None:
        """Set the eval ``mode``; ``T`` (J) and ``seed`` are required for ``"fixed"``."""
        if mode not in DROPOUT_MODES:
            raise ValueError(f"mode must be one of {DROPOUT_MODES}, got {mode!r}")
        if mode == "fixed":
            if seed is None:
                raise ValueError("fixed masks need a seed (pass random_state)")
            T = check_int(T, "T", ge=1)
        elif T is not None:
            raise ValueError(f"T is only used with mode='fixed', got T={T!r} for mode={mode!r}")
        self.mode = mode
        self.T = T
        self._seed = None if seed is None else int(seed)
        self._generators = {}
        self._bank = None

    def _get_state(self) -> tuple:
        return (self.mode, self.T, self._seed, dict(self._generators), self._bank)

    def _set_state(self, state: tuple) -> None:
        self.mode, self.T, self._seed, self._generators, self._bank = state

    def __getstate__(self) -> dict:
        # torch.Generator objects do not pickle; a copy restarts its fresh stream from the seed
        # and draws its own masks (an external mask source is not copied).
        state = self.__dict__.copy()
        state["_generators"] = {}
        state["mask_source"] = None
        return state

    # -- sampling ----------------------------------------------------------
    def _uniform(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        if self._seed is None:
            return torch.rand(shape, device=device)
        gen = self._generators.get(device)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self._seed)
            self._generators[device] = gen
        return torch.rand(shape, generator=gen, device=device)

    def mask_bank(self, x: torch.Tensor) -> torch.Tensor:
        """The fixed bank of uniforms ``u_J_*`` (shape ``(J, *noise_shape(x))``) on ``x.device``."""
        if self.mode != "fixed" or self.T is None or self._seed is None:
            raise ValueError("mask_bank needs mode='fixed' (use configure / mc_mode)")
        shape = (self.T, *self.noise_shape(x))
        if self._bank is None or tuple(self._bank.shape) != shape:
            gen = torch.Generator().manual_seed(self._seed)
            self._bank = torch.rand(shape, generator=gen)
        return self._bank.to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.mode == "fresh":
            shape = (x.shape[0], *self.noise_shape(x))
            if self.mask_source is not None:
                factor = self.mask_source(self, shape, x.device)
            else:
                factor = self.fresh_factor(self._uniform(shape, x.device))
            return x * factor.to(x.dtype)
        if self.mode == "off":
            return x
        J = self.T
        assert J is not None  # configure("fixed") sets it
        B, rest = divmod(x.shape[0], J)
        if rest:
            raise ValueError(f"fixed masks need a batch of J*B rows in block layout; got {x.shape[0]} rows for J={J}")
        if self.mask_source is not None:
            factor_J = self.mask_source(self, (J, *self.noise_shape(x)), x.device)
        else:
            factor_J = self.multiplier(self.mask_bank(x))
        factor_J_1_noise = factor_J.to(x.dtype).unsqueeze(1)  # mask j for block j
        return (x.reshape(J, B, *x.shape[1:]) * factor_J_1_noise).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"p={self.rate:.4g}, mode={self.mode!r}" + (f", T={self.T}" if self.mode == "fixed" else "")


class Dropout(MCDropoutBase):
    """Bernoulli dropout with fixed p and inverted scaling: ``x * 1[u >= p] / (1 - p)``.

    ``channelwise=False``: one draw per element (Keras ``Dropout``); ``True``: one draw per
    channel for inputs with more than 2 dims (``(C, 1, ...)``, like ``nn.Dropout2d``).
    """

    def __init__(self, p: float, *, channelwise: bool = False) -> None:
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = float(p)
        self.channelwise = bool(channelwise)

    @property
    def rate(self) -> float:
        return self.p

    def noise_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        if x.dim() < 2:
            raise ValueError(f"Dropout expects a batch (B, ...) with >= 2 dims, got shape {tuple(x.shape)}")
        if self.channelwise and x.dim() > 2:
            return (x.shape[1],) + (1,) * (x.dim() - 2)
        return tuple(x.shape[1:])

    def multiplier(self, u: torch.Tensor) -> torch.Tensor:
        return (u >= self.p).to(u.dtype) / (1.0 - self.p)

    def fresh_factor(self, u: torch.Tensor) -> torch.Tensor:
        # multiplier(u) (up to rounding: * 1/(1-p)), built in place in u's buffer (fewer passes over memory)
        return u.ge_(self.p).mul_(1.0 / (1.0 - self.p))


class ConcreteDropout(MCDropoutBase):
    """Concrete Dropout as coded in the MC-dropout-entropy paper (Gal, Hron & Kendall 2017; Korsch et al. 2025's
    "simplified" relaxation).

    ``p = sigmoid(p_logit)`` (initial ``init_p`` = 0.1). Drop variable
    ``z = sigmoid((p_logit + log(u + eps) - log(1 - u + eps)) / t)``, ``u ~ U(0, 1)``,
    ``t = 0.1``, ``eps = 1e-7``; output ``x * (1 - z) / (1 - p)``. Noise shape
    ``(C, 1, 1)`` per input for 4-D inputs (whole channels), ``(C, 1)`` for 3-D, ``(F,)`` for
    2-D. In eval, ``"fresh"``/``"fixed"`` sample the same relaxed mask as training.

    Regulariser (:meth:`regulariser`), K = ``n_features``:
    ``wr * sum(theta_next^2) / (1 - p) + dr * K * (p log p + (1 - p) log(1 - p))``,
    divided by ``scale_by_n`` when given (Gal's 1/N form; the MC-dropout-entropy paper does not divide).
    """

    def __init__(
        self,
        n_features: int,
        *,
        init_p: float = 0.1,
        temperature: float = 0.1,
        eps: float = 1e-7,
        weight_regulariser: float = 1e-5,
        dropout_regulariser: float = 1e-3,
        scale_by_n: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < init_p < 1.0:
            raise ValueError(f"init_p must be in (0, 1), got {init_p}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if scale_by_n is not None:
            scale_by_n = check_int(scale_by_n, "scale_by_n", ge=1)
        self.n_features = int(n_features)
        self.temperature = float(temperature)
        self.eps = float(eps)
        self.weight_regulariser = float(weight_regulariser)
        self.dropout_regulariser = float(dropout_regulariser)
        self.scale_by_n = None if scale_by_n is None else int(scale_by_n)
        self.p_logit = nn.Parameter(torch.tensor(math.log(init_p) - math.log1p(-init_p)))

    def _logit(self) -> torch.Tensor:
        return self.p_logit.clamp(-P_LOGIT_BOUND, P_LOGIT_BOUND)

    @property
    def p(self) -> torch.Tensor:
        """``sigmoid(p_logit)``, a 0-d tensor strictly inside (0, 1)."""
        return torch.sigmoid(self._logit())

    @property
    def rate(self) -> float:
        return float(self.p.detach())

    def noise_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"ConcreteDropout expects 2-D, 3-D or 4-D input, got shape {tuple(x.shape)}")
        if x.shape[1] != self.n_features:
            raise ValueError(f"ConcreteDropout expects {self.n_features} features/channels, got shape {tuple(x.shape)}")
        return (x.shape[1],) + (1,) * (x.dim() - 2)

    def multiplier(self, u: torch.Tensor) -> torch.Tensor:
        logit = self._logit()
        a = (logit + torch.log(u + self.eps) - torch.log(1.0 - u + self.eps)) / self.temperature
        keep = torch.sigmoid(-a)  # 1 - z
        return keep / torch.sigmoid(-logit)  # (1 - z) / (1 - p)

    def regulariser(self, sum_sq_next: torch.Tensor) -> torch.Tensor:
        """``wr * sum_sq_next / (1 - p) + dr * K * (p log p + (1 - p) log(1 - p))`` [/ N]."""
        logit = self._logit()
        p = torch.sigmoid(logit)
        weight_term = self.weight_regulariser * sum_sq_next / torch.sigmoid(-logit)
        neg_entropy = p * F.logsigmoid(logit) + (1.0 - p) * F.logsigmoid(-logit)
        reg = weight_term + self.dropout_regulariser * self.n_features * neg_entropy
        return reg / self.scale_by_n if self.scale_by_n is not None else reg


def dropout_layers(model: nn.Module) -> list[MCDropoutBase]:
    """All :class:`MCDropoutBase` layers of ``model`` in module order."""
    return [m for m in model.modules() if isinstance(m, MCDropoutBase)]


@contextlib.contextmanager
def external_masks(layers: Iterable[MCDropoutBase], source: MaskSource) -> Iterator[None]:
    """Inside the block every layer of ``layers`` takes its masks from ``source`` (its
    :attr:`MCDropoutBase.mask_source`); the previous sources come back on exit, also on exceptions."""
    layers = list(layers)
    saved = [layer.mask_source for layer in layers]
    try:
        for layer in layers:
            layer.mask_source = source
        yield
    finally:
        for layer, previous in zip(layers, saved):
            layer.mask_source = previous


def check_same_architecture(models: Sequence[nn.Module]) -> nn.Module:
    """``models[0]``; ``ValueError`` unless every model has its type and its state shapes
    (the members of a population, :mod:`mcal_utils.population`)."""
    first = models[0]
    if not isinstance(first, nn.Module):
        raise ValueError(f"models[0] must be a torch.nn.Module, got {type(first).__name__}")
    shapes = {k: tuple(v.shape) for k, v in first.state_dict().items()}
    for i, model in enumerate(models):
        if type(model) is not type(first) or {k: tuple(v.shape) for k, v in model.state_dict().items()} != shapes:
            raise ValueError(
                f"models[{i}] does not have the architecture of models[0]: a population holds "
                f"members of one architecture (group runs by model and model options)"
            )
    return first


def set_dropout_mode(
    model: nn.Module,
    mode: str,
    *,
    T: int | None = None,
    random_state: int | np.random.Generator | torch.Generator | None = None,
) -> None:
    """Configure every dropout layer of ``model`` (persistently; see :func:`mc_mode`).

    ``random_state`` gives layer i the i-th seed of :func:`layer_seeds` (root: ``check_seed(random_state)``);
    ``None`` (allowed for ``"off"``/``"fresh"``) leaves fresh masks to the global RNG.
    """
    if mode not in DROPOUT_MODES:
        raise ValueError(f"mode must be one of {DROPOUT_MODES}, got {mode!r}")
    layers = dropout_layers(model)
    if mode == "fixed" and random_state is None:
        raise ValueError("mode='fixed' needs a random_state")
    seeds: list[int | None] = [None] * len(layers)
    if random_state is not None:
        seeds = list(layer_seeds(check_seed(random_state), len(layers)))
    for layer, seed in zip(layers, seeds):
        layer.configure(mode, T=T, seed=seed)


@contextlib.contextmanager
def mc_mode(
    model: nn.Module,
    mode: str,
    *,
    T: int | None = None,
    random_state: int | np.random.Generator | torch.Generator | None = None,
) -> Iterator[nn.Module]:
    """``model.eval()`` with every dropout layer in ``mode`` inside the block.

    On exit (also on exceptions) every module's training flag and every dropout layer's
    mode, seed, generators and bank are restored.
    """
    flags = [(m, m.training) for m in model.modules()]
    saved = [(layer, layer._get_state()) for layer in dropout_layers(model)]
    try:
        model.eval()
        set_dropout_mode(model, mode, T=T, random_state=random_state)
        yield model
    finally:
        for layer, state in saved:
            layer._set_state(state)
        for m, flag in flags:
            m.training = flag


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------
class Squeeze(nn.Module):
    """``(B, 1) -> (B,)``: the regression output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(-1)


def _init_parts(
    model: MCModel,
    trunk: nn.Sequential,
    head: nn.Sequential,
    *,
    kind: str,
    n_outputs: int,
    input_shape: tuple[int, ...],
    name: str,
) -> None:
    """``nn.Module.__init__`` and the attributes every :class:`MCModel` has."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    nn.Module.__init__(model)
    model.trunk = trunk
    model.head = head
    model.kind = kind
    model.n_outputs = int(n_outputs)
    model.input_shape = tuple(int(s) for s in input_shape)
    model.name = name


class MCModel(nn.Module):
    """``forward(x) = head(trunk(x))``; the trunk holds the deterministic layers before the
    first dropout layer, so MC inference runs it once per input (:mod:`mcal_utils.mc`).

    Classification models return logits ``(B, n_outputs)``; regression models ``(B,)``.
    A :class:`ConcreteDropout` at ``head[i]`` is regularised with the parameters of
    ``head[i + 1]`` (the block it feeds). ``input_shape`` is the shape of one input.
    """

    trunk: nn.Sequential
    head: nn.Sequential
    kind: str
    n_outputs: int
    input_shape: tuple[int, ...]
    name: str

    def __init__(
        self,
        trunk: nn.Sequential,
        head: nn.Sequential,
        *,
        kind: str,
        n_outputs: int,
        input_shape: tuple[int, ...],
        name: str = "",
    ) -> None:
        _init_parts(self, trunk, head, kind=kind, n_outputs=n_outputs, input_shape=input_shape, name=name)
        if dropout_layers(trunk):
            raise ValueError("the trunk must not contain dropout layers")
        finals = [i for i, m in enumerate(head) if isinstance(m, nn.Linear)]
        if not finals:
            raise ValueError("the head must end with an nn.Linear output layer")
        for i, m in enumerate(head):
            if isinstance(m, ConcreteDropout) and i + 1 >= len(head):
                raise ValueError("a ConcreteDropout layer must be followed by the block it regularises")
        self._final = finals[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``(B, D)``: the input of the output layer (e.g. the 128-d
        layer of the DEIMOS / Gal MNIST nets, the 32-d layer of ``kirillov_cnn``). Dropout layers
        act per their current mode (identity in ``eval()`` with mode ``"off"``)."""
        return self.head[: self._final](self.trunk(x))

    def dropout_layers(self) -> list[MCDropoutBase]:
        return dropout_layers(self)

    def dropout_rates(self) -> list[float]:
        """Current p of every dropout layer, in module order."""
        return [layer.rate for layer in dropout_layers(self)]

    def regularisation(self) -> torch.Tensor:
        """Sum of the Concrete Dropout regularisers (0-d tensor; 0 when there are none)."""
        total = torch.zeros((), device=next(self.parameters()).device)
        for i, m in enumerate(self.head):
            if isinstance(m, ConcreteDropout):
                sum_sq = sum(
                    (w.pow(2).sum() for w in self.head[i + 1].parameters()), torch.zeros((), device=total.device)
                )
                total = total + m.regulariser(sum_sq)
        return total

    def l2_parameters(self) -> list[torch.Tensor]:
        """Weight matrices of the dense (``nn.Linear``) layers, biases excluded (DEIMOS's L2)."""
        return [m.weight for m in self.modules() if isinstance(m, nn.Linear)]


# ---------------------------------------------------------------------------
# Layer helpers
# ---------------------------------------------------------------------------
def _conv_out(size: int, k: int, stride: int, padding: str) -> int:
    """Keras output size: valid ``floor((n - k) / s) + 1``, same ``ceil(n / s)``."""
    if padding == "same":
        return -(-size // stride)
    return (size - k) // stride + 1


def _conv2d(
    in_c: int, out_c: int, k: int, size: int, *, stride: int = 1, padding: str = "valid"
) -> tuple[nn.Module, int]:
    """Conv2d with Keras padding semantics (``same`` pads the extra pixel right/bottom)."""
    out = _conv_out(size, k, stride, padding)
    if out < 1:
        raise ValueError(
            f"input of spatial size {size} too small for a {k}x{k} convolution with stride {stride} ({padding})"
        )
    conv = nn.Conv2d(in_c, out_c, k, stride=stride)
    if padding == "valid":
        return conv, out
    total = max((out - 1) * stride + k - size, 0)
    lo = total // 2
    return nn.Sequential(nn.ZeroPad2d((lo, total - lo, lo, total - lo)), conv), out


def _pool_out(size: int, k: int) -> int:
    out = size // k
    if out < 1:
        raise ValueError(f"spatial size {size} too small for max-pooling {k}")
    return out


def _p_pair(p: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(p, (int, float, np.integer, np.floating)):
        return float(p), float(p)
    p = tuple(float(v) for v in p)
    if len(p) != 2:
        raise ValueError(f"{name}: p must be a float or a pair of floats, got {p}")
    return p


# ---------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------
def _image_classifier(
    trunk: nn.Sequential, head: nn.Sequential, n_classes: int, in_channels: int, image_size: int, name: str
) -> MCModel:
    """The :class:`MCModel` of an image classifier on (in_channels, image_size, image_size) inputs."""
    return MCModel(
        trunk,
        head,
        kind="classification",
        n_outputs=n_classes,
        input_shape=(in_channels, image_size, image_size),
        name=name,
    )


def _build_kirillov_cnn(
    *,
    dropout: str = "concrete",
    p: float = 0.2,
    init_p: float = 0.1,
    in_channels: int = 1,
    n_classes: int = 10,
    image_size: int = 32,
    wr: float = 1e-5,
    dr: float = 1e-3,
    temperature: float = 0.1,
    scale_by_n: int | None = None,
) -> MCModel:
    """The MC-dropout-entropy paper, Table 1: three Conv3x3(same)-ELU-BN-MaxPool2 blocks (32, 32, 64 channels),
    dense 1024-128-32-10 with ELU; Concrete Dropout (channel-wise on 4-D) before block 2,
    block 3, fc1 and fc2. ``dropout="fixed"``: the same net with :class:`Dropout` of rate ``p``
    (channel-wise on the conv maps, like the concrete layers). Trunk = block 1."""
    if dropout not in ("concrete", "fixed"):
        raise ValueError(f"kirillov_cnn: dropout must be 'concrete' or 'fixed', got {dropout!r}")
    if image_size % 8 or image_size < 8:
        raise ValueError(f"kirillov_cnn: image_size must be a positive multiple of 8, got {image_size}")

    def drop(n: int) -> MCDropoutBase:
        if dropout == "concrete":
            return ConcreteDropout(
                n,
                init_p=init_p,
                temperature=temperature,
                weight_regulariser=wr,
                dropout_regulariser=dr,
                scale_by_n=scale_by_n,
            )
        return Dropout(p, channelwise=True)

    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ELU(), nn.BatchNorm2d(c_out), nn.MaxPool2d(2))

    flat = 64 * (image_size // 8) ** 2
    trunk = nn.Sequential(block(in_channels, 32))
    head = nn.Sequential(
        drop(32),
        block(32, 32),
        drop(32),
        nn.Sequential(*block(32, 64), nn.Flatten()),
        drop(flat),
        nn.Sequential(nn.Linear(flat, 128), nn.ELU()),
        drop(128),
        nn.Sequential(nn.Linear(128, 32), nn.ELU()),
        nn.Linear(32, n_classes),
    )
    return _image_classifier(trunk, head, n_classes, in_channels, image_size, "kirillov_cnn")


def _build_deimos_mnist(
    n_filters: int, p: float, n_classes: int, in_channels: int, image_size: int, name: str
) -> MCModel:
    """DEIMOS MNIST net: Conv(4x4)-ReLU-Conv(4x4, stride 2)-ReLU-MaxPool3-Drop-Dense128-ReLU-Drop-Dense."""
    c1, s = _conv2d(in_channels, n_filters, 4, image_size)
    c2, s = _conv2d(n_filters, n_filters, 4, s, stride=2)
    s = _pool_out(s, 3)
    flat = n_filters * s * s
    trunk = nn.Sequential(c1, nn.ReLU(), c2, nn.ReLU(), nn.MaxPool2d(3), nn.Flatten())
    head = nn.Sequential(Dropout(p), nn.Linear(flat, 128), nn.ReLU(), Dropout(p), nn.Linear(128, n_classes))
    return _image_classifier(trunk, head, n_classes, in_channels, image_size, name)


def _build_deimos_mnist10(
    *, n_filters: int = 40, p: float = 0.25, n_classes: int = 10, in_channels: int = 1, image_size: int = 28
) -> MCModel:
    """DEIMOS MNIST 0-9 net: 40 filters, p = 0.25, 10 classes."""
    return _build_deimos_mnist(n_filters, p, n_classes, in_channels, image_size, "deimos_mnist10")


def _build_deimos_mnist79(
    *, n_filters: int = 35, p: float = 0.3, n_classes: int = 2, in_channels: int = 1, image_size: int = 28
) -> MCModel:
    """DEIMOS 7-vs-9 net: the MNIST net with 35 filters, p = 0.3, 2 classes."""
    return _build_deimos_mnist(n_filters, p, n_classes, in_channels, image_size, "deimos_mnist79")


def _build_gal_mnist(
    *, p: float | Sequence[float] = (0.25, 0.5), n_classes: int = 10, in_channels: int = 1, image_size: int = 28
) -> MCModel:
    """Gal, Islam & Ghahramani 2017 (Keras MNIST CNN): Conv32(4x4)-ReLU-Conv32(4x4)-ReLU-MaxPool2-
    Drop(0.25)-Dense128-ReLU-Drop(0.5)-Dense. ``p`` is one float or the pair (p1, p2)."""
    p1, p2 = _p_pair(p, "gal_mnist")
    c1, s = _conv2d(in_channels, 32, 4, image_size)
    c2, s = _conv2d(32, 32, 4, s)
    s = _pool_out(s, 2)
    flat = 32 * s * s
    trunk = nn.Sequential(c1, nn.ReLU(), c2, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    head = nn.Sequential(Dropout(p1), nn.Linear(flat, 128), nn.ReLU(), Dropout(p2), nn.Linear(128, n_classes))
    return _image_classifier(trunk, head, n_classes, in_channels, image_size, "gal_mnist")


def _build_mlp1d(*, p: float = 0.2, hidden: int = 256, n_hidden: int = 3, in_features: int = 1) -> MCModel:
    """DEIMOS 1-D toy: MLP with ``n_hidden`` x ``hidden`` ReLU layers, dropout after each, 1 output."""
    if n_hidden < 1:
        raise ValueError(f"mlp1d: n_hidden must be >= 1, got {n_hidden}")
    trunk = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
    layers: list[nn.Module] = []
    for _ in range(n_hidden - 1):
        layers += [Dropout(p), nn.Linear(hidden, hidden), nn.ReLU()]
    head = nn.Sequential(*layers, Dropout(p), nn.Linear(hidden, 1), Squeeze())
    return MCModel(trunk, head, kind="regression", n_outputs=1, input_shape=(in_features,), name="mlp1d")


def _build_image_regression_cnn(
    *, p: float = 0.5, in_channels: int = 3, image_size: int = 200, padding: str = "auto"
) -> MCModel:
    """DEIMOS UTKFace net: Conv50(4, s2)-Conv50(3, s2)-MaxPool2-Conv100(3)-Conv100(3)-MaxPool3-Drop-
    Dense150-Drop-Dense1, ReLU after every conv and Dense150. ``padding``: ``"valid"``, ``"same"``
    (Keras) or ``"auto"`` (valid when the sizes allow it, else same; 28x28 MNIST needs same)."""
    if padding not in ("auto", "valid", "same"):
        raise ValueError(f"image_regression_cnn: padding must be 'auto', 'valid' or 'same', got {padding!r}")

    def layers(pad: str) -> tuple[list[nn.Module], int]:
        c1, s = _conv2d(in_channels, 50, 4, image_size, stride=2, padding=pad)
        c2, s = _conv2d(50, 50, 3, s, stride=2, padding=pad)
        s = _pool_out(s, 2)
        c3, s = _conv2d(50, 100, 3, s, padding=pad)
        c4, s = _conv2d(100, 100, 3, s, padding=pad)
        s = _pool_out(s, 3)
        return [
            c1,
            nn.ReLU(),
            c2,
            nn.ReLU(),
            nn.MaxPool2d(2),
            c3,
            nn.ReLU(),
            c4,
            nn.ReLU(),
            nn.MaxPool2d(3),
            nn.Flatten(),
        ], s

    if padding == "auto":
        try:
            mods, s = layers("valid")
        except ValueError:
            mods, s = layers("same")
    else:
        mods, s = layers(padding)
    flat = 100 * s * s
    head = nn.Sequential(Dropout(p), nn.Linear(flat, 150), nn.ReLU(), Dropout(p), nn.Linear(150, 1), Squeeze())
    return MCModel(
        nn.Sequential(*mods),
        head,
        kind="regression",
        n_outputs=1,
        input_shape=(in_channels, image_size, image_size),
        name="image_regression_cnn",
    )


def _build_splicing_cnn(*, p: float = 0.15, in_channels: int = 4, length: int = 101) -> MCModel:
    """DEIMOS 5' splicing net on one-hot (4, 101): Conv1D(101, k4)-ReLU-MaxPool3-Conv1D(50, k4)-ReLU-
    MaxPool3-Drop-Dense50-ReLU-Drop-Dense1."""
    s = _pool_out(_conv_out(length, 4, 1, "valid"), 3)
    s = _pool_out(_conv_out(s, 4, 1, "valid"), 3)
    flat = 50 * s
    trunk = nn.Sequential(
        nn.Conv1d(in_channels, 101, 4),
        nn.ReLU(),
        nn.MaxPool1d(3),
        nn.Conv1d(101, 50, 4),
        nn.ReLU(),
        nn.MaxPool1d(3),
        nn.Flatten(),
    )
    head = nn.Sequential(Dropout(p), nn.Linear(flat, 50), nn.ReLU(), Dropout(p), nn.Linear(50, 1), Squeeze())
    return MCModel(trunk, head, kind="regression", n_outputs=1, input_shape=(in_channels, length), name="splicing_cnn")


# ---------------------------------------------------------------------------
# Bring your own model
# ---------------------------------------------------------------------------
#: torch.nn dropout classes :func:`patch_dropout` replaces -> whether the mask is channel-wise.
TORCH_DROPOUT: dict[type, bool] = {nn.Dropout: False, nn.Dropout1d: True, nn.Dropout2d: True, nn.Dropout3d: True}
# Alpha dropout keeps SELU statistics with an affine correction; no MC-dropout layer implements it.
_UNSUPPORTED_DROPOUT = (nn.AlphaDropout, nn.FeatureAlphaDropout)
_PROBABILITY_OUTPUTS = (nn.Softmax, nn.LogSoftmax, nn.Softmax2d, nn.Sigmoid)


def replace_dropout(module: nn.Module) -> int:
    """Replace, in place, every ``nn.Dropout`` (element-wise) and ``nn.Dropout1d/2d/3d``
    (channel-wise: one draw per channel of a ``(B, C, ...)`` input) of ``module`` by a
    :class:`Dropout` of the same p; returns how many were replaced. MC-dropout layers already
    there stay. Raises ``ValueError`` for alpha dropout and for p = 1 (nothing to average)."""
    if type(module) in TORCH_DROPOUT:
        raise ValueError("pass the network that contains the dropout layer, not the layer itself")
    count = 0
    for parent_name, parent in list(module.named_modules()):
        for name, child in list(parent.named_children()):
            where = f"{parent_name}.{name}" if parent_name else name
            if isinstance(child, _UNSUPPORTED_DROPOUT):
                raise ValueError(
                    f"{where}: {type(child).__name__} has no MC-dropout equivalent here; "
                    f"replace it by nn.Dropout (or remove it) before patching"
                )
            if type(child) in TORCH_DROPOUT:
                if not 0.0 <= child.p < 1.0:
                    raise ValueError(f"{where}: dropout p must be in [0, 1) for MC dropout, got p={child.p}")
                setattr(parent, name, Dropout(child.p, channelwise=TORCH_DROPOUT[type(child)]))
                count += 1
    return count


def _split_sequential(seq: nn.Sequential) -> tuple[list[nn.Module], list[nn.Module]]:
    """(layers before the first dropout, the rest), descending into nested plain ``nn.Sequential``s."""
    layers = list(seq)
    for i, m in enumerate(layers):
        if isinstance(m, MCDropoutBase):
            return layers[:i], layers[i:]
        if dropout_layers(m):
            if type(m) is nn.Sequential:
                trunk, head = _split_sequential(m)
                return layers[:i] + trunk, head + layers[i + 1 :]
            return layers[:i], layers[i:]
    return layers, []  # pragma: no cover - patch_dropout refuses models without dropout


def _last_leaf(module: nn.Module) -> nn.Module:
    leaves = [m for m in module.modules() if not list(m.children())]
    return leaves[-1] if leaves else module


class PatchedModel(MCModel):
    """An :class:`MCModel` around a network of your own, made by :func:`patch_dropout`.

    ``trunk`` / ``head`` as in :class:`MCModel` (the trunk may be empty). ``features(x)`` is the
    input of ``output_layer`` (the name in ``head`` of the last ``nn.Linear`` the forward pass
    calls, found by :func:`patch_dropout`), flattened to ``(B, D)``. ``regularisation()`` is 0 (no
    Concrete Dropout); ``l2_parameters()`` the weights of every ``nn.Linear``.
    """

    def __init__(
        self, trunk: nn.Sequential, head: nn.Sequential, *, output_layer: str | None = None, **parts: Any
    ) -> None:
        """``parts``: the keywords of :class:`MCModel` (``kind``, ``n_outputs``, ``input_shape``, ``name=""``)."""
        # not MCModel.__init__: its checks assume a flat head ending in nn.Linear
        _init_parts(self, trunk, head, **{"name": "", **parts})
        self._output_layer = output_layer  # a name, so the layer is not registered twice

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the output layer, ``(B, D)`` (dropout layers act per their mode)."""
        if self._output_layer is None:
            raise ValueError(
                f"{self.name or 'this model'} has no nn.Linear layer, so no penultimate features; "
                f"the 'features' strategies (k-center) cannot run on it"
            )
        seen: list[torch.Tensor] = []
        layer = self.head.get_submodule(self._output_layer)
        handle = layer.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        try:
            self.head(self.trunk(x))
        finally:
            handle.remove()
        return seen[-1].reshape(x.shape[0], -1)

    def regularisation(self) -> torch.Tensor:
        return torch.zeros((), device=next(self.parameters()).device)


def patch_dropout(
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    kind: str = "classification",
    trunk: str | None = "auto",
    copy: bool = True,
    name: str = "",
) -> PatchedModel:
    """Make a network of your own usable by :mod:`mcal_utils.mc` and every acquisition strategy.

    Its ``nn.Dropout`` / ``nn.Dropout1d/2d/3d`` layers become :class:`Dropout` layers of the same
    p (channel-wise for the 1d/2d/3d ones), which support ``"fresh"`` and ``"fixed"`` masks in
    eval mode and sample exactly like torch's in ``train()``. Returns a :class:`PatchedModel`.

    model: a classifier returning logits ``(B, C)`` (no final softmax), or a regressor returning
        ``(B,)`` or ``(B, 1)`` (squeezed to ``(B,)``). input_shape: the shape of one input.
    trunk: ``"auto"``: when ``model`` is a plain ``nn.Sequential``, the layers before the first
        dropout layer (descending into nested plain ``nn.Sequential``s) form the deterministic
        trunk that MC inference runs once per input; any other module has no trunk (its forward
        order is not known from its children) and runs whole on every pass. ``None``: no trunk.
    copy: patch a deep copy (default) and leave ``model`` unchanged; ``False`` patches in place.

    Fixed masks need every dropout layer to see the batch in block layout, i.e. a model that
    keeps the batch axis first and never mixes rows (BatchNorm in eval is fine). Functional
    dropout (``F.dropout`` in ``forward``) is invisible here: use modules. Raises ``ValueError``
    for a model without dropout, alpha dropout, p = 1, a final softmax or a wrong output shape.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, MCModel):
        raise ValueError("model is already an MCModel: use it directly")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if trunk not in ("auto", None):
        raise ValueError(f"trunk must be 'auto' or None, got {trunk!r}")
    shape = tuple(check_int(s, f"input_shape[{i}]", ge=1) for i, s in enumerate(input_shape))
    if not shape:
        raise ValueError(f"input_shape must be the shape of one input, positive ints, got {input_shape!r}")
    net = _copy.deepcopy(model) if copy else model
    replace_dropout(net)
    if not dropout_layers(net):
        raise ValueError(
            "model has no dropout layer (nn.Dropout, nn.Dropout1d/2d/3d): MC dropout needs at least "
            "one; add nn.Dropout before the layers whose uncertainty you want, then retrain"
        )
    if any(isinstance(m, ConcreteDropout) for m in net.modules()):
        raise ValueError(
            "ConcreteDropout needs the MCModel of build_model (its regulariser is tied to the next "
            "block); patch_dropout handles fixed-p dropout only"
        )
    if kind == "classification" and isinstance(_last_leaf(net), _PROBABILITY_OUTPUTS):
        raise ValueError(
            f"the model ends with {type(_last_leaf(net)).__name__}: mcal needs logits (it applies "
            f"the softmax itself); remove the final layer"
        )
    if trunk == "auto" and type(net) is nn.Sequential:
        trunk_layers, head_layers = _split_sequential(net)
    else:
        trunk_layers, head_layers = [], [net]
    head = nn.Sequential(*head_layers)
    probe = PatchedModel(nn.Sequential(*trunk_layers), head, kind=kind, n_outputs=1, input_shape=shape, name=name)
    device = next(iter(net.parameters()), torch.empty(0)).device
    called: list[str] = []  # the nn.Linear layers in the order the forward pass calls them
    hooks = [
        m.register_forward_pre_hook(lambda module, args, name=n: called.append(name))
        for n, m in head.named_modules()
        if isinstance(m, nn.Linear)
    ]
    try:
        with mc_mode(probe, "off"), torch.no_grad():
            out = probe(torch.zeros((2, *shape), device=device))
    except RuntimeError as error:
        raise ValueError(f"the model cannot take a batch of inputs of input_shape={shape}: {error}") from error
    finally:
        for hook in hooks:
            hook.remove()
    if kind == "classification":
        if out.dim() != 2 or out.shape[1] < 2:
            raise ValueError(
                f"a classifier must return logits (B, C) with C >= 2, got shape {tuple(out.shape)} "
                f"for a batch of 2 (kind='regression' for a single output)"
            )
        n_outputs = int(out.shape[1])
    else:
        if out.dim() == 2 and out.shape[1] == 1:
            head.append(Squeeze())
        elif out.dim() != 1:
            raise ValueError(f"a regressor must return (B,) or (B, 1), got shape {tuple(out.shape)} for a batch of 2")
        n_outputs = 1
    return PatchedModel(
        probe.trunk,
        head,
        kind=kind,
        n_outputs=n_outputs,
        input_shape=shape,
        name=name or type(model).__name__,
        output_layer=called[-1] if called else None,
    )


_BUILDERS: dict[str, Callable[..., MCModel]] = {
    "kirillov_cnn": _build_kirillov_cnn,
    "deimos_mnist10": _build_deimos_mnist10,
    "deimos_mnist79": _build_deimos_mnist79,
    "gal_mnist": _build_gal_mnist,
    "mlp1d": _build_mlp1d,
    "image_regression_cnn": _build_image_regression_cnn,
    "splicing_cnn": _build_splicing_cnn,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_model(name: str, *, seed: int, **kwargs: Any) -> MCModel:
    """Build model ``name`` (one of :data:`MODEL_NAMES`) with weights drawn under
    ``torch.random.fork_rng()`` + ``torch.manual_seed(seed)``: equal seeds give equal models
    and the global RNG is untouched. ``kwargs`` are the builder's keyword arguments."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
    builder = _BUILDERS[name]
    allowed = set(inspect.signature(builder).parameters)
    unknown = set(kwargs) - allowed
    if unknown:
        raise ValueError(f"{name}: unknown argument(s) {sorted(unknown)}; expected some of {sorted(allowed)}")
    seed = check_seed(seed, "seed")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return builder(**kwargs)
