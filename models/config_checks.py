"""Range checks that every model config runs as it is built.

A size of 0 or a dropout of 2 otherwise fails deep inside torch, in torch's words, or
not at all until training runs; ``--set`` and a hand-edited checkpoint config both land
here first, so the message names the field and the least it may be.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def check_sizes(config: Any, least: Mapping[str, int], prefix: str = "") -> None:
    """Each named field an integer (not a bool) of at least its value, else ValueError."""
    for name, low in least.items():
        v = getattr(config, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ValueError(f"{prefix}{name} must be an integer >= {low}, got {v!r}")


def check_fractions(config: Any, names: Iterable[str], prefix: str = "") -> None:
    """Each named field (a dropout probability) in [0, 1), else ValueError."""
    for name in names:
        v = getattr(config, name)
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= v < 1.0:
            raise ValueError(f"{prefix}{name} must lie in [0, 1), got {v!r}")
