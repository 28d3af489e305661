"""The benchmarks' reading of the machine under them (``bench/_measure.py``): a run that
shared the cores, or that the machine slowed in the middle of, must say so, since its
figures and ratios are then not what the code costs."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from _measure import MachineWatch, cpu_ticks, describe_machine, others_share  # noqa: E402

# Spins until it has used {s} s of CPU (not of wall time): on a busy machine a wall-clock
# spin may get only a fraction of its seconds on a core, and the checks below count CPU.
BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass"


def _ticks_of(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def test_a_busy_neighbour_counts_as_other_and_a_waited_child_as_ours():
    """Checked against the ticks each one really used, so that the test holds on a shared
    machine too (whatever else runs only adds to "other")."""
    clk, cpus = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    start, t0 = cpu_ticks(), time.perf_counter()
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY.format(s=5.0)])
    try:
        time.sleep(1.5)
        # on a busy machine 1.5 s of wall time may give it little CPU: wait (generously)
        # until it has had some, so that "it did run" holds whatever the load
        deadline = time.monotonic() + 60
        while _ticks_of(neighbour.pid) <= 0.3 * clk and time.monotonic() < deadline:
            time.sleep(0.1)
        used = _ticks_of(neighbour.pid)
        share = others_share(start, time.perf_counter() - t0)
    finally:
        neighbour.kill()
        neighbour.wait()
    assert used > 0.2 * clk  # it did run
    other_ticks = share * (time.perf_counter() - t0) * cpus * clk
    assert other_ticks >= 0.8 * used  # the neighbour's work is someone else's

    start, t0 = cpu_ticks(), time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", BUSY.format(s=1.5)], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t0
    share = others_share(start, wall)
    end = cpu_ticks()
    child = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * clk
    assert child > 0.5 * clk
    assert end[1] - start[1] >= 0.8 * child  # a child it waited for counts as its own
    machine = end[0] - start[0]
    assert share * wall * cpus * clk <= machine - 0.8 * child + 2  # and not as other


def test_the_machine_block_holds_both_probes_and_their_ratio():
    figures = MachineWatch().finish()
    assert figures["probe_ms_start"] > 0 and figures["probe_ms_end"] > 0
    ratio = figures["probe_ms_end"] / figures["probe_ms_start"]
    assert abs(figures["probe_ratio_end_to_start"] - ratio) < 1e-12
    assert 0.0 <= figures["cpu_share_of_other_processes"] <= 1.0


def _figures(start_ms: float, end_ms: float, share: float) -> dict:
    return {
        "probe_ms_start": start_ms,
        "probe_ms_end": end_ms,
        "probe_ratio_end_to_start": end_ms / start_ms,
        "cpu_share_of_other_processes": share,
    }


def test_only_a_changed_speed_or_a_busy_machine_is_flagged():
    steady = describe_machine(_figures(4.7, 4.9, 0.01))
    assert steady.count("\n") == 0 and "WARNING" not in steady
    assert "4.7 ms at the start, 4.9 ms at the end (1.04x)" in steady
    slowed = describe_machine(_figures(4.7, 7.6, 0.01))
    assert "speed changed by 1.62x" in slowed and "not quiet" not in slowed
    sped_up = describe_machine(_figures(7.6, 4.7, 0.01))
    assert "speed changed by 0.62x" in sped_up
    busy = describe_machine(_figures(4.7, 4.8, 0.30))
    assert "not quiet" in busy and "speed changed" not in busy
