"""How fast the simulated sources render, in multiples of real time, on one core.

Figures: per physiology stream, offline (30 s chunks) and live-sized (25 ms
chunks) rendering speed; eye-camera frames per second per lighting and size;
event-emulator frames and events per second; CPU share of a live
VirtualSession. Baselines measured in the same run: drawing the same amount of
Gaussian noise (the least any sampled stream must cost) and a bare log-diff
threshold pass over a frame (the least an emulator must cost).

    .venv/bin/python bench/bench_simulated.py [--quick]

Writes bench/results/bench_simulated.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import MachineWatch  # noqa: E402
from _results import write_results  # noqa: E402

from drivers.simulated.catalog import PHYSIOLOGY_STREAMS, build_sensors  # noqa: E402
from drivers.simulated.drivers import VirtualSession  # noqa: E402
from drivers.simulated.events import EventEmulator, lin_log  # noqa: E402
from drivers.simulated.eye_camera import VirtualEyeCamera  # noqa: E402
from drivers.simulated.lighting import LIGHTING_CONDITIONS  # noqa: E402
from drivers.simulated.participant import VirtualParticipant  # noqa: E402


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_physiology(seconds: float) -> dict:
    out: dict = {}
    rng = np.random.default_rng(0)
    totals = {"offline_s": 0.0, "live_s": 0.0}
    for key in PHYSIOLOGY_STREAMS:
        # fresh participants so lazily grown schedules are part of the cost
        sensor = build_sensors(VirtualParticipant(1), [key])[key]
        n = int(seconds * sensor.rate)
        step = int(30 * sensor.rate)
        offline = _timed(
            lambda s=sensor, n=n, step=step: [
                s.render(k, min(step, n - k)) for k in range(0, n, step)
            ]
        )
        live_sensor = build_sensors(VirtualParticipant(1), [key])[key]
        live_step = max(1, int(0.025 * sensor.rate))
        live = _timed(
            lambda s=live_sensor, n=n, st=live_step: [
                s.render(k, min(st, n - k)) for k in range(0, n, st)
            ]
        )
        noise = _timed(lambda n=n, c=sensor.n_channels: rng.standard_normal((n, c)))
        out[key] = {
            "rate_hz": sensor.rate,
            "channels": sensor.n_channels,
            "offline_x_realtime": seconds / offline,
            "live_x_realtime": seconds / live,
            "offline_cost_vs_noise_draw": offline / noise,
        }
        totals["offline_s"] += offline
        totals["live_s"] += live
    out["all"] = {
        "offline_x_realtime": seconds / totals["offline_s"],
        "live_x_realtime": seconds / totals["live_s"],
    }
    return out


def bench_camera(frames: int) -> dict:
    out: dict = {}
    for size in ((260, 346), (100, 100)):
        for lighting in LIGHTING_CONDITIONS if size == (260, 346) else ("normal",):
            cam = VirtualEyeCamera(VirtualParticipant(2), size=size, lighting=lighting)
            cam.render(0, 2)
            dt = _timed(lambda c=cam: c.render(0, frames))
            pair = _timed(lambda c=cam: c.render_pair(frames, frames))
            out[f"{size[1]}x{size[0]}/{lighting}"] = {
                "fps": frames / dt,
                "fps_with_irradiance": frames / pair,
            }
    return out


def bench_emulator(frames: int) -> dict:
    cam = VirtualEyeCamera(VirtualParticipant(3))
    _, irradiance = cam.render_pair(0, frames)

    def bare() -> None:
        ref = lin_log(irradiance[0].reshape(-1))
        for f in irradiance[1:]:
            diff = lin_log(f.reshape(-1)) - ref
            np.flatnonzero(np.floor(np.abs(diff) / 0.2))

    base = _timed(bare)
    out: dict = {"baseline_log_diff_fps": (frames - 1) / base}
    for label, kw in (("default_noise", {}), ("noise_off", {"shot_noise_hz": 0.0, "leak_hz": 0.0})):
        emu = EventEmulator(cam.size, seed=3, **kw)
        count = 0

        def run(emu=emu) -> None:
            nonlocal count
            for k, f in enumerate(irradiance):
                count += len(emu.emulate(f, k / cam.fps)[0])

        dt = _timed(run)
        out[label] = {
            "fps": frames / dt,
            "events_per_s_processing": count / dt,
            "events_per_simulated_s": count / (frames / cam.fps),
            "cost_vs_baseline": (dt / frames) / (base / (frames - 1)),
        }
    return out


def bench_live_session(seconds: float) -> dict:
    vs = VirtualSession(seed=4)
    before = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    vs.start()
    time.sleep(seconds)
    vs.stop()
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    received = {name: h.received for d in vs.drivers for name, h in d.health().items()}
    return {"wall_s": wall, "cpu_fraction_of_one_core": cpu / wall, "received": received}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    args = ap.parse_args()
    machine = MachineWatch()
    seconds, frames, live = (60.0, 150, 3.0) if args.quick else (300.0, 600, 10.0)
    results = {
        "physiology": bench_physiology(seconds),
        "camera": bench_camera(frames),
        "emulator": bench_emulator(frames),
        "live_session": bench_live_session(live),
    }
    print(f"physiology, {seconds:.0f} s of each stream (x real time; one core):")
    for key, r in results["physiology"].items():
        extra = (
            f"  (cost {r['offline_cost_vs_noise_draw']:.1f}x a plain noise draw)"
            if key != "all"
            else ""
        )
        print(
            f"  {key:5s} offline {r['offline_x_realtime']:9.0f}x   live chunks {r['live_x_realtime']:8.0f}x{extra}"
        )
    print("eye camera (frames/s; 30 fps is real time):")
    for key, r in results["camera"].items():
        print(
            f"  {key:22s} {r['fps']:7.0f} fps   with the DVS's irradiance {r['fps_with_irradiance']:7.0f} fps"
        )
    em = results["emulator"]
    print(
        f"event emulator at 346x260 (baseline log-diff pass {em['baseline_log_diff_fps']:.0f} fps):"
    )
    for label in ("default_noise", "noise_off"):
        r = em[label]
        print(
            f"  {label:13s} {r['fps']:6.0f} fps  {r['events_per_s_processing'] / 1e6:5.2f} M events/s processed  "
            f"{r['events_per_simulated_s'] / 1e3:6.1f} k events per simulated s  "
            f"({r['cost_vs_baseline']:.1f}x baseline)"
        )
    ls = results["live_session"]
    print(
        f"live VirtualSession (all streams, 346x260 camera): {100 * ls['cpu_fraction_of_one_core']:.0f} % of one core"
    )
    write_results("bench_simulated", results, machine)


if __name__ == "__main__":
    main()
