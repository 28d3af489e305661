"""Polling for conditions that other threads or processes make true (drivers, outlets)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, step: float = 0.02) -> bool:
    """True as soon as ``predicate()`` holds; False if it still does not after ``timeout`` s.

    Timeouts are generous on purpose: the tests assert what happens, never how fast.
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
