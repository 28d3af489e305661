"""The benchmarks' reading of the machine under them (``bench/_measure.py``): a run that
shared the cores, or that the machine slowed in the middle of, must say so, since its
figures and ratios are then not what the code costs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from _measure import MachineWatch, describe_machine  # noqa: E402

BUSY = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < {s}: pass"


def test_a_busy_neighbour_counts_as_other_and_a_waited_child_as_ours():
    watch = MachineWatch()
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY.format(s=5.0)])
    try:
        time.sleep(1.5)
        busy = watch.finish()  # the neighbour still runs: not this process's work
    finally:
        neighbour.kill()
        neighbour.wait()
    watch = MachineWatch()
    subprocess.run([sys.executable, "-c", BUSY.format(s=1.5)], check=True)
    own = watch.finish()  # the same work in a child this process waited for

    cpus = busy["cpus"]
    assert busy["cpu_share_of_other_processes"] > 0.5 / cpus  # one of the cores, most of the time
    assert "not quiet" in describe_machine(busy)
    assert own["cpu_share_of_other_processes"] < 0.5 * busy["cpu_share_of_other_processes"]
    for figures in (busy, own):
        assert figures["probe_ms_start"] > 0 and figures["probe_ms_end"] > 0
        ratio = figures["probe_ms_end"] / figures["probe_ms_start"]
        assert abs(figures["probe_ratio_end_to_start"] - ratio) < 1e-12


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
