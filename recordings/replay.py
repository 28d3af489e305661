"""Replay a recording through the live pipeline: a driver that fills the same rings, a clock,
and the ``ReplayControl`` the CLI and the dashboard steer it with.

Two ways to play:

- paced (``speed`` 1 or N): items are pushed when the replay clock, which runs
  at ``speed`` times real time, reaches their stamp. Stamps are shifted so the
  replay starts now on the LSL clock (at speed 1 the replay clock *is* the LSL
  clock). The aligner and workers behave as live (latest wins).
- as fast as possible (``speed`` None): the original stamps are kept and the
  clock is virtual. The driver pushes the data of one step (``step_s`` of
  recording), moves the clock to the step's end and waits until the aligner
  has cut every window due by then and every worker is idle before the next
  step. The aligner catches up every hop and the workers block instead of
  dropping windows, so no window is skipped or cut early and two replays give
  identical predictions; rings never run ahead of the aligner by more than a
  step, and are sized (``_make_ring``) to hold well over that.

Time only moves forward. A seek moves the read position. Paced, the sought
item is simply played next, now (the shift between recording and replay time
changes; the clock goes on). At max speed, when the seek goes back (or less
than ``SEEK_GAP_S`` ahead), the shift grows by a whole number of seconds (so
hop grids of whole fractions of a second stay on the recorded grid), the clock
jumps past every window that could still hold old data, and the aligner
restarts its hop schedule there, so no window mixes data from both sides.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from core.clock import VirtualClock, lsl_now
from core.ring import Ring
from core.streams import RingKind, StreamSpec
from drivers.base import Driver
from recordings.sources import Recording, Track

log = logging.getLogger(__name__)

#: seconds of recording each ring holds, per kind (well over a step plus a model window)
HOLD_S = {RingKind.NUMERIC: 30.0, RingKind.FRAMES: 10.0, RingKind.EVENTS: 5.0}
#: a seek back in the recording jumps the replay clock at least this far ahead (seconds),
#: so no window after the seek mixes in data from before it
SEEK_GAP_S = 30.0
#: seconds between pushes in paced mode
PACED_TICK_S = 0.005

Listener = Callable[[StreamSpec, np.ndarray, np.ndarray], None]


class ReplayClock(VirtualClock):
    """Replay time: virtual (moved by the driver) at max speed, else ``speed`` x real time."""

    def __init__(self, start: float, speed: float | None) -> None:
        super().__init__(start)
        self._speed = speed
        self._paused = False
        self._real0 = lsl_now()
        self._base = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        if self._speed is None or self._paused:
            return self._now
        return self._base + (lsl_now() - self._real0) * self._speed

    @property
    def speed(self) -> float | None:
        return self._speed

    def real_seconds(self, replay_seconds: float) -> float:
        """Real seconds a stretch of replay time takes at the current speed (0 at max)."""
        return replay_seconds / self._speed if self._speed else 0.0

    def set_mode(self, speed: float | None, paused: bool) -> None:
        """Change speed or pause; the current time carries over."""
        with self._lock:
            self._now = max(self._now, self.now())
            self._speed, self._paused = speed, paused
            self._base, self._real0 = self._now, lsl_now()

    def restart_at(self, t: float) -> None:
        """Start (again) from ``t`` now: before anything has read the clock, e.g. at start."""
        with self._lock:
            self._now = self._base = float(t)
            self._real0 = lsl_now()

    def jump_to(self, t: float) -> None:
        """Move to ``t`` (never back) at once, in either mode."""
        with self._lock:
            t = max(t, self.now())
            self._now = self._base = float(t)
            self._real0 = lsl_now()
        with self._cond:
            self._cond.notify_all()

    async def sleep_until(self, t: float) -> None:
        while not self._closed:
            now = self.now()
            if now >= t:
                return
            if self._speed is None or self._paused:
                await asyncio.sleep(0.0005 if self._speed is None else 0.01)
            else:
                await asyncio.sleep(min(0.02, max(0.0005, (t - now) / self._speed)))


def ring_capacity(track: Track, hold_s: float) -> int:
    """Items in the busiest ``hold_s`` seconds of a track (at least a few), so a ring holds
    that much of the recording whatever its rate."""
    return max(64, track.busiest(hold_s) + 16)


class ReplayDriver(Driver):
    """Pushes a recording's tracks into rings, paced by a ``ReplayControl``."""

    def __init__(self, recording: Recording, control: ReplayControl, name: str = "replay") -> None:
        self.recording = recording
        self.control = control
        self._tracks = {t.spec.name: t for t in recording.tracks}
        super().__init__(name, [t.spec for t in recording.tracks])
        self.listeners: list[Listener] = []
        self.pushed = dict.fromkeys(self._tracks, 0)

    def _close(self) -> None:
        """Listeners that hold something open (``--lsl``'s outlets) end with the replay, so a
        dashboard's next Start publishes afresh instead of beside a silent copy."""
        for listener in self.listeners:
            close = getattr(listener, "close", None)
            if close is not None:
                close()

    def _make_ring(self, spec: StreamSpec, seconds: float) -> Ring:
        track = self._tracks[spec.name]
        cap = ring_capacity(track, HOLD_S[spec.kind])
        if spec.kind is RingKind.EVENTS:
            from core.streams import EVENT_DTYPE

            return Ring(cap, (), EVENT_DTYPE)
        if spec.kind is RingKind.FRAMES:
            assert spec.frame_shape is not None
            return Ring(cap, spec.frame_shape, spec.dtype)
        return Ring(max(cap, 1024), (max(1, spec.n_channels),), spec.dtype)

    def start(self) -> None:
        # synchronously, before the session's engine reads the clock: loading the models
        # took a while since the control was made, and a paced clock would have run on
        self.control._anchor()
        super().start()

    def _run(self) -> None:
        self.control._run(self)

    def push_until(self, rec_t: float, shift: float, cursors: dict[str, int], limit: float) -> bool:
        """Push every item stamped before ``rec_t`` (recording time, at most ``limit``);
        True while any track has items left before ``limit``."""
        left = False
        for name, track in self._tracks.items():
            i0 = cursors[name]
            i1 = track.index(min(rec_t, limit), "left")
            if rec_t >= limit:
                i1 = track.index(limit, "right")
            cap = self.rings[name].capacity // 2
            while i0 < i1 and not self.stopping:
                j = min(i1, i0 + cap)
                ts, data = track.span(i0, j)
                ts = ts + shift
                self.push(name, data, ts, arrival=self.control.clock.now())  # replay time
                self.pushed[name] += j - i0
                for listener in self.listeners:
                    listener(track.spec, data, ts)
                i0 = j
            cursors[name] = i0
            end = track.index(limit, "right")
            left = left or i0 < end
        return left


class ReplayControl:
    """Play, pause, speed and seek of one replay (``session.replay``).

    ``speed`` None plays as fast as the pipeline goes, deterministically;
    ``from_s``/``to_s`` bound the part replayed (seconds from the recording's start).
    """

    def __init__(
        self,
        recording: Recording,
        speed: float | None = None,
        from_s: float = 0.0,
        to_s: float | None = None,
        step_s: float = 0.5,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"replay speed must be > 0 (or max), got {speed}")
        if to_s is not None and to_s <= from_s:
            raise ValueError(f"--to {to_s:g} s must be after --from {from_s:g} s")
        self.recording = recording
        self.t0 = recording.start
        self.duration = recording.duration
        self.from_s = min(max(0.0, from_s), self.duration)
        self.to_s = self.duration if to_s is None else min(max(self.from_s, to_s), self.duration)
        if self.from_s >= self.duration and self.duration > 0:
            raise ValueError(
                f"--from {from_s:g} s is past the end of {recording.path} ({self.duration:.3f} s)"
            )
        self.step_s = step_s
        start = self.t0 + self.from_s
        self._shift = 0.0 if speed is None else lsl_now() - start
        self.clock = ReplayClock(start + self._shift, speed)
        self._paused = False
        self._seek_to: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._finished = threading.Event()
        self.aligner: Any = None
        self.workers: list[Any] = []
        self.driver = ReplayDriver(recording, self)

    # ------------------------------------------------------------ wiring
    def attach(self, aligner: Any, workers: list[Any]) -> None:
        """The session's aligner and workers: at max speed the replay waits for them."""
        self.aligner = aligner
        self.workers = list(workers)
        self._apply_mode()

    def _apply_mode(self) -> None:
        deterministic = self.clock.speed is None
        if self.aligner is not None:
            self.aligner.catch_up = deterministic
        for w in self.workers:
            w.blocking = deterministic

    # ------------------------------------------------------------ contract
    def play(self) -> None:
        with self._lock:
            self._paused = False
            self.clock.set_mode(self.clock.speed, False)
        self._wake.set()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            self.clock.set_mode(self.clock.speed, True)
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float | None:
        return self.clock.speed

    def set_speed(self, speed: float | None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"replay speed must be > 0 (or None for max), got {speed}")
        with self._lock:
            self.clock.set_mode(speed, self._paused)
            self._apply_mode()
        self._wake.set()

    def seek(self, t: float) -> None:
        """Continue from ``t`` seconds after the recording's start."""
        with self._lock:
            self._seek_to = min(max(0.0, float(t)), self.duration)
            self._finished.clear()
        self._wake.set()

    @property
    def position(self) -> float:
        return min(max(0.0, self.clock.now() - self._shift - self.t0), self.duration)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def wait_finished(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    @property
    def shift(self) -> float:
        """Replay time minus recording time of every pushed item."""
        return self._shift

    @property
    def origin(self) -> float:
        """The replay clock's time at which the replayed part (``from_s``) begins: what a
        view's "session time" counts from (a paced replay's clock is only set to it once the
        replay starts, after the models have loaded)."""
        return self.t0 + self.from_s + self._shift

    # ------------------------------------------------------------ the driver thread
    def _anchor(self) -> None:
        """Paced: the replay starts now on the LSL clock (shift recomputed). Max: unchanged."""
        if self.clock.speed is not None:
            start = self.t0 + self.from_s
            self._shift = lsl_now() - start
            self.clock.restart_at(start + self._shift)

    def _tail_s(self) -> float:
        """Replay time after the last item until every window holding data is cut."""
        if self.aligner is None or not self.aligner.models:
            return 0.0
        return max(m.hop_s + m.allowed_lateness_s for m in self.aligner.models.values()) + 1e-6

    def _gate(self, driver: ReplayDriver, t: float) -> None:
        """Wait until the aligner has cut every window due by ``t`` and the workers are idle."""
        if self.aligner is None:
            return
        while not driver.stopping and self.aligner.next_due <= t and self.clock.speed is None:
            if driver.wait(0.0002):
                return
        for w in self.workers:
            while not driver.stopping and not w.wait_idle(0.2):
                pass

    def _run(self, driver: ReplayDriver) -> None:
        cursors = {
            t.spec.name: t.index(self.t0 + self.from_s, "left") for t in self.recording.tracks
        }
        limit = self.t0 + self.to_s
        # the aligner plans its first hop from the clock when it starts: not before then
        while self.aligner is not None and self.aligner.next_due == -math.inf:
            if driver.wait(0.001):
                return
        while not driver.stopping:
            with self._lock:
                seek, self._seek_to = self._seek_to, None
            if seek is not None:
                self._do_seek(seek, cursors)
                continue
            if self._paused:
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            if self.clock.speed is None:
                now = self.clock.now()
                rec_t = min(now - self._shift + self.step_s, limit)
                left = driver.push_until(rec_t, self._shift, cursors, limit)
                target = (rec_t if left else limit + self._tail_s()) + self._shift
                self.clock.advance_to(target)
                self._gate(driver, target)
                if not left:
                    self._finish()
            else:
                rec_t = self.clock.now() - self._shift
                left = driver.push_until(rec_t, self._shift, cursors, limit)
                if not left and rec_t >= limit + self._tail_s():
                    for w in self.workers:
                        w.wait_idle(5.0)
                    self._finish()
                else:
                    driver.wait(PACED_TICK_S)

    def _finish(self) -> None:
        if self.clock.speed is not None:
            with self._lock:  # the clock stops at the end, as the data did
                self.clock.set_mode(self.clock.speed, True)
        for name in self.driver.rings:
            self.driver.tracker(name).on_disconnect(
                f"end of the recording {self.recording.path.name}"
            )
        self._finished.set()
        while not self.driver.stopping and self._seek_to is None:
            self._wake.wait(0.05)
            self._wake.clear()

    def _do_seek(self, pos: float, cursors: dict[str, int]) -> None:
        target = self.t0 + pos
        now = self.clock.now()
        for t in self.recording.tracks:
            cursors[t.spec.name] = t.index(target, "left")
        if self.clock.speed is not None:
            # paced, as live: the sought data continues from now; the first windows after
            # it may still hold a little of what played before, as a live stream would
            with self._lock:
                self.clock.set_mode(self.clock.speed, self._paused)  # running again after the end
            self._shift = now - target
            self._finished.clear()
            return
        if target + self._shift < now + SEEK_GAP_S:  # back, or too close ahead: jump clear
            self._shift = float(math.ceil(now + SEEK_GAP_S - target))
        for name in self.driver.rings:
            self.driver.tracker(name).health.message = ""
        self.clock.jump_to(target + self._shift)
        if self.aligner is not None:
            self.aligner.resync()
            while not self.driver.stopping and self.aligner.resync_pending:
                if self.driver.wait(0.001):
                    return
        self._finished.clear()
