"""DEAP ``data_preprocessed_python``: 32 subjects, 40 music-video trials each.

``sXX.dat`` (s01 .. s32) is a Python 2 pickle of a dict: ``data`` (40 trials x
40 channels x 8064 samples at 128 Hz: 3 s pre-trial baseline, then 60 s of
video) and ``labels`` (40 x 4: valence, arousal, dominance, liking, rated 1-9).
Channels 1-32 are EEG in the Geneva order, then hEOG, vEOG, zEMG, tEMG, GSR,
respiration belt, plethysmograph, temperature (REFERENCE 4). Files are read
with ``safe_pickle`` only: a file that names anything but numpy arrays and
plain containers is refused before any of it runs.

``load_deap`` selects modalities, removes the baseline (``windows``), cuts
windows and keeps the subject (for leave-one-subject-out) and trial (for
subject-dependent k-fold) of each. Binary labels: rating > 5 is "high", the
middle of the 1-9 scale, as DEAP's own analysis split it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data.safe_pickle import safe_load
from models.data.windows import (
    DataSetError,
    TrialSignals,
    WindowedSignals,
    concat_windows,
    remove_baseline,
    window_trials,
)

RATE = 128.0
BASELINE_S = 3.0
BASELINE_SAMPLES = int(RATE * BASELINE_S)  # 384
LABELS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")
THRESHOLD = 5.0

EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # fmt: skip
#: All 40 channels in file order.
CHANNELS: tuple[str, ...] = (
    *EEG_CHANNELS, "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)  # fmt: skip
#: Modality -> channel indices (0-based) in file order.
MODALITIES: dict[str, tuple[int, ...]] = {
    "eeg": tuple(range(32)),
    "eog": (32, 33),
    "emg": (34, 35),
    "gsr": (36,),
    "resp": (37,),
    "ppg": (38,),
    "temp": (39,),
}
FOLDER = "data_preprocessed_python"
_FILE = re.compile(r"^s(\d+)\.dat$")


@dataclass
class DeapSubject:
    """One subject file as stored: ``data`` (trials, 40, samples), ``labels`` (trials, 4)."""

    subject: int
    path: Path
    data: np.ndarray
    labels: np.ndarray


def deap_folder(root: str | Path) -> Path:
    """The folder holding ``sXX.dat``: ``root`` itself or its ``data_preprocessed_python``."""
    root = Path(root)
    if (root / FOLDER).is_dir():
        return root / FOLDER
    return root


def subject_files(root: str | Path) -> dict[int, Path]:
    """``{subject number: path}`` of every ``sXX.dat`` under ``root``, in order."""
    folder = deap_folder(root)
    if not folder.is_dir():
        raise DataSetError(f"{folder}: no such DEAP folder")
    found = {}
    for p in folder.iterdir():
        m = _FILE.match(p.name)
        if m and p.is_file():
            found[int(m.group(1))] = p
    if not found:
        raise DataSetError(f"{folder}: no DEAP subject files (s01.dat ... s32.dat)")
    return dict(sorted(found.items()))


def read_subject(path: str | Path, subject: int | None = None) -> DeapSubject:
    """Read and check one ``sXX.dat``; errors name the file and what was wrong."""
    path = Path(path)
    if subject is None:
        m = _FILE.match(path.name)
        subject = int(m.group(1)) if m else 0
    obj = safe_load(path)
    if not isinstance(obj, dict):
        raise DataSetError(
            f"{path}: expected a dict with 'data' and 'labels', got {type(obj).__name__}"
        )
    for key in ("data", "labels"):
        if key not in obj:
            raise DataSetError(f"{path}: missing key '{key}' (found {sorted(map(str, obj))})")
    data, labels = obj["data"], obj["labels"]
    for key, arr in (("data", data), ("labels", labels)):
        if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
            raise DataSetError(f"{path}: '{key}' is not a numeric array")
    if data.ndim != 3 or data.shape[1] != len(CHANNELS) or data.shape[2] <= BASELINE_SAMPLES:
        raise DataSetError(
            f"{path}: 'data' has shape {data.shape}, expected (trials, {len(CHANNELS)}, samples) "
            f"with more than the {BASELINE_SAMPLES} baseline samples (DEAP: (40, 40, 8064))"
        )
    if labels.shape != (data.shape[0], len(LABELS)):
        raise DataSetError(
            f"{path}: 'labels' has shape {labels.shape}, expected ({data.shape[0]}, {len(LABELS)})"
        )
    return DeapSubject(int(subject), path, data, labels)


def _modalities(names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [m for m in names if m not in MODALITIES]
    if unknown or not names:
        raise ValueError(
            f"DEAP modalities {unknown or '()'}; expected some of {', '.join(MODALITIES)}"
        )
    return names


def load_deap(
    root: str | Path,
    *,
    subjects: Sequence[int] | None = None,
    modalities: Iterable[str] = ("eeg", "eog", "emg", "gsr", "resp", "ppg", "temp"),
    window_s: float | None = 4.0,
    hop_s: float | None = 2.0,
    baseline: str = "segment",
    threshold: float = THRESHOLD,
    dtype: np.dtype | type = np.float32,
) -> WindowedSignals:
    """Windows of the chosen modalities of the chosen subjects (all found if None).

    Each trial's 3 s baseline is removed per ``baseline`` (``windows.BASELINE_MODES``)
    and dropped; windows of ``window_s`` every ``hop_s`` seconds then cover the
    stimulus part (``window_s=None``: the whole trial as one window). ``y`` is
    the trial's four ratings (1-9); ``binary()`` gives ``y > threshold``.
    """
    mods = _modalities(modalities)
    files = subject_files(root)
    if subjects is not None:
        missing = [s for s in subjects if s not in files]
        if missing:
            raise DataSetError(
                f"{deap_folder(root)}: no file for subject(s) {missing} "
                f"(found {', '.join(f's{s:02d}.dat' for s in files)})"
            )
        files = {s: files[s] for s in subjects}
    meta = {"data_set": "deap", "root": str(deap_folder(root)), "baseline": baseline}
    parts = []
    for number, path in files.items():  # one subject at a time bounds memory
        subj = read_subject(path, number)
        trials = []
        for k in range(subj.data.shape[0]):
            signals = {}
            for m in mods:
                rows = subj.data[k, list(MODALITIES[m])]
                signals[m] = remove_baseline(
                    rows[:, BASELINE_SAMPLES:], rows[:, :BASELINE_SAMPLES], RATE, baseline
                )
            trials.append(TrialSignals(number, k, signals, subj.labels[k]))
        parts.append(
            window_trials(
                trials,
                {m: RATE for m in mods},
                window_s,
                hop_s,
                label_names=LABELS,
                channel_names={m: tuple(CHANNELS[i] for i in MODALITIES[m]) for m in mods},
                threshold=threshold,
                dtype=dtype,
                meta=meta,
            )
        )
    return concat_windows(parts)
