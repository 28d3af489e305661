"""Ring buffers: one writer thread, many reader threads, no loss until overwritten.

One class serves the three stream kinds of DESIGN.md: numeric samples
(n x channels), DVS events (structured x, y, polarity) and frames (n x H x W[x C]).
Timestamps (one clock, float64) are kept in a parallel array so every kind
answers "what lies between t0 and t1" by binary search.

Concurrency without a lock on the hot path: the writer first *reserves* the
absolute indices it is about to fill, copies, then *publishes* them by moving
``head``. A reader copies what it wants and afterwards checks the reservation:
anything older than ``reserved - capacity`` may have been overwritten while it
copied, so it is dropped and counted as lost. Writes cost O(chunk) (at most two
slice copies), never O(buffer): no concatenate, no roll.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.streams import EVENT_DTYPE, RingKind, StreamSpec


@dataclass
class RingChunk:
    """A copy of consecutive ring items. ``start`` is the absolute index of the first."""

    data: np.ndarray
    ts: np.ndarray
    start: int
    lost: int = 0

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def end(self) -> int:
        return self.start + len(self.ts)


class Ring:
    """Fixed-capacity circular store of items with float64 timestamps."""

    def __init__(self, capacity: int, item_shape: tuple[int, ...] = (), dtype=np.float32) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be >= 1")
        self.capacity = int(capacity)
        self.item_shape = tuple(item_shape)
        self.dtype = np.dtype(dtype)
        self._data = np.zeros((self.capacity, *self.item_shape), dtype=self.dtype)
        self._ts = np.zeros(self.capacity, dtype=np.float64)
        self._head = 0  # items published so far (absolute count)
        self._reserved = 0  # >= head: items whose slots may be being written
        self._last_t = -math.inf
        self.nonmonotonic = 0  # timestamps the writer had to clamp

    # ---------------------------------------------------------------- writer
    def write(self, data: np.ndarray, ts: np.ndarray) -> None:
        """Append a chunk. Only one thread may call this."""
        ts = np.asarray(ts, dtype=np.float64).reshape(-1)
        n = len(ts)
        if n == 0:
            return
        data = np.asarray(data)
        if data.ndim == 0 or data.shape[0] != n or data.shape[1:] != self.item_shape:
            raise ValueError(
                f"ring expects ({n}, {', '.join(map(str, self.item_shape))}) items, "
                f"got {data.shape}"
            )
        ts = self._monotonic(ts)
        skip = max(0, n - self.capacity)  # a chunk larger than the ring keeps its tail
        head = self._head
        self._reserved = head + n
        m = n - skip
        pos = (head + skip) % self.capacity
        first = min(m, self.capacity - pos)
        self._data[pos : pos + first] = data[skip : skip + first]
        self._ts[pos : pos + first] = ts[skip : skip + first]
        if first < m:
            self._data[: m - first] = data[skip + first :]
            self._ts[: m - first] = ts[skip + first :]
        self._last_t = float(ts[-1])
        self._head = head + n

    def _monotonic(self, ts: np.ndarray) -> np.ndarray:
        """Binary search needs sorted, finite stamps; clamp (and count) any that step back,
        and give a stamp that is not a number (or infinite) its predecessor's, so one bad
        stamp cannot carry into every stamp after it."""
        sorted_ = len(ts) == 1 or bool(np.all(ts[1:] >= ts[:-1]))  # False at any NaN
        if ts[0] >= self._last_t and sorted_ and math.isfinite(ts[0]) and math.isfinite(ts[-1]):
            return ts
        known = np.where(np.isfinite(ts), ts, np.nan)  # fmax passes over NaN
        if not math.isfinite(self._last_t) and not math.isfinite(known[0]):
            finite = known[np.isfinite(known)]  # a first stamp with no predecessor: the next
            if len(finite):
                known[0] = finite[0]
        fixed = np.fmax.accumulate(np.fmax(known, self._last_t))
        self.nonmonotonic += int(np.count_nonzero(fixed != ts))
        return fixed

    # ---------------------------------------------------------------- state
    @property
    def head(self) -> int:
        """Absolute count of items ever written."""
        return self._head

    def __len__(self) -> int:
        return min(self._head, self.capacity)

    @property
    def fill(self) -> float:
        return len(self) / self.capacity

    def last_timestamp(self) -> float:
        """Newest stamp, or NaN when nothing was written."""
        return self._last_t if self._head else math.nan

    def oldest_index(self) -> int:
        return max(0, self._reserved - self.capacity)

    # ---------------------------------------------------------------- readers
    def reader(self, from_oldest: bool = False) -> RingReader:
        """A cursor of its own; starts at the newest item unless ``from_oldest``."""
        return RingReader(self, self.oldest_index() if from_oldest else self._head)

    def copy_span(self, start: int, stop: int) -> RingChunk:
        """Copy absolute items [start, stop); items already overwritten are dropped as lost."""
        stop = min(stop, self._head)
        lost = 0
        floor = self.oldest_index()
        if start < floor:
            lost += floor - start
            start = floor
        if stop <= start:
            return self._empty(start, lost)
        data, ts = self._gather(start, stop)
        # Validate after copying: the writer may have lapped us meanwhile.
        floor = self.oldest_index()
        if start < floor:
            cut = min(floor, stop) - start
            lost += cut
            data, ts, start = data[cut:], ts[cut:], start + cut
        return RingChunk(data, ts, start, lost)

    def latest(self, n: int) -> RingChunk:
        head = self._head
        return self.copy_span(max(0, head - n), head)

    def search(self, t: float, side: str = "left") -> int:
        """Absolute index where ``t`` would be inserted among the stored stamps."""
        lo, hi = self.oldest_index(), self._head
        if hi <= lo:
            return hi
        p = lo % self.capacity
        n = hi - lo
        if p + n <= self.capacity:
            return lo + int(np.searchsorted(self._ts[p : p + n], t, side=side))
        seg1 = self._ts[p:]
        i = int(np.searchsorted(seg1, t, side=side))
        if i < len(seg1):
            return lo + i
        seg2 = self._ts[: n - len(seg1)]
        return lo + len(seg1) + int(np.searchsorted(seg2, t, side=side))

    def range(self, t0: float, t1: float, pad_before: int = 0, pad_after: int = 0) -> RingChunk:
        """Items with ``t0 <= t < t1``, plus up to ``pad_before``/``pad_after`` neighbours.

        The neighbours let the aligner interpolate at the window's edges.
        """
        i0 = max(self.oldest_index(), self.search(t0, "left") - pad_before)
        i1 = min(self._head, self.search(t1, "left") + pad_after)
        return self.copy_span(i0, i1)

    def _gather(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        p0 = start % self.capacity
        n = stop - start
        if p0 + n <= self.capacity:
            return self._data[p0 : p0 + n].copy(), self._ts[p0 : p0 + n].copy()
        k = self.capacity - p0
        data = np.empty((n, *self.item_shape), dtype=self.dtype)
        ts = np.empty(n, dtype=np.float64)
        data[:k] = self._data[p0:]
        data[k:] = self._data[: n - k]
        ts[:k] = self._ts[p0:]
        ts[k:] = self._ts[: n - k]
        return data, ts

    def _empty(self, start: int, lost: int = 0) -> RingChunk:
        return RingChunk(
            np.empty((0, *self.item_shape), dtype=self.dtype), np.empty(0, np.float64), start, lost
        )


class RingReader:
    """One consumer's cursor into a ring, with its own count of items it lost."""

    def __init__(self, ring: Ring, cursor: int) -> None:
        self.ring = ring
        self.cursor = cursor
        self.lost = 0
        self.received = 0

    @property
    def pending(self) -> int:
        return self.ring.head - self.cursor

    def read(self, max_items: int | None = None) -> RingChunk:
        """Everything new since the last read (oldest first), up to ``max_items``."""
        stop = self.ring.head
        if max_items is not None:
            stop = min(stop, self.cursor + max_items)
        chunk = self.ring.copy_span(self.cursor, stop)
        self.lost += chunk.lost
        self.received += len(chunk)
        self.cursor = max(self.cursor, chunk.end)
        return chunk


def ring_for(spec: StreamSpec, seconds: float = 30.0, capacity: int | None = None) -> Ring:
    """A ring sized for ``seconds`` of a stream (or an explicit capacity).

    Irregular streams get generous defaults: events 4 M (about 52 MB with stamps),
    frames at 30 fps, markers and the like 4096 items.
    """
    kind = spec.kind
    if kind is RingKind.EVENTS:
        return Ring(capacity or 1 << 22, (), EVENT_DTYPE)
    if kind is RingKind.FRAMES:
        rate = spec.nominal_rate or 30.0
        assert spec.frame_shape is not None
        return Ring(capacity or max(8, math.ceil(rate * seconds)), spec.frame_shape, spec.dtype)
    rate = spec.nominal_rate
    default = max(1024, math.ceil(rate * seconds)) if rate > 0 else 4096
    return Ring(capacity or default, (max(1, spec.n_channels),), spec.dtype)
