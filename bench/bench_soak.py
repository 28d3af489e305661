"""A long headless session: does memory, latency or CPU creep as a lab session goes on?

Runs the demo's session (simulated physiology and eye camera, both demo models,
a predictions log; ``--record`` records it too) for ``--minutes`` and samples,
every ``--every`` seconds, the process's resident memory, its CPU share and each
model's windows, skips and the model latency of the windows since the previous
sample. The baseline is the same session's state after its warm-up (the first
tenth of the run, at least 30 s): the report gives the memory growth per hour
fitted after the warm-up, and end-of-run latency and CPU as ratios to the
warm-up's. A ring, queue or history that grows with session length shows up as
a growth rate well above zero and a ratio above 1.

``--gui`` runs the session in the dashboard (offscreen unless a display is
set) and samples its frame rate too: a plot or history that grows with the
session shows up as falling fps.

    python bench/bench_soak.py [--minutes 20] [--every 10] [--record] [--gui] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from _results import write_results
from bench_pipeline import cpu_seconds, demo_session_config

from app.config import load_config, shipped_config
from app.session import Session


def rss_mb() -> float:
    """Resident memory now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Sample:
    t_s: float  # since the session started
    rss_mb: float
    cpu_share: float  # of one core, since the previous sample
    inferred: dict[str, int]
    skipped: dict[str, int]
    model_ms_p50: dict[str, float]  # windows since the previous sample
    events_per_s: float = 0.0  # DVS events reaching the rings (the load that varies most)
    fps: float = float("nan")  # dashboard refreshes per second since the previous sample


def events_received(session: Session) -> int:
    return sum(h.received for n, h in session.health().items() if n.endswith("-events"))


Counters = tuple[float, float, int]  # (perf_counter, process CPU seconds, events received)


def counters(session: Session) -> Counters:
    return time.perf_counter(), cpu_seconds(), events_received(session)


def take_sample(
    session: Session, t0: float, prev: Counters, seen: dict[str, int]
) -> tuple[Sample, Counters]:
    """The sample since ``prev``, and the counters it was taken at (the next one's ``prev``)."""
    now, cpu, events = taken = counters(session)
    p50 = {}
    for name, worker in session.workers.items():
        model = list(worker.stats.latencies["model"])
        new = model[max(0, len(model) - (worker.stats.inferred - seen.get(name, 0))) :]
        p50[name] = float(np.median(new)) * 1e3 if new else float("nan")
        seen[name] = worker.stats.inferred
    sample = Sample(
        t_s=now - t0,
        rss_mb=rss_mb(),
        cpu_share=(cpu - prev[1]) / max(now - prev[0], 1e-9),
        events_per_s=(events - prev[2]) / max(now - prev[0], 1e-9),
        inferred={n: w.stats.inferred for n, w in session.workers.items()},
        skipped={n: w.stats.skipped for n, w in session.workers.items()},
        model_ms_p50=p50,
    )
    return sample, taken


def summarise(samples: list[Sample], warmup_s: float) -> dict:
    """Growth after the warm-up, and the last third against the warm-up's last samples."""
    base = [s for s in samples if s.t_s <= warmup_s][-3:] or samples[:1]
    after = [s for s in samples if s.t_s > warmup_s]
    tail = after[-max(1, len(after) // 3) :] if after else samples[-1:]
    t = np.array([s.t_s for s in after]) / 3600.0
    rss = np.array([s.rss_mb for s in after])
    growth = float(np.polyfit(t, rss, 1)[0]) if len(after) >= 3 else float("nan")
    models = list(samples[-1].inferred)

    def mean(rows: list[Sample], get) -> float:
        values = [get(s) for s in rows if np.isfinite(get(s))]
        return float(np.mean(values)) if values else float("nan")

    out = {
        "warmup_s": warmup_s,
        "rss_mb_after_warmup": mean(base, lambda s: s.rss_mb),
        "rss_mb_end": samples[-1].rss_mb,
        "rss_growth_mb_per_hour": growth,
        "cpu_share_warmup": mean(base, lambda s: s.cpu_share),
        "cpu_share_last_third": mean(tail, lambda s: s.cpu_share),
        "fps_warmup": mean(base, lambda s: s.fps),
        "fps_last_third": mean(tail, lambda s: s.fps),
        "models": {},
    }
    out["ratio_cpu_last_third_to_warmup"] = out["cpu_share_last_third"] / out["cpu_share_warmup"]
    out["ratio_fps_last_third_to_warmup"] = out["fps_last_third"] / out["fps_warmup"]
    # how much of the CPU's swing the scene explains (events drive the DVS path and the view)
    ev, cpu = np.array([s.events_per_s for s in after]), np.array([s.cpu_share for s in after])
    ok = len(after) >= 3 and ev.std() > 0 and cpu.std() > 0
    out["corr_cpu_events"] = float(np.corrcoef(ev, cpu)[0, 1]) if ok else float("nan")
    for m in models:
        early = mean(base, lambda s, m=m: s.model_ms_p50[m])
        late = mean(tail, lambda s, m=m: s.model_ms_p50[m])
        out["models"][m] = {
            "inferred": samples[-1].inferred[m],
            "skipped": samples[-1].skipped[m],
            "model_ms_p50_warmup": early,
            "model_ms_p50_last_third": late,
            "ratio_latency_last_third_to_warmup": late / early,
        }
    return out


def open_dashboard(session: Session):
    """The dashboard showing (and starting) ``session``, and a wait that runs Qt's loop."""
    from PySide6 import QtCore, QtWidgets

    from app.gui import Dashboard

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    window = Dashboard(lambda: session, session=session, title="affectlab soak")
    window.show()

    def wait(seconds: float) -> None:
        loop = QtCore.QEventLoop()
        QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    app.processEvents()
    return window, wait


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--record", action="store_true", help="record the session too (disk!)")
    ap.add_argument("--gui", action="store_true", help="in the dashboard; samples its fps too")
    ap.add_argument("--quick", action="store_true", help="2 minutes, a sample every 5 s")
    args = ap.parse_args()
    minutes, every = (2.0, 5.0) if args.quick else (args.minutes, args.every)
    duration = minutes * 60
    warmup = max(30.0, duration / 10)
    models = [m.name for m in load_config(shipped_config("demo")).models]

    with tempfile.TemporaryDirectory() as tmp:
        session = Session(demo_session_config("soak", 2, models, Path(tmp) / "p.csv"))
        if args.record:
            session.start_recording(Path(tmp) / "rec")
        window, wait = None, time.sleep
        if args.gui:
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
            window, wait = open_dashboard(session)
        print(f"soak: {', '.join(models)} on the simulated participant for {minutes:g} min; "
              f"a sample every {every:g} s; warm-up {warmup:.0f} s"
              + ("; recording" if args.record else "") + ("; in the dashboard" if args.gui else ""))  # fmt: skip
        print(f"{'t s':>6} {'RSS MB':>8} {'CPU':>6} {'ev/s':>7} {'fps':>5}  " + "  ".join(
            f"{m + ' ms':>22} {'skip':>5}" for m in models))  # fmt: skip
        samples: list[Sample] = []
        seen: dict[str, int] = {}
        if window is None:
            session.start()  # the dashboard starts its session itself
        t0 = time.perf_counter()
        prev = counters(session)
        frames = 0
        try:
            for k in range(1, int(duration // every) + 1):  # a sample every `every` s
                wait(max(0.0, t0 + k * every - time.perf_counter()))
                if session.engine_error is not None:
                    raise RuntimeError(f"engine failed: {session.engine_error}")
                s, taken = take_sample(session, t0, prev, seen)
                if window is not None:
                    s.fps = (window.frames - frames) / max(
                        s.t_s - (samples[-1].t_s if samples else 0), 1e-9
                    )
                    frames = window.frames
                prev = taken
                samples.append(s)
                print(f"{s.t_s:6.0f} {s.rss_mb:8.1f} {100 * s.cpu_share:5.0f}% "
                      f"{s.events_per_s:7.0f} {s.fps:5.1f}  "
                      + "  ".join(f"{s.model_ms_p50[m]:22.1f} {s.skipped[m]:5d}" for m in models),
                      flush=True)  # fmt: skip
        finally:
            if window is not None:
                window.shutdown()
            else:
                session.stop()

    summary = summarise(samples, warmup)
    print(f"\nRSS after warm-up {summary['rss_mb_after_warmup']:.1f} MB, at the end "
          f"{summary['rss_mb_end']:.1f} MB; growth after warm-up "
          f"{summary['rss_growth_mb_per_hour']:+.1f} MB/hour (least squares)")  # fmt: skip
    print(f"CPU {100 * summary['cpu_share_warmup']:.0f}% of one core after warm-up, "
          f"{100 * summary['cpu_share_last_third']:.0f}% in the last third: ratio "
          f"{summary['ratio_cpu_last_third_to_warmup']:.2f}x; correlation with the event rate "
          f"{summary['corr_cpu_events']:+.2f}")  # fmt: skip
    if args.gui:
        print(f"dashboard {summary['fps_warmup']:.1f} fps after warm-up, "
              f"{summary['fps_last_third']:.1f} fps in the last third: ratio "
              f"{summary['ratio_fps_last_third_to_warmup']:.2f}x")  # fmt: skip
    for m, r in summary["models"].items():
        print(f"{m}: {r['inferred']} inferred, {r['skipped']} skipped; model p50 "
              f"{r['model_ms_p50_warmup']:.1f} ms after warm-up, "
              f"{r['model_ms_p50_last_third']:.1f} ms in the last third: ratio "
              f"{r['ratio_latency_last_third_to_warmup']:.2f}x")  # fmt: skip
    write_results(
        "bench_soak",
        {"minutes": minutes, "every_s": every, "record": args.record, "gui": args.gui,
         "models": models,
         "summary": summary, "samples": [asdict(s) for s in samples]},
    )  # fmt: skip


if __name__ == "__main__":
    main()
