"""Replaying big files: memory and time when events, frames and samples stay in the file.

``--format aedat4`` (default): one AEDAT4 is written with dv-processing's
MonoCameraWriter: ``--seconds`` of DAVIS346 events at ``--rate`` events/s and
30 APS frames/s. A child process then opens it and reads every event and frame
in the replay driver's chunks (half a ring: the busiest 5 s of events, 10 s of
frames), twice: as the replay does it (``recordings.aedat_tracks``: a bin
index, bins decoded as reached) and, as the baseline in the same run, loading
every stream into memory first (what replay did before).

``--format xdf``: one XDF of ``--seconds`` of a ``--channels`` x ``--srate``
float32 amplifier in 32-sample chunks, every sample stamped (affectlab's
layout) or, with ``--deduced``, only each chunk's first (LabRecorder's). The
child opens it with ``recordings.sources.open_recording`` and reads every
sample in the replay driver's chunks: values read from the file by slice
(``recordings.xdf_values``), against the baseline that decodes them all into
memory at opening (``load_xdf`` without ``lazy``, as replay did before; both
with today's reader, which lets go of the file's pages behind its scan).

Each child reports its peak resident memory (VmHWM, which includes file pages
mapped while the file is scanned), the anonymous memory it holds once the file
is open (RssAnon: what stays for the whole replay), the time to open and the
time to read everything; the ratios are baseline / replay now.

    .venv/bin/python bench/bench_replay_memory.py [--seconds 60] [--rate 500000]
    .venv/bin/python bench/bench_replay_memory.py --format xdf [--seconds 1200] [--deduced]

Writes bench/results/bench_replay_memory.json (``..._xdf.json``, ``..._xdf_deduced.json``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _measure import MachineWatch, status_kb
from _results import write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T0_US = 1_700_000_000_000_000


def write_file(path: Path, seconds: float, rate: float) -> int:
    import dv_processing as dv

    from drivers.davis_server import events_to_store

    writer = dv.io.MonoCameraWriter(
        str(path), dv.io.MonoCameraWriter.DAVISConfig("DAVIS346", (346, 260))
    )
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


def write_xdf(path: Path, seconds: float, channels: int, srate: float, deduced: bool) -> int:
    """An amplifier stream in 32-sample chunks; with ``deduced`` only each chunk's first
    sample carries its stamp (the rest: 0 bytes, as LabRecorder writes them)."""
    import struct

    from recordings.xdf_writer import TAG_SAMPLES, XdfStreamInfo, XdfWriter, chunk, varlen

    w = XdfWriter(path)
    sid = w.add_stream(XdfStreamInfo("amp", "EEG", channels, srate, "float32"))
    rng = np.random.default_rng(0)
    per = 32
    block = rng.standard_normal((per, channels)).astype("<f4")
    n = int(seconds * srate) // per * per
    rest = np.zeros(per - 1, [("n", "u1"), ("v", "<f4", (channels,))])
    rest["v"] = block[1:]
    for k in range(0, n, per):
        t = 1000.0 + (k + np.arange(per)) / srate
        if not deduced:
            w.write_samples(sid, block, t)
        else:
            body = struct.pack("<I", sid) + varlen(per) + b"\x08" + struct.pack("<d", t[0])
            w._add(chunk(TAG_SAMPLES, body + block[0].tobytes() + rest.tobytes()), sid, per)
        if k % (per * 100) == 0:
            w.boundary()
            w.flush(fsync=False)  # the writer holds chunks until a flush, as the recorder's does
    w.close()
    return n


def peak_rss_kb() -> int:
    """This process's peak resident memory: VmHWM on Linux (ru_maxrss there keeps the
    parent's peak across fork and exec), ru_maxrss elsewhere. It counts file pages
    mapped while a file is scanned, which the kernel can drop at will."""
    got = status_kb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if got is None else got


def anon_kb() -> int:
    """Anonymous memory now (RssAnon, Linux; 0 elsewhere): what the process itself holds,
    without file pages it has mapped."""
    return status_kb("RssAnon") or 0


def child(path: Path, mode: str) -> dict:
    """Open ``path`` and read every item; in this process, so the memory figures are its own."""
    import dv_processing  # noqa: F401 - imported before the baseline RSS: both modes need it

    from recordings import sources
    from recordings.aedat_tracks import aedat_specs, aedat_track, scan_aedat
    from recordings.replay import HOLD_S, ring_capacity
    from recordings.xdf_reader import load_xdf

    rss0, anon0 = peak_rss_kb(), anon_kb()
    t = time.perf_counter()
    if path.suffix == ".xdf":
        if mode == "in-memory":  # what replay did before: every value decoded at opening
            sources.load_xdf = lambda p, lazy=False: load_xdf(p)  # type: ignore[assignment]
        tracks = sources.open_recording(path).tracks
    else:
        got = scan_aedat(path) if mode == "indexed" else scan_aedat(path, index=())
        specs = aedat_specs(path, got, "cam")
        tracks = [aedat_track(specs[k], path, s, T0_US) for k, s in got.streams.items()]
    opened = time.perf_counter() - t
    anon_open = anon_kb()
    t = time.perf_counter()
    items = 0
    for track in tracks:
        chunk = ring_capacity(track, HOLD_S[track.spec.kind]) // 2  # as the replay driver reads
        for i0 in range(0, track.count, chunk):
            ts, data = track.span(i0, min(track.count, i0 + chunk))
            items += len(ts)
    read = time.perf_counter() - t
    peak = peak_rss_kb()
    return {
        "mode": mode,
        "open_s": opened,
        "read_s": read,
        "items": items,
        "peak_rss_mb": peak / 1024,
        "rss_before_mb": rss0 / 1024,
        "held_after_open_mb": (anon_open - anon0) / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=500_000.0)
    ap.add_argument("--format", choices=("aedat4", "xdf"), default="aedat4")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--srate", type=float, default=1000.0)
    ap.add_argument("--deduced", action="store_true", help="xdf: LabRecorder's deduced stamps")
    ap.add_argument("--child", nargs=2, metavar=("FILE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1])))
        return
    machine = MachineWatch()
    xdf = args.format == "xdf"
    results: dict = {
        "format": args.format,
        "seconds": args.seconds,
    }
    now = "lazy" if xdf else "indexed"
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"big.{args.format}"
        t = time.perf_counter()
        if xdf:
            n = write_xdf(path, args.seconds, args.channels, args.srate, args.deduced)
            results.update(
                samples=n, channels=args.channels, srate=args.srate, deduced=args.deduced
            )
            what = f"{n:,} samples x {args.channels} channels"
        else:
            n = write_file(path, args.seconds, args.rate)
            results.update(events=n, rate=args.rate)
            what = f"{n:,} events + {int(args.seconds * 100 / 3)} frames"
        results["file_mb"] = path.stat().st_size / 1e6
        print(f"wrote {what} ({results['file_mb']:.0f} MB) in {time.perf_counter() - t:.1f} s")
        for mode in (now, "in-memory"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path), mode],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    a, b = results[now], results["in-memory"]
    assert a["items"] == b["items"]
    results["memory_ratio"] = (b["peak_rss_mb"] - b["rss_before_mb"]) / max(
        1e-6, a["peak_rss_mb"] - a["rss_before_mb"]
    )
    results["held_ratio"] = b["held_after_open_mb"] / max(1e-6, a["held_after_open_mb"])
    for label, r in ((f"{now} (replay now)", a), ("in memory (baseline)", b)):
        print(
            f"{label:22s} open {r['open_s']:6.2f} s  read all {r['read_s']:6.2f} s  "
            f"peak RSS {r['peak_rss_mb']:7.0f} MB (+{r['peak_rss_mb'] - r['rss_before_mb']:.0f} "
            f"over the interpreter with dv-processing); held once open "
            f"+{r['held_after_open_mb']:.0f} MB"
        )
    print(
        f"peak memory added: baseline / {now} = {results['memory_ratio']:.1f}x; "
        f"held once open: {results['held_ratio']:.1f}x; "
        f"open: baseline / {now} = {b['open_s'] / a['open_s']:.2f}x; "
        f"open + read all: {(b['open_s'] + b['read_s']) / (a['open_s'] + a['read_s']):.2f}x"
    )
    suffix = ("_xdf" + "_deduced" * args.deduced) if xdf else ""
    write_results(f"bench_replay_memory{suffix}", results, machine)


if __name__ == "__main__":
    main()
