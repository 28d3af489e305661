"""The DAVIS path: numpy -> EventStore, network -> driver -> ring -> event frames, CPU at demo load.

(a) Building a ``dv.EventStore`` from numpy (dv-processing 2.0.4 has no such
    constructor): ``events_to_store`` (``push_back`` mapped from C) and
    ``events_to_store_binned`` (``imageToEvents`` per 1 ms bin), against the
    plain Python ``push_back`` loop measured in the same run, on the virtual
    eye's own events (demo load) and on a dense burst (3 M events/s).
(b) Events per second through the DAVIS path: a ``NetworkWriter`` in a
    subprocess sending C++-generated events as fast as it can -> ``NetworkReader``
    -> ``DavisDriver`` -> event ring -> 33 ms event-count frames
    (``core.resample.bin_events``) by a consumer thread. Baseline in the same run:
    a bare ``NetworkReader`` loop converting to numpy (dv-processing alone).
    Ratios against the DAVIS346's top rate (12 M events/s).
(c) CPU share (fraction of one core) of the driver reading the virtual DAVIS
    (``affectlab serve virtual-davis``: ~60 k events/s + 30 fps frames), against
    the process idle and a bare pair of NetworkReaders polled at the driver's pace.

    .venv/bin/python bench/bench_davis.py [--seconds 6] [--quick]

Writes bench/results/bench_davis.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import dv_processing as dv  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _measure import MachineWatch, cpu_seconds  # noqa: E402
from _results import write_results  # noqa: E402

from core.resample import bin_events  # noqa: E402
from core.window import EventRepresentation  # noqa: E402
from drivers.davis import DAVIS346_MAX_RATE, DavisDriver  # noqa: E402
from drivers.davis_server import (  # noqa: E402
    VirtualEyeFrames,
    events_to_store,
    events_to_store_binned,
    free_port_pair,
)
from drivers.dv_data import Endpoint  # noqa: E402
from drivers.simulated.events import EventEmulator  # noqa: E402
from drivers.simulated.eye_camera import DAVIS346_SIZE  # noqa: E402

W, H = DAVIS346_SIZE[1], DAVIS346_SIZE[0]

WRITER = textwrap.dedent(
    """
    import os, sys, time, datetime
    import dv_processing as dv
    port, seconds, per = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    rate = float(sys.argv[4])  # events/s; 0 = as fast as possible
    before = set(os.listdir("/proc/self/task"))
    w = dv.io.NetworkWriter("127.0.0.1", port,
                            dv.io.Stream.EventStream(0, "events", "bench", (346, 260)))
    for tid in set(os.listdir("/proc/self/task")) - before:  # its busy-polling thread
        os.setpriority(os.PRIO_PROCESS, int(tid), 19)
    print("listening", flush=True)
    while w.getClientCount() == 0:
        time.sleep(0.005)
    sent, i, ts = 0, 0, dv.now()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if rate and sent >= (time.perf_counter() - t0) * rate:
            time.sleep(0.0002)
            continue
        dur = max(1, dv.now() - ts)  # a packet spans the time since the last: stamps follow the clock
        s = dv.data.generate.uniformEventsWithinTimeRange(
            ts, datetime.timedelta(microseconds=dur), (346, 260), per, i)
        ts += dur
        i += 1
        w.writeEvents(s)
        sent += per
    el = time.perf_counter() - t0
    while w.getQueuedPacketCount() and time.perf_counter() - t0 < seconds + 5:
        time.sleep(0.01)
    print("sent", sent, el, flush=True)
    time.sleep(2.0)
    """
)


def proc_cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU seconds of a process (or of one of its threads) from /proc."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> tuple[float, float]:
    """(whole server, its main thread: rendering, emulation, EventStores) CPU seconds."""
    return proc_cpu_seconds(pid), proc_cpu_seconds(pid, pid)


def rate_of(fn, n_events: int, budget: float = 1.0) -> float:
    """Events per second of ``fn()`` over at least ``budget`` seconds (best of the runs)."""
    best = np.inf
    spent = 0.0
    runs = 0
    while spent < budget or runs < 2:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        runs += 1
    return n_events / best


# ------------------------------------------------------------------ (a)
def python_loop(t, x, y, p):
    s = dv.EventStore()
    for a, b, c, d in zip(t.tolist(), x.tolist(), y.tolist(), (p > 0).tolist(), strict=True):
        s.push_back(a, b, c, d)
    return s


def demo_events(frames: int = 60) -> tuple[np.ndarray, ...]:
    src = VirtualEyeFrames(0)
    em = EventEmulator(DAVIS346_SIZE, seed=0)
    chunks = []
    for k in range(frames + 1):
        ev, ts = em.emulate(src.read(k)[1], k / 30.0)
        chunks.append((ev, ts))
    ev = np.concatenate([c[0] for c in chunks])
    ts = np.concatenate([c[1] for c in chunks])
    t_us = 1_700_000_000_000_000 + np.round(ts * 1e6).astype(np.int64)
    return t_us, ev["x"], ev["y"], ev["polarity"]


def bench_conversion(budget: float) -> dict:
    out = {}
    demo = demo_events()
    rng = np.random.default_rng(0)
    n = 300_000  # 0.1 s of a 3 M events/s burst
    t = 1_700_000_000_000_000 + np.sort(rng.integers(0, 100_000, n))
    dense = (t, rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n).astype(np.int8))
    for label, data, span_s in (("demo", demo, 2.0), ("dense", dense, 0.1)):
        m = len(data[0])
        base = rate_of(lambda d=data: python_loop(*d), m, budget)
        exact = rate_of(lambda d=data: events_to_store(*d), m, budget)
        binned = rate_of(lambda d=data: events_to_store_binned(*d, (W, H), 1000), m, budget)
        out[label] = {
            "events": m,
            "events_per_s_of_data": m / span_s,
            "python_loop_ev_per_s": base,
            "events_to_store_ev_per_s": exact,
            "binned_1ms_ev_per_s": binned,
            "exact_vs_loop": exact / base,
            "binned_vs_loop": binned / base,
        }
    return out


# ------------------------------------------------------------------ (b)
class Consumer(threading.Thread):
    """What the aligner does with events: every 33 ms, bin what is new into count frames."""

    def __init__(self, driver: DavisDriver, stream: str, size=(H, W)) -> None:
        super().__init__(daemon=True)
        self.reader = driver.rings[stream].reader()
        self.size = size
        self.binned = 0
        self.busy_s = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.033):
            self.step()
        self.step()

    def step(self) -> None:
        t0 = time.thread_time()
        chunk = self.reader.read()
        if len(chunk):
            ends = np.array([chunk.ts[-1] + 1e-9])
            span = chunk.ts[-1] - chunk.ts[0] + 2e-9
            bin_events(
                chunk.ts, chunk.data, ends, span, (H, W), self.size, EventRepresentation.COUNT
            )
            self.binned += len(chunk)
        self.busy_s += time.thread_time() - t0  # CPU of this thread, not GIL waits


def start_writer(
    tmp: Path, seconds: float, per: int, rate: float = 0.0
) -> tuple[subprocess.Popen, int]:
    script = tmp / "bench_writer.py"
    script.write_text(WRITER)
    port = free_port_pair()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port), str(seconds), str(per), str(rate)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "listening"
    return proc, port


def writer_result(proc: subprocess.Popen) -> tuple[int, float]:
    line = proc.stdout.readline().split()
    proc.wait(30)
    return int(line[1]), float(line[2])


def bench_bare_reader(tmp: Path, seconds: float, per: int) -> dict:
    proc, port = start_writer(tmp, seconds, per)
    r = dv.io.NetworkReader("127.0.0.1", port)
    got, t_first, t_last = 0, None, time.perf_counter()
    while True:
        e = r.getNextEventBatch()
        if e is None:
            if time.perf_counter() - t_last > 1.0 or not r.isRunning():
                break
            time.sleep(0.0005)
            continue
        a = e.numpy()
        t_last = time.perf_counter()
        t_first = t_first or t_last
        got += len(a)
    sent, sent_s = writer_result(proc)
    del r
    return {"sent": sent, "received": got, "writer_ev_per_s": sent / sent_s,
            "received_ev_per_s": got / sent_s}  # fmt: skip


def bench_driver(tmp: Path, seconds: float, per: int, consume: bool, rate: float = 0.0) -> dict:
    proc, port = start_writer(tmp, seconds, per, rate)
    d = DavisDriver("network", endpoints={"events": Endpoint(port=port)}, poll_interval=0.0005)
    consumer = Consumer(d, "davis-events") if consume else None
    c0 = cpu_seconds()
    d.start()
    if consumer is not None:
        consumer.start()
    sent, sent_s = writer_result(proc)
    ring = d.rings["davis-events"]
    end = time.monotonic() + 5
    while ring.head < sent and time.monotonic() < end:
        time.sleep(0.02)
    if consumer is not None:
        consumer.stop.set()
        consumer.join(10)
    d.stop()
    cpu = cpu_seconds() - c0
    h = d.health()["davis-events"]
    out = {
        "sent": sent,
        "received": ring.head,
        "lost_in_transit": sent - ring.head,
        "overrun_lost": h.lost,
        "writer_ev_per_s": sent / sent_s,
        "received_ev_per_s": ring.head / sent_s,
        "ratio_vs_davis346": ring.head / sent_s / DAVIS346_MAX_RATE,
        "process_cpu_share": cpu / sent_s,
    }
    if consumer is not None:
        out["binned_ev_per_s"] = consumer.binned / sent_s
        out["binned_ratio_vs_davis346"] = consumer.binned / sent_s / DAVIS346_MAX_RATE
        out["consumer_lost"] = consumer.reader.lost
        out["consumer_busy_share"] = consumer.busy_s / sent_s
    return out


# ------------------------------------------------------------------ (c)
def bench_cpu(seconds: float) -> dict:
    port = free_port_pair()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "app.serve", "virtual-davis", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert "serving" in server.stdout.readline()
    out: dict = {}
    try:
        c0, w0 = cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        out["idle_cpu_share"] = (cpu_seconds() - c0) / (time.perf_counter() - w0)

        readers = [
            dv.io.NetworkReader("127.0.0.1", port),
            dv.io.NetworkReader("127.0.0.1", port + 1),
        ]
        n_ev = n_fr = 0
        s0 = server_cpu(server.pid)
        c0, w0 = cpu_seconds(), time.perf_counter()
        while time.perf_counter() - w0 < seconds:
            got = False
            while (e := readers[0].getNextEventBatch()) is not None:
                n_ev += len(e.numpy())
                got = True
            while (f := readers[1].getNextFrame()) is not None:
                n_fr += f.image.shape[0] > 0
                got = True
            if not got:
                time.sleep(0.002)
        wall = time.perf_counter() - w0
        out["bare_readers"] = {
            "cpu_share": (cpu_seconds() - c0) / wall,
            "events_per_s": n_ev / wall,
            "fps": n_fr / wall,
            "server_cpu_share": (server_cpu(server.pid)[0] - s0[0]) / wall,
            "server_main_thread_cpu_share": (server_cpu(server.pid)[1] - s0[1]) / wall,
        }
        del readers
        time.sleep(0.5)

        d = DavisDriver(
            "network", endpoints={"events": Endpoint(port=port), "frames": Endpoint(port=port + 1)}
        )
        d.start()
        time.sleep(1.0)  # connected and steady
        h0 = {k: v.received for k, v in d.health().items()}
        s0 = server_cpu(server.pid)
        c0, w0 = cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        wall = time.perf_counter() - w0
        cpu = cpu_seconds() - c0
        h = d.health()
        d.stop()
        out["driver"] = {
            "cpu_share": cpu / wall,
            "events_per_s": (h["davis-events"].received - h0["davis-events"]) / wall,
            "fps": (h["davis-frames"].received - h0["davis-frames"]) / wall,
            "latency_ms": 1e3 * h["davis-events"].latency,
            "server_cpu_share": (server_cpu(server.pid)[0] - s0[0]) / wall,
            "server_main_thread_cpu_share": (server_cpu(server.pid)[1] - s0[1]) / wall,
        }
        out["driver_minus_idle"] = out["driver"]["cpu_share"] - out["idle_cpu_share"]
        out["driver_vs_bare"] = out["driver"]["cpu_share"] / max(
            out["bare_readers"]["cpu_share"], 1e-9
        )
    finally:
        server.terminate()
        server.wait(10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    machine = MachineWatch()
    logging.basicConfig(level=logging.ERROR)  # the writers' exits are expected disconnections
    seconds = 3.0 if args.quick else args.seconds
    budget = 0.3 if args.quick else 1.0
    repeats = 1 if args.quick else 2
    t_start = time.perf_counter()
    per = 50_000

    a = bench_conversion(budget)
    print("(a) numpy -> dv.EventStore, events/s (best of runs)")
    print(
        f"{'data':>6} {'events':>8} {'python loop':>12} {'to_store':>10} {'x':>5} {'binned 1ms':>11} {'x':>5}"
    )
    for k, r in a.items():
        print(f"{k:>6} {r['events']:>8} {r['python_loop_ev_per_s'] / 1e6:>10.2f} M"
              f" {r['events_to_store_ev_per_s'] / 1e6:>8.2f} M {r['exact_vs_loop']:>5.1f}"
              f" {r['binned_1ms_ev_per_s'] / 1e6:>9.2f} M {r['binned_vs_loop']:>5.1f}")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        runs: dict[str, list[dict]] = {"bare": [], "driver": [], "full": []}
        for _ in range(repeats):  # interleaved, best kept: the machine is shared
            runs["bare"].append(bench_bare_reader(tmpd, seconds, per))
            runs["driver"].append(bench_driver(tmpd, seconds, per, consume=False))
            runs["full"].append(bench_driver(tmpd, seconds, per, consume=True))
        bare, drv, full = (
            max(runs[k], key=lambda r: r["received_ev_per_s"]) for k in ("bare", "driver", "full")
        )
        paced = bench_driver(tmpd, seconds, per, consume=True, rate=DAVIS346_MAX_RATE)
    print(f"\n(b) network -> ring -> event frames, writer as fast as it can, {seconds:g} s each")
    print(
        f"  bare NetworkReader + numpy: {bare['received_ev_per_s'] / 1e6:6.2f} M ev/s "
        f"(writer {bare['writer_ev_per_s'] / 1e6:.2f} M/s, lost {bare['sent'] - bare['received']})"
    )
    for label, r in (("driver -> ring", drv), ("driver -> ring -> frames", full)):
        print(
            f"  {label:<25} {r['received_ev_per_s'] / 1e6:6.2f} M ev/s = "
            f"{r['ratio_vs_davis346']:.2f} x DAVIS346 top rate; vs bare "
            f"{r['received_ev_per_s'] / bare['received_ev_per_s']:.2f}; lost {r['lost_in_transit']}"
            f" in transit, {r['overrun_lost']} to overrun; process CPU {r['process_cpu_share']:.2f}"
        )
    print(f"  event frames binned: {full['binned_ev_per_s'] / 1e6:.2f} M ev/s = "
          f"{full['binned_ratio_vs_davis346']:.2f} x DAVIS346; consumer lost {full['consumer_lost']}, "
          f"busy {full['consumer_busy_share']:.2f} of a core")  # fmt: skip

    print(
        f"  paced at the DAVIS346's top rate: {paced['received_ev_per_s'] / 1e6:.2f} M ev/s received, "
        f"lost {paced['lost_in_transit']} in transit, {paced['overrun_lost']} to overrun, "
        f"{paced['consumer_lost']} by the frame consumer; binned {paced['binned_ev_per_s'] / 1e6:.2f}"
        f" M ev/s; process CPU {paced['process_cpu_share']:.2f}"
    )

    c = bench_cpu(seconds)
    print(f"\n(c) CPU share at the demo's load (virtual DAVIS server), {seconds:g} s each")
    print(f"  idle process:            {c['idle_cpu_share']:.3f}")
    b = c["bare_readers"]
    print(
        f"  bare NetworkReaders:     {b['cpu_share']:.3f}  ({b['events_per_s'] / 1e3:.0f} k ev/s, "
        f"{b['fps']:.1f} fps)"
    )
    dr = c["driver"]
    print(
        f"  DavisDriver:             {dr['cpu_share']:.3f}  ({dr['events_per_s'] / 1e3:.0f} k ev/s, "
        f"{dr['fps']:.1f} fps, latency {dr['latency_ms']:.1f} ms); x bare {c['driver_vs_bare']:.2f}"
    )
    print(f"  (the server process: {dr['server_cpu_share']:.2f} of a core, of which its main thread "
          f"(render, emulate, EventStores) {dr['server_main_thread_cpu_share']:.2f}; the rest is "
          f"dv's NetworkWriter threads busy-polling at nice 19)")  # fmt: skip

    elapsed = time.perf_counter() - t_start
    print(f"\ntotal {elapsed:.1f} s")
    write_results("bench_davis", {
        "quick": args.quick,
        "seconds": seconds,
        "packet_events": per,
        "machine": {"dv_processing": dv.__version__},
        "davis346_max_rate": DAVIS346_MAX_RATE,
        "conversion": a,
        "throughput": {"bare_reader": bare, "driver": drv, "driver_and_frames": full,
                       "paced_at_davis346_rate": paced,
                       "repeats": repeats, "all_runs": runs},
        "cpu_demo_load": c,
        "elapsed_s": elapsed,
    }, machine)  # fmt: skip


if __name__ == "__main__":
    main()
