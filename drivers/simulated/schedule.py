"""Random timelines that grow on demand but never change once drawn.

The participant's episodes, blinks, skin-conductance responses and heartbeats
are sequences in time: each depends on the one before. They are generated in
order from their own seeded generator and only ever appended to, so asking
about t = 500 s first and t = 3 s afterwards gives the same answer as asking in
order: every query is a pure function of the seed. A lock makes growth safe when
several driver threads share one participant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

Columns = dict[str, np.ndarray]


class LazyTimeline:
    """Rows of a random process, in time order (column ``"t"``), grown by ``step``.

    ``step(rng, rows_so_far_or_None)`` returns the next batch of rows as columns;
    it may read the last row to continue the process (a Markov chain, a gap).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        step: Callable[[np.random.Generator, Columns | None], Columns],
    ):
        self._rng = rng
        self._step = step
        self._cols: Columns | None = None
        self._lock = threading.Lock()

    def covering(self, t_max: float) -> Columns:
        """All rows drawn so far, grown until the last row starts after ``t_max``."""
        cols = self._cols
        if cols is not None and cols["t"][-1] > t_max:
            return cols
        with self._lock:
            while self._cols is None or self._cols["t"][-1] <= t_max:
                new = self._step(self._rng, self._cols)
                if self._cols is None:
                    self._cols = {k: np.asarray(v) for k, v in new.items()}
                else:
                    self._cols = {k: np.concatenate([self._cols[k], new[k]]) for k in self._cols}
            return self._cols


class _Growable:
    """A float64 vector with amortised O(1) append (doubling), for long sessions."""

    def __init__(self, capacity: int = 4096):
        self.buf = np.empty(capacity)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.buf):
            new = np.empty(max(need, 2 * len(self.buf)))
            new[: self.n] = self.buf[: self.n]
            self.buf = new
        self.buf[self.n : need] = values
        self.n = need

    def view(self) -> np.ndarray:
        # Read n before buf: the writer fills (and swaps in) buf before it raises n,
        # so a reader in another thread never sees slots that are not written yet.
        n = self.n
        buf = self.buf
        return buf[:n]


class IntegratedPhase:
    """``phase(t) = phase0 + integral of rate_hz`` from 0 to t, in cycles, on a fine grid.

    A rhythm whose rate follows the participant (heart, breath) is a phase that
    advances at the momentary rate; its events are the times the phase crosses
    an integer. Integrating block by block on a uniform grid keeps any query
    O(1) and the result independent of the order of queries. ``rate_hz`` must
    be positive and vectorised.
    """

    def __init__(
        self,
        rate_hz: Callable[[np.ndarray], np.ndarray],
        phase0: float = 0.0,
        dt: float = 0.02,
        block: int = 1500,
    ):
        self.rate_hz = rate_hz
        self.dt = float(dt)
        self.block = int(block)
        self._phase = _Growable(self.block * 4)
        self._phase.extend(np.array([phase0]))
        self._crossings = _Growable(1024)
        self._last_rate = float(np.asarray(rate_hz(np.zeros(1)))[0])
        self._rate0 = self._last_rate
        self._lock = threading.Lock()

    @property
    def _t_end(self) -> float:
        return (self._phase.n - 1) * self.dt

    def _ensure(self, t_max: float) -> None:
        if self._t_end > t_max + self.dt:
            return
        with self._lock:
            while self._t_end <= t_max + self.dt:
                n0 = self._phase.n
                t = (n0 + np.arange(self.block)) * self.dt
                rate = np.asarray(self.rate_hz(t), dtype=np.float64)
                prev_rates = np.concatenate([[self._last_rate], rate[:-1]])
                last = self._phase.buf[n0 - 1]
                phase = last + np.cumsum(0.5 * (prev_rates + rate) * self.dt)
                self._last_rate = float(rate[-1])
                # Integer crossings inside each grid step (rates are far below 1/dt).
                before = np.concatenate([[last], phase[:-1]])
                step = np.floor(phase) > np.floor(before)
                if np.any(step):
                    m = np.floor(phase[step])
                    frac = (m - before[step]) / (phase[step] - before[step])
                    self._crossings.extend(t[step] - self.dt + frac * self.dt)
                self._phase.extend(phase)

    def phase(self, t: np.ndarray | float) -> np.ndarray:
        """Cycles elapsed at times ``t`` (before 0: extrapolated at the initial rate)."""
        t = np.asarray(t, dtype=np.float64)
        if t.size == 0:
            return np.zeros(t.shape)
        self._ensure(float(t.max()))
        grid = self._phase.view()
        x = np.maximum(t, 0.0) / self.dt
        i = np.minimum(np.floor(x).astype(np.int64), len(grid) - 2)
        f = x - i
        out = grid[i] * (1 - f) + grid[i + 1] * f
        neg = t < 0
        if np.any(neg):
            out = np.where(neg, grid[0] + t * self._rate0, out)
        return out

    def events(self, t_max: float) -> np.ndarray:
        """Every time up to at least ``t_max`` at which the phase crosses an integer."""
        self._ensure(t_max)
        return self._crossings.view()
