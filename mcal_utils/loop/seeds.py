"""The one seed derivation of the package: ``derive_seed(seed, *keys)`` and the seeds of a step.

Everything random in an experiment derives from its seed and a tuple of keys (strings or
non-negative ints) through ``numpy.random.SeedSequence``: independent, reproducible streams,
no generator carried across steps.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

__all__ = ["derive_seed", "step_seeds"]


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _key(part) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode())
    if _is_int(part) and part >= 0:
        return int(part)
    raise ValueError(f"seed keys must be strings or non-negative ints, got {part!r}")


def derive_seed(seed: int, *keys) -> int:
    """A seed in ``[0, 2**62)`` that depends only on ``seed`` and ``keys`` (strings or ints).

    ``SeedSequence(seed, spawn_key=keys)``: independent streams for, e.g., ``("step", 3, "fit")``.
    """
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    ss = np.random.SeedSequence(int(seed), spawn_key=tuple(_key(k) for k in keys))
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(2))


def step_seeds(seed: int, step: int, *, init: str = "per_step") -> Callable[[str], int]:
    """``seeds(name)``: the seed of ``name`` at ``step``: ``derive_seed(seed, "step", step, name)``.

    ``init="fixed"``: ``seeds("init")`` is ``derive_seed(seed, "init")`` at every step (one initial
    network per seed, as the MC-dropout-entropy paper's ``torch.manual_seed(42)`` before every
    model); ``"per_step"``: a new initialisation at every step.
    """
    if init not in ("per_step", "fixed"):
        raise ValueError(f"init must be 'per_step' or 'fixed', got {init!r}")

    def seeds(name: str) -> int:
        if name == "init" and init == "fixed":
            return derive_seed(seed, "init")
        return derive_seed(seed, "step", step, name)

    return seeds
