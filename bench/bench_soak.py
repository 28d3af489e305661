"""A long session: does memory, latency or CPU creep as a lab session goes on?

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

Each sample also splits the CPU by thread (the engine, each driver and worker, the
main thread, which is the GUI's with ``--gui``, and "native": torch's and Qt's own
threads), so a creeping share points at its thread, and times a fixed probe workload
(``_measure.probe_ms``): when every share creeps with the probe, the machine slowed
down, not the session. ``--profile S`` runs cProfile
on the main thread for S seconds right after the warm-up and again for the last S
seconds, and prints the functions whose own time grew most between the two (the
samples of those stretches stay out of the other figures: profiling slows Python).

    python bench/bench_soak.py [--minutes 20] [--every 10] [--record] [--gui] [--quick]
                               [--profile 60]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from _measure import MachineWatch, cpu_seconds, probe_ms, status_kb
from _results import write_results
from bench_pipeline import demo_session_config

from app.config import load_config, shipped_config
from app.session import Session

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of each live thread of this process, summed by what the thread is.

    Python threads are named by their Python name with any ``-N`` suffix dropped
    (``worker-hi-moe-sim`` stays, ``Thread-3`` becomes ``Thread``); the main thread is
    ``main``; threads Python does not know (torch's pool, Qt's) are ``native``.
    A thread that ended takes its seconds with it: shares are of live threads.
    """
    names = {t.native_id: t.name for t in threading.enumerate()}
    main_id = threading.main_thread().native_id
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended while we looked
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        tid = int(task.name)
        name = "main" if tid == main_id else names.get(tid)
        key = "native" if name is None else re.sub(r"-\d+$", "", name)
        out[key] = out.get(key, 0.0) + seconds
    return out


def rss_mb() -> float:
    """Resident memory now (VmRSS), in MB."""
    kb = status_kb("VmRSS")
    if kb is None:
        raise RuntimeError("no VmRSS in /proc/self/status")
    return kb / 1024


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
    thread_cpu_share: dict[str, float] = field(default_factory=dict)  # of one core, by thread
    probe_ms: float = float("nan")  # CPU time of a fixed piece of work: the machine's speed
    gc_ms_per_s: float = 0.0  # Python's garbage collector, all threads
    steal_share: float = 0.0  # of the machine's CPU time, taken by the hypervisor
    profiled: bool = False  # cProfile ran meanwhile (slows the main thread: not summarised)


def events_received(session: Session) -> int:
    return sum(h.received for n, h in session.health().items() if n.endswith("-events"))


class GcClock:
    """Seconds spent in Python's garbage collector, from its start/stop callbacks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0

    def __call__(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began

    def start(self) -> None:
        gc.callbacks.append(self)

    def stop(self) -> None:
        gc.callbacks.remove(self)


def steal_and_total_jiffies() -> tuple[int, int]:
    """The machine's stolen and total CPU time so far, in clock ticks (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[7], sum(values[:8])  # user nice system idle iowait irq softirq steal


@dataclass
class Counters:
    """Cumulative counters at one moment; a sample is the difference of two."""

    wall: float
    cpu: float  # process CPU seconds
    events: int
    threads: dict[str, float]  # CPU seconds by thread
    gc_s: float
    steal: int
    jiffies: int


def counters(session: Session, gc_clock: GcClock) -> Counters:
    return Counters(time.perf_counter(), cpu_seconds(), events_received(session),
                    thread_cpu_seconds(), gc_clock.seconds, *steal_and_total_jiffies())  # fmt: skip


def take_sample(
    session: Session, t0: float, prev: Counters, seen: dict[str, int], gc_clock: GcClock
) -> tuple[Sample, Counters]:
    """The sample since ``prev``, and the counters it was taken at (the next one's ``prev``)."""
    c = counters(session, gc_clock)
    span = max(c.wall - prev.wall, 1e-9)
    p50 = {}
    for name, worker in session.workers.items():
        model = list(worker.stats.latencies["model"])
        new = model[max(0, len(model) - (worker.stats.inferred - seen.get(name, 0))) :]
        p50[name] = float(np.median(new)) * 1e3 if new else float("nan")
        seen[name] = worker.stats.inferred
    sample = Sample(
        t_s=c.wall - t0,
        rss_mb=rss_mb(),
        cpu_share=(c.cpu - prev.cpu) / span,
        events_per_s=(c.events - prev.events) / span,
        thread_cpu_share={
            k: (v - prev.threads.get(k, 0.0)) / span for k, v in sorted(c.threads.items())
        },
        probe_ms=probe_ms(),
        gc_ms_per_s=1e3 * (c.gc_s - prev.gc_s) / span,
        steal_share=(c.steal - prev.steal) / max(c.jiffies - prev.jiffies, 1),
        inferred={n: w.stats.inferred for n, w in session.workers.items()},
        skipped={n: w.stats.skipped for n, w in session.workers.items()},
        model_ms_p50=p50,
    )
    return sample, c


def summarise(samples: list[Sample], warmup_s: float) -> dict:
    """Growth after the warm-up, and the last third against the warm-up's last samples.

    Samples taken while cProfile ran are left out: profiling makes the main thread's
    Python several times slower (3.11 turns off its specialised instructions).
    """
    last = samples[-1]  # counts and memory at the end, profiled or not
    samples = [s for s in samples if not s.profiled] or samples
    base = [s for s in samples if s.t_s <= warmup_s][-3:] or samples[:1]
    after = [s for s in samples if s.t_s > warmup_s]
    tail = after[-max(1, len(after) // 3) :] if after else samples[-1:]
    t = np.array([s.t_s for s in after]) / 3600.0
    rss = np.array([s.rss_mb for s in after])
    growth = float(np.polyfit(t, rss, 1)[0]) if len(after) >= 3 else float("nan")
    models = list(last.inferred)

    def mean(rows: list[Sample], get) -> float:
        values = [get(s) for s in rows if np.isfinite(get(s))]
        return float(np.mean(values)) if values else float("nan")

    out = {
        "warmup_s": warmup_s,
        "rss_mb_after_warmup": mean(base, lambda s: s.rss_mb),
        "rss_mb_end": last.rss_mb,
        "rss_growth_mb_per_hour": growth,
        "cpu_share_warmup": mean(base, lambda s: s.cpu_share),
        "cpu_share_last_third": mean(tail, lambda s: s.cpu_share),
        "fps_warmup": mean(base, lambda s: s.fps),
        "fps_last_third": mean(tail, lambda s: s.fps),
        "probe_ms_warmup": mean(base, lambda s: s.probe_ms),
        "probe_ms_last_third": mean(tail, lambda s: s.probe_ms),
        "gc_ms_per_s_warmup": mean(base, lambda s: s.gc_ms_per_s),
        "gc_ms_per_s_last_third": mean(tail, lambda s: s.gc_ms_per_s),
        "steal_share_warmup": mean(base, lambda s: s.steal_share),
        "steal_share_last_third": mean(tail, lambda s: s.steal_share),
        "models": {},
    }
    out["ratio_cpu_last_third_to_warmup"] = out["cpu_share_last_third"] / out["cpu_share_warmup"]
    # the same fixed work's cost: above 1 the machine slowed down, and every CPU and latency
    # ratio above 1 by as much is the machine's, not the session's
    out["ratio_probe_last_third_to_warmup"] = out["probe_ms_last_third"] / out["probe_ms_warmup"]
    out["ratio_fps_last_third_to_warmup"] = out["fps_last_third"] / out["fps_warmup"]
    # how much of the CPU's swing the scene explains (events drive the DVS path and the view)
    ev, cpu = np.array([s.events_per_s for s in after]), np.array([s.cpu_share for s in after])
    ok = len(after) >= 3 and ev.std() > 0 and cpu.std() > 0
    out["corr_cpu_events"] = float(np.corrcoef(ev, cpu)[0, 1]) if ok else float("nan")
    out["threads"] = {
        k: {
            "cpu_share_warmup": mean(base, lambda s, k=k: s.thread_cpu_share.get(k, 0.0)),
            "cpu_share_last_third": mean(tail, lambda s, k=k: s.thread_cpu_share.get(k, 0.0)),
        }
        for k in last.thread_cpu_share
    }
    for m in models:
        early = mean(base, lambda s, m=m: s.model_ms_p50[m])
        late = mean(tail, lambda s, m=m: s.model_ms_p50[m])
        out["models"][m] = {
            "inferred": last.inferred[m],
            "skipped": last.skipped[m],
            "model_ms_p50_warmup": early,
            "model_ms_p50_last_third": late,
            "ratio_latency_last_third_to_warmup": late / early,
        }
    return out


@dataclass
class Stretch:
    """A stretch of the run over which cProfile watches the main thread."""

    name: str
    start_s: float
    seconds: float
    profiler: cProfile.Profile | None = None
    began_s: float = float("nan")
    took_s: float = float("nan")

    def tick(self, t_s: float) -> None:
        """Called at every sample: starts the profile in its stretch, stops it after."""
        if self.profiler is None and self.start_s <= t_s < self.start_s + self.seconds:
            self.profiler, self.began_s = cProfile.Profile(), t_s
            self.profiler.enable()
        elif self.running and t_s >= self.began_s + self.seconds:
            self.finish(t_s)

    @property
    def running(self) -> bool:
        return self.profiler is not None and np.isnan(self.took_s)

    def finish(self, t_s: float) -> None:
        if self.running:
            self.profiler.disable()
            self.took_s = t_s - self.began_s

    def own_time(self) -> dict[str, tuple[float, float]]:
        """Function -> (its own CPU seconds per second of the stretch, calls per second)."""
        if self.profiler is None or not self.took_s > 0:
            return {}
        stats = pstats.Stats(self.profiler).stats  # type: ignore[attr-defined]
        return {
            f"{Path(file).name}:{line}({fn})": (tt / self.took_s, nc / self.took_s)
            for (file, line, fn), (_cc, nc, tt, _ct, _callers) in stats.items()
        }


def compare_stretches(early: Stretch, late: Stretch, top: int = 15) -> list[dict]:
    """The functions whose own time per second grew most from ``early`` to ``late``."""
    a, b = early.own_time(), late.own_time()
    rows = [
        {"function": f, "early_ms_per_s": 1e3 * a.get(f, (0.0, 0.0))[0],
         "late_ms_per_s": 1e3 * b.get(f, (0.0, 0.0))[0],
         "early_calls_per_s": a.get(f, (0.0, 0.0))[1], "late_calls_per_s": b.get(f, (0.0, 0.0))[1]}
        for f in set(a) | set(b)
    ]  # fmt: skip
    rows.sort(key=lambda r: r["late_ms_per_s"] - r["early_ms_per_s"], reverse=True)
    return rows[:top]


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
    ap.add_argument("--profile", type=float, default=0.0, metavar="S",
                    help="profile the main thread for S s after the warm-up and the last S s")  # fmt: skip
    args = ap.parse_args()
    machine = MachineWatch()
    minutes, every = (2.0, 5.0) if args.quick else (args.minutes, args.every)
    duration = minutes * 60
    warmup = max(30.0, duration / 10)
    stretches = []
    if args.profile > 0:
        if warmup + 2 * args.profile > duration:
            ap.error(f"--profile {args.profile:g}: two stretches do not fit after the warm-up")
        stretches = [Stretch("early", warmup, args.profile),
                     Stretch("late", duration - args.profile, args.profile)]  # fmt: skip
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
        print(f"{'t s':>6} {'RSS MB':>8} {'CPU':>6} {'probe':>6} {'ev/s':>7} {'fps':>5}  " + "  ".join(
            f"{m + ' ms':>22} {'skip':>5}" for m in models))  # fmt: skip
        samples: list[Sample] = []
        seen: dict[str, int] = {}
        if window is None:
            session.start()  # the dashboard starts its session itself
        t0 = time.perf_counter()
        gc_clock = GcClock()
        gc_clock.start()
        prev = counters(session, gc_clock)
        frames = 0
        try:
            for k in range(1, int(duration // every) + 1):  # a sample every `every` s
                wait(max(0.0, t0 + k * every - time.perf_counter()))
                if session.engine_error is not None:
                    raise RuntimeError(f"engine failed: {session.engine_error}")
                s, taken = take_sample(session, t0, prev, seen, gc_clock)
                if window is not None:
                    s.fps = (window.frames - frames) / max(
                        s.t_s - (samples[-1].t_s if samples else 0), 1e-9
                    )
                    frames = window.frames
                prev = taken
                samples.append(s)
                s.profiled = any(stretch.running for stretch in stretches)
                for stretch in stretches:
                    stretch.tick(s.t_s)
                print(f"{s.t_s:6.0f} {s.rss_mb:8.1f} {100 * s.cpu_share:5.0f}% {s.probe_ms:6.1f} "
                      f"{s.events_per_s:7.0f} {s.fps:5.1f}  "
                      + "  ".join(f"{s.model_ms_p50[m]:22.1f} {s.skipped[m]:5d}" for m in models),
                      flush=True)  # fmt: skip
        finally:
            gc_clock.stop()
            for stretch in stretches:
                stretch.finish(time.perf_counter() - t0)
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
    print(f"machine: the fixed probe took {summary['probe_ms_warmup']:.1f} ms after warm-up, "
          f"{summary['probe_ms_last_third']:.1f} ms in the last third: ratio "
          f"{summary['ratio_probe_last_third_to_warmup']:.2f}x; hypervisor steal "
          f"{100 * summary['steal_share_warmup']:.1f}% -> {100 * summary['steal_share_last_third']:.1f}%; "
          f"garbage collector {summary['gc_ms_per_s_warmup']:.1f} -> "
          f"{summary['gc_ms_per_s_last_third']:.1f} ms/s")  # fmt: skip
    if args.gui:
        print(f"dashboard {summary['fps_warmup']:.1f} fps after warm-up, "
              f"{summary['fps_last_third']:.1f} fps in the last third: ratio "
              f"{summary['ratio_fps_last_third_to_warmup']:.2f}x")  # fmt: skip
    print("CPU by thread, share of one core (after warm-up -> last third): " + ", ".join(
        f"{k} {r['cpu_share_warmup']:.2f} -> {r['cpu_share_last_third']:.2f}"
        for k, r in summary["threads"].items()))  # fmt: skip
    grown = compare_stretches(*stretches) if stretches else []
    if grown:
        e, late = stretches
        print(f"\nmain thread, own time per second: {e.took_s:.0f} s from t = {e.began_s:.0f} s "
              f"against {late.took_s:.0f} s from t = {late.began_s:.0f} s, most grown first")  # fmt: skip
        for r in grown:
            print(f"  {r['late_ms_per_s'] - r['early_ms_per_s']:+7.2f} ms/s  "
                  f"({r['early_ms_per_s']:6.2f} -> {r['late_ms_per_s']:6.2f}; calls/s "
                  f"{r['early_calls_per_s']:7.1f} -> {r['late_calls_per_s']:7.1f})  {r['function']}")  # fmt: skip
    for m, r in summary["models"].items():
        print(f"{m}: {r['inferred']} inferred, {r['skipped']} skipped; model p50 "
              f"{r['model_ms_p50_warmup']:.1f} ms after warm-up, "
              f"{r['model_ms_p50_last_third']:.1f} ms in the last third: ratio "
              f"{r['ratio_latency_last_third_to_warmup']:.2f}x")  # fmt: skip
    write_results(
        "bench_soak",
        {"minutes": minutes, "every_s": every, "record": args.record, "gui": args.gui,
         "models": models,
         "summary": summary, "profile_grown": grown, "samples": [asdict(s) for s in samples]},
        machine,
    )  # fmt: skip


if __name__ == "__main__":
    main()
