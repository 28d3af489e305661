"""Per-stream health: what the sources panel, the console health line and --stats report.

Drivers own one ``StreamHealth`` per stream and update it from their thread;
readers take ``snapshot()`` copies, so nobody ever waits on a driver.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.clock import lsl_now


@dataclass
class StreamHealth:
    """Counters and gauges of one stream. Times on the one clock, rates in Hz."""

    name: str
    connected: bool = False
    received: int = 0  # samples, events or frames that reached the ring
    lost: int = 0  # known lost at the source (sequence gaps, dropped frames, overflow)
    gaps: int = 0  # disconnections or holes in the timeline
    effective_rate: float = 0.0
    latency: float = math.nan  # arrival time minus sample time of the newest chunk, seconds
    last_sample_time: float = math.nan
    last_arrival: float = math.nan
    clock_offset: float = 0.0  # seconds added to source stamps to land on the one clock
    message: str = ""  # human-readable state ("waiting for stream 'EEG'...", errors)

    def staleness(self, now: float | None = None) -> float:
        """Seconds since the newest sample's timestamp."""
        if math.isnan(self.last_sample_time):
            return math.inf
        return (lsl_now() if now is None else now) - self.last_sample_time

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        d = asdict(self)
        d["staleness"] = self.staleness(now)
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()
        }


@dataclass
class HealthTracker:
    """Updates a StreamHealth from arrivals; effective rate over a sliding window."""

    health: StreamHealth
    window_s: float = 2.0
    _arrivals: deque = field(default_factory=deque)
    _in_window: int = 0

    def on_chunk(self, ts_last: float, n: int, arrival: float | None = None) -> None:
        """Record ``n`` items whose newest stamp is ``ts_last``, arrived at ``arrival``."""
        if n <= 0:
            return
        arrival = lsl_now() if arrival is None else arrival
        h = self.health
        h.received += n
        h.connected = True
        h.last_sample_time = ts_last
        h.last_arrival = arrival
        h.latency = arrival - ts_last
        # A running total keeps this O(1) per chunk: drivers call it 1000 times a second.
        self._arrivals.append((ts_last, n))
        self._in_window += n
        while self._arrivals and ts_last - self._arrivals[0][0] > self.window_s:
            self._in_window -= self._arrivals.popleft()[1]
        if len(self._arrivals) >= 2:
            span = ts_last - self._arrivals[0][0]
            count = self._in_window - self._arrivals[0][1]  # items after the first stamp
            h.effective_rate = count / span if span > 0 else 0.0

    def on_disconnect(self, message: str = "") -> None:
        h = self.health
        if h.connected:
            h.gaps += 1
        h.connected = False
        h.effective_rate = 0.0
        self._arrivals.clear()
        self._in_window = 0
        h.message = message

    def snapshot(self) -> StreamHealth:
        return replace(self.health)
