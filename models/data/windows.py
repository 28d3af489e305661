"""What the DEAP and DREAMER loaders share: baseline removal, windowing, splits.

Both data sets give, per trial, a stimulus recording, a pre-stimulus baseline
and one rating per dimension. The loaders turn that into fixed-length windows
that all carry their trial's rating, so a model sees many windows per rating,
and keep the subject and trial of every window: splits must never put windows
of one trial (k-fold) or of one person (LOSO) on both sides.

Baseline removal (``BASELINE_MODES``):

- ``"segment"``: the baseline is cut into 1 s segments, their mean (a 1 s
  template) is subtracted from every 1 s segment of the stimulus, counted from
  stimulus onset (Yang et al. 2018, the usual treatment of DEAP's 3 s and
  DREAMER's 61 s baselines);
- ``"mean"``: each channel's baseline mean is subtracted;
- ``"none"``: the baseline is only dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

BASELINE_MODES: tuple[str, ...] = ("segment", "mean", "none")


class DataSetError(ValueError):
    """A data set file or folder is not what its format says; the message names it."""


def remove_baseline(
    signal: np.ndarray, baseline: np.ndarray, rate: float, mode: str = "segment"
) -> np.ndarray:
    """``signal`` ``(C, T)`` minus what ``baseline`` ``(C, Tb)`` says about its resting level.

    Returns a new float64 array. ``rate`` (Hz) sets the 1 s segment length of
    ``"segment"`` mode, which needs at least one whole second of baseline.
    """
    if mode not in BASELINE_MODES:
        raise ValueError(f"baseline mode {mode!r}; expected one of {', '.join(BASELINE_MODES)}")
    x = np.asarray(signal, dtype=np.float64)
    if mode == "none":
        return x.copy()
    b = np.asarray(baseline, dtype=np.float64)
    if b.ndim != 2 or b.shape[0] != x.shape[0]:
        raise ValueError(f"baseline shape {b.shape} does not match signal shape {x.shape}")
    if mode == "mean":
        if b.shape[1] == 0:
            raise ValueError("baseline is empty")
        return x - b.mean(axis=1, keepdims=True)
    seg = int(round(rate))
    n_seg = b.shape[1] // seg if seg > 0 else 0
    if n_seg == 0:
        raise ValueError(
            f"'segment' baseline removal needs at least 1 s ({seg} samples) of baseline, "
            f"got {b.shape[1]}"
        )
    template = b[:, : n_seg * seg].reshape(b.shape[0], n_seg, seg).mean(axis=1)
    reps = -(-x.shape[1] // seg)
    return x - np.tile(template, (1, reps))[:, : x.shape[1]]


def window_starts(duration_s: float, window_s: float | None, hop_s: float | None) -> np.ndarray:
    """Start times (s) of the windows that fit in ``duration_s``; one whole-trial window if ``window_s`` is None."""
    if window_s is None:
        return np.zeros(1)
    if window_s <= 0:
        raise ValueError("window_s must be > 0")
    hop = window_s if hop_s is None else hop_s
    if hop <= 0:
        raise ValueError("hop_s must be > 0")
    # A small tolerance: 60 s trials hold exactly 60 windows of 1 s despite float rounding.
    n = math.floor((duration_s - window_s) / hop + 1e-9) + 1
    return np.arange(max(n, 0)) * hop


@dataclass
class TrialSignals:
    """One trial of one subject after baseline removal: ``(C, T)`` float per modality."""

    subject: int
    trial: int
    signals: dict[str, np.ndarray]
    labels: np.ndarray  # (D,)


@dataclass
class WindowedSignals:
    """Windows of every selected modality, aligned in time, with their labels and origins.

    ``x[m]`` is ``(N, C_m, T_m)``: window ``i`` covers the same seconds of its
    trial in every modality (``start_s[i]`` after stimulus onset), even where
    rates differ. ``y`` holds the trial's ratings on the data set's scale.
    """

    x: dict[str, np.ndarray]
    y: np.ndarray  # (N, D) float32
    subject: np.ndarray  # (N,) int64, the data set's subject number
    trial: np.ndarray  # (N,) int64, 0-based trial index within the subject
    start_s: np.ndarray  # (N,) float64
    label_names: tuple[str, ...]
    channel_names: dict[str, tuple[str, ...]]
    rates: dict[str, float]
    window_s: float | None
    threshold: float  # ratings above it are "high" (binary labels)
    meta: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.x)

    def binary(self) -> np.ndarray:
        """High (1) / low (0) per dimension: ``y > threshold``."""
        return (self.y > self.threshold).astype(np.int64)

    def subset(self, index: np.ndarray | Sequence[int]) -> WindowedSignals:
        """The windows at ``index`` (indices or a boolean mask), everything else shared."""
        idx = np.asarray(index)
        return WindowedSignals(
            x={m: v[idx] for m, v in self.x.items()},
            y=self.y[idx],
            subject=self.subject[idx],
            trial=self.trial[idx],
            start_s=self.start_s[idx],
            label_names=self.label_names,
            channel_names=self.channel_names,
            rates=self.rates,
            window_s=self.window_s,
            threshold=self.threshold,
            meta=self.meta,
        )


def window_trials(
    trials: Sequence[TrialSignals],
    rates: Mapping[str, float],
    window_s: float | None,
    hop_s: float | None,
    *,
    label_names: tuple[str, ...],
    channel_names: Mapping[str, tuple[str, ...]],
    threshold: float,
    dtype: np.dtype | type = np.float32,
    meta: Mapping[str, object] | None = None,
) -> WindowedSignals:
    """Cut every trial into windows of ``window_s`` every ``hop_s`` seconds and stack them.

    A trial's usable length is that of its shortest modality. With
    ``window_s=None`` each trial is one window as long as the shortest trial.
    """
    modalities = tuple(rates)
    if not trials:
        raise ValueError("no trials to window")
    whole = min(min(t.signals[m].shape[1] / rates[m] for m in modalities) for t in trials)
    xs: dict[str, list[np.ndarray]] = {m: [] for m in modalities}
    ys, subj, tri, starts = [], [], [], []
    for t in trials:
        duration = min(t.signals[m].shape[1] / rates[m] for m in modalities)
        eff_window = whole if window_s is None else window_s
        st = window_starts(duration, eff_window, hop_s if window_s is not None else None)
        if st.size == 0:
            continue
        for m in modalities:
            n = int(round(eff_window * rates[m]))
            sig = t.signals[m]
            first = np.rint(st * rates[m]).astype(np.int64)
            first = np.minimum(first, sig.shape[1] - n)
            idx = first[:, None] + np.arange(n)[None, :]
            xs[m].append(np.ascontiguousarray(sig[:, idx].transpose(1, 0, 2), dtype=dtype))
        ys.append(np.repeat(np.asarray(t.labels, np.float32)[None], st.size, axis=0))
        subj.append(np.full(st.size, t.subject, np.int64))
        tri.append(np.full(st.size, t.trial, np.int64))
        starts.append(st)
    if not ys:
        raise ValueError(f"no trial is as long as one window of {window_s} s")
    return WindowedSignals(
        x={m: np.concatenate(v) for m, v in xs.items()},
        y=np.concatenate(ys),
        subject=np.concatenate(subj),
        trial=np.concatenate(tri),
        start_s=np.concatenate(starts),
        label_names=tuple(label_names),
        channel_names={m: tuple(channel_names[m]) for m in modalities},
        rates={m: float(rates[m]) for m in modalities},
        window_s=window_s,
        threshold=float(threshold),
        meta=dict(meta or {}),
    )


def concat_windows(parts: Sequence[WindowedSignals]) -> WindowedSignals:
    """Stack window sets cut with the same settings (e.g. one per subject, to bound memory)."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    for p in parts[1:]:
        if p.channel_names != first.channel_names or p.rates != first.rates:
            raise ValueError("window sets differ in modalities, channels or rates")
        shapes = {m: v.shape[1:] for m, v in p.x.items()}
        if shapes != {m: v.shape[1:] for m, v in first.x.items()}:
            raise ValueError(f"window shapes differ: {shapes}")
    return WindowedSignals(
        x={m: np.concatenate([p.x[m] for p in parts]) for m in first.x},
        y=np.concatenate([p.y for p in parts]),
        subject=np.concatenate([p.subject for p in parts]),
        trial=np.concatenate([p.trial for p in parts]),
        start_s=np.concatenate([p.start_s for p in parts]),
        label_names=first.label_names,
        channel_names=first.channel_names,
        rates=first.rates,
        window_s=first.window_s,
        threshold=first.threshold,
        meta=first.meta,
    )


# ------------------------------------------------------------------ splits
def loso_splits(subject: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Leave-one-subject-out: ``(held-out subject, train indices, test indices)`` per subject."""
    subject = np.asarray(subject)
    people = np.unique(subject)
    if people.size < 2:
        raise ValueError("leave-one-subject-out needs at least two subjects")
    for s in people:
        test = subject == s
        yield int(s), np.flatnonzero(~test), np.flatnonzero(test)


def kfold_splits(
    subject: np.ndarray, trial: np.ndarray, k: int = 10, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Subject-dependent k-fold: each subject's trials spread evenly over the folds.

    Whole trials are assigned (windows of one trial overlap in time and share a
    rating, so splitting them would leak); each subject's trials are shuffled
    and dealt round-robin from a random fold, so every fold holds about 1/k of
    every subject's trials. Returns ``(train indices, test indices)`` per fold.
    """
    if k < 2:
        raise ValueError("k-fold needs k >= 2")
    subject, trial = np.asarray(subject), np.asarray(trial)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(subject), np.int64)
    for s in np.unique(subject):
        mine = subject == s
        trials = np.unique(trial[mine])
        order = rng.permutation(trials)
        offset = int(rng.integers(k))
        assign = {int(t): (offset + i) % k for i, t in enumerate(order)}
        fold[mine] = [assign[int(t)] for t in trial[mine]]
    out = []
    for f in range(k):
        test = fold == f
        if test.any():
            out.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return out
