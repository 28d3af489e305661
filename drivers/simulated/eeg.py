"""32-channel EEG of the virtual participant, in DEAP's channel order (microvolts).

Each channel is a sum of band-limited noises (FIR-filtered white noise, see
``noise.FirBank``): a 1/f background and theta (4-8 Hz), alpha (8-13), beta
(13-30) and gamma (30-45) rhythms, each with an amplitude that follows the
participant sample by sample. Log amplitudes move linearly with the affect
(A arousal, V valence, D dominance, L liking, all centred on 5):

- alpha: -0.16 A everywhere (alpha blocks with arousal); frontal asymmetry
  +-0.10 V on the right/left member of Fp1/Fp2, AF3/AF4, F3/F4, F7/F8,
  FC5/FC6, FC1/FC2 (weights 0.6-1): ``ln alpha(F4) - ln alpha(F3) = 0.2 (V - 5)``,
  so positive valence means relatively less left frontal alpha, as in the
  approach/withdrawal literature.
- beta: +0.10 A; dominance asymmetry +-0.07 D on C3/C4, CP5/CP6, T7/T8, CP1/CP2
  (more right-central beta with dominance).
- gamma: +0.14 A.
- theta: -0.04 A everywhere; frontal-midline theta +0.10 L at Fz (0.6 at AF3,
  AF4, FC1, FC2, Cz): liking raises it.

Eye artefacts come from the participant's eyes (``oculomotor``): blinks up to
150 uV at Fp1/Fp2 (weaker further back), horizontal gaze of opposite sign at
F7/F8, vertical gaze at Fp1/Fp2; the same blinks the eye camera shows.
Amplitudes per channel vary a little per participant; 0.7 uV sensor noise on top.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from core.streams import Modality
from drivers.simulated.noise import FirBank, WhiteNoise, rng_for
from drivers.simulated.participant import VirtualParticipant
from drivers.simulated.sensor import Sensor

#: DEAP's 32 EEG channels, in file order (REFERENCE 4).
DEAP_EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # fmt: skip

BANDS: tuple[tuple[str, float, float], ...] = (
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 13.0),
    ("beta", 13.0, 30.0),
    ("gamma", 30.0, 45.0),
)
COMPONENTS = ("background",) + tuple(b[0] for b in BANDS)

FRONTAL_PAIRS = (
    ("Fp1", "Fp2", 0.6),
    ("AF3", "AF4", 1.0),
    ("F3", "F4", 1.0),
    ("F7", "F8", 1.0),
    ("FC5", "FC6", 0.6),
    ("FC1", "FC2", 0.6),
)
CENTRAL_PAIRS = (("C3", "C4", 1.0), ("CP5", "CP6", 0.8), ("T7", "T8", 0.6), ("CP1", "CP2", 0.6))
POSTERIOR = ("P3", "P7", "PO3", "O1", "Oz", "Pz", "P4", "P8", "PO4", "O2")
BLINK_UV = {
    "Fp1": 150.0,
    "Fp2": 150.0,
    "AF3": 80.0,
    "AF4": 80.0,
    "F3": 45.0,
    "F4": 45.0,
    "Fz": 45.0,
    "F7": 35.0,
    "F8": 35.0,
    "FC1": 15.0,
    "FC2": 15.0,
    "FC5": 12.0,
    "FC6": 12.0,
}
HEOG_UV = {
    "F7": 40.0,
    "F8": -40.0,
    "Fp1": 15.0,
    "Fp2": -15.0,
    "AF3": 10.0,
    "AF4": -10.0,
    "T7": 12.0,
    "T8": -12.0,
}
VEOG_UV = {
    "Fp1": -50.0,
    "Fp2": -50.0,
    "AF3": -25.0,
    "AF4": -25.0,
    "F3": -10.0,
    "F4": -10.0,
    "Fz": -10.0,
}


def _channel_vector(mapping: dict[str, float]) -> np.ndarray:
    return np.array([mapping.get(c, 0.0) for c in DEAP_EEG_CHANNELS])


def band_taps(rate: float) -> np.ndarray:
    """FIR taps ``(5, L)`` for the background and the four rhythms at ``rate`` Hz (2 s long)."""
    numtaps = int(2 * rate) | 1
    nyq = rate / 2.0
    freqs = np.concatenate([[0.0, 0.5], np.geomspace(1.0, nyq, 24)])
    gains = np.concatenate([[0.0, 0.0], 1.0 / np.sqrt(np.geomspace(1.0, nyq, 24))])
    gains[-1] = 0.0
    rows = [signal.firwin2(numtaps, freqs, gains, fs=rate)]
    for _, lo, hi in BANDS:
        rows.append(signal.firwin(numtaps, [lo, min(hi, 0.95 * nyq)], pass_zero=False, fs=rate))
    return np.vstack(rows)


class EEG(Sensor):
    key = "eeg"
    modality = Modality.EEG
    channel_names = DEAP_EEG_CHANNELS
    units = ("uV",) * len(DEAP_EEG_CHANNELS)

    def __init__(self, participant: VirtualParticipant, rate: float = 128.0):
        if not 64.0 <= rate <= 512.0:
            raise ValueError(f"EEG rate {rate} Hz is outside 64-512 Hz")
        super().__init__(participant, rate)
        n_ch = len(DEAP_EEG_CHANNELS)
        idx = {c: i for i, c in enumerate(DEAP_EEG_CHANNELS)}
        self._bank = FirBank(WhiteNoise(self.seed, "eeg.sources", n_ch), band_taps(self.rate))
        self._noise = WhiteNoise(self.seed, "eeg.sensor", n_ch)

        base = np.zeros((len(COMPONENTS), n_ch))
        base[0] = 7.0
        base[1] = 3.0
        base[2] = 4.5
        base[3] = 3.0
        base[4] = 1.2
        for c in POSTERIOR:
            base[2, idx[c]] = 9.0
        for c in ("C3", "C4", "Cz", "T7", "T8", "CP1", "CP2", "CP5", "CP6"):
            base[2, idx[c]] = 6.0
        for c in ("Fz", "FC1", "FC2", "Cz", "AF3", "AF4"):
            base[1, idx[c]] = 4.5
        for c in ("T7", "T8", "F7", "F8"):
            base[4, idx[c]] = 1.8
        traits = rng_for(self.seed, "eeg.traits")
        base *= np.exp(traits.normal(0.0, 0.1, base.shape))
        self._log_base = np.log(base)

        # d(log amplitude) / d(dimension), per component and channel
        coef = {
            k: np.zeros((len(COMPONENTS), n_ch))
            for k in ("valence", "arousal", "dominance", "liking")
        }
        coef["arousal"][1] = -0.04
        coef["arousal"][2] = -0.16
        coef["arousal"][3] = 0.10
        coef["arousal"][4] = 0.14
        for left, right, w in FRONTAL_PAIRS:
            coef["valence"][2, idx[left]] = -0.10 * w
            coef["valence"][2, idx[right]] = 0.10 * w
        for left, right, w in CENTRAL_PAIRS:
            coef["dominance"][3, idx[left]] = -0.07 * w
            coef["dominance"][3, idx[right]] = 0.07 * w
        coef["liking"][1, idx["Fz"]] = 0.10
        for c in ("AF3", "AF4", "FC1", "FC2", "Cz"):
            coef["liking"][1, idx[c]] = 0.06
        self._coef = coef
        self._blink = _channel_vector(BLINK_UV)
        self._heog = _channel_vector(HEOG_UV)
        self._veog = _channel_vector(VEOG_UV)

    def _render(self, t: np.ndarray, n_start: int) -> np.ndarray:
        p = self.participant
        s = p.states(t)
        log_gain = np.broadcast_to(
            self._log_base[:, None, :], (len(COMPONENTS), len(t), self.n_channels)
        ).copy()
        for dim, coef in self._coef.items():
            log_gain += coef[:, None, :] * (s[dim] - 5.0)[None, :, None]
        x = (np.exp(log_gain) * self._bank.render(n_start, len(t))).sum(axis=0)
        gx, gy = p.eyes.gaze(t)
        x += (
            p.eyes.closure(t)[:, None] * self._blink
            + gx[:, None] * self._heog
            + gy[:, None] * self._veog
        )
        return x + 0.7 * self._noise.take(n_start, len(t))
