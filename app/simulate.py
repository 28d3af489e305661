"""Write DEAP, DREAMER and SEE data sets, in their own file formats, from virtual participants.

    affectlab simulate deap|dreamer|see --out DIR [--subjects N] [--seed S]
                       [--trials T] [--trial-seconds S]      # or: python -m app.simulate ...

Every training and evaluation path can then run here end to end on files that
the real loaders (``models.data``) read exactly as they read the real ones.
Each subject is one ``VirtualParticipant``; its sensors are the ones the live
simulated drivers use, rendered by sample index (no clock), and every label
comes from its latent state:

- DEAP: a trial's onset is the start of one of the participant's emotional
  episodes (the video elicits a new state; mean episode length = trial length),
  preceded by 3 s of baseline. Ratings (1-9, two decimals) are the mean latent
  valence, arousal, dominance and liking over the trial. 40 channels at 128 Hz
  in DEAP's order: the 32 EEG channels, hEOG / vEOG (from the participant's
  gaze and blinks), zEMG (zygomaticus: follows the smile of the happiness
  expression) / tEMG (trapezius: tension with arousal), GSR (skin conductance,
  uS), respiration, plethysmograph, temperature (degC). float64, like the originals.
  ``sXX.dat`` is a protocol-2 pickle that names only numpy's array
  reconstructor, ``numpy.ndarray`` and ``numpy.dtype``, with raw data as
  Python 2 byte strings, as cPickle wrote DEAP's files: it loads with ``safe_pickle``.
- DREAMER: per film, a neutral baseline (61 s by default) then the film
  (``trial_seconds`` x 1.0-1.5, whole seconds: films differ in length). Scores
  are the mean latent state mapped from 1-9 to 1-5 and rounded. EEG is the
  participant's EEG at the 14 Emotiv sites plus a per-channel DC level around
  4200 uV as Emotiv headsets record; ECG has two leads of the same heart (the
  second 0.75 x the first with its own noise) at 256 Hz.
- SEE: for every subject, lighting and emotion, ``trials`` sequences (takes),
  each one episode of that expression from its onset (the face morphs in),
  ``trial_seconds`` long on average, 18-131 frames, at 30 fps, rendered by the
  virtual DAVIS346 under that lighting. Event frames accumulate the emulated
  events of each 33 ms frame interval: grey 128 plus 64 per net ON event, minus
  64 per net OFF event, clipped, as 8-bit grey JPEG. The label is the majority
  latent expression over the sequence. About a third of the sequences (every
  third, in order) are "testing", the rest "training": within subject, as SEE.
  Emotion folders use SEE's spelling (``neutraL``).

Files already in ``--out`` with the same names are overwritten.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import struct
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import signal as sps

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

from app.outputs import unwritable
from core.prediction import EXPRESSIONS
from core.streams import Modality
from drivers.simulated.catalog import build_sensors
from drivers.simulated.eeg import DEAP_EEG_CHANNELS
from drivers.simulated.events import EventEmulator
from drivers.simulated.eye_camera import DAVIS346_SIZE, VirtualEyeCamera
from drivers.simulated.noise import FirBank, WhiteNoise, rng_for
from drivers.simulated.participant import VirtualParticipant
from drivers.simulated.sensor import Sensor
from models.data import deap as deap_format
from models.data import dreamer as dreamer_format
from models.data import see as see_format
from models.progress import progress_bar

KINDS = ("deap", "dreamer", "see")
DEFAULTS: dict[str, dict[str, float]] = {
    "deap": {"subjects": 4, "trials": 40, "trial_seconds": 60.0},
    "dreamer": {"subjects": 4, "trials": 18, "trial_seconds": 60.0},
    "see": {"subjects": 3, "trials": 1, "trial_seconds": 2.0},
}
DREAMER_BASELINE_S = 61.0
SEE_MIN_FRAMES, SEE_MAX_FRAMES = 18, 131
SEE_FOLDER = {e: ("neutraL" if e == "neutral" else e) for e in EXPRESSIONS}

Progress = Callable[[int], None]


def subject_seed(seed: int, subject: int) -> int:
    """The participant seed of subject ``subject`` (1-based) of a data set made with ``seed``."""
    return int(rng_for(seed, "simulate.subject", subject).integers(0, 2**31 - 1))


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


# ------------------------------------------------------------------ SEE
def event_frame(events: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One 8-bit event frame: 128 + 64 x (ON - OFF) count per pixel, clipped."""
    h, w = shape
    pix = events["y"].astype(np.int64) * w + events["x"].astype(np.int64)
    sign = np.where(events["polarity"] > 0, 1.0, -1.0)
    net = np.bincount(pix, weights=sign, minlength=h * w).reshape(h, w)
    return np.clip(128.0 + 64.0 * net, 0, 255).astype(np.uint8)


def _see_plan(p: VirtualParticipant, takes: int, fps: float) -> list[tuple[int, int, str, str]]:
    """``(first frame, n frames, lighting, emotion)`` for every sequence of one subject.

    Episodes are used in time order; each fills a (lighting, emotion) slot that
    still needs a take, the lighting with most missing first.
    """
    need = {(light, e): takes for light in see_format.LIGHTINGS for e in EXPRESSIONS}
    plan: list[tuple[int, int, str, str]] = []
    horizon = 60.0
    used = 0
    while any(need.values()):
        cols = p.episodes(horizon)
        for i in range(max(1, used), len(cols["t"]) - 1):
            used = i + 1
            k0 = math.ceil(cols["t"][i] * fps)
            n = min(int(cols["dwell"][i] * fps), SEE_MAX_FRAMES)
            if n < SEE_MIN_FRAMES:
                continue
            expr = p.states((k0 + np.arange(n)) / fps)["expression_index"]
            emotion = EXPRESSIONS[int(np.bincount(expr, minlength=len(EXPRESSIONS)).argmax())]
            open_slots = [light for light in see_format.LIGHTINGS if need[(light, emotion)] > 0]
            if not open_slots:
                continue
            light = max(open_slots, key=lambda x: need[(x, emotion)])
            need[(light, emotion)] -= 1
            plan.append((k0, n, light, emotion))
            if not any(need.values()):
                break
        horizon *= 2.0
    return plan


def write_see(
    out: str | Path,
    subjects: int = 3,
    seed: int = 0,
    takes: int = 1,
    sequence_seconds: float = 2.0,
    frame_size: tuple[int, int] = DAVIS346_SIZE,
    fps: float = 30.0,
    quality: int = 90,
    progress: Progress | None = None,
) -> Path:
    """``out/frame``, ``out/event`` and ``out/emotion.json``; returns the annotation path."""
    from PIL import Image

    if sequence_seconds * fps < SEE_MIN_FRAMES:
        raise ValueError(
            f"sequences of {sequence_seconds} s at {fps} fps are shorter than SEE's "
            f"{SEE_MIN_FRAMES} frames"
        )
    root = Path(out)
    database: dict[str, dict] = {}
    seq_no = 0
    for s in range(1, subjects + 1):
        sseed = subject_seed(seed, s)
        p = VirtualParticipant(sseed, mean_dwell_s=sequence_seconds)
        person = rng_for(sseed, "simulate.see.person")
        sex = str(person.choice(["man", "woman"]))
        age = int(person.integers(19, 29))
        degree = str(person.choice(["undergraduate", "Master", "Doctor"]))
        cams = {
            light: VirtualEyeCamera(p, size=frame_size, fps=fps, lighting=light)
            for light in see_format.LIGHTINGS
        }
        take_of: dict[str, int] = {}
        for k0, n, light, emotion in _see_plan(p, takes, fps):
            seq_no += 1
            take = take_of.get(emotion, 0)
            take_of[emotion] = take + 1
            name = see_format.SequenceName(
                seq_no, s, sex, age, degree, light, emotion, n, take
            ).format()
            cam = cams[light]
            # One frame before the sequence primes the emulator, as a running DAVIS would be.
            frames, irradiance = cam.render_pair(k0 - 1, n + 1)
            emu = EventEmulator(cam.size, seed=sseed)
            emu.emulate(irradiance[0], (k0 - 1) / fps)
            fdir = root / "frame" / SEE_FOLDER[emotion] / name
            edir = root / "event" / SEE_FOLDER[emotion] / name
            fdir.mkdir(parents=True, exist_ok=True)
            edir.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                events, _ = emu.emulate(irradiance[j + 1], (k0 + j) / fps)
                Image.fromarray(frames[j + 1], "L").save(fdir / f"{j:05d}.jpg", quality=quality)
                Image.fromarray(event_frame(events, cam.size), "L").save(
                    edir / f"{j:05d}.jpg", quality=quality
                )
            database[name] = {
                "subset": "testing" if seq_no % 3 == 0 else "training",
                "annotations": {"label": emotion, "segment": [0, n]},
            }
            if progress:
                progress(1)
    path = root / see_format.ANNOTATION
    path.write_text(
        json.dumps({"labels": list(EXPRESSIONS), "database": database}, indent=1), encoding="utf-8"
    )
    return path


# ------------------------------------------------------------------ CLI
def output_files(kind: str, out: Path, subjects: int) -> list[Path]:
    """What ``simulate kind --out out`` would write, for the refusal to overwrite: DEAP's
    subject files, DREAMER's one file; for SEE the annotation and the ``frame`` and
    ``event`` trees (sequence names depend on the simulation, so any existing tree counts)."""
    if kind == "deap":
        folder = out / deap_format.FOLDER
        return [folder / f"s{s:02d}.dat" for s in range(1, subjects + 1)]
    if kind == "dreamer":
        return [out / dreamer_format.FILE]
    return [out / see_format.ANNOTATION, out / "frame", out / "event"]


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 346x260, got {text!r}") from exc
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError("frames must be at least 16x16")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="affectlab simulate",
        description="Write a DEAP, DREAMER or SEE data set, in its own file format, "
        "from virtual participants (one per subject).",
    )
    p.add_argument("kind", choices=KINDS, help="which data set format to write")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--subjects",
        type=int,
        default=None,
        metavar="N",
        help="virtual participants (default: deap 4, dreamer 4, see 3)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        metavar="T",
        help="trials per subject (default: deap 40, dreamer 18); "
        "see: takes per emotion and lighting (default 1)",
    )
    p.add_argument(
        "--trial-seconds",
        type=float,
        default=None,
        metavar="S",
        help="trial length (default 60; dreamer films are 1-1.5x this); "
        "see: mean sequence length (default 2)",
    )
    p.add_argument(
        "--baseline-seconds",
        type=float,
        default=DREAMER_BASELINE_S,
        metavar="S",
        help="dreamer: neutral baseline before each film (default 61)",
    )
    p.add_argument(
        "--frame-size",
        type=_size,
        default=DAVIS346_SIZE,
        metavar="WxH",
        help="see: frame size (default 346x260, the DAVIS346)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    d = DEFAULTS[args.kind]
    subjects = int(args.subjects if args.subjects is not None else d["subjects"])
    trials = int(args.trials if args.trials is not None else d["trials"])
    seconds = float(args.trial_seconds if args.trial_seconds is not None else d["trial_seconds"])
    problems = []
    if subjects < 1:
        problems.append("--subjects must be >= 1")
    if trials < 1:
        problems.append("--trials must be >= 1")
    min_seconds = {"deap": 1.0, "dreamer": 1.0, "see": SEE_MIN_FRAMES / 30.0}[args.kind]
    if not seconds >= min_seconds:
        problems.append(f"--trial-seconds must be >= {min_seconds:g} for {args.kind}")
    if args.kind == "dreamer" and not args.baseline_seconds >= 1.0:
        problems.append("--baseline-seconds must be >= 1")
    if args.out.exists() and not args.out.is_dir():
        problems.append(f"--out {args.out}: is a file; name a folder for the data set")
    elif subjects >= 1:
        targets = output_files(args.kind, args.out, subjects)
        there = [t for t in targets if t.exists()]
        if there:
            problems.append(
                f"--out {args.out}: {there[0]} already exists; simulate never overwrites a data "
                "set, choose another --out"
            )
        elif why := unwritable(targets[0]):
            problems.append(f"--out {args.out}: {why}")
    if problems:
        print(f"affectlab simulate: {'; '.join(problems)}", file=sys.stderr)
        return 2
    total = subjects * (len(EXPRESSIONS) * len(see_format.LIGHTINGS) * trials
                        if args.kind == "see" else 1)  # fmt: skip
    unit = "sequence" if args.kind == "see" else "subject"
    t0 = time.perf_counter()
    with progress_bar(
        total=total, unit=unit, desc=f"simulate {args.kind}", enabled=not args.quiet
    ) as bar:
        if args.kind == "deap":
            files = write_deap(args.out, subjects, args.seed, trials, seconds, bar.update)
            where = files[0].parent
        elif args.kind == "dreamer":
            where = write_dreamer(
                args.out, subjects, args.seed, trials, seconds, args.baseline_seconds, bar.update
            )
        else:
            where = write_see(
                args.out, subjects, args.seed, trials, seconds, args.frame_size,
                progress=bar.update,
            ).parent  # fmt: skip
    print(f"wrote simulated {args.kind} ({subjects} subjects) to {where} "
          f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
