"""Data sets as training and evaluation see them: ``KIND:PATH``, arrays in memory, folds.

``deap`` and ``dreamer`` become ``SignalData`` (windows of every modality, the
trial's ratings, subject and trial of each window); ``see`` becomes ``SeeData``
(sequences whose clips are read from the JPEG folders when a batch needs them).

Folds (``make_folds``) follow the papers' protocols and never split what must
stay together:

- ``kfold`` (DEAP/DREAMER): subject-dependent k-fold over whole trials
  (``models.data.kfold_splits``), the Hi-MoE paper's main protocol; SEE: the
  sequences of each (subject, emotion) dealt over the folds.
- ``loso``: leave one subject out (both kinds).
- ``holdout`` (DEAP/DREAMER): one subject-dependent split, a fifth of every
  subject's trials for test; SEE: the data set's own training / testing split.

Validation (early stopping, ensemble weights) is carved from each fold's
training part the same way: whole trials (a fifth of each subject's), or a
fifth of the training sequences per emotion, so a trial or a sequence never
sits on both sides. Each fold records its test part by key (subject and trial,
or sequence name), so evaluation can find it again in the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.data import SeeDataset, kfold_splits, load_deap, load_dreamer, loso_splits
from models.data.deap import subject_files
from models.data.windows import DataSetError, WindowedSignals

KINDS: tuple[str, ...] = ("deap", "dreamer", "see")
PROTOCOLS: tuple[str, ...] = ("kfold", "loso", "holdout")
OUTPUT_RANGE: dict[str, tuple[float, float]] = {"deap": (1.0, 9.0), "dreamer": (1.0, 5.0)}
VAL_PARTS = 5  # validation = one fifth of the training part


class UsageError(ValueError):
    """A request that cannot run as asked (unknown model, wrong data kind, missing path)."""


@dataclass(frozen=True)
class DataRef:
    kind: str
    path: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def parse_data_ref(text: str) -> DataRef:
    """``KIND:PATH`` with KIND in deap, dreamer, see; the path must exist."""
    kind, sep, path = text.partition(":")
    if not sep or not path:
        raise UsageError(f"--data {text!r}: expected KIND:PATH with KIND one of {', '.join(KINDS)}")
    kind = kind.lower()
    if kind not in KINDS:
        raise UsageError(
            f"--data {text!r}: unknown data kind {kind!r}; expected one of {', '.join(KINDS)}"
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"--data {text!r}: {p} does not exist")
    return DataRef(kind, p)


# --------------------------------------------------------------------------- signals
@dataclass
class SignalData:
    """DEAP or DREAMER windows in memory (float32), one rating vector per window."""

    kind: str
    windows: WindowedSignals
    output_range: tuple[float, float]

    @property
    def x(self) -> dict[str, np.ndarray]:
        return self.windows.x

    @property
    def y(self) -> np.ndarray:
        return self.windows.y

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.windows.label_names

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.windows.modalities

    @property
    def threshold(self) -> float:
        return self.windows.threshold

    @property
    def window_s(self) -> float:
        return float(self.windows.window_s or 0.0)

    def __len__(self) -> int:
        return len(self.windows)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(v.shape[1:]) for m, v in self.x.items()}

    def keys(self, index: np.ndarray) -> list[list[int]]:
        """The (subject, trial) pairs the windows at ``index`` come from, sorted, unique."""
        pairs = {
            (int(s), int(t))
            for s, t in zip(self.windows.subject[index], self.windows.trial[index], strict=True)
        }
        return [list(p) for p in sorted(pairs)]

    def select(self, keys: Sequence[Sequence[int]]) -> np.ndarray:
        """Indices of the windows of the given (subject, trial) pairs."""
        want = {(int(s), int(t)) for s, t in keys}
        sel = [i for i, (s, t) in enumerate(zip(self.windows.subject, self.windows.trial, strict=True))
               if (int(s), int(t)) in want]  # fmt: skip
        return np.asarray(sel, dtype=np.int64)


def load_signals(
    ref: DataRef,
    window_s: float = 4.0,
    hop_s: float = 2.0,
    max_subjects: int | None = None,
) -> SignalData:
    """Windows of every modality of a DEAP folder or DREAMER file (first ``max_subjects`` only)."""
    if ref.kind == "deap":
        files = subject_files(ref.path)
        subjects = list(files)[:max_subjects] if max_subjects else None
        w = load_deap(ref.path, subjects=subjects, window_s=window_s, hop_s=hop_s)
    elif ref.kind == "dreamer":
        subjects = list(range(1, max_subjects + 1)) if max_subjects else None
        try:
            w = load_dreamer(ref.path, subjects=subjects, window_s=window_s, hop_s=hop_s)
        except DataSetError as exc:
            if max_subjects and "no subject" in str(exc):  # fewer subjects than asked: take all
                w = load_dreamer(ref.path, window_s=window_s, hop_s=hop_s)
            else:
                raise
    else:
        raise UsageError(f"{ref}: not a signal data set (deap or dreamer)")
    return SignalData(ref.kind, w, OUTPUT_RANGE[ref.kind])


# --------------------------------------------------------------------------- SEE
@dataclass
class SeeData:
    """SEE sequences; clips (frames and event frames) are read per batch, eval clips cached."""

    dataset: SeeDataset
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    kind: str = "see"

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.label_indices

    @property
    def subjects(self) -> np.ndarray:
        return self.dataset.subject_ids

    @property
    def lightings(self) -> np.ndarray:
        return self.dataset.lighting_names

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.dataset.sequences]

    @property
    def subsets(self) -> np.ndarray:
        return np.array([s.subset for s in self.dataset.sequences])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.dataset.labels)

    def __len__(self) -> int:
        return len(self.dataset)

    def clips(
        self, index: Sequence[int], rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(frames, events)`` as ``(B, T, C, H, W)`` uint8; random positions with ``rng``."""
        fr, ev = [], []
        for i in index:
            i = int(i)
            if rng is None and i in self.cache:
                f, e = self.cache[i]
            else:
                c = self.dataset.clip(i, rng)
                f, e = c.frames.transpose(1, 0, 2, 3), c.events.transpose(1, 0, 2, 3)
                if rng is None:
                    self.cache[i] = (f, e)
            fr.append(f)
            ev.append(e)
        return np.stack(fr), np.stack(ev)

    def keys(self, index: np.ndarray) -> list[str]:
        names = self.names
        return sorted(names[int(i)] for i in index)

    def select(self, keys: Sequence[str]) -> np.ndarray:
        want = set(keys)
        return np.asarray([i for i, n in enumerate(self.names) if n in want], dtype=np.int64)


def load_see(
    ref: DataRef,
    channels: int,
    image_size: tuple[int, int],
    frames: int,
    stride: int,
    max_subjects: int | None = None,
) -> SeeData:
    """All SEE sequences (both subsets) at the model's clip geometry."""
    subjects = None
    if max_subjects:
        probe = SeeDataset(ref.path, None)
        subjects = sorted(set(probe.subject_ids.tolist()))[:max_subjects]
    ds = SeeDataset(
        ref.path, None, frames=frames, stride=stride, size=image_size, channels=channels,
        subjects=subjects,
    )  # fmt: skip
    if len(ds) == 0:
        raise DataSetError(f"{ref.path}: no SEE sequences")
    return SeeData(ds)


Data = SignalData | SeeData


# --------------------------------------------------------------------------- folds
@dataclass
class Fold:
    """One split: indices into the data set, and the test part by key (JSON-ready)."""

    index: int
    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_keys: list[Any]
    held_out: Any = None  # LOSO: the subject

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "held_out": self.held_out,
            "n_train": int(self.train.size),
            "n_val": int(self.val.size),
            "n_test": int(self.test.size),
            "test_keys": self.test_keys,
        }


def _signal_val(data: SignalData, train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fifth of each subject's training trials (whole trials) for validation."""
    w = data.windows
    parts = kfold_splits(w.subject[train], w.trial[train], VAL_PARTS, seed + 7919)
    fit, val = parts[0]
    return train[fit], train[val]


def _see_deal(data: SeeData, index: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number (0..k-1) for each of ``index``: per (subject, emotion), shuffled, dealt round-robin."""
    rng = np.random.default_rng(seed)
    fold = np.empty(index.size, np.int64)
    groups: dict[tuple[int, int], list[int]] = {}
    for j, i in enumerate(index):
        groups.setdefault((int(data.subjects[i]), int(data.labels[i])), []).append(j)
    for key in sorted(groups):
        members = rng.permutation(groups[key])
        offset = int(rng.integers(k))
        for r, j in enumerate(members):
            fold[j] = (offset + r) % k
    return fold


def _see_val(data: SeeData, train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fifth of the training sequences, stratified by emotion, for validation."""
    rng = np.random.default_rng(seed + 7919)
    val = []
    for c in np.unique(data.labels[train]):
        members = rng.permutation(train[data.labels[train] == c])
        val.extend(members[: max(1, round(len(members) / VAL_PARTS))] if len(members) > 1 else [])
    val_set = set(int(v) for v in val)
    fit = np.array([i for i in train if int(i) not in val_set], dtype=np.int64)
    return fit, np.array(sorted(val_set), dtype=np.int64)


def _check_trial_folds(data: SignalData, folds: int) -> None:
    """Refuse more folds than the subject with the fewest trials has trials: subject-dependent
    k-fold deals each subject's whole trials over the folds, so beyond that count some folds
    lack that subject, folds with no trial at all were silently dropped (DREAMER's 18 trials
    gave 18 of 40 asked), and folds of one trial each score constant ratings (CCC 0)."""
    w = data.windows
    trials = {int(s): np.unique(w.trial[w.subject == s]).size for s in np.unique(w.subject)}
    fewest = min(trials, key=lambda s: (trials[s], s))
    if folds > trials[fewest]:
        raise UsageError(
            f"--folds {folds}: subject {fewest} has {trials[fewest]} trials, and k-fold over "
            f"whole trials gives each fold one of every subject's: at most --folds {trials[fewest]}"
        )


def _check_see_folds(data: SeeData, fold: np.ndarray, folds: int) -> None:
    """Refuse a SEE k-fold whose deal left folds empty (they were silently dropped)."""
    empty = folds - np.unique(fold).size
    if empty:
        groups = np.unique(np.stack([data.subjects, data.labels]), axis=1, return_counts=True)[1]
        raise UsageError(
            f"--folds {folds}: {empty} fold(s) would hold no sequence; at most --folds "
            f"{int(groups.max())} (the most sequences of one subject and emotion) fills every fold"
        )


def make_folds(data: Data, protocol: str, folds: int = 10, seed: int = 0) -> list[Fold]:
    """The protocol's folds, each with train / validation / test indices; a k-fold gives
    exactly ``folds`` folds or is refused."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    out: list[Fold] = []
    if isinstance(data, SignalData):
        w = data.windows
        if protocol == "loso":
            splits = [(s, tr, te) for s, tr, te in loso_splits(w.subject)]
        elif protocol == "kfold":
            _check_trial_folds(data, folds)
            splits = [(None, tr, te) for tr, te in kfold_splits(w.subject, w.trial, folds, seed)]
        else:
            tr, te = kfold_splits(w.subject, w.trial, VAL_PARTS, seed)[0]
            splits = [(None, tr, te)]
        for k, (held, tr, te) in enumerate(splits):
            fit, val = _signal_val(data, tr, seed + k)
            name = f"subject_{held:02d}" if held is not None else f"fold_{k:02d}"
            out.append(Fold(k, name, fit, val, te, data.keys(te), held))
        return out
    idx = np.arange(len(data))
    if protocol == "holdout":
        subsets = data.subsets
        tr, te = idx[subsets == "training"], idx[subsets == "testing"]
        if tr.size == 0 or te.size == 0:
            raise DataSetError(
                f"{data.dataset.annotation}: holdout needs both training and testing sequences"
            )
        splits = [(None, tr, te)]
    elif protocol == "loso":
        splits = [(s, tr, te) for s, tr, te in loso_splits(data.subjects)]
    else:
        if folds < 2:
            raise UsageError("k-fold needs --folds >= 2")
        fold = _see_deal(data, idx, folds, seed)
        _check_see_folds(data, fold, folds)
        splits = [(None, idx[fold != f], idx[fold == f]) for f in range(folds)]
    for k, (held, tr, te) in enumerate(splits):
        fit, val = _see_val(data, tr, seed + k)
        name = f"subject_{held:03d}" if held is not None else f"fold_{k:02d}"
        out.append(Fold(k, name, fit, val, te, data.keys(te), held))
    return out
