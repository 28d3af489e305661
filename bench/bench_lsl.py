"""LSL throughput and CPU: LslDriver against pylsl's own ``pull_chunk(dest_obj=...)`` loop.

An outlet in a subprocess sends float32 samples; this process reads them either
through ``LslDriver`` (pull into a preallocated array, ring write, health) or
through a bare pylsl loop with the same inlet settings (clock-sync + de-jitter
+ monotonize, same buffer, same chunk cap) that only counts what it pulls:
"pylsl" pulls again as soon as data is there, "pylsl-paced" waits the driver's
poll_interval between pulls like the driver does (so driver / pylsl-paced is
the driver's own overhead: ring write, health, hole check). Both
run in a thread of this process, one after the other, alternating, against a
fresh outlet each time. Figures:

- flood: the outlet pushes 1000-sample chunks of 64 channels as fast as it can;
  samples per second that reach the consumer (what a consumer on one core can
  take), and the ratios driver / bare loop.
- paced: 64 channels at fixed high rates; received / sent (loss) and CPU share.
- demo: 32 channels at 256 Hz pushed sample by sample (an amplifier's worst
  case for wake-ups); CPU share of the driver (fraction of one core: user +
  system time of this process, liblsl's receiver thread included) against the
  bare loop, and the driver's median latency (arrival minus sample time).

The machine may be busy (other jobs): runs alternate and medians are reported.

    .venv/bin/python bench/bench_lsl.py [--quick]

Writes bench/results/bench_lsl.json.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "LSLAPICFG", os.path.join(os.path.dirname(__file__), "..", "app", "configs", "lsl_api.cfg")
)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pylsl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _measure import MachineWatch, cpu_seconds  # noqa: E402
from _results import write_results  # noqa: E402

from core.clock import lsl_now  # noqa: E402
from drivers.lsl import LslDriver, LslQuery  # noqa: E402

#: The sender. Waits for "go" on stdin (the consumer is ready), then for a consumer to be
#: connected, sends for `seconds`, prints "sent N T", and exits when stdin closes.
PRODUCER = r"""
import json, os, sys, threading, time
import numpy as np, pylsl
cfg = json.loads(sys.argv[1])
n_ch, rate, mode = cfg["channels"], cfg["rate"], cfg["mode"]
info = pylsl.StreamInfo(cfg["name"], "EEG", n_ch, rate, "float32", cfg["source_id"])
outlet = pylsl.StreamOutlet(info, 0, cfg["buffer_s"])
print("ready", flush=True)
sys.stdin.readline()
end = time.monotonic() + 10
while not outlet.have_consumers() and time.monotonic() < end:
    time.sleep(0.01)
time.sleep(0.1)
sent = 0
if mode == "flood":
    chunk = np.random.default_rng(0).standard_normal((cfg["chunk"], n_ch)).astype(np.float32)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < cfg["seconds"]:
        outlet.push_chunk(chunk)
        sent += len(chunk)
    t1 = time.perf_counter()
else:
    block = np.random.default_rng(0).standard_normal((int(rate) + 1, n_ch)).astype(np.float32)
    per_sample = cfg.get("per_sample", False)
    t0 = time.perf_counter()
    lsl0 = pylsl.local_clock()
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= cfg["seconds"]:
            break
        due = int(elapsed * rate) + 1
        if due > sent:
            n = min(due - sent, len(block))
            if per_sample:
                for i in range(n):
                    outlet.push_sample(block[i], lsl0 + (sent + i) / rate)
            else:
                outlet.push_chunk(block[:n], lsl0 + (sent + n - 1) / rate)
            sent += n
        time.sleep(cfg.get("period", 0.001))
    t1 = time.perf_counter()
print(f"sent {sent} {t1 - t0}", flush=True)
sys.stdin.read()
"""


class BareLoop:
    """pylsl's own fixed-buffer pull loop with the driver's inlet settings; counts samples."""

    def __init__(self, source_id: str, max_buffered: int, cap: int, interval: float = 0.0) -> None:
        (info,) = pylsl.resolve_byprop("source_id", source_id, 1, 10)
        flags = pylsl.proc_clocksync | pylsl.proc_dejitter | pylsl.proc_monotonize
        self.inlet = pylsl.StreamInlet(
            info, max_buflen=max_buffered, recover=False, processing_flags=flags
        )
        self.inlet.time_correction(timeout=5)
        self.buf = np.empty((cap, info.channel_count()), dtype=np.float32)
        self.cap = cap
        self.interval = interval  # the driver's poll_interval, for the like-for-like variant
        self.received = 0
        self.last_arrival = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        inlet, buf, cap = self.inlet, self.buf, self.cap
        while not self._stop.is_set():
            _, ts = inlet.pull_chunk(
                timeout=0.1, max_samples=cap, dest_obj=buf, min_samples=1, as_numpy=True
            )
            if len(ts):
                self.received += len(ts)
                self.last_arrival = now = lsl_now()
                if self.interval and len(ts) < cap:
                    rest = self.interval - (lsl_now() - now)
                    if rest > 0:
                        time.sleep(rest)

    def start(self) -> None:
        self._thread.start()

    def ready(self) -> bool:
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class DriverConsumer:
    def __init__(self, source_id: str, max_buffered: int, ring_seconds: float) -> None:
        self.driver = LslDriver(
            LslQuery(source_id=source_id),
            max_buffered=max_buffered,
            resolve_timeout=10,
            ring_seconds=ring_seconds,
        )
        self.cap = self.driver._cap
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        """Health snapshots a GUI would take (every 100 ms): latency as the user sees it."""
        while not self._stop.wait(0.1):
            h = self.driver.health()[self.driver.stream]
            if h.received:
                self.latencies.append(h.latency)

    @property
    def received(self) -> int:
        return self.driver.health()[self.driver.stream].received

    @property
    def last_arrival(self) -> float:
        return self.driver.health()[self.driver.stream].last_arrival

    def start(self) -> None:
        self.driver.start()
        self._sampler.start()

    def ready(self) -> bool:  # the first clock-sync is done once the message is cleared
        return self.driver.tracker(self.driver.stream).health.message == ""

    def stop(self) -> None:
        self._stop.set()
        self.driver.stop()
        self._sampler.join(2)


def run(kind: str, cfg: dict, max_buffered: int = 2) -> dict:
    tag = uuid.uuid4().hex[:8]
    cfg = {**cfg, "name": f"bench-{tag}", "source_id": f"bench-{tag}", "buffer_s": max_buffered}
    proc = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, json.dumps(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        if kind == "driver":
            consumer = DriverConsumer(cfg["source_id"], max_buffered, ring_seconds=2.0)
        else:
            rate = cfg["rate"]
            cap = max(64, min(int(np.ceil(rate * 0.5)), (8 << 20) // (4 * cfg["channels"])))
            interval = (
                LslDriver.__init__.__kwdefaults__["poll_interval"] if kind == "pylsl-paced" else 0.0
            )
            consumer = BareLoop(cfg["source_id"], max_buffered, cap, interval)
        consumer.start()
        end = time.monotonic() + 10
        while not consumer.ready() and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.2)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        go = lsl_now()
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        line = proc.stdout.readline().split()
        assert line and line[0] == "sent", line
        sent, push_s = int(line[1]), float(line[2])
        end = time.monotonic() + 3
        while consumer.received < sent and time.monotonic() < end:
            time.sleep(0.01)
        wall1, cpu1 = time.perf_counter(), cpu_seconds()
        received = consumer.received
        span = consumer.last_arrival - go
        consumer.stop()
        out = {
            "sent": sent,
            "received": received,
            "lost": sent - received,
            "push_s": push_s,
            "samples_per_s": received / span if span > 0 else 0.0,
            "sent_per_s": sent / push_s,
            "cpu_share": (cpu1 - cpu0) / (wall1 - wall0),
            "chunk_cap": consumer.cap,
        }
        if isinstance(consumer, DriverConsumer):
            lat = [x for x in consumer.latencies if np.isfinite(x)]
            out["latency_median_ms"] = 1e3 * statistics.median(lat) if lat else None
            out["driver_error"] = repr(consumer.driver.error) if consumer.driver.error else None
        return out
    finally:
        proc.stdin.close()
        proc.kill()
        proc.wait(10)


#: driver: LslDriver; pylsl: the bare loop pulling as soon as data is there; pylsl-paced: the
#: bare loop with the driver's poll_interval between pulls (isolates the driver's own overhead)
KINDS = ("driver", "pylsl", "pylsl-paced")


def alternate(cfg: dict, reps: int) -> dict:
    runs: dict[str, list[dict]] = {k: [] for k in KINDS}
    for _ in range(reps):
        for kind in KINDS:
            runs[kind].append(run(kind, cfg))
    med = {
        k: {
            key: statistics.median(r[key] for r in rs)
            for key in ("samples_per_s", "cpu_share", "lost", "sent_per_s")
        }
        for k, rs in runs.items()
    }
    return {"config": cfg, "median": med, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter runs, one repetition")
    args = p.parse_args(argv)
    machine = MachineWatch()
    secs = 2.0 if args.quick else 3.0
    reps = 1 if args.quick else 2
    results: dict = {"machine": {"pylsl": pylsl.__version__, "liblsl": pylsl.library_version()}}

    def line(title: str, m: dict, key: str, fmt) -> str:
        return f"{title}: " + ", ".join(f"{k} {fmt(m[k][key])}" for k in KINDS)

    pct = "{:.2f} % of a core".format
    flood = alternate(
        {"mode": "flood", "channels": 64, "rate": 100_000.0, "chunk": 1000, "seconds": secs}, reps
    )
    m = flood["median"]
    for k in KINDS[1:]:
        flood[f"ratio_driver_vs_{k}"] = m["driver"]["samples_per_s"] / m[k]["samples_per_s"]
    results["flood_64ch"] = flood
    print(line("flood 64 ch, samples/s taken", m, "samples_per_s", "{:,.0f}".format))
    print(
        f"  ratio driver / pylsl {flood['ratio_driver_vs_pylsl']:.2f}, driver / pylsl-paced "
        f"{flood['ratio_driver_vs_pylsl-paced']:.2f}; producer {m['pylsl']['sent_per_s']:,.0f}/s"
    )

    results["paced_64ch"] = {}
    for rate in (20_000.0, 100_000.0):
        paced = alternate(
            {"mode": "paced", "channels": 64, "rate": rate, "seconds": secs, "period": 0.001}, reps
        )
        m = paced["median"]
        results["paced_64ch"][f"{rate:g}"] = paced
        print(line(f"paced 64 ch @ {rate:g} Hz, CPU", m, "cpu_share", lambda v: pct(100 * v)))
        print(line("  lost", m, "lost", "{:.0f}".format))

    demo_secs = 4.0 if args.quick else 10.0
    demo = alternate(
        {
            "mode": "paced",
            "channels": 32,
            "rate": 256.0,
            "seconds": demo_secs,
            "per_sample": True,
            "period": 0.002,
        },
        reps,
    )
    m = demo["median"]
    lat = [
        r["latency_median_ms"]
        for r in demo["runs"]["driver"]
        if r.get("latency_median_ms") is not None
    ]
    demo["driver_latency_median_ms"] = statistics.median(lat) if lat else None
    for k in KINDS[1:]:
        demo[f"cpu_ratio_driver_vs_{k}"] = m["driver"]["cpu_share"] / m[k]["cpu_share"]
    results["demo_32ch_256hz"] = demo
    print(line("demo 32 ch @ 256 Hz sample by sample, CPU", m, "cpu_share", lambda v: pct(100 * v)))
    print(line("  lost", m, "lost", "{:.0f}".format))
    print(
        f"  driver latency (arrival - sample time) median {demo['driver_latency_median_ms']:.2f} ms"
    )
    write_results("bench_lsl", results, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
