"""Open a recording (a session folder, an XDF file or an AEDAT4 file) as replayable tracks.

A ``Track`` (``recordings.tracks``) is one stream: its original ``StreamSpec``
and its items in time order on the one clock. XDF stamps are held in memory and
its samples read from the file as the replay reaches them (``recordings.xdf_reader``,
lazy), as are videos and AEDAT4 events and frames (``recordings.aedat_tracks``). Everything is checked
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.streams import Modality, RingKind, StreamSpec
from drivers.lsl_streams import TYPE_MODALITIES
from recordings.aedat_tracks import AedatContents, aedat_specs, aedat_track, scan_aedat
from recordings.manifest import MANIFEST, XDF_FILE
from recordings.taps import FRAME_TIMES_SUFFIX
from recordings.tracks import SourceError, Track, VideoTrack, sorted_track
from recordings.xdf_reader import XdfError, XdfFile, XdfStream, load_xdf
from recordings.xdf_values import XdfValues

__all__ = ["Recording", "RecordedPredictions", "SourceError", "Track", "open_recording"]

log = logging.getLogger(__name__)


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
        firsts = [t.first for t in self.tracks if t.count]
        if self.started_at is not None:
            firsts.append(self.started_at)
        return min(firsts) if firsts else 0.0

    @property
    def end(self) -> float:
        lasts = [t.last for t in self.tracks if t.count]
        return max(lasts) if lasts else 0.0

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def close(self) -> None:
        for t in self.tracks:
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


#: the LSL types a recording's streams are mapped by, the aliases of one modality together
_KNOWN_TYPES = ", ".join(
    "/".join(t for t, m in TYPE_MODALITIES.items() if m is modality)
    for modality in dict.fromkeys(TYPE_MODALITIES.values())
)


def _spec_from_xdf(s: XdfStream) -> tuple[StreamSpec | None, str]:
    """The StreamSpec an XDF stream header describes, or (None, why it is skipped)."""
    own = s.desc("affectlab")
    modality: Modality | None = None
    meta: dict[str, Any] = {}
    dtype = (
        "object" if s.is_string else {"double64": "float64"}.get(s.channel_format, s.channel_format)
    )
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
            f"(known, in any case: {_KNOWN_TYPES}); skipped"
        )
    if modality in (Modality.EVENTS, Modality.FRAMES):
        return None, f"stream {s.name!r} ({modality}) cannot come from an XDF file; skipped"
    labels = (
        tuple(s.labels)
        if s.labels and all(s.labels)
        else tuple(f"ch{i}" for i in range(s.channel_count))
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


def _values(s: XdfStream, spec: StreamSpec) -> Any:
    """The track's items: numeric values stay in the file when the reader left them there."""
    if isinstance(s.time_series, XdfValues):
        return s.time_series.as_dtype(spec.dtype)
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


def _open_xdf(path: Path) -> Recording:
    xdf = load_xdf(path, lazy=True)
    rec = Recording(path, "xdf", [], problems=list(xdf.problems), xdf=xdf)
    for s in xdf.streams:
        if s.type == "FrameTimes":
            rec.skipped.append(
                f"stream {s.name!r}: frame times of a video not next to a bare XDF; skipped"
            )
            continue
        spec, why = _spec_from_xdf(s)
        if spec is None:
            rec.skipped.append(why)
            continue
        if spec.modality is Modality.PREDICTIONS:
            rec.predictions.append(_predictions(s))
            continue
        rec.tracks.append(sorted_track(Track(spec, s.time_stamps, _values(s, spec), path)))
    if not rec.tracks:
        reasons = "; ".join(rec.skipped) or "it holds no stream"
        raise SourceError(f"{path}: nothing affectlab can replay ({reasons})")
    return rec


# ------------------------------------------------------------------ AEDAT4
def _open_aedat(path: Path) -> Recording:
    got = scan_aedat(path)
    firsts = [f for f in (st.first_us for st in got.streams.values()) if f is not None]
    if not firsts:
        raise SourceError(f"{path}: the AEDAT4 file holds no data")
    origin_us = (min(firsts) // 1_000_000) * 1_000_000
    specs = aedat_specs(path, got, path.stem)
    rec = Recording(path, "aedat4", [], problems=list(got.problems))
    for kind, stream in got.streams.items():
        rec.tracks.append(aedat_track(specs[kind], path, stream, origin_us))
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
        raise SourceError(
            f"{path}: not an affectlab session manifest (format is not 'affectlab-session')"
        )
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
        if not e.get("file"):
            raise SourceError(f"{mpath}: stream {e.get('name')!r} names no file")
    # a file that is gone costs its streams, as an unreadable one does; the rest replays
    missing = sorted({e["file"] for e in entries if not (folder / e["file"]).is_file()})
    for f in missing:
        names = [e["name"] for e in entries if e["file"] == f]
        rec.problems.append(f"{folder / f} is missing; not replayed: {', '.join(names)}")
        rec.skipped.extend(f"stream {n!r}: its file {f} is missing" for n in names)
    if len(missing) == len({e["file"] for e in entries}):
        raise SourceError(f"{mpath}: every file it names is missing from {folder}")
    entries = [e for e in entries if e["file"] not in missing]
    xdf: XdfFile | None = None
    if (folder / XDF_FILE).is_file():  # the XDF streams, and the frame times of videos
        try:
            xdf = load_xdf(folder / XDF_FILE, lazy=True)
        except XdfError as exc:
            raise SourceError(str(exc)) from None
        rec.xdf = xdf
        rec.problems.extend(xdf.problems)
    clock = manifest.get("clock") or {}
    off_us = clock.get("unix_minus_lsl_us")
    if off_us is None:
        off_us = round(float(clock.get("unix_minus_lsl") or 0.0) * 1e6)
    aedat_cache: dict[str, AedatContents | None] = {}
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
            rec.tracks.append(sorted_track(Track(spec, s.time_stamps, _values(s, spec), file)))
        elif file.suffix.lower() == ".aedat4":
            if e["file"] not in aedat_cache:
                try:
                    aedat_cache[e["file"]] = scan_aedat(file)
                except SourceError as exc:
                    # dv-processing needs the index a clean stop writes; the other files
                    # of the session still replay
                    aedat_cache[e["file"]] = None
                    names = [x["name"] for x in entries if x.get("file") == e["file"]]
                    rec.problems.append(f"{exc}; not replayed: {', '.join(names)}")
                    rec.skipped.extend(
                        f"stream {n!r}: its file {file.name} cannot be read" for n in names
                    )
                    continue
                rec.problems.extend(aedat_cache[e["file"]].problems)  # type: ignore[union-attr]
            got = aedat_cache[e["file"]]
            if got is None:
                continue
            dv_name = e.get("aedat_stream") or {
                Modality.EVENTS: "events",
                Modality.FRAMES: "frames",
                Modality.IMU: "imu",
                Modality.TRIGGERS: "triggers",
            }.get(spec.modality)
            stream = next((v for v in got.streams.values() if v.name == dv_name), None)
            if stream is None:
                raise SourceError(f"{mpath}: stream {name!r} is in the manifest but not in {file}")
            if spec.kind is RingKind.FRAMES:
                assert spec.frame_shape is not None
                shape = stream.frame_shape or ()
                if int(np.prod(shape)) != int(np.prod(spec.frame_shape)):
                    raise SourceError(
                        f"{file}: frames of {name!r} are {tuple(shape)}, the manifest says "
                        f"{spec.frame_shape}"
                    )
            _note_count(rec, e, stream.count, file)
            rec.tracks.append(aedat_track(spec, file, stream, int(off_us)))
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
            + (_why_short(crashed) if got < want else "")
        )


def _why_short(crashed: bool) -> str:
    """Why a file holds fewer items than its manifest counted."""
    if crashed:
        return " (the recording did not stop cleanly)"
    return " (the session closed it whole: the file was cut or damaged since)"
