"""SEE (Zhang et al. 2023): single-eye APS frames and event frames, 7 emotions, 4 lightings.

Layout (REFERENCE 2)::

    SEE/event/<emotion>/<sequence>/00000.jpg ...   one accumulated event frame per APS frame (33 ms)
    SEE/frame/<emotion>/<sequence>/00000.jpg ...   APS frames, 30 fps
    SEE/emotion.json   {"labels": [...], "database": {name: {"subset": "training"|"testing",
                        "annotations": {"label": ..., "segment": [start, end]}}}}

The emotion folders are the labels, except that neutral's is spelled
``neutraL`` on disk: folders are matched to labels ignoring case. A sequence
name is ``[seq]_[ID]_[sex]_[age]_[degree]_[lighting]_[emotion]_[length]_[take]``,
e.g. ``1_001_man_24_Master_normal_angry_45_take000``; the lighting tokens
normal, Overexposed, Low and HDR map to the condition names used everywhere
else here (normal, overexposure, low_light, hdr). Class indices follow the
order of ``labels`` in emotion.json, as the released code does.

Events are read as the data set ships them, JPEG event frames; no raw event
stream (aedat4) is involved. Clips are sampled as MCO-E Net and SEEN were
trained: every ``stride``-th frame from a random offset, then ``frames``
consecutive ones from a random start, looped when too short; without a random
generator the offset is 0 and the crop is centred (deterministic evaluation).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data.windows import DataSetError

EMOTIONS: tuple[str, ...] = (
    "angry", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
)  # fmt: skip
#: name token (lower case) -> lighting condition
LIGHTING_TOKENS: dict[str, str] = {
    "normal": "normal",
    "overexposed": "overexposure",
    "low": "low_light",
    "hdr": "hdr",
}
#: lighting condition -> the token SEE writes in sequence names
TOKEN_FOR_LIGHTING: dict[str, str] = {
    "normal": "normal",
    "overexposure": "Overexposed",
    "low_light": "Low",
    "hdr": "HDR",
}
LIGHTINGS: tuple[str, ...] = tuple(TOKEN_FOR_LIGHTING)
#: per-pixel statistics on the 0-1 scale used by the released training code (REFERENCE 1)
FRAME_MEAN, FRAME_STD = 0.22616537, 0.118931554
EVENT_MEAN, EVENT_STD = 0.504413, 0.06928615
ANNOTATION = "emotion.json"
SUBSETS = ("training", "testing")
_NAME = re.compile(
    r"^(?P<seq>\d+)_(?P<id>\d+)_(?P<sex>[^_]+)_(?P<age>\d+)_(?P<degree>[^_]+)_"
    r"(?P<lighting>[^_]+)_(?P<emotion>[^_]+)_(?P<length>\d+)_take(?P<take>\d+)$"
)


@dataclass(frozen=True)
class SequenceName:
    """The fields of a SEE sequence name."""

    seq: int
    subject: int
    sex: str
    age: int
    degree: str
    lighting: str  # condition name: normal, overexposure, low_light, hdr
    emotion: str
    length: int
    take: int

    @classmethod
    def parse(cls, name: str) -> SequenceName:
        m = _NAME.match(name)
        if m is None:
            raise ValueError(
                f"sequence name {name!r} is not "
                "[seq]_[ID]_[sex]_[age]_[degree]_[lighting]_[emotion]_[length]_take[NNN]"
            )
        token = m["lighting"].lower()
        if token not in LIGHTING_TOKENS:
            raise ValueError(
                f"sequence {name!r}: unknown lighting {m['lighting']!r} "
                f"(expected one of normal, Overexposed, Low, HDR)"
            )
        return cls(
            seq=int(m["seq"]),
            subject=int(m["id"]),
            sex=m["sex"],
            age=int(m["age"]),
            degree=m["degree"],
            lighting=LIGHTING_TOKENS[token],
            emotion=m["emotion"].lower(),
            length=int(m["length"]),
            take=int(m["take"]),
        )

    def format(self) -> str:
        return (
            f"{self.seq}_{self.subject:03d}_{self.sex}_{self.age}_{self.degree}_"
            f"{TOKEN_FOR_LIGHTING[self.lighting]}_{self.emotion}_{self.length}_take{self.take:03d}"
        )


@dataclass(frozen=True)
class SeeSequence:
    """One annotated sequence and where its two folders are."""

    name: str
    info: SequenceName
    label: str
    label_index: int
    subset: str
    segment: tuple[int, int]  # [start, end) frame indices
    frame_dir: Path
    event_dir: Path

    @property
    def subject(self) -> int:
        return self.info.subject

    @property
    def lighting(self) -> str:
        return self.info.lighting

    @property
    def n_frames(self) -> int:
        return self.segment[1] - self.segment[0]


@dataclass
class SeeClip:
    """Sampled frames and event frames of one sequence, ``(C, T, H, W)`` uint8 each."""

    frames: np.ndarray
    events: np.ndarray
    label: int
    subject: int
    lighting: str
    name: str
    indices: np.ndarray  # frame numbers read


def temporal_indices(
    n: int, frames: int = 4, stride: int = 4, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Positions (0 .. n-1) of ``frames`` frames sampled from a sequence of ``n``.

    Every ``stride``-th frame from an offset (random in 0..stride with ``rng``,
    as released; else 0), then a crop of ``frames`` (random start with ``rng``;
    else centred), looped from its own start when the subsampled run is short.
    """
    if n < 1:
        raise ValueError("a sequence needs at least one frame")
    if frames < 1 or stride < 1:
        raise ValueError("frames and stride must be >= 1")
    offset = int(rng.integers(0, stride + 1)) if rng is not None else 0
    sub = np.arange(n)[min(offset, n - 1) :: stride]
    if rng is not None:
        begin = int(rng.integers(0, max(0, len(sub) - frames - 1) + 1))
    else:
        begin = max(0, (len(sub) - frames) // 2)
    crop = sub[begin : begin + frames]
    return np.resize(crop, frames)  # loop padding: repeats the crop from its start


def normalize(clip: np.ndarray, kind: str) -> np.ndarray:
    """uint8 frames or event frames -> float32 standardised as the released training code does."""
    if kind not in ("frames", "events"):
        raise ValueError("kind must be 'frames' or 'events'")
    mean, std = (FRAME_MEAN, FRAME_STD) if kind == "frames" else (EVENT_MEAN, EVENT_STD)
    return ((np.asarray(clip, np.float32) / 255.0 - mean) / std).astype(np.float32)


def read_annotations(path: str | Path) -> tuple[tuple[str, ...], dict[str, dict]]:
    """``(labels, database)`` from emotion.json, checked; errors name the file and entry."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataSetError(f"{path}: no SEE annotation file") from exc
    except NotADirectoryError as exc:  # a file where SEE's folder should be
        raise DataSetError(
            f"{path.parent}: is not a folder; SEE wants its folder (the one holding {path.name})"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataSetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise DataSetError(f"{path}: expected an object with 'labels' and 'database'")
    for key in ("labels", "database"):
        if key not in doc:
            raise DataSetError(f"{path}: missing key '{key}'")
    labels = doc["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels) or not labels:
        raise DataSetError(f"{path}: 'labels' must be a non-empty list of names")
    db = doc["database"]
    if not isinstance(db, dict):
        raise DataSetError(f"{path}: 'database' must be an object keyed by sequence name")
    for name, entry in db.items():
        try:
            subset = entry["subset"]
            ann = entry["annotations"]
            label, segment = ann["label"], ann["segment"]
        except (KeyError, TypeError) as exc:
            raise DataSetError(f"{path}: entry {name!r} lacks {exc}") from exc
        if subset not in SUBSETS:
            raise DataSetError(f"{path}: entry {name!r} has subset {subset!r}, expected {SUBSETS}")
        if label not in labels:
            raise DataSetError(f"{path}: entry {name!r} has label {label!r}, not in 'labels'")
        if (
            not isinstance(segment, list)
            or len(segment) != 2
            or not all(isinstance(v, int) for v in segment)
            or not 0 <= segment[0] < segment[1]
        ):
            raise DataSetError(
                f"{path}: entry {name!r} has segment {segment!r}, expected [start, end]"
            )
    return tuple(labels), db


def _emotion_dirs(base: Path) -> dict[str, Path]:
    if not base.is_dir():
        raise DataSetError(f"{base}: no such SEE folder")
    return {p.name.lower(): p for p in base.iterdir() if p.is_dir()}


class SeeDataset:
    """The sequences of one subset (or all), sampled into clips on demand.

    ``frames`` frames every ``stride`` (see ``temporal_indices``), read from
    both folders at the same positions, resized to ``size`` (H, W) and given
    ``channels`` (3: RGB as the released code reads them; 1: grey). With
    ``random=True`` each ``__getitem__`` draws its own positions from a
    generator seeded by ``seed``; otherwise clips are deterministic.
    """

    def __init__(
        self,
        root: str | Path,
        subset: str | None = "training",
        *,
        annotation: str | Path | None = None,
        frames: int = 4,
        stride: int = 4,
        size: tuple[int, int] = (100, 100),
        channels: int = 3,
        random: bool = False,
        seed: int = 0,
        lightings: Iterable[str] | None = None,
        subjects: Iterable[int] | None = None,
    ):
        if subset is not None and subset not in SUBSETS:
            raise ValueError(f"subset {subset!r}; expected one of {SUBSETS} or None")
        if channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        root = Path(root)
        if root.is_file():
            raise DataSetError(
                f"{root}: is a file; SEE wants its folder (the one holding {ANNOTATION}, "
                "frame/ and event/)"
            )
        if not (root / "frame").is_dir() and (root / "SEE" / "frame").is_dir():
            root = root / "SEE"  # the folder the archive unpacks to
        self.root = root
        self.annotation = Path(annotation) if annotation is not None else self.root / ANNOTATION
        self.frames, self.stride = int(frames), int(stride)
        self.size = (int(size[0]), int(size[1]))
        self.channels = channels
        self.random = random
        self._rng = np.random.default_rng(seed)
        labels, db = read_annotations(self.annotation)
        self.labels = labels
        want_light = None if lightings is None else set(lightings)
        if want_light is not None and not want_light <= set(LIGHTINGS):
            raise ValueError(
                f"lightings {sorted(want_light - set(LIGHTINGS))}; expected {LIGHTINGS}"
            )
        want_subj = None if subjects is None else {int(s) for s in subjects}
        frame_dirs = _emotion_dirs(self.root / "frame")
        event_dirs = _emotion_dirs(self.root / "event")
        self.sequences: list[SeeSequence] = []
        for name, entry in db.items():
            if subset is not None and entry["subset"] != subset:
                continue
            try:
                info = SequenceName.parse(name)
            except ValueError as exc:
                raise DataSetError(f"{self.annotation}: {exc}") from exc
            if want_light is not None and info.lighting not in want_light:
                continue
            if want_subj is not None and info.subject not in want_subj:
                continue
            label = entry["annotations"]["label"]
            dirs = []
            for kind, found in (("frame", frame_dirs), ("event", event_dirs)):
                folder = found.get(label.lower())
                if folder is None or not (folder / name).is_dir():
                    where = self.root / kind / (folder.name if folder else label) / name
                    raise DataSetError(
                        f"{where}: missing sequence folder listed in {self.annotation}"
                    )
                dirs.append(folder / name)
            start, end = entry["annotations"]["segment"]
            self.sequences.append(
                SeeSequence(name, info, label, labels.index(label), entry["subset"],
                            (int(start), int(end)), dirs[0], dirs[1])
            )  # fmt: skip

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def label_indices(self) -> np.ndarray:
        return np.array([s.label_index for s in self.sequences], dtype=np.int64)

    @property
    def subject_ids(self) -> np.ndarray:
        return np.array([s.subject for s in self.sequences], dtype=np.int64)

    @property
    def lighting_names(self) -> np.ndarray:
        return np.array([s.lighting for s in self.sequences])

    def __getitem__(self, i: int) -> SeeClip:
        return self.clip(i, self._rng if self.random else None)

    def clip(self, i: int, rng: np.random.Generator | None = None) -> SeeClip:
        """Clip ``i`` with positions drawn from ``rng`` (deterministic when None)."""
        seq = self.sequences[i]
        pos = temporal_indices(seq.n_frames, self.frames, self.stride, rng)
        numbers = seq.segment[0] + pos
        return SeeClip(
            frames=self._read(seq.frame_dir, numbers),
            events=self._read(seq.event_dir, numbers),
            label=seq.label_index,
            subject=seq.subject,
            lighting=seq.lighting,
            name=seq.name,
            indices=numbers,
        )

    def _read(self, folder: Path, numbers: Sequence[int]) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        h, w = self.size
        out = np.empty((self.channels, len(numbers), h, w), dtype=np.uint8)
        mode = "RGB" if self.channels == 3 else "L"
        for j, k in enumerate(numbers):
            path = folder / f"{int(k):05d}.jpg"
            try:
                with Image.open(path) as img:
                    im = img.convert(mode)
                    if im.size != (w, h):
                        im = im.resize((w, h), Image.BILINEAR)
                    a = np.asarray(im)
            except FileNotFoundError as exc:
                raise DataSetError(f"{path}: missing frame of sequence {folder.name}") from exc
            except (UnidentifiedImageError, OSError) as exc:
                raise DataSetError(f"{path}: not a readable image ({exc})") from exc
            out[:, j] = a.transpose(2, 0, 1) if a.ndim == 3 else a[None]
        return out
