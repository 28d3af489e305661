"""Blinks and gaze of the virtual participant.

Both are seen twice: by the virtual eye camera (lids closing, iris moving) and
in the frontal EEG (blink artefacts on Fp1/Fp2, horizontal eye movements on
F7/F8), so they live with the participant rather than in either sensor.

Blinks: candidates at most 22 per minute with at least 0.4 s between them,
thinned to ``15 * exp(0.08 * (arousal - 5))`` per minute (about 11-21/min: blink
rate rises with arousal); each lasts about 150 ms, a third closing and two
thirds reopening. Gaze: fixations of about 1.25 s joined by saccades of
20-50 ms; horizontal spread wider than vertical; positions in [-1, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from drivers.simulated.noise import rng_for
from drivers.simulated.schedule import Columns, LazyTimeline

if TYPE_CHECKING:
    from drivers.simulated.participant import VirtualParticipant

BLINK_MAX_PER_MIN = 22.0
BLINK_MIN_GAP_S = 0.4
BLINK_MEAN_S = 0.15
BLINK_CLOSING_FRACTION = 1.0 / 3.0


def blink_rate_per_min(arousal: np.ndarray) -> np.ndarray:
    return 15.0 * np.exp(0.08 * (np.asarray(arousal) - 5.0))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class EyeBehaviour:
    """Blink closure and gaze direction as pure functions of time."""

    def __init__(self, participant: VirtualParticipant):
        self.participant = participant
        seed = participant.seed
        self._blinks = LazyTimeline(rng_for(seed, "eyes.blinks"), self._next_blinks)
        self._gaze = LazyTimeline(rng_for(seed, "eyes.gaze"), self._next_fixations)

    # ------------------------------------------------------------ blinks
    @staticmethod
    def _next_blinks(rng: np.random.Generator, prev: Columns | None, batch: int = 64) -> Columns:
        start = 0.0 if prev is None else float(prev["t"][-1])
        mean_gap = 60.0 / BLINK_MAX_PER_MIN - BLINK_MIN_GAP_S
        gaps = BLINK_MIN_GAP_S + rng.exponential(mean_gap, batch)
        return {
            "t": start + np.cumsum(gaps),
            "u": rng.random(batch),
            "dur": np.clip(rng.normal(BLINK_MEAN_S, 0.015, batch), 0.11, 0.2),
        }

    def _accepted(self, cols: Columns, idx: np.ndarray) -> np.ndarray:
        arousal = self.participant.states(cols["t"][idx])["arousal"]
        return cols["u"][idx] < blink_rate_per_min(arousal) / BLINK_MAX_PER_MIN

    def blink_times(self, t0: float, t1: float) -> np.ndarray:
        """Onsets of the blinks that start in [t0, t1)."""
        cols = self._blinks.covering(t1)
        lo, hi = np.searchsorted(cols["t"], [t0, t1])
        idx = np.arange(lo, hi)
        return cols["t"][idx][self._accepted(cols, idx)] if idx.size else np.empty(0)

    def closure(self, t: np.ndarray | float) -> np.ndarray:
        """Lid closure in [0, 1] (1 = shut) at times ``t``."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if t.size == 0:
            return np.zeros(0)
        cols = self._blinks.covering(float(t.max()))
        i = np.searchsorted(cols["t"], t, side="right") - 1
        valid = i >= 0
        i = np.maximum(i, 0)
        x = (t - cols["t"][i]) / cols["dur"][i]
        inside = valid & (x >= 0) & (x < 1)
        out = np.zeros(t.size)
        if not np.any(inside):
            return out
        sel = np.flatnonzero(inside)
        keep = self._accepted(cols, i[sel])
        sel = sel[keep]
        xs = x[sel]
        a = BLINK_CLOSING_FRACTION
        out[sel] = np.where(xs < a, _smoothstep(xs / a), 1.0 - _smoothstep((xs - a) / (1.0 - a)))
        return out

    # ------------------------------------------------------------ gaze
    @staticmethod
    def _next_fixations(rng: np.random.Generator, prev: Columns | None, batch: int = 64) -> Columns:
        start = 0.0 if prev is None else float(prev["t"][-1] + prev["dur"][-1])
        durations = 0.25 + rng.gamma(2.0, 0.5, batch)
        gx = np.clip(rng.normal(0.0, 0.35, batch), -1.0, 1.0)
        gy = np.clip(rng.normal(0.0, 0.2, batch), -1.0, 1.0)
        if prev is None:
            gx[0], gy[0] = 0.0, 0.0
        times = start + np.concatenate([[0.0], np.cumsum(durations[:-1])])
        return {"t": times, "dur": durations, "gx": gx, "gy": gy}

    def gaze(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Horizontal and vertical gaze in [-1, 1] at times ``t`` (positive: right, down in the image)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if t.size == 0:
            return np.zeros(0), np.zeros(0)
        cols = self._gaze.covering(float(t.max()))
        i = np.maximum(np.searchsorted(cols["t"], t, side="right") - 1, 0)
        p = np.maximum(i - 1, 0)
        amp = np.hypot(cols["gx"][i] - cols["gx"][p], cols["gy"][i] - cols["gy"][p])
        w = _smoothstep((t - cols["t"][i]) / (0.02 + 0.03 * amp))
        gx = cols["gx"][p] + (cols["gx"][i] - cols["gx"][p]) * w
        gy = cols["gy"][p] + (cols["gy"][i] - cols["gy"][p]) * w
        return gx, gy
