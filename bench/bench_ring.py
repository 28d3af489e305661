"""Ring buffers: O(chunk) writes and O(log n) time queries against what a careless engineer writes.

Baselines, measured in the same run on the same chunks:
- ``copy``: a plain numpy copy of the same bytes into preallocated arrays (the floor);
- ``concat``: ``buf = np.concatenate([buf, chunk])[-capacity:]`` (data and stamps), O(buffer) per write;
- ``roll``: ``buf = np.roll(buf, -n); buf[-n:] = chunk`` (data and stamps), O(buffer) per write;
- ``mask``: a time query as ``buf[(ts >= t0) & (ts < t1)]``, O(buffer) per query.

Sections: (a) numeric write throughput, 32 channels float32, chunks of 8/64/512 samples;
(b) time per 64-sample write against capacity; (c) ``range()`` time against ring size;
(d) DVS event ring write throughput. Every figure is the median of several repeats
(time.perf_counter), reported per call.

    .venv/bin/python bench/bench_ring.py [--quick]

Writes bench/results/bench_ring.json.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _measure import MachineWatch  # noqa: E402
from _results import write_results  # noqa: E402

from core.ring import Ring, ring_for  # noqa: E402
from core.streams import EVENT_DTYPE, Modality, StreamSpec  # noqa: E402

CHANNELS = 32
RATE = 2048.0  # Hz; stamps advance as a fast EEG amplifier's would


# ------------------------------------------------------------------ baselines


class ConcatBuffer:
    """The naive history buffer: append by concatenation, keep the tail."""

    def __init__(self, capacity: int, item_shape: tuple[int, ...], dtype) -> None:
        self.capacity = capacity
        self.data = np.zeros((capacity, *item_shape), dtype=dtype)
        self.ts = np.zeros(capacity, dtype=np.float64)

    def write(self, data: np.ndarray, ts: np.ndarray) -> None:
        self.data = np.concatenate([self.data, data])[-self.capacity :]
        self.ts = np.concatenate([self.ts, ts])[-self.capacity :]


class RollBuffer:
    """The other naive history buffer: shift everything left, write at the end."""

    def __init__(self, capacity: int, item_shape: tuple[int, ...], dtype) -> None:
        self.data = np.zeros((capacity, *item_shape), dtype=dtype)
        self.ts = np.zeros(capacity, dtype=np.float64)

    def write(self, data: np.ndarray, ts: np.ndarray) -> None:
        n = len(ts)
        self.data = np.roll(self.data, -n, axis=0)
        self.ts = np.roll(self.ts, -n)
        self.data[-n:] = data
        self.ts[-n:] = ts


class CopyBuffer:
    """The floor: a plain numpy copy of the same bytes (data and stamps) into preallocated
    arrays, with none of the ring's bookkeeping. Ring time / copy time is the ring's overhead."""

    def __init__(self, capacity: int, item_shape: tuple[int, ...], dtype) -> None:
        self.data = np.zeros((capacity, *item_shape), dtype=dtype)
        self.ts = np.zeros(capacity, dtype=np.float64)
        self.pos = 0

    def write(self, data: np.ndarray, ts: np.ndarray) -> None:
        n = len(ts)
        if self.pos + n > len(self.ts):
            self.pos = 0
        self.data[self.pos : self.pos + n] = data
        self.ts[self.pos : self.pos + n] = ts
        self.pos += n


def mask_query(data: np.ndarray, ts: np.ndarray, t0: float, t1: float) -> tuple:
    keep = (ts >= t0) & (ts < t1)
    return data[keep], ts[keep]


# ------------------------------------------------------------------ timing


@dataclass
class Stamps:
    """Increasing stamps handed out chunk by chunk, so no write takes the clamping path."""

    n: int
    next_t: float = 1000.0

    def __post_init__(self) -> None:
        self._step = np.arange(self.n, dtype=np.float64) / RATE

    def __call__(self) -> np.ndarray:
        ts = self.next_t + self._step
        self.next_t += self.n / RATE
        return ts


def per_call(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per call over ``calls`` calls."""
    fn()  # warm: page faults, first allocations
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return float(np.median(times))


def calls_for(seconds_per_call_guess: float, budget_s: float, lo: int = 3, hi: int = 5000) -> int:
    return int(np.clip(budget_s / max(seconds_per_call_guess, 1e-9), lo, hi))


def writer(buf, chunk: np.ndarray, stamps: Stamps) -> Callable[[], None]:
    def write() -> None:
        buf.write(chunk, stamps())

    return write


def prefill(buf, capacity: int, chunk_rows: int = 65536) -> None:
    """Fill a ring once around so its pages are touched and writes wrap."""
    item_shape = buf.item_shape
    stamps = Stamps(min(chunk_rows, capacity), next_t=0.0)
    block = np.zeros((stamps.n, *item_shape), dtype=buf.dtype)
    for _ in range(-(-capacity // stamps.n) + 1):
        buf.write(block, stamps())


def probe(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------ sections


def bench_write_throughput(capacity: int, chunks: list[int], repeats: int, budget: float) -> list:
    """(a) items/s of Ring.write vs the two naive buffers, at one realistic capacity."""
    rows = []
    rng = np.random.default_rng(0)
    for n in chunks:
        chunk = rng.standard_normal((n, CHANNELS)).astype(np.float32)
        ring = Ring(capacity, (CHANNELS,), np.float32)
        prefill(ring, capacity)
        stamps = Stamps(n)
        write = writer(ring, chunk, stamps)
        t_ring = per_call(write, calls_for(probe(write), budget), repeats)
        row = {"chunk": n, "capacity": capacity, "ring_s": t_ring, "ring_items_per_s": n / t_ring}
        for name, cls in (("copy", CopyBuffer), ("concat", ConcatBuffer), ("roll", RollBuffer)):
            buf = cls(capacity, (CHANNELS,), np.float32)
            write = writer(buf, chunk, Stamps(n))
            t = per_call(write, calls_for(probe(write), budget), repeats)
            row[f"{name}_s"] = t
            row[f"{name}_items_per_s"] = n / t
            row[f"ratio_vs_{name}"] = t / t_ring
            del buf
        row["ring_overhead_vs_copy"] = t_ring / row["copy_s"]
        rows.append(row)
        gc.collect()
    return rows


def bench_write_vs_capacity(capacities: list[int], n: int, repeats: int, budget: float) -> list:
    """(b) seconds per write against capacity: flat for the ring, linear for the baselines."""
    rows = []
    chunk = np.random.default_rng(1).standard_normal((n, CHANNELS)).astype(np.float32)
    for cap in capacities:
        ring = Ring(cap, (CHANNELS,), np.float32)
        prefill(ring, cap)
        write = writer(ring, chunk, Stamps(n))
        row = {"capacity": cap, "chunk": n, "mbytes": cap * CHANNELS * 4 / 1e6}
        row["ring_s"] = per_call(write, calls_for(probe(write), budget), repeats)
        del ring
        gc.collect()
        for name, cls in (("concat", ConcatBuffer), ("roll", RollBuffer)):
            buf = cls(cap, (CHANNELS,), np.float32)
            write = writer(buf, chunk, Stamps(n))
            row[f"{name}_s"] = per_call(write, calls_for(probe(write), budget), repeats)
            row[f"ratio_vs_{name}"] = row[f"{name}_s"] / row["ring_s"]
            del buf, write
            gc.collect()
        rows.append(row)
    return rows


def range_row(cap: int, window_s: float, queries: int, repeats: int, seed: int) -> dict:
    """One size of (c): a wrapped ring, random 1-window queries, the mask scan beside it."""
    ring = Ring(cap, (CHANNELS,), np.float32)
    prefill(ring, cap)
    extra = cap // 3  # the stored stamps now wrap around the end of the array
    ring.write(
        np.zeros((extra, CHANNELS), np.float32),
        ring.last_timestamp() + (1 + np.arange(extra)) / RATE,
    )
    flat = ring.latest(cap)  # the naive buffer: the same items, unwrapped and contiguous
    starts = np.random.default_rng(seed).uniform(
        float(flat.ts[0]), float(flat.ts[-1]) - window_s, size=queries
    )
    it = itertools.cycle(starts.tolist())

    def query() -> None:
        t0 = next(it)
        ring.range(t0, t0 + window_s)

    def search() -> None:
        ring.search(next(it))

    def naive() -> None:
        t0 = next(it)
        mask_query(flat.data, flat.ts, t0, t0 + window_s)

    got = ring.range(starts[0], starts[0] + window_s)
    ref = mask_query(flat.data, flat.ts, starts[0], starts[0] + window_s)
    assert np.array_equal(got.ts, ref[1]), "ring.range disagrees with the mask scan"
    row: dict = {"size": cap, "window_items": len(got)}
    row["range_s"] = per_call(query, queries, repeats)
    row["search_s"] = per_call(search, queries, repeats)
    row["mask_s"] = per_call(naive, max(3, min(queries, calls_for(probe(naive), 0.2))), repeats)
    row["ratio_vs_mask"] = row["mask_s"] / row["range_s"]
    return row


def bench_range_vs_size(sizes: list[int], window_s: float, queries: int, repeats: int) -> list:
    """(c) range() and search() time against ring size, vs a boolean-mask scan."""
    rows = []
    for k, cap in enumerate(sizes):
        rows.append(range_row(cap, window_s, queries, repeats, seed=k))
        gc.collect()
    return rows


def bench_events(chunks: list[int], repeats: int, budget: float) -> list:
    """(d) events/s into the default event ring (4 M events), vs concatenation."""
    rows = []
    rng = np.random.default_rng(3)
    spec = StreamSpec("dvs", Modality.EVENTS, 0.0)
    for n in chunks:
        ev = np.empty(n, dtype=EVENT_DTYPE)
        ev["x"] = rng.integers(0, 640, n)
        ev["y"] = rng.integers(0, 480, n)
        ev["polarity"] = rng.integers(0, 2, n)
        ring = ring_for(spec)
        prefill(ring, ring.capacity)
        write = writer(ring, ev, Stamps(n))
        t_ring = per_call(write, calls_for(probe(write), budget), repeats)
        buf = ConcatBuffer(ring.capacity, (), EVENT_DTYPE)
        write = writer(buf, ev, Stamps(n))
        t_cat = per_call(write, calls_for(probe(write), budget), repeats)
        rows.append(
            {
                "chunk": n,
                "capacity": ring.capacity,
                "ring_s": t_ring,
                "ring_events_per_s": n / t_ring,
                "concat_s": t_cat,
                "concat_events_per_s": n / t_cat,
                "ratio_vs_concat": t_cat / t_ring,
            }
        )
        del ring, buf
        gc.collect()
    return rows


# ------------------------------------------------------------------ report


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:9.2f} M/s"


def fmt_us(s: float) -> str:
    return f"{s * 1e6:11.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (~10 s)")
    args = ap.parse_args()
    machine = MachineWatch()
    quick = args.quick
    repeats = 3 if quick else 7
    budget = 0.03 if quick else 0.12  # seconds per repeat and measurement
    capacity_a = 65536  # 32 s at 2048 Hz
    capacities = [10_000, 100_000, 1_000_000] + ([] if quick else [2_000_000])
    t_start = time.perf_counter()

    print(
        f"ring benchmark  numpy {np.__version__}  python {platform.python_version()}"
        f"  {'quick' if quick else 'full'}"
    )

    a = bench_write_throughput(capacity_a, [8, 64, 512], repeats, budget)
    print(f"\n(a) write throughput, {CHANNELS} ch float32, capacity {capacity_a} (32 s at 2048 Hz)")
    print(
        f"{'chunk':>6} {'Ring':>13} {'numpy copy':>13} {'concat':>13} {'roll':>13}"
        f" {'Ring/copy':>9} {'x concat':>9} {'x roll':>8}"
    )
    for r in a:
        print(
            f"{r['chunk']:>6} {fmt_rate(r['ring_items_per_s'])} {fmt_rate(r['copy_items_per_s'])}"
            f" {fmt_rate(r['concat_items_per_s'])} {fmt_rate(r['roll_items_per_s'])}"
            f" {r['ring_overhead_vs_copy']:9.2f} {r['ratio_vs_concat']:9.0f} {r['ratio_vs_roll']:8.0f}"
        )

    b = bench_write_vs_capacity(capacities, 64, repeats, budget)
    print(f"\n(b) time per 64-sample write vs capacity ({CHANNELS} ch float32), microseconds")
    print(
        f"{'capacity':>10} {'MB':>7} {'Ring':>11} {'concat':>11} {'roll':>11}"
        f" {'x concat':>9} {'x roll':>8}"
    )
    for r in b:
        print(
            f"{r['capacity']:>10} {r['mbytes']:7.1f} {fmt_us(r['ring_s'])} {fmt_us(r['concat_s'])}"
            f" {fmt_us(r['roll_s'])} {r['ratio_vs_concat']:9.0f} {r['ratio_vs_roll']:8.0f}"
        )
    growth = {k: b[-1][f"{k}_s"] / b[0][f"{k}_s"] for k in ("ring", "concat", "roll")}
    size_x = b[-1]["capacity"] / b[0]["capacity"]
    print(
        f"capacity x{size_x:.0f}: Ring x{growth['ring']:.2f}, concat x{growth['concat']:.0f},"
        f" roll x{growth['roll']:.0f}"
    )

    c = bench_range_vs_size(capacities, 1.0, 200 if quick else 1000, repeats)
    print("\n(c) range() of a 1 s window (2048 items x 32 ch) vs ring size, microseconds")
    print(f"{'size':>10} {'range':>11} {'search':>11} {'mask scan':>11} {'x mask':>8}")
    for r in c:
        print(
            f"{r['size']:>10} {fmt_us(r['range_s'])} {fmt_us(r['search_s'])}"
            f" {fmt_us(r['mask_s'])} {r['ratio_vs_mask']:8.0f}"
        )

    d = bench_events([1000, 10_000] + ([] if quick else [100_000]), repeats, budget)
    print(f"\n(d) event ring writes (x, y, polarity + float64 stamp), capacity {d[0]['capacity']}")
    print(f"{'chunk':>8} {'Ring':>13} {'concat':>13} {'x concat':>9}")
    for r in d:
        print(
            f"{r['chunk']:>8} {fmt_rate(r['ring_events_per_s'])}"
            f" {fmt_rate(r['concat_events_per_s'])} {r['ratio_vs_concat']:9.0f}"
        )

    elapsed = time.perf_counter() - t_start
    print(f"\ntotal {elapsed:.1f} s")
    write_results(
        "bench_ring",
        {
            "quick": quick,
            "repeats": repeats,
            "channels": CHANNELS,
            "write_throughput": a,
            "write_vs_capacity": b,
            "write_growth": {"capacity_factor": size_x, **growth},
            "range_vs_size": c,
            "event_write": d,
            "elapsed_s": elapsed,
        },
        machine,
    )


if __name__ == "__main__":
    main()
