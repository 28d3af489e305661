"""Every benchmark still runs (in its quick form) and prints figures: bench/ is not part
of the default test run, so without this a change could leave a benchmark broken until
someone needs its numbers.

Opt-in (``./dev test -m bench``, about 4.5 minutes on two cores): the figures themselves
are the benchmarks' business, read them in their output; this checks that each runs,
prints figures and writes its JSON (to the test's folder, ``AFFECTLAB_BENCH_RESULTS``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: benchmark -> its quickest arguments (bench_replay_memory has no --quick: a short file;
#: bench_soak's --quick is 2 minutes)
QUICK_ARGS: dict[str, list[str]] = {
    path.stem: ["--quick"] for path in sorted((ROOT / "bench").glob("bench_*.py"))
} | {
    "bench_models": ["--quick", "--skip-paper"],
    "bench_replay_memory": ["--seconds", "5", "--rate", "200000"],
    "bench_soak": ["--minutes", "0.5", "--every", "5"],
}

pytestmark = pytest.mark.bench


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(QUICK_ARGS))
def test_benchmark_runs_and_prints_figures(name: str, tmp_path: Path) -> None:
    # figures go to the test's folder, not over those of a full run in bench/results/
    env = os.environ | {"QT_QPA_PLATFORM": "offscreen", "AFFECTLAB_BENCH_RESULTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *QUICK_ARGS[name]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert any(ch.isdigit() for ch in done.stdout), f"{name} printed no figures:\n{done.stdout}"
    written = json.loads((tmp_path / f"{name}.json").read_text())
    assert written, f"{name} wrote an empty result"
    # and what it ran on: the machine's speed at both ends, the CPU others took
    machine = written["machine"]
    assert machine["probe_ms_start"] > 0 and machine["probe_ms_end"] > 0, machine
    assert 0 <= machine["cpu_share_of_other_processes"] <= 1, machine
    assert "machine: fixed probe" in done.stdout
