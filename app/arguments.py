"""argparse types shared by the commands: a bad value is argparse's one-line error (exit
code 2) naming the option, not a traceback from deep inside a session or a training run."""

from __future__ import annotations

import argparse
import math


def seconds(text: str) -> float:
    """A duration: 0 or more seconds (a negative one ended a session at once and said nothing)."""
    value = float(_number(text, float, "seconds"))
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def threads(text: str) -> int:
    """A number of torch threads: 1 or more (torch raises on anything else, mid-command)."""
    value = int(_number(text, int, "a whole number of threads"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more threads, got {text!r}")
    return value


def _number(text: str, kind: type, what: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A count that must be 1 or more (a batch size, a number of participants or epochs)."""
    value = int(_number(text, int, "a whole number >= 1"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (a learning rate, minutes of a session); nan and inf refused."""
    value = float(_number(text, float, "a number > 0"))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A share in [0, 1) (a dropout probability): 1 or more would drop everything."""
    value = float(_number(text, float, "a number in [0, 1)"))
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value
