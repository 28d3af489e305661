"""Open a recording (a session folder, an XDF file or an AEDAT4 file) as replayable tracks.

A ``Track`` is one stream: its original ``StreamSpec``, every timestamp (one
clock, sorted) and a way to read items ``[i0, i1)``. Everything is checked
here, before a replay starts, so that a bad file is a message naming the file
and what is wrong (``SourceError``) and a damaged-but-readable file is a list
of ``problems`` (the replay goes up to where it breaks).

Time. A session folder's stamps are its original one-clock seconds (XDF as
written; AEDAT4 Unix microseconds mapped back with the manifest's offset). A
bare XDF keeps its (synchronised) stamps. A bare AEDAT4 has no LSL clock to go
back to: its stamps become seconds since the whole Unix second before its first
stamp, so it starts near 0 and replays the same way every time.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.streams import EVENT_DTYPE, Modality, RingKind, StreamSpec
from drivers.lsl_streams import TYPE_MODALITIES
from recordings.manifest import MANIFEST, XDF_FILE
from recordings.taps import FRAME_TIMES_SUFFIX
from recordings.xdf_reader import XdfError, XdfFile, XdfStream, load_xdf

log = logging.getLogger(__name__)




class SourceError(ValueError):
    """A recording cannot be replayed; the message names the file and the problem."""


# ------------------------------------------------------------------ tracks
@dataclass
class Track:
    """One replayable stream with its items in memory."""

    spec: StreamSpec
    ts: np.ndarray
    data: Any  # ndarray (n, ...) of the ring's item type
    file: Path

    def read(self, i0: int, i1: int) -> np.ndarray:
        return self.data[i0:i1]

    @property
    def count(self) -> int:
        return len(self.ts)


class VideoTrack(Track):
    """Frames decoded from a video file on demand; ``ts`` from its frame-times stream."""

    def __init__(self, spec: StreamSpec, ts: np.ndarray, file: Path) -> None:
        super().__init__(spec, ts, None, file)
        self._cap: Any = None
        self._next = 0

    def _open(self) -> Any:
        import cv2

        cap = cv2.VideoCapture(str(self.file))
        if not cap.isOpened():
            raise SourceError(f"{self.file}: OpenCV cannot open this video")
        assert self.spec.frame_shape is not None
        if len(self.spec.frame_shape) == 2:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        return cap

    def read(self, i0: int, i1: int) -> np.ndarray:
        import cv2

        if self._cap is None:
            self._cap = self._open()
            self._next = 0
        if i0 != self._next:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, i0)
        assert self.spec.frame_shape is not None
        out = np.zeros((max(0, i1 - i0), *self.spec.frame_shape), np.uint8)
        for k in range(i1 - i0):
            ok, frame = self._cap.read()
            if not ok:
                break  # the video is shorter than its stamps (a crash): black frames
            if frame.ndim == 3 and len(self.spec.frame_shape) == 2:
                frame = frame[:, :, 0]
            out[k] = frame.reshape(self.spec.frame_shape)
        self._next = i1
        return out

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


@dataclass
class RecordedPredictions:
    """A model's predictions as recorded (type ``Emotion``): for comparison, not replayed."""

    model: str
    ts: np.ndarray
    columns: list[str]
    values: np.ndarray


@dataclass
class Recording:
    """What a path holds, ready to replay."""

    path: Path
    kind: str  # session | xdf | aedat4
    tracks: list[Track]
    predictions: list[RecordedPredictions] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # streams not replayed, and why
    problems: list[str] = field(default_factory=list)  # damage: replayed up to where it breaks
    manifest: dict[str, Any] | None = None
    models: list[str] = field(default_factory=list)  # models named in the manifest
    xdf: XdfFile | None = None
    #: when recording started (a session's ``start_lsl``): windows live began there, before
    #: the first item, so a replay starts its clock there too
    started_at: float | None = None

    @property
    def start(self) -> float:
        firsts = [float(t.ts[0]) for t in self.tracks if t.count]
        if self.started_at is not None:
            firsts.append(self.started_at)
        return min(firsts) if firsts else 0.0

    @property
    def end(self) -> float:
        lasts = [float(t.ts[-1]) for t in self.tracks if t.count]
        return max(lasts) if lasts else 0.0

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def close(self) -> None:
        for t in self.tracks:
            if isinstance(t, VideoTrack):
                t.close()


# ------------------------------------------------------------------ opening
def open_recording(path: str | Path) -> Recording:
    """A session folder (with ``manifest.json``), an ``.xdf`` or an ``.aedat4`` file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise SourceError(f"{path}: a folder without {MANIFEST}, so not an affectlab session")
        return _open_session(path)
    suffix = path.suffix.lower()
    if suffix == ".aedat4":
        return _open_aedat(path)
    if suffix == ".json" and path.name == MANIFEST:
        return _open_session(path.parent)
    try:
        return _open_xdf(path)
    except XdfError as exc:
        raise SourceError(str(exc)) from None


def _spec_from_xdf(s: XdfStream) -> tuple[StreamSpec | None, str]:
    """The StreamSpec an XDF stream header describes, or (None, why it is skipped)."""
    own = s.desc("affectlab")
    modality: Modality | None = None
    meta: dict[str, Any] = {}
    dtype = "object" if s.is_string else {"double64": "float64"}.get(s.channel_format, s.channel_format)
    source = s.source_id
    if own is not None and own.find("modality") is not None:
        try:
            modality = Modality((own.findtext("modality") or "").strip())
        except ValueError:
            modality = None
        raw_meta = own.findtext("metadata")
        if raw_meta:
            try:
                meta = json.loads(raw_meta)
            except json.JSONDecodeError:
                meta = {}
        if own.findtext("dtype") and not s.is_string:
            dtype = own.findtext("dtype") or dtype
        source = own.findtext("source") or source
    if modality is None:
        modality = TYPE_MODALITIES.get(s.type.strip().lower())  # the LSL driver's map
    if modality is None:
        return None, (
            f"stream {s.name!r} has type {s.type!r}, which affectlab does not know "
            f"(known: EEG, ECG, EDA/GSR, PPG/BVP, RESP, TEMP, EMG, EOG, Markers, Emotion); skipped"
        )
    if modality in (Modality.EVENTS, Modality.FRAMES):
        return None, f"stream {s.name!r} ({modality}) cannot come from an XDF file; skipped"
    labels = tuple(s.labels) if s.labels and all(s.labels) else tuple(
        f"ch{i}" for i in range(s.channel_count)
    )
    units = tuple(s.units) if s.units and len(s.units) == len(labels) else ()
    spec = StreamSpec(
        name=s.name or f"stream{s.stream_id}",
        modality=modality,
        nominal_rate=max(0.0, s.nominal_srate),
        channel_names=labels,
        units=units,
        dtype=dtype,
        source=source or f"xdf:{s.name}",
        metadata=meta,
    )
    return spec, ""


def _values(s: XdfStream, spec: StreamSpec) -> np.ndarray:
    if s.is_string:
        arr = np.empty((s.count, s.channel_count), dtype=object)
        for i, row in enumerate(s.time_series):
            arr[i, :] = row
        return arr
    return np.asarray(s.time_series).astype(spec.dtype, copy=False)


def _predictions(s: XdfStream) -> RecordedPredictions:
    own = s.desc("affectlab")
    model = (own.findtext("model") if own is not None else None) or s.name
    values = np.asarray(s.time_series, np.float64) if not s.is_string else np.zeros((s.count, 0))
    return RecordedPredictions(model.strip(), s.time_stamps, list(s.labels), values)


def _sorted(track: Track) -> Track:
    if track.count > 1 and bool(np.any(np.diff(track.ts) < 0)):
        order = np.argsort(track.ts, kind="stable")
        track.ts = track.ts[order]
        if track.data is not None:
            track.data = track.data[order]
    return track


def _open_xdf(path: Path) -> Recording:
    xdf = load_xdf(path)
    rec = Recording(path, "xdf", [], problems=list(xdf.problems), xdf=xdf)
    for s in xdf.streams:
        if s.type == "FrameTimes":
            rec.skipped.append(f"stream {s.name!r}: frame times of a video not next to a bare XDF; skipped")
            continue
        spec, why = _spec_from_xdf(s)
        if spec is None:
            rec.skipped.append(why)
            continue
        if spec.modality is Modality.PREDICTIONS:
            rec.predictions.append(_predictions(s))
            continue
        rec.tracks.append(_sorted(Track(spec, s.time_stamps, _values(s, spec), path)))
    if not rec.tracks:
        reasons = "; ".join(rec.skipped) or "it holds no stream"
        raise SourceError(f"{path}: nothing affectlab can replay ({reasons})")
    return rec


# ------------------------------------------------------------------ AEDAT4
def read_aedat(path: Path) -> dict[str, Any]:
    """Every stream of an AEDAT4 file as arrays: ``{kind: (t_us, data)}``, plus
    ``resolution`` (W, H) and ``camera``. SourceError when dv-processing cannot open it."""
    import dv_processing as dv

    from drivers.dv_data import (
        IS_TYPE,
        KINDS,
        READ,
        event_arrays,
        gray_frame,
        imu_arrays,
        trigger_arrays,
    )

    if not path.is_file():
        raise SourceError(f"{path}: no such AEDAT4 file")
    try:
        rec = dv.io.MonoCameraRecording(str(path))
    except Exception as exc:  # noqa: BLE001 - dv raises RuntimeError and others
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if ".hpp(" in first or ".cpp(" in first:  # a C++ source location says nothing to a person
            first = "it ends before its contents do" if "read" in first.lower() else "internal error"
        raise SourceError(
            f"{path}: dv-processing cannot open this AEDAT4 file: it is damaged or not AEDAT4 ({first})"
        ) from None
    names = list(rec.getStreamNames())
    out: dict[str, Any] = {"camera": str(rec.getCameraName()), "resolution": None, "streams": {}}
    for kind in KINDS:
        name = next((n for n in names if getattr(rec, IS_TYPE[kind])(n)), None)
        if name is None:
            continue
        read = getattr(rec, READ[kind])
        t_parts: list[np.ndarray] = []
        d_parts: list[np.ndarray] = []
        try:
            while True:
                item = read(name)
                if item is None:
                    break
                if kind == "events":
                    if item.isEmpty():
                        continue
                    t, d = event_arrays(item)
                elif kind == "frames":
                    t = np.array([item.timestamp], np.int64)
                    d = gray_frame(np.asarray(item.image))[None]
                elif kind == "imu":
                    if len(item) == 0:
                        continue
                    t, d = imu_arrays(item)
                else:
                    if len(item) == 0:
                        continue
                    t, d = trigger_arrays(item)
                t_parts.append(t)
                d_parts.append(d)
        except Exception as exc:  # noqa: BLE001 - a damaged packet: keep what came before
            out.setdefault("problems", []).append(f"{path}: {kind} stream {name!r} breaks off ({exc})")
        if kind == "events" and out["resolution"] is None:
            res = rec.getEventResolution(name)
            out["resolution"] = (int(res[0]), int(res[1])) if res is not None else None
        if kind == "frames" and out["resolution"] is None:
            res = rec.getFrameResolution(name)
            out["resolution"] = (int(res[0]), int(res[1])) if res is not None else None
        if kind == "frames" and not d_parts:
            continue
        empty = {"events": np.empty(0, EVENT_DTYPE), "imu": np.empty((0, 7), np.float32),
                 "triggers": np.empty((0, 1), np.float32)}
        out["streams"][kind] = (
            np.concatenate(t_parts) if t_parts else np.empty(0, np.int64),
            np.concatenate(d_parts) if d_parts else empty[kind],
            name,
        )
    del rec
    if not out["streams"]:
        raise SourceError(f"{path}: the AEDAT4 file holds no event, frame, IMU or trigger stream")
    return out


def _aedat_specs(path: Path, got: dict[str, Any], prefix: str) -> dict[str, StreamSpec]:
    from drivers.dv_data import IMU_CHANNELS, IMU_UNITS

    w, h = got["resolution"] or (0, 0)
    meta = {"input": "file", "where": str(path), "camera": got["camera"], "width": w, "height": h,
            "sensor_width": w, "sensor_height": h}
    src = f"recordings.replay:{path}"
    specs: dict[str, StreamSpec] = {}
    for kind in got["streams"]:
        name = f"{prefix}-{kind}"
        if kind == "events":
            specs[kind] = StreamSpec(name, Modality.EVENTS, 0.0, dtype=str(EVENT_DTYPE),
                                     frame_shape=(h, w), source=src, metadata=dict(meta))
        elif kind == "frames":
            shape = got["streams"][kind][1].shape[1:]
            specs[kind] = StreamSpec(name, Modality.FRAMES, 0.0, dtype="uint8", frame_shape=shape,
                                     source=src, metadata={**meta, "color": "gray"})
        elif kind == "imu":
            specs[kind] = StreamSpec(name, Modality.IMU, 0.0, IMU_CHANNELS, IMU_UNITS, source=src,
                                     metadata=dict(meta))
        else:
            specs[kind] = StreamSpec(name, Modality.TRIGGERS, 0.0, ("type",), source=src,
                                     metadata=dict(meta))
    return specs


def _open_aedat(path: Path) -> Recording:
    got = read_aedat(path)
    firsts = [int(t[0]) for t, _, _ in got["streams"].values() if len(t)]
    if not firsts:
        raise SourceError(f"{path}: the AEDAT4 file holds no data")
    origin_us = (min(firsts) // 1_000_000) * 1_000_000
    specs = _aedat_specs(path, got, path.stem)
    rec = Recording(path, "aedat4", [], problems=list(got.get("problems", [])))
    for kind, (t_us, data, _) in got["streams"].items():
        ts = (t_us - origin_us) * 1e-6
        rec.tracks.append(_sorted(Track(specs[kind], ts, data, path)))
    return rec


# ------------------------------------------------------------------ session folders
def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "affectlab-session":
        raise SourceError(f"{path}: not an affectlab session manifest (format is not 'affectlab-session')")
    if not isinstance(manifest.get("streams"), list):
        raise SourceError(f"{path}: the manifest lists no streams")
    return manifest


def _spec_from_manifest(entry: dict[str, Any]) -> StreamSpec:
    return StreamSpec(
        name=entry["name"],
        modality=Modality(entry["modality"]),
        nominal_rate=float(entry.get("nominal_rate") or 0.0),
        channel_names=tuple(entry.get("channels") or ()),
        units=tuple(entry.get("units") or ()),
        dtype=entry.get("dtype") or "float32",
        frame_shape=tuple(entry["frame_shape"]) if entry.get("frame_shape") else None,
        source=entry.get("source") or "",
        metadata=dict(entry.get("metadata") or {}),
    )


def _open_session(folder: Path) -> Recording:
    manifest = _read_manifest(folder)
    mpath = folder / MANIFEST
    rec = Recording(folder, "session", [], manifest=manifest)
    rec.models = [m.get("name", "") for m in manifest.get("models") or [] if m.get("name")]
    if isinstance(manifest.get("start_lsl"), (int, float)):
        rec.started_at = float(manifest["start_lsl"])
    entries: list[dict[str, Any]] = manifest["streams"]
    for e in entries:
        f = e.get("file")
        if not f or not (folder / f).is_file():
            raise SourceError(
                f"{mpath}: stream {e.get('name')!r} is in file {f!r}, which is missing from {folder}"
            )
    xdf: XdfFile | None = None
    if any(e.get("file") == XDF_FILE for e in entries) or (folder / XDF_FILE).is_file():
        try:
            xdf = load_xdf(folder / XDF_FILE)
        except XdfError as exc:
            raise SourceError(str(exc)) from None
        rec.xdf = xdf
        rec.problems.extend(xdf.problems)
    clock = manifest.get("clock") or {}
    off_us = clock.get("unix_minus_lsl_us")
    if off_us is None:
        off_us = round(float(clock.get("unix_minus_lsl") or 0.0) * 1e6)
    aedat_cache: dict[str, dict[str, Any]] = {}
    for e in entries:
        name = e["name"]
        try:
            spec = _spec_from_manifest(e)
        except (KeyError, ValueError) as exc:
            raise SourceError(f"{mpath}: stream {name!r} is described wrongly ({exc})") from None
        file = folder / e["file"]
        if e["file"] == XDF_FILE:
            assert xdf is not None
            s = _find_xdf(xdf, e)
            if s is None:
                raise SourceError(
                    f"{mpath}: stream {name!r} is in the manifest but not in {file} "
                    f"(it holds: {', '.join(x.name for x in xdf.streams) or 'nothing'})"
                )
            if spec.modality is Modality.PREDICTIONS:
                p = _predictions(s)
                p.model = (e.get("metadata") or {}).get("model", p.model)
                p.columns = list(e.get("channels") or p.columns)
                rec.predictions.append(p)
                continue
            _note_count(rec, e, s.count, file)
            rec.tracks.append(_sorted(Track(spec, s.time_stamps, _values(s, spec), file)))
        elif file.suffix.lower() == ".aedat4":
            if e["file"] not in aedat_cache:
                try:
                    aedat_cache[e["file"]] = read_aedat(file)
                except SourceError as exc:
                    # dv-processing needs the index a clean stop writes; the other files
                    # of the session still replay
                    aedat_cache[e["file"]] = {}
                    names = [x["name"] for x in entries if x.get("file") == e["file"]]
                    rec.problems.append(f"{exc}; not replayed: {', '.join(names)}")
                    rec.skipped.extend(f"stream {n!r}: its file {file.name} cannot be read" for n in names)
                rec.problems.extend(aedat_cache[e["file"]].get("problems", []))
            got = aedat_cache[e["file"]]
            if not got:
                continue
            dv_name = e.get("aedat_stream") or {
                Modality.EVENTS: "events", Modality.FRAMES: "frames",
                Modality.IMU: "imu", Modality.TRIGGERS: "triggers",
            }.get(spec.modality)
            item = next((v for v in got["streams"].values() if v[2] == dv_name), None)
            if item is None:
                raise SourceError(f"{mpath}: stream {name!r} is in the manifest but not in {file}")
            t_us, data, _ = item
            ts = (t_us - int(off_us)) * 1e-6  # exact to the microsecond the file keeps
            if spec.kind is RingKind.FRAMES:
                assert spec.frame_shape is not None
                if int(np.prod(data.shape[1:])) != int(np.prod(spec.frame_shape)):
                    raise SourceError(
                        f"{file}: frames of {name!r} are {data.shape[1:]}, the manifest says "
                        f"{spec.frame_shape}"
                    )
                data = data.reshape(len(data), *spec.frame_shape)
            if spec.kind is not RingKind.EVENTS:
                data = data.astype(spec.dtype, copy=False)
            _note_count(rec, e, len(ts), file)
            rec.tracks.append(_sorted(Track(spec, ts, data, file)))
        else:  # a video and its frame times in the XDF
            times_name = e.get("frame_times_stream") or name + FRAME_TIMES_SUFFIX
            s = xdf.stream(times_name) if xdf is not None else None
            if s is None:
                raise SourceError(
                    f"{mpath}: the frame times {times_name!r} of video {file.name} are not in "
                    f"{folder / XDF_FILE}"
                )
            _note_count(rec, e, s.count, folder / XDF_FILE)
            rec.tracks.append(VideoTrack(spec, s.time_stamps, file))
    if not rec.tracks:
        raise SourceError(f"{folder}: the session holds no stream to replay")
    return rec


def _find_xdf(xdf: XdfFile, entry: dict[str, Any]) -> XdfStream | None:
    sid = entry.get("xdf_stream_id")
    for s in xdf.streams:
        if s.name == entry["name"] and (sid is None or s.stream_id == sid):
            return s
    return xdf.stream(entry["name"])


def _note_count(rec: Recording, entry: dict[str, Any], got: int, file: Path) -> None:
    want = entry.get("count")
    crashed = rec.manifest is not None and rec.manifest.get("stop_lsl") is None
    if crashed and isinstance(want, int) and got >= want:
        return  # the manifest's counts are from its last periodic rewrite: the files hold more
    if isinstance(want, int) and want != got:
        rec.problems.append(
            f"{file}: stream {entry['name']!r} has {got} items, the manifest says {want}"
            + (" (the recording did not stop cleanly)" if got < want else "")
        )


def effective_rate(ts: np.ndarray) -> float:
    """Items per second between the first and last stamp (NaN for fewer than two)."""
    if len(ts) < 2 or ts[-1] <= ts[0]:
        return math.nan
    return (len(ts) - 1) / float(ts[-1] - ts[0])
