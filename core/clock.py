"""The one clock: LSL seconds.

Every timestamp inside affectlab is float64 seconds on ``pylsl.local_clock()``.
LSL's clock is monotonic and is what LSL inlets and XDF files already speak, so
choosing it means remote streams need no conversion beyond LSL's own
clock-sync. Sources that stamp in Unix time (BrainFlow, dv-processing) are
mapped with a measured Unix -> LSL offset.

The aligner never reads wall time directly; it asks a ``Clock``. Live sessions
use ``RealClock``; deterministic replay uses ``VirtualClock``, which only moves
when the data moves.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

try:  # pylsl is a hard dependency; the fallback only keeps core importable alone.
    from pylsl import local_clock as _lsl_clock
except ImportError:  # pragma: no cover - exercised only without pylsl
    _lsl_clock = time.monotonic


def lsl_now() -> float:
    """Seconds on the LSL clock (the one clock)."""
    return _lsl_clock()


class Clock(Protocol):
    """What the scheduler and workers may ask about time."""

    def now(self) -> float: ...

    async def sleep_until(self, t: float) -> None: ...


class RealClock:
    """The LSL clock, for live sessions."""

    def now(self) -> float:
        return lsl_now()

    async def sleep_until(self, t: float) -> None:
        delay = t - lsl_now()
        if delay > 0:
            await asyncio.sleep(delay)


class VirtualClock:
    """A clock advanced by the data, for replay as fast as possible.

    Replay drivers call ``advance_to`` after each chunk they push; the scheduler
    awaiting ``sleep_until`` wakes once every source has caught up. Time never
    goes backwards, so windows are cut in the same order on every run.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._cond = threading.Condition()
        self._closed = False

    def now(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        with self._cond:
            if t > self._now:
                self._now = float(t)
                self._cond.notify_all()

    def close(self) -> None:
        """Release every waiter: the data has ended."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def wait_until(self, t: float, timeout: float | None = None) -> bool:
        """Block a thread until the clock reaches ``t``; False on timeout or close."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._now >= t or self._closed, timeout)
            return ok and self._now >= t

    async def sleep_until(self, t: float) -> None:
        # A short poll keeps the event loop free of blocking waits and costs
        # nothing measurable at replay rates.
        while self._now < t and not self._closed:
            await asyncio.sleep(0.0005)


@dataclass(frozen=True)
class OffsetEstimate:
    """Unix minus LSL seconds, with the bracket that bounds its error."""

    offset: float
    uncertainty: float
    measured_at: float


def measure_unix_offset(n: int = 32) -> OffsetEstimate:
    """Estimate ``time.time() - lsl_now()`` from the tightest of ``n`` brackets.

    Reading LSL, Unix, LSL in a row bounds when the Unix reading was taken; the
    narrowest bracket of a few dozen tries is accurate to well under a
    microsecond on one host (REFERENCE 9).
    """
    best: tuple[float, float, float] | None = None
    for _ in range(max(1, n)):
        a = lsl_now()
        u = time.time()
        b = lsl_now()
        if best is None or (b - a) < best[0]:
            best = (b - a, u, (a + b) / 2)
    assert best is not None
    width, unix, mid = best
    return OffsetEstimate(offset=unix - mid, uncertainty=width / 2, measured_at=mid)


def unix_us_to_lsl(t_us: np.ndarray, unix_minus_lsl_us: int) -> np.ndarray:
    """Unix microseconds as one-clock seconds, for a whole-microsecond offset.

    The difference is taken in int64 (LSL seconds as float64 then keep ~4 ps; Unix
    seconds as float64 only ~0.2 us), and live drivers and the replay of their
    recording both map through here with whole microseconds, so a replay gives back
    the live stamps bit for bit (``recordings.aedat`` writes ``lsl * 1e6 + offset``).
    """
    return (np.asarray(t_us, np.int64) - np.int64(unix_minus_lsl_us)) * 1e-6


class UnixClockMapper:
    """Maps Unix-time stamps (BrainFlow, dv-processing) onto the one clock.

    The offset is re-measured every ``refresh_s`` seconds because NTP slews the
    Unix clock while the LSL clock stays monotonic.
    """

    def __init__(self, refresh_s: float = 5.0) -> None:
        self.refresh_s = refresh_s
        self._estimate = measure_unix_offset()
        self._lock = threading.Lock()

    @property
    def estimate(self) -> OffsetEstimate:
        self._maybe_refresh()
        return self._estimate

    @property
    def offset(self) -> float:
        """Unix seconds minus LSL seconds."""
        return self.estimate.offset

    def _maybe_refresh(self) -> None:
        if lsl_now() - self._estimate.measured_at > self.refresh_s:
            with self._lock:
                if lsl_now() - self._estimate.measured_at > self.refresh_s:
                    self._estimate = measure_unix_offset()

    def unix_to_lsl(self, unix_seconds):  # float or numpy array
        return unix_seconds - self.offset

    def lsl_to_unix(self, lsl_seconds):
        return lsl_seconds + self.offset

    def unix_us_to_lsl(self, unix_us):
        """dv-processing stamps: int64 microseconds since the Unix epoch."""
        return unix_us * 1e-6 - self.offset
