"""Argument checks shared by the whole package: one place, one wording, one exception policy.

* a value of the wrong *type* (a bool where an int is meant, a string for a float, ``None`` for a
  required seed) raises :class:`TypeError`;
* a value of the right type outside its valid range or set raises :class:`ValueError`.

Every message names the argument, what is valid and what was given.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
import torch

__all__ = ["check_random_state", "check_seed", "check_int", "check_float", "check_choice", "check_finite"]

_INTS = (int, np.integer)
_REALS = (int, float, np.integer, np.floating)


def _bounds_text(ge=None, gt=None, le=None, lt=None) -> str:
    parts = [
        f">= {ge}" if ge is not None else "",
        f"> {gt}" if gt is not None else "",
        f"<= {le}" if le is not None else "",
        f"< {lt}" if lt is not None else "",
    ]
    return " and ".join(p for p in parts if p)


def _check_bounds(value, name: str, kind: str, ge, gt, le, lt) -> None:
    if (
        (ge is not None and not value >= ge)
        or (gt is not None and not value > gt)
        or (le is not None and not value <= le)
        or (lt is not None and not value < lt)
    ):
        raise ValueError(f"{name} must be {kind} {_bounds_text(ge, gt, le, lt)}, got {value!r}")


def check_int(
    value: Any, name: str, *, ge: int | None = None, gt: int | None = None, le: int | None = None, lt: int | None = None
) -> int:
    """``value`` as a Python ``int`` within the bounds.

    bool and non-integers -> TypeError; out of bounds -> ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _INTS):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    _check_bounds(value, name, "an int", ge, gt, le, lt)
    return value


def check_float(
    value: Any,
    name: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    finite: bool = True,
) -> float:
    """``value`` (int or float, not bool) as a Python ``float`` within the bounds; NaN always refused,
    inf refused when ``finite``. Wrong type -> TypeError; NaN, inf or out of bounds -> ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _REALS):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    _check_bounds(value, name, "a number", ge, gt, le, lt)
    return value


def check_choice(value: Any, name: str, choices: Collection) -> Any:
    """``value`` if it is one of ``choices``, else ValueError listing them."""
    if isinstance(value, (list, dict, set)) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_finite(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` unchanged if every entry is finite, else ValueError counting the NaN / inf entries."""
    finite = np.isfinite(x)
    if not np.all(finite):
        bad = int(np.size(x) - np.count_nonzero(finite))
        raise ValueError(f"{name} must be finite, found {bad} NaN or inf values")
    return x


def check_random_state(random_state: Any, name: str = "random_state") -> np.random.Generator:
    """int seed (>= 0), ``numpy.random.SeedSequence`` or ``numpy.random.Generator`` -> Generator.

    A Generator is returned as is (shared, so draws advance it). ``None`` is refused: randomness is
    always explicit in this package (scikit-learn's ``check_random_state`` without the global RNG).
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if (
        random_state is None
        or isinstance(random_state, (bool, np.bool_))
        or not isinstance(random_state, (*_INTS, np.random.SeedSequence))
    ):
        raise TypeError(
            f"{name} must be an int seed or a numpy.random.Generator, got "
            f"{type(random_state).__name__} {random_state!r}"
        )
    if isinstance(random_state, _INTS) and random_state < 0:
        raise ValueError(f"{name} must be a non-negative int seed, got {random_state}")
    return np.random.default_rng(random_state)


def check_seed(random_state: Any, name: str = "random_state") -> int:
    """A non-negative 63-bit seed from an int, a numpy Generator or a torch Generator.

    Generators are advanced by one draw; an int is returned unchanged. Wrong type -> TypeError,
    negative int -> ValueError.
    """
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    if isinstance(random_state, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=random_state, device=random_state.device).item())
    if random_state is None or isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, _INTS):
        raise TypeError(
            f"{name} must be an int, a numpy.random.Generator or a torch.Generator, got "
            f"{type(random_state).__name__} {random_state!r}"
        )
    return check_int(random_state, name, ge=0)
