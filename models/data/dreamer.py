"""DREAMER ``DREAMER.mat``: 23 subjects, 18 film clips, 14-channel EEG and 2-lead ECG.

Layout as ``scipy.io.loadmat`` gives it (REFERENCE 4): ``DREAMER[0,0]`` holds
``Data`` (1 x 23 cells, one 1 x 1 struct per subject), ``EEG_SamplingRate``
(128), ``ECG_SamplingRate`` (256), ``EEG_Electrodes``, ``noOfSubjects``,
``noOfVideoSequences`` (18). A subject has ``Age``, ``Gender``, ``EEG``,
``ECG`` and ``ScoreValence`` / ``ScoreArousal`` / ``ScoreDominance`` (18 x 1,
1-5); ``EEG`` and ``ECG`` each have ``baseline`` and ``stimuli``: 18 x 1 cells
of time-major arrays (EEG T x 14 in Emotiv order, ECG T x 2). Each baseline is
the neutral clip shown before its film (61 s in the original).

Stimuli differ in length (65-393 s): ``last_s`` keeps only their last seconds,
as is usual (the end of a film is when its emotion is strongest). Binary
labels: score > 3 is "high" (3 is the middle of the 1-5 scale).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.data.windows import (
    DataSetError,
    TrialSignals,
    WindowedSignals,
    remove_baseline,
    window_trials,
)

FILE = "DREAMER.mat"
EEG_CHANNELS: tuple[str, ...] = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)  # fmt: skip
ECG_CHANNELS: tuple[str, ...] = ("ECG1", "ECG2")
CHANNELS: dict[str, tuple[str, ...]] = {"eeg": EEG_CHANNELS, "ecg": ECG_CHANNELS}
LABELS: tuple[str, ...] = ("valence", "arousal", "dominance")
SCORE_FIELDS: tuple[str, ...] = ("ScoreValence", "ScoreArousal", "ScoreDominance")
THRESHOLD = 3.0
_SIGNAL_FIELD = {"eeg": "EEG", "ecg": "ECG"}


@dataclass
class DreamerSubject:
    """One subject as stored: per modality, lists of (T, C) arrays, one per film."""

    subject: int  # 1-based position in Data
    stimuli: dict[str, list[np.ndarray]]
    baseline: dict[str, list[np.ndarray]]
    scores: np.ndarray  # (trials, 3): valence, arousal, dominance
    age: str = ""
    gender: str = ""


@dataclass
class DreamerFile:
    path: Path
    rates: dict[str, float]
    electrodes: tuple[str, ...]
    subjects: list[DreamerSubject] = field(default_factory=list)


# ------------------------------------------------------------------ struct access
def _record(value: Any) -> Any:
    """The one struct inside MATLAB's 1 x 1 wrappers (cells and struct arrays)."""
    while (
        isinstance(value, np.ndarray)
        and value.size == 1
        and (value.dtype == object or value.dtype.names)
    ):
        value = value.reshape(-1)[0]
    return value


def _field(value: Any, name: str, where: str, path: Path) -> Any:
    rec = _record(value)
    names = getattr(getattr(rec, "dtype", None), "names", None) or ()
    if name not in names:
        raise DataSetError(f"{path}: {where} has no field '{name}' (fields: {', '.join(names)})")
    return rec[name]


def _cells(value: Any, where: str, path: Path) -> list[np.ndarray]:
    """The arrays of an n x 1 cell array, unwrapping a 1 x 1 object wrapper around it."""
    arr = value
    while (
        isinstance(arr, np.ndarray)
        and arr.dtype == object
        and arr.size == 1
        and isinstance(arr.reshape(-1)[0], np.ndarray)
        and arr.reshape(-1)[0].dtype == object
    ):
        arr = arr.reshape(-1)[0]
    if not isinstance(arr, np.ndarray) or arr.dtype != object:
        raise DataSetError(f"{path}: {where} is not a cell array")
    return [np.asarray(c) for c in arr.reshape(-1, order="F")]


def _scalar(value: Any, where: str, path: Path) -> float:
    try:
        return float(np.asarray(_record(value), dtype=np.float64).reshape(-1)[0])
    except (TypeError, ValueError, IndexError) as exc:
        raise DataSetError(f"{path}: {where} is not a number") from exc


def _text(value: Any) -> str:
    v = _record(value)
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)
        return str(v[0]) if v.size else ""
    return str(v)


def _signals(
    subj: Any, modality: str, part: str, n_channels: int, where: str, path: Path
) -> list[np.ndarray]:
    struct = _field(subj, _SIGNAL_FIELD[modality], where, path)
    loc = f"{where}.{_SIGNAL_FIELD[modality]}.{part}"
    arrays = _cells(_field(struct, part, f"{where}.{_SIGNAL_FIELD[modality]}", path), loc, path)
    for j, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[1] != n_channels or a.shape[0] == 0:
            raise DataSetError(
                f"{path}: {loc}{{{j + 1}}} has shape {a.shape}, expected (samples, {n_channels})"
            )
        if not np.issubdtype(a.dtype, np.number):
            raise DataSetError(f"{path}: {loc}{{{j + 1}}} is not numeric")
    return arrays


# ------------------------------------------------------------------ reading
def dreamer_file(path: str | Path) -> Path:
    """``path`` itself, or ``DREAMER.mat`` inside it when it is a folder."""
    path = Path(path)
    return path / FILE if path.is_dir() else path


def read_dreamer(
    path: str | Path,
    subjects: Sequence[int] | None = None,
    modalities: Iterable[str] = ("eeg", "ecg"),
) -> DreamerFile:
    """Read and check ``DREAMER.mat``; ``subjects`` are 1-based (all if None)."""
    from scipy.io import loadmat  # scipy.io is slow to import and only needed here
    from scipy.io.matlab import MatReadError

    path = dreamer_file(path)
    mods = tuple(modalities)
    for m in mods:
        if m not in CHANNELS:
            raise ValueError(f"DREAMER modality {m!r}; expected some of {', '.join(CHANNELS)}")
    if not path.is_file():
        raise DataSetError(f"{path}: no such DREAMER file")
    try:
        mat = loadmat(str(path), verify_compressed_data_integrity=False)
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5)
        raise DataSetError(f"{path}: MATLAB v7.3 files are not supported ({exc})") from exc
    except (ValueError, OSError, TypeError, MatReadError) as exc:  # MatReadError: empty, text
        raise DataSetError(f"{path}: not a readable MATLAB file ({exc})") from exc
    if "DREAMER" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataSetError(f"{path}: missing variable 'DREAMER' (found {keys})")
    top = mat["DREAMER"]
    rates = {
        "eeg": _scalar(_field(top, "EEG_SamplingRate", "DREAMER", path), "EEG_SamplingRate", path),
        "ecg": _scalar(_field(top, "ECG_SamplingRate", "DREAMER", path), "ECG_SamplingRate", path),
    }
    for m, r in rates.items():
        if not r > 0:
            raise DataSetError(f"{path}: DREAMER.{m.upper()}_SamplingRate is {r}")
    try:
        electrodes = tuple(
            _text(e) for e in _cells(_field(top, "EEG_Electrodes", "DREAMER", path), "", path)
        )
    except DataSetError:
        electrodes = EEG_CHANNELS
    data = _field(top, "Data", "DREAMER", path)
    items = list(np.asarray(data).reshape(-1))
    chosen = range(1, len(items) + 1) if subjects is None else subjects
    out = DreamerFile(path, {m: rates[m] for m in mods}, electrodes)
    for s in chosen:
        if not 1 <= s <= len(items):
            raise DataSetError(f"{path}: no subject {s} (the file has {len(items)})")
        where = f"DREAMER.Data{{{s}}}"
        subj = items[s - 1]
        stimuli = {m: _signals(subj, m, "stimuli", len(CHANNELS[m]), where, path) for m in mods}
        baseline = {m: _signals(subj, m, "baseline", len(CHANNELS[m]), where, path) for m in mods}
        scores = []
        for name in SCORE_FIELDS:
            v = np.asarray(_record(_field(subj, name, where, path)), dtype=np.float64).reshape(-1)
            scores.append(v)
        n = {len(v) for v in scores} | {len(v) for v in stimuli.values()}
        n |= {len(v) for v in baseline.values()}
        if len(n) != 1:
            raise DataSetError(
                f"{path}: {where}: films, baselines and scores disagree in count "
                f"({', '.join(f'{k} {len(v)}' for k, v in zip(SCORE_FIELDS, scores, strict=True))}, "
                + ", ".join(f"{m} stimuli {len(v)}" for m, v in stimuli.items())
                + ")"
            )
        age = _text(_field(subj, "Age", where, path)) if "Age" in _names(subj) else ""
        gender = _text(_field(subj, "Gender", where, path)) if "Gender" in _names(subj) else ""
        out.subjects.append(
            DreamerSubject(s, stimuli, baseline, np.stack(scores, axis=1), age, gender)
        )
    return out


def _names(value: Any) -> tuple[str, ...]:
    return getattr(getattr(_record(value), "dtype", None), "names", None) or ()


def load_dreamer(
    path: str | Path,
    *,
    subjects: Sequence[int] | None = None,
    modalities: Iterable[str] = ("eeg", "ecg"),
    window_s: float | None = 4.0,
    hop_s: float | None = 2.0,
    baseline: str = "segment",
    last_s: float | None = None,
    threshold: float = THRESHOLD,
    dtype: np.dtype | type = np.float32,
) -> WindowedSignals:
    """Windows of EEG and/or ECG with the three scores (1-5) of their film.

    Each film's own baseline is removed per ``baseline`` (``windows.BASELINE_MODES``);
    ``last_s`` keeps only the last seconds of each film. Subjects are numbered
    from 1 in file order; trials from 0.
    """
    f = read_dreamer(path, subjects, modalities)
    mods = tuple(f.rates)
    trials = []
    for subj in f.subjects:
        for k in range(len(subj.scores)):
            signals = {}
            for m in mods:
                x = subj.stimuli[m][k].T
                if last_s is not None:
                    x = x[:, -int(round(last_s * f.rates[m])) :]
                signals[m] = remove_baseline(x, subj.baseline[m][k].T, f.rates[m], baseline)
            trials.append(TrialSignals(subj.subject, k, signals, subj.scores[k]))
    return window_trials(
        trials,
        f.rates,
        window_s,
        hop_s,
        label_names=LABELS,
        channel_names={
            m: f.electrodes
            if m == "eeg" and len(f.electrodes) == len(EEG_CHANNELS)
            else CHANNELS[m]
            for m in mods
        },
        threshold=threshold,
        dtype=dtype,
        meta={
            "data_set": "dreamer",
            "path": str(f.path),
            "baseline": baseline,
            "age": {s.subject: s.age for s in f.subjects},
            "gender": {s.subject: s.gender for s in f.subjects},
        },
    )
