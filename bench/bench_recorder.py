"""The recorder: write throughput of each path and what recording the demo costs.

Baselines, measured in the same run on the same data:
- (a) XDF numeric samples (32 channels float32, chunks of 64): ``XdfWriter`` against the
  floor, the same values' raw bytes (``tobytes``) written to a file, and against a
  careless writer that packs one sample at a time with ``struct``;
- (b) DVS events into AEDAT4 through dv-processing's MonoCameraWriter: ``AedatStreams``
  (numpy -> EventStore -> file) against the conversion alone (``events_to_store``), the
  part no AEDAT writer in Python can avoid;
- (c) the demo's sources (virtual participant: physiology, APS frames, DVS events) run
  for a while without and then with the recorder: process CPU both times, the writer
  thread's own CPU, its longest pass, items lost, bytes per second per file;
- (d) the event rate a recording sustains: a synthetic event source at rising rates
  (1, 2, 4 M events/s offered) into a 4 M ring, recorded; lost items and what was written.

    .venv/bin/python bench/bench_recorder.py [--quick]

Writes bench/results/bench_recorder.json.
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _measure import MachineWatch, cpu_seconds  # noqa: E402
from _results import write_results  # noqa: E402

from core.clock import lsl_now  # noqa: E402
from core.streams import EVENT_DTYPE, Modality, StreamSpec  # noqa: E402
from drivers.base import Driver  # noqa: E402
from drivers.davis_server import events_to_store  # noqa: E402
from recordings.aedat import AedatStreams  # noqa: E402
from recordings.recorder import SessionRecorder  # noqa: E402
from recordings.xdf_writer import XdfStreamInfo, XdfWriter  # noqa: E402


def best_time(fn, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ------------------------------------------------------------------ (a)
def bench_xdf(tmp: Path, n_chunks: int) -> dict:
    ch, per = 32, 64
    data = np.random.default_rng(0).normal(size=(per, ch)).astype(np.float32)
    ts = np.arange(per) / 2048.0
    n = n_chunks * per
    counter = iter(range(1 << 30))

    def xdf() -> None:
        w = XdfWriter(tmp / f"a{next(counter)}.xdf")
        sid = w.add_stream(XdfStreamInfo("eeg", "EEG", ch, 2048.0, "float32"))
        for k in range(n_chunks):
            w.write_samples(sid, data, ts + k)
            if k % 64 == 63:
                w.flush(fsync=False)
        w.close()

    def raw() -> None:
        with open(tmp / f"r{next(counter)}.bin", "wb") as f:
            for k in range(n_chunks):
                f.write(data.tobytes())
                f.write((ts + k).tobytes())

    def per_sample() -> None:
        with open(tmp / f"p{next(counter)}.bin", "wb") as f:
            fmt = "<Bd" + "f" * ch
            for k in range(n_chunks):
                for t, row in zip((ts + k).tolist(), data.tolist(), strict=True):
                    f.write(struct.pack(fmt, 8, t, *row))

    t_xdf, t_raw, t_ps = best_time(xdf), best_time(raw), best_time(per_sample, 1)
    return {
        "samples": n,
        "channels": ch,
        "xdf_samples_per_s": n / t_xdf,
        "raw_bytes_samples_per_s": n / t_raw,
        "per_sample_struct_samples_per_s": n / t_ps,
        "xdf_vs_raw": t_xdf / t_raw,
        "per_sample_vs_xdf": t_ps / t_xdf,
    }


# ------------------------------------------------------------------ (b)
def demo_event_batches(seconds: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Events of the virtual eye camera, frame by frame, as the simulated driver pushes them."""
    from drivers.simulated.events import EventEmulator
    from drivers.simulated.eye_camera import VirtualEyeCamera
    from drivers.simulated.participant import VirtualParticipant

    cam = VirtualEyeCamera(VirtualParticipant(0))
    emu = EventEmulator(cam.size, seed=0)
    n = int(seconds * cam.fps)
    _, irradiance = cam.render_pair(0, n)
    out = []
    for k, frame in enumerate(irradiance):
        ev, t = emu.emulate(frame, 1000.0 + k / cam.fps)
        if len(t):
            out.append((ev, t))
    return out


def bench_aedat(tmp: Path, seconds: float) -> dict:
    batches = demo_event_batches(seconds)
    n = sum(len(t) for _, t in batches)
    spec = StreamSpec("ev", Modality.EVENTS, 0.0, dtype=str(EVENT_DTYPE), frame_shape=(260, 346))
    counter = iter(range(1 << 30))

    def aedat() -> None:
        w = AedatStreams(tmp / f"e{next(counter)}.aedat4", "bench", [spec], 1_700_000_000_000_000)
        for ev, t in batches:
            w.write("ev", ev, t)
        w.close()

    def convert_only() -> None:
        for ev, t in batches:
            events_to_store(np.rint(t * 1e6).astype(np.int64), ev["x"], ev["y"], ev["polarity"])

    t_a, t_c = best_time(aedat), best_time(convert_only)
    return {
        "events": n,
        "demo_event_rate_per_s": n / seconds,
        "aedat_events_per_s": n / t_a,
        "convert_only_events_per_s": n / t_c,
        "aedat_vs_convert": t_a / t_c,
    }


# ------------------------------------------------------------------ (c)
def run_sources(seconds: float, folder: Path | None) -> dict:
    from drivers.simulated.drivers import VirtualSession

    vs = VirtualSession(seed=0)
    rec = SessionRecorder(folder, vs.drivers, name="bench") if folder is not None else None
    if rec is not None:
        rec.start()
    c0, t0 = cpu_seconds(), time.perf_counter()
    vs.start()
    time.sleep(seconds)
    vs.stop()
    out: dict = {}
    if rec is not None:
        counts = rec.stop()
        out.update(
            counts=counts,
            lost=sum(rec.lost().values()),
            recorder_thread_cpu_s=rec.thread_cpu_s,
            max_pass_s=rec.max_pass_s,
            bytes_per_s={k: v / seconds for k, v in rec.bytes_per_file.items()},
        )
    out["process_cpu_per_s"] = (cpu_seconds() - c0) / (time.perf_counter() - t0)
    return out


def bench_demo(tmp: Path, seconds: float) -> dict:
    base = run_sources(seconds, None)
    rec = run_sources(seconds, tmp / "demo")
    return {
        "seconds": seconds,
        "without_recording_cpu_per_s": base["process_cpu_per_s"],
        "with_recording_cpu_per_s": rec["process_cpu_per_s"],
        "recording_extra_cpu_per_s": rec["process_cpu_per_s"] - base["process_cpu_per_s"],
        "recorder_thread_cpu_per_s": rec["recorder_thread_cpu_s"] / seconds,
        "max_pass_s": rec["max_pass_s"],
        "lost": rec["lost"],
        "events_recorded": rec["counts"].get("sim-davis-events", 0),
        "bytes_per_s": rec["bytes_per_s"],
    }


# ------------------------------------------------------------------ (d)
class EventFirehose(Driver):
    """Synthetic DVS events at ``rate`` per second in 10 ms packets (uniform pixels)."""

    def __init__(self, rate: float):
        spec = StreamSpec(
            "fire", Modality.EVENTS, 0.0, dtype=str(EVENT_DTYPE), frame_shape=(260, 346)
        )
        super().__init__("firehose", [spec])
        self.rate = rate
        rng = np.random.default_rng(0)
        self.pool = np.empty(1 << 20, EVENT_DTYPE)
        self.pool["x"] = rng.integers(0, 346, len(self.pool))
        self.pool["y"] = rng.integers(0, 260, len(self.pool))
        self.pool["polarity"] = rng.integers(0, 2, len(self.pool))
        self.sent = 0

    def _run(self) -> None:
        t0 = lsl_now()
        while not self.wait(0.01):
            now = lsl_now()
            due = int((now - t0) * self.rate) - self.sent
            while due > 0:
                n = min(due, len(self.pool))
                ts = np.linspace(now - n / self.rate, now, n, endpoint=False)
                self.push("fire", self.pool[:n], ts)
                self.sent += n
                due -= n


def bench_firehose(tmp: Path, seconds: float, rates: list[float]) -> list[dict]:
    out = []
    for rate in rates:
        src = EventFirehose(rate)
        rec = SessionRecorder(tmp / f"fire{int(rate)}", [src], name="fire")
        rec.start()
        src.start()
        time.sleep(seconds)
        src.stop()
        counts = rec.stop()
        written = counts["fire"]
        out.append(
            {
                "offered_per_s": rate,
                "pushed": src.sent,
                "written": written,
                "lost": rec.lost()["fire"],
                "written_per_s": written / seconds,
                "recorder_thread_cpu_per_s": rec.thread_cpu_s / seconds,
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    machine = MachineWatch()
    q = args.quick
    results: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        a = bench_xdf(tmp, 200 if q else 2000)
        results["xdf"] = a
        print(
            f"(a) XDF 32ch float32: {a['xdf_samples_per_s'] / 1e6:.2f} M samples/s "
            f"(raw bytes {a['raw_bytes_samples_per_s'] / 1e6:.2f} M/s: x{a['xdf_vs_raw']:.2f} of the floor; "
            f"per-sample struct {a['per_sample_struct_samples_per_s'] / 1e6:.3f} M/s: "
            f"{a['per_sample_vs_xdf']:.0f}x slower)"
        )
        b = bench_aedat(tmp, 2.0 if q else 6.0)
        results["aedat"] = b
        print(
            f"(b) AEDAT4 events: {b['aedat_events_per_s'] / 1e6:.2f} M events/s "
            f"(conversion alone {b['convert_only_events_per_s'] / 1e6:.2f} M/s, x{b['aedat_vs_convert']:.2f}); "
            f"the demo makes {b['demo_event_rate_per_s'] / 1e3:.0f} k events/s"
        )
        c = bench_demo(tmp, 4.0 if q else 15.0)
        results["demo"] = c
        print(
            f"(c) demo sources {c['seconds']:.0f} s: process CPU {c['without_recording_cpu_per_s']:.2f} -> "
            f"{c['with_recording_cpu_per_s']:.2f} cores with recording "
            f"(+{c['recording_extra_cpu_per_s']:.2f}; writer thread {c['recorder_thread_cpu_per_s']:.3f}); "
            f"longest pass {c['max_pass_s'] * 1e3:.0f} ms; lost {c['lost']}; "
            + ", ".join(f"{k} {v / 1e6:.2f} MB/s" for k, v in c["bytes_per_s"].items())
        )
        rates = [1e6, 2e6] if q else [1e6, 2e6, 4e6]
        fire = bench_firehose(tmp, 2.0 if q else 5.0, rates)
        results["firehose"] = fire
        for f in fire:
            print(
                f"(d) events offered {f['offered_per_s'] / 1e6:.0f} M/s: written "
                f"{f['written_per_s'] / 1e6:.2f} M/s, lost {f['lost']} of {f['pushed']}, "
                f"writer thread {f['recorder_thread_cpu_per_s']:.2f} cores"
            )
    write_results("bench_recorder", results, machine)


if __name__ == "__main__":
    main()
