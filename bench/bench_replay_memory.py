"""Replaying an AEDAT4 file: memory and time when events and frames stay in the file.

One AEDAT4 is written with dv-processing's MonoCameraWriter: ``--seconds`` of
DAVIS346 events at ``--rate`` events/s and 30 APS frames/s. A child process
then opens it and reads every event and frame in the replay driver's chunks
(half a ring: the busiest 5 s of events, 10 s of frames),
twice: as the replay does it (``recordings.aedat_tracks``: a bin index, bins
decoded as reached) and, as the baseline in the same run, loading every
stream into memory first (what replay did before). Each child reports its
peak resident memory (ru_maxrss), the time to open and the time to read
everything; the ratios are baseline / indexed.

    .venv/bin/python bench/bench_replay_memory.py [--seconds 60] [--rate 500000]

Writes bench/results/bench_replay_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T0_US = 1_700_000_000_000_000


def write_file(path: Path, seconds: float, rate: float) -> int:
    import dv_processing as dv

    from drivers.davis_server import events_to_store

    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.DAVISConfig("DAVIS346", (346, 260)))
    rng = np.random.default_rng(0)
    per = int(rate / 100)  # 10 ms packets
    x, y, p = rng.integers(0, 346, per), rng.integers(0, 260, per), rng.integers(0, 2, per)
    img = rng.integers(0, 256, (260, 346), dtype=np.uint8)
    n = 0
    for k in range(int(seconds * 100)):
        t = T0_US + k * 10_000 + np.sort(rng.integers(0, 10_000, per))
        writer.writeEvents(events_to_store(t, x, y, p))
        n += per
        if k % 3 == 0:  # ~33 fps
            writer.writeFrame(dv.Frame(int(T0_US + k * 10_000), img))
    del writer
    return n


def child(path: Path, mode: str) -> dict:
    """Open ``path`` and read every event and frame; in this process, so ru_maxrss is its own."""
    import dv_processing  # noqa: F401 - imported before the baseline RSS: both modes need it

    from recordings.aedat_tracks import aedat_specs, aedat_track, scan_aedat
    from recordings.replay import HOLD_S, ring_capacity

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    got = scan_aedat(path) if mode == "indexed" else scan_aedat(path, index=())
    specs = aedat_specs(path, got, "cam")
    tracks = [aedat_track(specs[k], path, s, T0_US) for k, s in got.streams.items()]
    opened = time.perf_counter() - t
    t = time.perf_counter()
    items = 0
    for track in tracks:
        chunk = ring_capacity(track, HOLD_S[track.spec.kind]) // 2  # as the replay driver reads
        for i0 in range(0, track.count, chunk):
            ts, data = track.span(i0, min(track.count, i0 + chunk))
            items += len(ts)
    read = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mode": mode, "open_s": opened, "read_s": read, "items": items,
            "peak_rss_mb": peak / 1024, "rss_before_mb": rss0 / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=500_000.0)
    ap.add_argument("--child", nargs=2, metavar=("FILE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1])))
        return
    results: dict = {"machine": platform.platform(), "cpus": os.cpu_count(),
                     "seconds": args.seconds, "rate": args.rate}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.aedat4"
        t = time.perf_counter()
        n = write_file(path, args.seconds, args.rate)
        results["events"] = n
        results["file_mb"] = path.stat().st_size / 1e6
        print(f"wrote {n:,} events + {int(args.seconds * 100 / 3)} frames "
              f"({results['file_mb']:.0f} MB) in {time.perf_counter() - t:.1f} s")
        for mode in ("indexed", "in-memory"):
            out = subprocess.run([sys.executable, __file__, "--child", str(path), mode],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    a, b = results["indexed"], results["in-memory"]
    assert a["items"] == b["items"]
    results["memory_ratio"] = (b["peak_rss_mb"] - b["rss_before_mb"]) / max(
        1e-6, a["peak_rss_mb"] - a["rss_before_mb"])
    for label, r in (("indexed (replay now)", a), ("in memory (baseline)", b)):
        print(f"{label:22s} open {r['open_s']:6.2f} s  read all {r['read_s']:6.2f} s  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB (+{r['peak_rss_mb'] - r['rss_before_mb']:.0f} "
              f"over the interpreter with dv-processing)")
    print(f"memory added: baseline / indexed = {results['memory_ratio']:.1f}x; "
          f"open: baseline / indexed = {b['open_s'] / a['open_s']:.2f}x; "
          f"open + read all: {(b['open_s'] + b['read_s']) / (a['open_s'] + a['read_s']):.2f}x")
    out = Path(__file__).parent / "results" / "bench_replay_memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
