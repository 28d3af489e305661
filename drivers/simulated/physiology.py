"""Peripheral physiology of the virtual participant: ECG, PPG, EDA, respiration, temperature.

What drives what (A arousal, V valence, D dominance, L liking; see also
``rhythms`` for the heart, breath and SCR processes and ``eeg`` for the EEG):

- ECG (mV, 256 Hz): one beat template synthesised once with neurokit2's
  ECGSYN, placed at the R-peak times of the shared heart rhythm (rate rises
  with A, RSA widens with L); the QT part shortens with the RR interval
  (Bazett). Baseline wander follows breathing.
- PPG (a.u., 64 Hz): the same beats after a pulse transit time that shortens
  with A; pulse amplitude falls with A (vasoconstriction) and breathes.
- EDA (uS, 32 Hz): tonic level rising with A (lagged ~30 s) and a little lower
  with D, plus skin-conductance responses whose rate and size follow A.
- Respiration (a.u., 32 Hz): breaths from the shared breath phase, faster and
  shallower with A, deeper with D.
- Temperature (degC, 4 Hz): slow drift, warmer with V and cooler with A (lagged ~60 s).

Each sensor is deterministic and continuous across chunks (``sensor.Sensor``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from core.streams import Modality
from drivers.simulated.noise import ValueNoise, WhiteNoise, rng_for
from drivers.simulated.participant import VirtualParticipant
from drivers.simulated.sensor import Sensor, lagged_means

ECG_TEMPLATE_SPAN = (-0.35, 0.65)  # seconds around the R peak


@lru_cache(maxsize=1)
def ecg_beat_template() -> tuple[np.ndarray, np.ndarray]:
    """One ECGSYN beat at 60 bpm, R peak at 0 and height 1, ends tapered to 0.

    neurokit2 is slow to import (about 1.5 s) and simulates whole records, so
    it is asked once for a clean 60 bpm record and its middle beats are averaged.
    """
    import neurokit2 as nk

    fs = 1000
    ecg = np.asarray(
        nk.ecg_simulate(
            duration=12,
            sampling_rate=fs,
            heart_rate=60,
            heart_rate_std=0.001,
            noise=0.0,
            method="ecgsyn",
            random_state=0,
        ),
        dtype=np.float64,
    )
    high = ecg > 0.6 * ecg.max()
    peaks = [
        i
        for i in range(1, len(ecg) - 1)
        if high[i] and ecg[i] >= ecg[i - 1] and ecg[i] > ecg[i + 1]
    ]
    lo, hi = int(-ECG_TEMPLATE_SPAN[0] * fs), int(ECG_TEMPLATE_SPAN[1] * fs)
    beats = [ecg[p - lo : p + hi] for p in peaks if p - lo >= 0 and p + hi <= len(ecg)][1:-1]
    beat = np.mean(beats, axis=0)
    ramp = np.linspace(0.0, 1.0, len(beat))
    beat = beat - (beat[0] + (beat[-1] - beat[0]) * ramp)  # ends at 0
    taper = np.ones(len(beat))
    k = int(0.05 * fs)
    taper[:k] = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
    taper[-k:] = taper[:k][::-1]
    beat = beat * taper
    beat /= beat[lo]
    return (np.arange(len(beat)) - lo) / fs, beat


def _beats_near(participant: VirtualParticipant, t: np.ndarray) -> np.ndarray:
    """R peaks that can shape samples ``t``: from 3 s before to 4 s after (at least one interval past)."""
    beats = participant.body.beat_times(float(t[-1]) + 4.0)
    lo, hi = np.searchsorted(beats, [float(t[0]) - 3.0, float(t[-1]) + 4.0])
    return beats[lo:hi]


def _neighbour_offsets(times: np.ndarray, t: np.ndarray, offsets: tuple[int, ...]):
    """For each sample, indices of nearby events (``offsets`` relative to the last one at or before it)."""
    last = np.searchsorted(times, t, side="right") - 1
    for off in offsets:
        j = last + off
        valid = (j >= 0) & (j < len(times) - 1)  # the event after j is needed for its interval
        yield np.clip(j, 0, max(len(times) - 2, 0)), valid


class ECG(Sensor):
    key = "ecg"
    modality = Modality.ECG
    channel_names = ("ECG",)
    units = ("mV",)

    def __init__(self, participant: VirtualParticipant, rate: float = 256.0):
        super().__init__(participant, rate)
        self._tt, self._tv = ecg_beat_template()
        traits = rng_for(self.seed, "ecg.traits")
        self.amplitude = float(traits.uniform(0.9, 1.4))  # R height, mV
        self._noise = WhiteNoise(self.seed, "ecg.noise")
        self._wander = ValueNoise(self.seed, "ecg.wander", 3.0)

    def _render(self, t: np.ndarray, n_start: int) -> np.ndarray:
        body = self.participant.body
        beats = _beats_near(self.participant, t)
        y = np.zeros(len(t))
        if len(beats) >= 2:
            for j, valid in _neighbour_offsets(beats, t, (-1, 0, 1)):
                dt = t - beats[j]
                rr = beats[j + 1] - beats[j]
                tau = np.where(dt > 0, dt / np.sqrt(np.clip(rr, 0.3, 2.0)), dt)
                y += np.where(valid, np.interp(tau, self._tt, self._tv, left=0.0, right=0.0), 0.0)
        y *= self.amplitude
        y += 0.05 * np.sin(2 * np.pi * body.breath.phase(t)) + 0.03 * self._wander(t)
        return y + 0.01 * self._noise.take(n_start, len(t))[:, 0]


class PPG(Sensor):
    key = "ppg"
    modality = Modality.PPG
    channel_names = ("PPG",)
    units = ("a.u.",)

    def __init__(self, participant: VirtualParticipant, rate: float = 64.0):
        super().__init__(participant, rate)
        self._noise = WhiteNoise(self.seed, "ppg.noise")
        self._drift = ValueNoise(self.seed, "ppg.drift", 10.0)

    @staticmethod
    def pulse(tau: np.ndarray, rr: np.ndarray) -> np.ndarray:
        """One pressure pulse: fast systolic rise, slow fall, and a dicrotic wave."""
        s = np.sqrt(np.clip(rr, 0.3, 2.0))
        x = np.maximum(tau, 0.0) / (0.13 * s)
        systolic = x**3 * np.exp(3.0 * (1.0 - x))
        dicrotic = 0.35 * np.exp(-0.5 * ((tau - 0.38 * s) / (0.07 * s)) ** 2)
        return np.where(tau > 0, systolic + dicrotic, 0.0)

    def _render(self, t: np.ndarray, n_start: int) -> np.ndarray:
        p = self.participant
        beats = _beats_near(p, t)
        y = np.zeros(len(t))
        if len(beats) >= 2:
            s = p.states(beats)
            arrivals = beats + 0.22 - 0.03 * (s["arousal"] - 5.0) / 4.0
            gain = np.exp(-0.08 * (s["arousal"] - 5.0))
            for j, valid in _neighbour_offsets(arrivals, t, (-2, -1, 0)):
                wave = gain[j] * self.pulse(t - arrivals[j], beats[j + 1] - beats[j])
                y += np.where(valid, wave, 0.0)
        breath = np.sin(2 * np.pi * p.body.breath.phase(t))
        y = y * (1.0 + 0.1 * breath) + 0.15 * breath + 0.2 * self._drift(t)
        return y + 0.01 * self._noise.take(n_start, len(t))[:, 0]


class EDA(Sensor):
    key = "eda"
    modality = Modality.EDA
    channel_names = ("EDA",)
    units = ("uS",)

    RISE_S, DECAY_S, SUPPORT_S = 0.75, 2.0, 25.0

    def __init__(self, participant: VirtualParticipant, rate: float = 32.0):
        super().__init__(participant, rate)
        traits = rng_for(self.seed, "eda.traits")
        self.base = float(traits.uniform(1.5, 3.0))
        self._noise = WhiteNoise(self.seed, "eda.noise")
        self._drift = ValueNoise(self.seed, "eda.drift", 40.0)
        peak_t = (
            np.log(self.DECAY_S / self.RISE_S)
            * self.RISE_S
            * self.DECAY_S
            / (self.DECAY_S - self.RISE_S)
        )
        self._peak = np.exp(-peak_t / self.DECAY_S) - np.exp(-peak_t / self.RISE_S)

    def response(self, tau: np.ndarray) -> np.ndarray:
        """Skin-conductance response of height 1 (bi-exponential)."""
        tau = np.maximum(tau, 0.0)
        return (np.exp(-tau / self.DECAY_S) - np.exp(-tau / self.RISE_S)) / self._peak

    def _render(self, t: np.ndarray, n_start: int) -> np.ndarray:
        p = self.participant
        slow = lagged_means(p, t, 30.0)
        arousal, dominance = slow["arousal"], slow["dominance"]
        tonic = (
            self.base + 0.35 * (arousal - 1.0) - 0.08 * (dominance - 5.0) + 0.25 * self._drift(t)
        )
        onsets, amps = p.body.scr_events(float(t[0]) - self.SUPPORT_S, float(t[-1]) + 1e-9)
        phasic = np.zeros(len(t))
        for k in range(0, len(t), 4096):  # bounded memory for long offline chunks
            tt = t[k : k + 4096, None] - onsets[None, :]
            phasic[k : k + 4096] = (self.response(tt) * (tt < self.SUPPORT_S) * amps[None, :]).sum(
                axis=1
            )
        y = tonic + phasic + 0.005 * self._noise.take(n_start, len(t))[:, 0]
        return np.maximum(y, 0.05)


class Respiration(Sensor):
    key = "resp"
    modality = Modality.RESP
    channel_names = ("RESP",)
    units = ("a.u.",)

    INHALE_FRACTION = 0.4

    def __init__(self, participant: VirtualParticipant, rate: float = 32.0):
        super().__init__(participant, rate)
        self._noise = WhiteNoise(self.seed, "resp.noise")
        self._depth = ValueNoise(self.seed, "resp.depth", 5.0)
        self._drift = ValueNoise(self.seed, "resp.drift", 30.0)

    def _render(self, t: np.ndarray, n_start: int) -> np.ndarray:
        p = self.participant
        s = p.states(t)
        u = np.mod(p.body.breath.phase(t), 1.0)
        a = self.INHALE_FRACTION
        shape = np.where(
            u < a, 0.5 - 0.5 * np.cos(np.pi * u / a), 0.5 + 0.5 * np.cos(np.pi * (u - a) / (1 - a))
        )
        depth = np.exp(-0.06 * (s["arousal"] - 5.0) + 0.05 * (s["dominance"] - 5.0)) * (
            1 + 0.1 * self._depth(t)
        )
        y = depth * (shape - 0.5) + 0.1 * self._drift(t)
        return y + 0.005 * self._noise.take(n_start, len(t))[:, 0]


class Temperature(Sensor):
    key = "temp"
    modality = Modality.TEMP
    channel_names = ("TEMP",)
    units = ("degC",)

    def __init__(self, participant: VirtualParticipant, rate: float = 4.0):
        super().__init__(participant, rate)
        traits = rng_for(self.seed, "temp.traits")
        self.base = float(traits.uniform(33.0, 34.5))
        self._noise = WhiteNoise(self.seed, "temp.noise")
        self._drift = ValueNoise(self.seed, "temp.drift", 90.0)

    def _render(self, t: np.ndarray, n_start: int) -> np.ndarray:
        p = self.participant
        slow = lagged_means(p, t, 60.0)
        valence, arousal = slow["valence"], slow["arousal"]
        y = (
            self.base
            + 0.35 * (valence - 5.0) / 4.0
            - 0.25 * (arousal - 5.0) / 4.0
            + 0.3 * self._drift(t)
        )
        return y + 0.005 * self._noise.take(n_start, len(t))[:, 0]
