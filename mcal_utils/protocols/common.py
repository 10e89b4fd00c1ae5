"""What the protocols' settings dataclasses share: their keywords from a profile's settings, the checks of
their seeds and sizes, and the seeds the report's rule needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import compare
from ..checks import check_int


def protocol_fields(settings: Any, names: Iterable[str], **fields: Any) -> dict[str, Any]:
    """A protocol's keywords from a profile's ``settings``: ``seeds`` (``seed``, ``seed + 1``, ...:
    ``n_seeds`` of them), the settings ``names`` as they are, and ``fields``."""
    seeds = tuple(settings.seed + i for i in range(settings.n_seeds))
    return {"seeds": seeds, **{name: getattr(settings, name) for name in names}, **fields}


def check_seeds(protocol: Any) -> None:
    """``protocol.seeds`` as ints >= 0 (at least one), set on the (frozen) dataclass."""
    seeds = tuple(check_int(s, "seed", ge=0) for s in protocol.seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    object.__setattr__(protocol, "seeds", seeds)


def check_ints(protocol: Any, minimums: Iterable[tuple[str, int]]) -> None:
    """Each field ``name`` of ``protocol`` as an int >= its minimum, set on the (frozen) dataclass, in order."""
    for name, minimum in minimums:
        object.__setattr__(protocol, name, check_int(getattr(protocol, name), name, ge=minimum))


def missing_seeds(protocol: Any) -> list[str]:
    """``["≥ N seeds (has n)"]`` when ``protocol`` has fewer seeds than the rule needs
    (``compare.min_seeds()``) to resolve a comparison, else ``[]``."""
    if len(protocol.seeds) < compare.min_seeds():
        return [f"≥ {compare.min_seeds()} seeds (has {len(protocol.seeds)})"]
    return []
