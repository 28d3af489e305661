"""What the benchmarks measure about their own process and the machine under it.

One copy of each reading, so that every benchmark's CPU and memory figures mean the
same thing.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """CPU ms this thread spends on the same pure-Python and numpy work (median of repeats,
    after one unmeasured pass: the first touches cold memory and runs about 5 % slower).

    The work never changes and the garbage collector is off while it runs, so a rise
    means the machine (frequency, a busy neighbour on the host) got slower, not the
    measured code heavier: a yardstick for figures taken at different times.
    """
    x = np.linspace(0.0, 1.0, 100_000)
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats + 1):
            t = time.thread_time()
            acc = 0
            for i in range(100_000):
                acc += i * i % 7
            float(np.sqrt(x * 1.5 + acc).sum())
            times.append(time.thread_time() - t)
    finally:
        if enabled:
            gc.enable()
    return 1e3 * float(np.median(times[1:]))


#: how far the probe may move between a run's start and end before its figures are
#: flagged: the host here has two speeds, 1.6x apart (README, "Tests and benchmarks")
SPEED_TOLERANCE = 0.15
#: the share of the machine's CPU other processes may take before a run is flagged:
#: with two cores, torch's threads then wait on each other and latencies grow 10-200x
BUSY_TOLERANCE = 0.05
#: the probe's repeats at a run's ends: with 3 its readings scatter by +-8 %, with 7 by
#: +-3 %, well inside SPEED_TOLERANCE
PROBE_REPEATS = 7


def cpu_ticks() -> tuple[int, int] | None:
    """(busy clock ticks of the whole machine, ticks of this process and its reaped
    children) from /proc, or None where there is no /proc.

    Children count as this process's own, so a benchmark that runs its subject in a
    subprocess is not taken for a busy machine once it has waited for it.
    """
    try:
        cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    busy = sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait
    return busy, sum(int(v) for v in own[11:15])  # utime, stime, cutime, cstime


def others_share(start: tuple[int, int] | None, wall_s: float) -> float:
    """Fraction of the machine's CPU that other processes used since ``start``
    (``cpu_ticks()``), over ``wall_s`` seconds; 0 where it cannot be known."""
    end = cpu_ticks()
    if start is None or end is None or wall_s <= 0:
        return 0.0
    others = (end[0] - start[0]) - (end[1] - start[1])
    share = others / os.sysconf("SC_CLK_TCK") / (wall_s * (os.cpu_count() or 1))
    # ticks come in 10 ms steps: over a short stretch one tick of another's work would
    # read as many times the whole machine
    return min(1.0, max(0.0, share))


@dataclass
class MachineWatch:
    """What a benchmark ran on, and whether the machine stayed the same while it ran.

    Benchmarks print ratios of figures measured one after another in one run, which
    hold only while the machine under them runs at one speed and nothing else competes
    for it. This host does not always: the probe flips between about 4.7 and 7.6 ms for
    minutes at a time. The probe at the start and at the end cannot prove the middle
    was steady, but a run whose two ends differ, or that shared the cores, says plainly
    that its figures may not hold. Start it before the first measurement;
    ``write_results`` finishes it.
    """

    probe_ms_start: float = field(default_factory=lambda: probe_ms(PROBE_REPEATS))
    ticks_start: tuple[int, int] | None = field(default_factory=cpu_ticks)
    wall_start: float = field(default_factory=time.perf_counter)

    def finish(self) -> dict[str, Any]:
        """The machine's description and the run's readings, for the results JSON."""
        share = others_share(self.ticks_start, time.perf_counter() - self.wall_start)
        end = probe_ms(PROBE_REPEATS)
        return {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "probe_ms_start": self.probe_ms_start,
            "probe_ms_end": end,
            "probe_ratio_end_to_start": end / self.probe_ms_start,
            "cpu_share_of_other_processes": share,
        }


def describe_machine(machine: dict[str, Any]) -> str:
    """A line on the machine over the run (``MachineWatch.finish``), and a warning for
    each way in which the run's figures may not hold."""
    ratio = machine["probe_ratio_end_to_start"]
    share = machine["cpu_share_of_other_processes"]
    lines = [
        f"machine: fixed probe {machine['probe_ms_start']:.1f} ms at the start, "
        f"{machine['probe_ms_end']:.1f} ms at the end ({ratio:.2f}x); other processes "
        f"used {share:.0%} of the CPU"
    ]
    if abs(ratio - 1.0) > SPEED_TOLERANCE:
        lines.append(
            f"WARNING: the machine's speed changed by {ratio:.2f}x during the run: figures "
            "measured at different times in it, and their ratios, may be off by as much"
        )
    if share > BUSY_TOLERANCE:
        lines.append("WARNING: the machine was not quiet: timings unreliable")
    return "\n".join(lines)
