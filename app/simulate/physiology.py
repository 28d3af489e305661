"""DEAP and DREAMER data sets from virtual participants, in their own file formats: DEAP's
Python-2 pickles (``sXX.dat``) and DREAMER's MATLAB v5 ``DREAMER.mat``; extra sensors
(EOG, EMG) the live simulated drivers do not carry."""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import signal as sps

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

from app.simulate.common import Progress, subject_seed
from core.prediction import EXPRESSIONS
from core.streams import Modality
from drivers.simulated.catalog import build_sensors
from drivers.simulated.eeg import DEAP_EEG_CHANNELS
from drivers.simulated.noise import FirBank, WhiteNoise, rng_for
from drivers.simulated.participant import VirtualParticipant
from drivers.simulated.sensor import Sensor
from models.data import deap as deap_format
from models.data import dreamer as dreamer_format

DREAMER_BASELINE_S = 61.0


# ------------------------------------------------------------------ extra sensors
class EOG(Sensor):
    """Bipolar EOG of the participant's eyes: hEOG follows horizontal gaze, vEOG vertical gaze and blinks."""

    key = "eog"
    modality = Modality.EOG
    channel_names = ("hEOG", "vEOG")
    units = ("uV", "uV")

    def __init__(self, participant: VirtualParticipant, rate: float = 128.0):
        super().__init__(participant, rate)
        traits = rng_for(self.seed, "simulate.eog.traits")
        self.h_gain = float(traits.normal(280.0, 30.0))  # uV per unit of gaze
        self.v_gain = float(traits.normal(200.0, 20.0))
        self.blink = float(traits.normal(350.0, 40.0))  # uV at full lid closure
        self._noise = WhiteNoise(self.seed, "simulate.eog.noise", 2)

    def _render(self, t: np.ndarray, n_start: int) -> np.ndarray:
        eyes = self.participant.eyes
        gx, gy = eyes.gaze(t)
        h = self.h_gain * gx
        v = -self.v_gain * gy + self.blink * eyes.closure(t)  # up is positive
        return np.stack([h, v], axis=1) + 5.0 * self._noise.take(n_start, len(t))


class EMG(Sensor):
    """Surface EMG: zygomaticus major (smiling) and trapezius (tension), band-limited noise bursts."""

    key = "emg"
    modality = Modality.EMG
    channel_names = ("zEMG", "tEMG")
    units = ("uV", "uV")

    def __init__(self, participant: VirtualParticipant, rate: float = 128.0):
        super().__init__(participant, rate)
        nyq = self.rate / 2.0
        taps = sps.firwin(33, [20.0, min(150.0, 0.94 * nyq)], pass_zero=False, fs=self.rate)
        self._bank = FirBank(WhiteNoise(self.seed, "simulate.emg.sources", 2), taps)
        self._happy = EXPRESSIONS.index("happiness")

    def _render(self, t: np.ndarray, n_start: int) -> np.ndarray:
        p = self.participant
        smile = p.expression_weights(t)[:, self._happy]
        arousal = p.states(t)["arousal"]
        rms = np.stack([1.5 + 12.0 * smile, 2.0 + 1.2 * (arousal - 1.0)], axis=1)
        return rms * self._bank.render(n_start, len(t))[0]


# ------------------------------------------------------------------ shared helpers
def trial_onsets(
    participant: VirtualParticipant, lead_s: float, lengths_s: Sequence[float]
) -> list[float]:
    """Onsets of consecutive trials at episode starts, each with ``lead_s`` free before it.

    Trial ``k`` occupies ``[onset - lead_s, onset + lengths_s[k])``; trials do not overlap.
    """
    n = len(lengths_s)
    horizon = (lead_s + float(np.mean(lengths_s)) if n else 1.0) * max(n, 1) * 2.0
    while True:
        onsets: list[float] = []
        free_from = 0.0
        starts = participant.episodes(horizon)["t"]
        for start in starts[1:]:
            if len(onsets) == n:
                break
            if start - lead_s >= free_from:
                onsets.append(float(start))
                free_from = start + lengths_s[len(onsets) - 1]
        if len(onsets) == n:
            return onsets
        horizon *= 2.0


def mean_state(participant: VirtualParticipant, t0: float, t1: float) -> dict[str, float]:
    """Mean of each affect dimension over ``[t0, t1)``, sampled at 4 Hz."""
    t = np.arange(t0, t1, 0.25)
    s = participant.states(t)
    return {k: float(np.mean(v)) for k, v in s.items() if k != "expression_index"}


class _Py2Str(bytes):
    """Bytes to be written as a Python 2 ``str`` (BINSTRING), which loads back as latin-1 text."""


class _Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes arrays exactly as Python 2's cPickle wrote DEAP's files.

    Python 3 would write an array's raw bytes through ``_codecs.encode``, a
    global that ``safe_pickle`` (rightly) refuses and that DEAP's files never
    name; Python 2 wrote them as a plain ``str`` (BINSTRING), which is what this does.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: _Py2Str) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2_str

    def reducer_override(self, obj: object):  # type: ignore[override]
        if type(obj) is np.ndarray:
            a = np.ascontiguousarray(obj)
            state = (1, a.shape, a.dtype, False, _Py2Str(a.tobytes()))
            return _reconstruct, (np.ndarray, (0,), _Py2Str(b"b")), state
        return NotImplemented


def dump_py2_pickle(arrays: dict[str, np.ndarray], path: Path) -> None:
    """A dict of arrays as a Python 2 protocol-2 pickle (keys as ``str``, arrays as above)."""
    with path.open("wb") as f:
        _Py2Pickler(f, protocol=2).dump({_Py2Str(k.encode("ascii")): v for k, v in arrays.items()})


# ------------------------------------------------------------------ DEAP
def write_deap(
    out: str | Path,
    subjects: int = 4,
    seed: int = 0,
    trials: int = 40,
    trial_seconds: float = 60.0,
    progress: Progress | None = None,
) -> list[Path]:
    """``out/data_preprocessed_python/s01.dat ...``; returns the files written."""
    folder = Path(out) / deap_format.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rate = deap_format.RATE
    n_base = deap_format.BASELINE_SAMPLES
    n_trial = int(round(trial_seconds * rate))
    written = []
    for s in range(1, subjects + 1):
        p = VirtualParticipant(subject_seed(seed, s), mean_dwell_s=trial_seconds)
        physio = build_sensors(
            p, ("eeg", "eda", "resp", "ppg", "temp"), rate,
            {"eda": rate, "resp": rate, "ppg": rate, "temp": rate},
        )  # fmt: skip
        # DEAP's file order: EEG, EOG, EMG, GSR, respiration, plethysmograph, temperature
        sensors: list[Sensor] = [
            physio["eeg"], EOG(p, rate), EMG(p, rate),
            physio["eda"], physio["resp"], physio["ppg"], physio["temp"],
        ]  # fmt: skip
        assert sum(x.n_channels for x in sensors) == len(deap_format.CHANNELS)
        assert physio["eeg"].channel_names == deap_format.EEG_CHANNELS
        onsets = trial_onsets(p, deap_format.BASELINE_S, [trial_seconds] * trials)
        data = np.empty((trials, len(deap_format.CHANNELS), n_base + n_trial))
        labels = np.empty((trials, len(deap_format.LABELS)))
        for k, onset in enumerate(onsets):
            first = int(round(onset * rate)) - n_base
            data[k] = np.concatenate([x.render(first, n_base + n_trial) for x in sensors], axis=1).T
            m = mean_state(p, onset, onset + trial_seconds)
            labels[k] = np.round([m[d] for d in deap_format.LABELS], 2)
        path = folder / f"s{s:02d}.dat"
        dump_py2_pickle({"labels": labels, "data": data}, path)
        written.append(path)
        if progress:
            progress(1)
    return written


# ------------------------------------------------------------------ DREAMER
def _cell(arrays: Sequence[np.ndarray]) -> np.ndarray:
    cell = np.empty((len(arrays), 1), dtype=object)
    for i, a in enumerate(arrays):
        cell[i, 0] = a
    return cell


def write_dreamer(
    out: str | Path,
    subjects: int = 4,
    seed: int = 0,
    trials: int = 18,
    trial_seconds: float = 60.0,
    baseline_seconds: float = DREAMER_BASELINE_S,
    progress: Progress | None = None,
) -> Path:
    """``out/DREAMER.mat`` (MATLAB v5, as ``scipy.io.loadmat`` reads the original)."""
    from scipy.io import savemat

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    eeg_rate, ecg_rate = 128.0, 256.0
    pick = [DEAP_EEG_CHANNELS.index(c) for c in dreamer_format.EEG_CHANNELS]
    people = np.empty((1, subjects), dtype=object)
    for s in range(1, subjects + 1):
        sseed = subject_seed(seed, s)
        p = VirtualParticipant(sseed, mean_dwell_s=trial_seconds)
        rng = rng_for(sseed, "simulate.dreamer.person")
        sensors = build_sensors(p, ("eeg", "ecg"), eeg_rate, {"ecg": ecg_rate})
        dc = rng.normal(4200.0, 60.0, len(pick))  # Emotiv's unipolar DC level, uV
        lead2_noise = WhiteNoise(sseed, "simulate.dreamer.ecg2", 1)
        lengths = [float(round(trial_seconds * rng.uniform(1.0, 1.5))) for _ in range(trials)]
        onsets = trial_onsets(p, baseline_seconds, lengths)
        parts: dict[str, dict[str, list[np.ndarray]]] = {
            "eeg": {"baseline": [], "stimuli": []},
            "ecg": {"baseline": [], "stimuli": []},
        }
        scores = np.empty((trials, 3))
        for k, (onset, length) in enumerate(zip(onsets, lengths, strict=True)):
            for part, t0, dur in (("baseline", onset - baseline_seconds, baseline_seconds),
                                  ("stimuli", onset, length)):  # fmt: skip
                n0, n = int(round(t0 * eeg_rate)), int(round(dur * eeg_rate))
                eeg = sensors["eeg"].render(n0, n)[:, pick].astype(np.float64) + dc
                parts["eeg"][part].append(eeg)
                n0, n = int(round(t0 * ecg_rate)), int(round(dur * ecg_rate))
                lead1 = sensors["ecg"].render(n0, n)[:, 0].astype(np.float64)
                lead2 = 0.75 * lead1 + 0.015 * lead2_noise.take(n0, n)[:, 0]
                parts["ecg"][part].append(np.stack([lead1, lead2], axis=1))
            m = mean_state(p, onset, onset + length)
            scores[k] = [
                np.clip(np.round(1.0 + (m[d] - 1.0) / 2.0), 1, 5) for d in dreamer_format.LABELS
            ]
        people[0, s - 1] = {
            "Age": str(int(rng.integers(22, 34))),
            "Gender": str(rng.choice(["male", "female"])),
            "EEG": {k: _cell(v) for k, v in parts["eeg"].items()},
            "ECG": {k: _cell(v) for k, v in parts["ecg"].items()},
            "ScoreValence": scores[:, [0]],
            "ScoreArousal": scores[:, [1]],
            "ScoreDominance": scores[:, [2]],
        }
        if progress:
            progress(1)
    electrodes = np.empty((1, len(dreamer_format.EEG_CHANNELS)), dtype=object)
    electrodes[0, :] = list(dreamer_format.EEG_CHANNELS)
    top = {
        "Data": people,
        "EEG_SamplingRate": float(eeg_rate),
        "ECG_SamplingRate": float(ecg_rate),
        "EEG_Electrodes": electrodes,
        "noOfSubjects": float(subjects),
        "noOfVideoSequences": float(trials),
        "Disclaimer": "Simulated by affectlab from virtual participants; not the DREAMER recordings.",
        "Provider": "affectlab simulate",
        "Version": "1.0.2",
    }
    path = folder / dreamer_format.FILE
    savemat(str(path), {"DREAMER": top}, format="5", do_compression=False, oned_as="column")
    return path
