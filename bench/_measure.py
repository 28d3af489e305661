"""What the benchmarks measure about their own process and the machine under it.

One copy of each reading, so that every benchmark's CPU and memory figures mean the
same thing.
"""

from __future__ import annotations

import gc
import resource
import time
from pathlib import Path

import numpy as np


def cpu_seconds() -> float:
    """CPU time of this process so far, user plus system, every thread."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def status_kb(key: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``, ``RssAnon``), or None
    where there is no such file or field."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def probe_ms(repeats: int = 3) -> float:
    """CPU ms this thread spends on the same pure-Python and numpy work (median of repeats).

    The work never changes and the garbage collector is off while it runs, so a rise
    means the machine (frequency, a busy neighbour on the host) got slower, not the
    measured code heavier: a yardstick for figures taken at different times.
    """
    x = np.linspace(0.0, 1.0, 100_000)
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t = time.thread_time()
            acc = 0
            for i in range(100_000):
                acc += i * i % 7
            float(np.sqrt(x * 1.5 + acc).sum())
            times.append(time.thread_time() - t)
    finally:
        if enabled:
            gc.enable()
    return 1e3 * float(np.median(times))
