"""De-jitter for a regular stream's stamps that starts afresh at every hole.

A sender that hands LSL a device's blocks sample by sample stamps in bursts: the
stamps of one block are all but equal and the next block's come a block later.
Raw, the aligner would see a hole between every two bursts. Samples that came
together are stamped late, all but the last, so each such run is first placed
back from its last stamp at the nominal period (a stalled sender's backlog, pushed
at once, too); a straight line through the recent placed stamps (stamp = a + b *
sample index) then smooths what jitter is left. LSL's own de-jitter fits such a
line, but one line over the whole stream: after a sender pauses with its outlet
alive, its line runs on through the pause, so the hole vanishes from the stamps
and the samples after it are stamped up to the pause too early for tens of
seconds. ``StampSmoother`` fits the same
line (exponential forgetting, LSL's 90 s half time) but ends it where a stamp
lands further than ``hole_s`` from it, and starts a new one there: bursts are
smoothed and pauses stay holes of the right length.

The slope is drawn towards the nominal period by a prior worth ``prior_s``
seconds of samples, so that a line made from the first burst after a hole is
already sensible; the data outweighs it within a few seconds, which is what
follows a sender whose clock runs a little fast or slow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: a step shorter than this many periods starts a run of samples that came together
BUNCHED = 0.125
#: ... and steps shorter than this many periods keep it going
GOES_ON = 0.5


@dataclass
class _Line:
    """Exponentially weighted least-squares statistics of (index, stamp) pairs.

    Indices count from the line's first sample and stamps from its first stamp, so the
    numbers stay small; means and co-moments (not raw sums) keep the fit exact over days.
    """

    t0: float
    next_index: int = 0
    weight: float = 0.0
    mean_x: float = 0.0
    mean_y: float = 0.0
    cxx: float = 0.0
    cxy: float = 0.0


class StampSmoother:
    """Smooths the stamps of one regular stream, chunk by chunk, causally.

    ``rate`` is the nominal rate (Hz, > 0); ``hole_s`` how far a stamp may land from
    the line before it starts a new one (the caller's hole threshold: longer steps
    are holes, so the line should not bridge them).
    """

    def __init__(
        self, rate: float, hole_s: float, halftime_s: float = 90.0, prior_s: float = 1.0
    ) -> None:
        if not rate > 0:
            raise ValueError(f"a regular stream's rate must be > 0, got {rate!r}")
        self.period = 1.0 / rate
        self.hole_s = float(hole_s)
        #: weight kept per sample: half of it is gone after ``halftime_s``
        self.forget = 0.5 ** (1.0 / (rate * halftime_s))
        self._log_forget = math.log(self.forget)
        m = rate * prior_s
        #: the prior on the slope counts like ``prior_s`` of evenly spaced samples
        self.prior = m**3 / 12.0
        #: stamps that landed off the line and started a new one: holes it did not bridge
        self.holes = 0
        self._line: _Line | None = None
        self._prev_raw = -math.inf
        self._inside = False  # the last sample came together with the one before
        self._last_out = -math.inf

    def reset(self) -> None:
        """Forget the line (a new inlet, a stall): the next stamp starts a new one."""
        self._line = None

    def __call__(self, stamps: np.ndarray) -> np.ndarray:
        """The smoothed stamps of the next chunk (same length, never decreasing)."""
        raw = self._placed(np.asarray(stamps, dtype=np.float64))
        out = np.empty_like(raw)
        start = 0
        while start < len(raw):
            line = self._line
            if line is None:
                line = self._line = _Line(t0=float(raw[start]))
            part = raw[start:]
            x = line.next_index + np.arange(len(part), dtype=np.float64)
            slope, intercept = self._fit(line)
            off = np.abs(part - line.t0 - (intercept + slope * x)) > self.hole_s
            off[0] = off[0] and line.next_index > 0  # a line's first stamp is its anchor
            end = int(np.argmax(off)) if off.any() else len(part)
            if end == 0:  # this stamp is off the line: a new one starts here
                self.holes += 1
                self._line = None
                continue
            self._add(line, x[:end], part[:end] - line.t0)
            slope, intercept = self._fit(line)
            out[start : start + end] = line.t0 + intercept + slope * x[:end]
            start += end
        # never step back: a refit may put a chunk's first stamp before the last one out
        if len(out):
            out = np.maximum.accumulate(np.maximum(out, self._last_out))
            self._last_out = float(out[-1])
        return out

    def open_run(self, stamps: np.ndarray) -> int | None:
        """Where in ``stamps`` (the next chunk) a run begins that may go on at once, or None
        when the chunk ends complete. A run goes on when its last sample came together with
        the one before; a lone last sample after a gap may open one (a block, a stalled
        sender's backlog, of which a reader woken by the first sample gets that one alone).
        Its last stamp, from which the run is placed, may then be in what comes next: a
        caller that can read on for a moment should smooth what comes before the run now
        and join the run to what follows."""
        n = len(stamps)
        if not n:
            return None
        together, _ = self._together(stamps)
        starts = np.flatnonzero(~together)
        start = int(starts[-1]) if len(starts) else 0
        if together[-1]:
            return start
        before = stamps[-2] if n >= 2 else self._prev_raw
        return n - 1 if stamps[-1] - before >= 2 * self.period else None

    def _together(self, raw: np.ndarray) -> tuple[np.ndarray, tuple[float, bool]]:
        """Per sample: it came together with the one before (this run goes on from there);
        and the state after the chunk (last stamp, inside a run).

        A run starts with a step under an eighth of a period and goes on while steps stay
        under half a period: a backlog pushed sample by sample on a busy machine has
        hiccups between pushes, and a run cut at one was placed back from its own end, up
        to the whole stall late. Regular samples with jitter seldom start one.
        """
        if not len(raw):
            return np.zeros(0, dtype=bool), (self._prev_raw, self._inside)
        step = np.diff(raw, prepend=self._prev_raw)
        starts = (step >= 0) & (step < BUNCHED * self.period)  # together whatever came before
        ends = ~((step >= 0) & (step < GOES_ON * self.period))  # apart whatever came before
        # in between, a sample carries on what the one before was: the last decided wins
        decided = np.where(starts | ends, np.arange(len(raw)), -1)
        last = np.maximum.accumulate(decided)
        out = np.where(last >= 0, starts[np.maximum(last, 0)], self._inside)
        return out, (float(raw[-1]), bool(out[-1]))

    def _placed(self, raw: np.ndarray) -> np.ndarray:
        """Each run of samples that came together placed back from its last stamp at the
        nominal period: the stamps the line is fitted to.

        Samples that came together were stamped as pushed: a device's block, or the backlog
        a stalled sender pushes back to back. All but the last are stamped late, so the
        run's last stamp is its truest. Fitted raw, a block put every sample half a block
        late, and a backlog after a stall bent the new line for a minute (samples 66 ms
        early 1 s after a 0.5 s stall, still 3 ms at 60 s). A run cut by a chunk's end is
        placed from that end (its rest, next chunk, from its own); the LSL driver reads on
        until a run ends (``open_run``).
        """
        if not len(raw):
            return raw
        together, (self._prev_raw, self._inside) = self._together(raw)
        if not together.any():
            return raw
        ends = np.flatnonzero(np.append(~together[1:], True))  # each run's last sample
        index = np.arange(len(raw))
        end = ends[np.searchsorted(ends, index)]
        return raw[end] - (end - index) * self.period

    def _fit(self, line: _Line) -> tuple[float, float]:
        """(slope, intercept) of the line; the nominal period before any data."""
        slope = (line.cxy + self.prior * self.period) / (line.cxx + self.prior)
        return slope, line.mean_y - slope * line.mean_x

    def _add(self, line: _Line, x: np.ndarray, y: np.ndarray) -> None:
        """Fold a run of samples into the line's statistics (older ones fade first)."""
        n = len(x)
        w = np.exp(self._log_forget * np.arange(n - 1, -1, -1, dtype=np.float64))
        w_new = float(w.sum())
        # products and sums, not np.dot: BLAS's threads make a short dot ~100x slower on
        # a busy machine
        mx = float((w * x).sum() / w_new)
        my = float((w * y).sum() / w_new)
        cxx = float((w * (x - mx) ** 2).sum())
        cxy = float((w * (x - mx) * (y - my)).sum())
        fade = self.forget**n
        w_old = line.weight * fade
        total = w_old + w_new
        dx, dy = mx - line.mean_x, my - line.mean_y
        share = w_old * w_new / total
        line.cxx = line.cxx * fade + cxx + dx * dx * share
        line.cxy = line.cxy * fade + cxy + dx * dy * share
        line.mean_x += dx * w_new / total
        line.mean_y += dy * w_new / total
        line.weight = total
        line.next_index += n
