"""Replay: speed at ``--speed max`` in multiples of real time, and XDF load time against pyxdf.

(a) XDF load. One file written with affectlab's XDF writer: 64 channels
float32 at 1 kHz in chunks of 32 samples (as LabRecorder stores a typical
amplifier), plus a marker stream. Loaded with ``recordings.xdf_reader.load_xdf``
and with ``pyxdf.load_xdf`` (its defaults, and without dejitter, which is what
ours does) on the same file; the ratio is pyxdf time / ours. Values and stamps
are checked equal first.

(b) Replay at max. Sessions are recorded live by the recorder from the
simulated participant (physiology only with Hi-MoE; the demo with its DAVIS
events and both demo models), then replayed at max speed through the whole
pipeline (deterministic: every window cut and inferred). The baseline is the
recorded duration (what a replay at speed 1 takes); also the replay with no
model, which is the data path alone.

    .venv/bin/python bench/bench_replay.py [--quick]

Writes bench/results/bench_replay.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "2")

from _measure import MachineWatch  # noqa: E402
from _results import write_results  # noqa: E402

from app.config import ModelConfig, SessionConfig, SourceConfig  # noqa: E402


def write_big_xdf(path: Path, seconds: float, channels: int = 64, rate: float = 1000.0) -> int:
    from recordings.xdf_writer import XdfStreamInfo, XdfWriter

    w = XdfWriter(path)
    sid = w.add_stream(
        XdfStreamInfo(
            "amp",
            "EEG",
            channels,
            rate,
            "float32",
            channels=[{"label": f"E{i}", "unit": "uV", "type": "EEG"} for i in range(channels)],
        )
    )
    mk = w.add_stream(XdfStreamInfo("mk", "Markers", 1, 0.0, "string"))
    rng = np.random.default_rng(0)
    block = rng.standard_normal((32, channels)).astype(np.float32)
    n = int(seconds * rate) // 32
    for k in range(n):
        ts = 1000.0 + (k * 32 + np.arange(32)) / rate
        w.write_samples(sid, block + k, ts)
        if k % 100 == 0:
            w.write_samples(mk, [[f"m{k}"]], ts[:1])
            w.clock_offsets(float(ts[0]))
        if k % 1000 == 0:
            w.flush(fsync=False)
    w.close()
    return n * 32


def best_of(fn, repeats: int) -> tuple[float, object]:
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def bench_load(tmp: Path, seconds: float, repeats: int) -> dict:
    import pyxdf

    from recordings.xdf_reader import load_xdf

    path = tmp / "big.xdf"
    samples = write_big_xdf(path, seconds)
    ours_t, ours = best_of(lambda: load_xdf(path), repeats)
    plain_t, plain = best_of(lambda: pyxdf.load_xdf(str(path), dejitter_timestamps=False), repeats)
    dej_t, _ = best_of(lambda: pyxdf.load_xdf(str(path)), 1)
    ref = {s["info"]["name"][0]: s for s in plain[0]}
    amp = ours.stream("amp")
    assert np.array_equal(amp.time_series, ref["amp"]["time_series"])
    assert np.allclose(amp.time_stamps, ref["amp"]["time_stamps"], atol=1e-9)
    mb = path.stat().st_size / 1e6
    return {
        "file_mb": mb,
        "samples": samples,
        "channels": 64,
        "ours_s": ours_t,
        "pyxdf_no_dejitter_s": plain_t,
        "pyxdf_default_s": dej_t,
        "ratio_vs_pyxdf_no_dejitter": plain_t / ours_t,
        "ratio_vs_pyxdf_default": dej_t / ours_t,
        "ours_mb_per_s": mb / ours_t,
    }


def record(folder: Path, seconds: float, physiology_only: bool) -> None:
    from app.session import Session

    options = {"seed": 0}
    models = [ModelConfig("hi-moe-sim")]
    if physiology_only:
        options["camera"] = False
    else:
        models.append(ModelConfig("mco-e-net-lite-sim"))
    cfg = SessionConfig(
        name="bench", sources=[SourceConfig("simulated", "sim", options)], models=models
    )
    session = Session(cfg)
    session.start_recording(folder)
    session.run_for(seconds)


def replay_once(folder: Path, models: list[str] | None) -> dict:
    from app.replay import replay_config
    from app.session import Session
    from recordings.replay import ReplayControl
    from recordings.sources import open_recording

    t_open = time.perf_counter()
    rec = open_recording(folder)
    opened = time.perf_counter() - t_open
    control = ReplayControl(rec, speed=None)
    args = argparse.Namespace(
        model=models, device="cpu", predictions=None, quiet=True, headless=True
    )
    cfg = replay_config(rec, args)
    if models == []:
        cfg = replace(cfg, models=[])
    session = Session(cfg, clock=control.clock, drivers=[control.driver], replay=control)
    t = time.perf_counter()
    session.start()
    assert control.wait_finished(600)
    wall = time.perf_counter() - t
    session.stop()
    stats = session.stats().to_dict()["models"]
    events = sum(n for name, n in control.driver.pushed.items() if name.endswith("events"))
    return {
        "wall_s": wall,
        "open_s": opened,
        "duration_s": rec.duration,
        "x_real_time": rec.duration / wall,
        "windows": {k: v["windows"] for k, v in stats.items()},
        "skipped": {k: v["skipped"] for k, v in stats.items()},
        "events": events,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    machine = MachineWatch()
    load_s = 60.0 if args.quick else 300.0
    rec_s = 8.0 if args.quick else 20.0
    repeats = 2 if args.quick else 3
    results: dict = {"quick": args.quick}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        load = bench_load(tmp, load_s, repeats)
        results["xdf_load"] = load
        print(f"(a) XDF load, {load['file_mb']:.0f} MB ({load['samples']:,} samples x 64 ch):")
        print(
            f"    ours {load['ours_s']:.3f} s ({load['ours_mb_per_s']:.0f} MB/s); pyxdf without "
            f"dejitter {load['pyxdf_no_dejitter_s']:.3f} s -> {load['ratio_vs_pyxdf_no_dejitter']:.1f}x; "
            f"pyxdf default {load['pyxdf_default_s']:.3f} s -> {load['ratio_vs_pyxdf_default']:.1f}x"
        )
        results["replay"] = {}
        for label, phys in (("physiology", True), ("physiology+davis", False)):
            folder = tmp / label
            record(folder, rec_s, phys)
            full = [replay_once(folder, None) for _ in range(repeats)]
            bare = replay_once(folder, [])
            speeds = [r["x_real_time"] for r in full]
            entry = {
                "recorded_s": full[0]["duration_s"],
                "runs": full,
                "x_real_time_median": statistics.median(speeds),
                "data_path_only": bare,
            }
            results["replay"][label] = entry
            print(
                f"(b) replay at max, {label}, {entry['recorded_s']:.1f} s recorded "
                f"(baseline: speed 1 = 1.0x real time):"
            )
            print(
                f"    with models {entry['x_real_time_median']:.1f}x real time "
                f"(runs {', '.join(f'{s:.1f}' for s in speeds)}); windows {full[0]['windows']}, "
                f"skipped {full[0]['skipped']}; events {full[0]['events']:,}"
            )
            print(
                f"    data path only (no model) {bare['x_real_time']:.1f}x real time; "
                f"opening the recording {bare['open_s']:.2f} s"
            )
    write_results("bench_replay", results, machine)


if __name__ == "__main__":
    main()
