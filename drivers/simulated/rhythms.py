"""The body's rhythms: heartbeats, breathing and skin-conductance responses.

ECG and PPG must show the same beats, and the heart rate breathes with the
respiration (respiratory sinus arrhythmia), so these rhythms are the
participant's, and sensors only render them.

- Breathing rate (breaths/min) = 12 + 10 (A - 1) / 8, jittered by +-1.2 (smooth drift).
- Heart rate (bpm) = rest + 40 (A - 1) / 8 (rest about 60, per participant),
  plus smooth drift of +-2.5 bpm, plus RSA: ``rsa * sin(2 pi breath phase)`` with
  ``rsa = 3 exp(0.12 (L - 5) - 0.05 (A - 5))`` bpm: liking widens heart-rate
  variability, arousal narrows it.
- Skin-conductance responses: a Poisson process of 1 + 12 (A - 1) / 8 per minute
  (thinned from 14/min candidates), amplitudes log-normal around 0.35 uS scaled
  by ``1 + 0.15 (A - 5) - 0.04 (D - 5)`` (dominance damps them a little).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from drivers.simulated.noise import ValueNoise, rng_for
from drivers.simulated.schedule import Columns, IntegratedPhase, LazyTimeline

if TYPE_CHECKING:
    from drivers.simulated.participant import VirtualParticipant

SCR_MAX_PER_MIN = 14.0


def scr_rate_per_min(arousal: np.ndarray) -> np.ndarray:
    return 1.0 + 12.0 * (np.asarray(arousal) - 1.0) / 8.0


class BodyRhythms:
    """Heart and breath phases and SCR onsets of one participant, pure functions of time."""

    def __init__(self, participant: VirtualParticipant):
        self.participant = participant
        seed = participant.seed
        traits = rng_for(seed, "body.traits")
        self.resting_hr = float(np.clip(traits.normal(62.0, 3.0), 55.0, 70.0))
        self._hr_drift = ValueNoise(seed, "body.hr_drift", 4.0)
        self._rr_drift = ValueNoise(seed, "body.resp_drift", 8.0)
        self.breath = IntegratedPhase(self.resp_rate_hz, phase0=float(traits.random()), dt=0.02)
        self.heart = IntegratedPhase(self.heart_rate_hz, phase0=float(traits.random()), dt=0.02)
        self._scr = LazyTimeline(rng_for(seed, "body.scr"), self._next_scr)

    # ------------------------------------------------------------ rates
    def resp_rate_hz(self, t: np.ndarray) -> np.ndarray:
        arousal = self.participant.states(t)["arousal"]
        bpm = 12.0 + 10.0 * (arousal - 1.0) / 8.0 + 1.2 * self._rr_drift(t)
        return np.maximum(bpm, 6.0) / 60.0

    def rsa_bpm(self, s: dict[str, np.ndarray]) -> np.ndarray:
        return 3.0 * np.exp(0.12 * (s["liking"] - 5.0) - 0.05 * (s["arousal"] - 5.0))

    def heart_rate_bpm(self, t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        s = self.participant.states(t)
        resp = np.sin(2 * np.pi * self.breath.phase(t))
        hr = self.resting_hr + 40.0 * (s["arousal"] - 1.0) / 8.0 + 2.5 * self._hr_drift(t)
        return np.maximum(hr + self.rsa_bpm(s) * resp, 40.0)

    def heart_rate_hz(self, t: np.ndarray) -> np.ndarray:
        return self.heart_rate_bpm(t) / 60.0

    # ------------------------------------------------------------ events
    def beat_times(self, t_max: float) -> np.ndarray:
        """R-peak times (seconds) from the start up to at least ``t_max``."""
        return self.heart.events(t_max)

    @staticmethod
    def _next_scr(rng: np.random.Generator, prev: Columns | None, batch: int = 64) -> Columns:
        start = 0.0 if prev is None else float(prev["t"][-1])
        gaps = rng.exponential(60.0 / SCR_MAX_PER_MIN, batch)
        return {
            "t": start + np.cumsum(gaps),
            "u": rng.random(batch),
            "amp": np.exp(rng.normal(np.log(0.35), 0.5, batch)),
        }

    def scr_events(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Onsets and amplitudes (uS) of the responses starting in [t0, t1)."""
        cols = self._scr.covering(t1)
        lo, hi = np.searchsorted(cols["t"], [t0, t1])
        if hi <= lo:
            return np.empty(0), np.empty(0)
        t = cols["t"][lo:hi]
        s = self.participant.states(t)
        keep = cols["u"][lo:hi] < scr_rate_per_min(s["arousal"]) / SCR_MAX_PER_MIN
        scale = np.maximum(1.0 + 0.15 * (s["arousal"] - 5.0) - 0.04 * (s["dominance"] - 5.0), 0.2)
        return t[keep], (cols["amp"][lo:hi] * scale)[keep]
