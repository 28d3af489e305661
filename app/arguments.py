"""argparse types shared by the commands: a bad value is argparse's one-line error (exit
code 2) naming the option, not a traceback from deep inside a session or a training run."""

from __future__ import annotations

import argparse
import math


def seconds(text: str) -> float:
    """A duration: 0 or more seconds (a negative one ended a session at once and said nothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def threads(text: str) -> int:
    """A number of torch threads: 1 or more (torch raises on anything else, mid-command)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of threads, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more threads, got {text!r}")
    return value
