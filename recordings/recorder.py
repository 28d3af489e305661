"""Records a running session into a folder: XDF, AEDAT4, video and a manifest.

The recorder taps the rings, never the network: each stream gets a
``RingReader`` of its own that starts at the ring's head when recording
starts, and one writer thread drains every reader every ``drain_s`` (0.1 s)
and writes what it got. So every item that reached a ring after the start is
on disk, in the order it was written, with its one-clock stamp; a reader that
lost items to overwriting (the writer thread fell more than a ring behind)
is counted as ``lost`` per stream and logged as an error: at normal load it
never happens.

Where each stream goes:
- numeric and string streams (physiology, markers, self-reports, regions, an
  IMU that is not a camera's): ``streams.xdf``, one XDF stream each;
- an event camera's streams (a driver that publishes EVENTS: its events, APS
  frames, IMU and triggers): ``davis.aedat4`` (``<driver>.aedat4`` when there
  are several cameras) through dv-processing;
- any other FRAMES stream (webcams, eye crops): ``<stream>.mkv`` and, in the
  XDF, ``<stream>-frame-times`` whose sample i stamps frame i;
- predictions: the recorder is a bus sink; one XDF stream per model (type
  ``Emotion``, a channel per output).

Crash safety: the XDF is flushed and fsync-ed every ``flush_s`` (0.5 s) in
whole chunks (see ``xdf_writer``), the manifest is refreshed every
``manifest_s``. A write that fails (disk full, a file too large, a vanished
drive) stops the recording by itself: ``error`` says what happened, the
files are closed as far as they can be, the session keeps running.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.clock import lsl_now, measure_unix_offset
from core.prediction import Prediction
from core.ring import Ring, RingReader
from core.streams import Modality, RingKind, StreamSpec
from recordings.disk import RESERVE_BYTES, check_folder, check_room
from recordings.errors import RecordingError
from recordings.manifest import (
    FORMAT,
    MANIFEST,
    VERSION,
    XDF_FILE,
    model_entry,
    software_versions,
    write_manifest,
)
from recordings.taps import (
    FRAME_TIMES_SUFFIX,
    PREDICTION_STREAM_PREFIX,
    PREDICTION_TYPE,
    PredictionTap,
    StreamTap,
    is_string,
    prediction_channel,
    spec_fields,
    stream_kind,
    xdf_type,
)
from recordings.xdf_writer import XdfStreamInfo, XdfWriter, xdf_format

log = logging.getLogger(__name__)


@dataclass
class RecordedDriver:
    """What the recorder needs of a driver: its name, streams and rings."""

    name: str
    specs: list[StreamSpec]
    rings: dict[str, Ring]


class SessionRecorder:
    """Writes a session's streams and predictions to a folder until ``stop``.

    ``drivers`` are the session's sources (anything with ``name``, ``specs``
    and ``rings``); ``runners`` its models (``name``, ``outputs``); ``config``
    the session config as a dict for the manifest. ``now`` is the session
    clock. Use ``start`` then ``stop``; it is also a bus sink
    (``on_prediction``, ``on_health``, ``close``).
    """

    def __init__(
        self,
        folder: Path,
        drivers: Iterable[Any],
        runners: Iterable[Any] = (),
        *,
        config: dict[str, Any] | None = None,
        name: str = "session",
        now: Callable[[], float] = lsl_now,
        drain_s: float = 0.1,
        flush_s: float = 0.5,
        manifest_s: float = 5.0,
        clock_offset_s: float = 5.0,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        self.folder = Path(folder).expanduser()
        self.drivers = [RecordedDriver(d.name, list(d.specs), dict(d.rings)) for d in drivers]
        self.runners = list(runners)
        self.config = dict(config or {})
        self.name = name
        self._now = now
        self.drain_s = drain_s
        self.flush_s = flush_s
        self.manifest_s = manifest_s
        self.clock_offset_s = clock_offset_s
        self.reserve_bytes = int(reserve_bytes)
        self.error: str | None = None
        self.start_lsl: float | None = None
        self.stop_lsl: float | None = None
        self.unix_minus_lsl = 0.0
        self.unix_minus_lsl_us = 0
        self._created = _dt.datetime.now(_dt.UTC)
        self._taps: list[StreamTap] = []
        self._pred_taps: dict[str, PredictionTap] = {}
        self._aedat: dict[str, Any] = {}  # file name -> AedatStreams
        self._videos: list[Any] = []
        self._xdf: XdfWriter | None = None
        self._pred_lock = threading.Lock()
        self._pred_pending: list[Prediction] = []
        self._accept_predictions = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._model_entries: list[dict[str, Any]] = []
        self._software: dict[str, str] = {}
        self.bytes_per_file: dict[str, int] = {}
        self.thread_cpu_s = 0.0  # CPU seconds the writer thread used (for benches and stats)
        self.max_pass_s = 0.0  # the longest drain-and-write pass: how far behind it can fall

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Open every file, write the manifest, start the writer thread.

        Raises RecordingError (nothing started) when the folder cannot take a session.
        """
        if self._thread is not None or self._stopped:
            raise RuntimeError("a SessionRecorder records once; make a new one")
        self.folder = check_folder(self.folder)
        estimate = measure_unix_offset()
        self.unix_minus_lsl_us = int(round(estimate.offset * 1e6))
        self.unix_minus_lsl = self.unix_minus_lsl_us * 1e-6
        try:
            self._model_entries = [model_entry(r) for r in self.runners]
            self._software = software_versions()
            self._open_files()
            self.start_lsl = self._now()
            self._xdf_flush()
            write_manifest(self.folder, self.manifest())
        except BaseException as exc:  # a signal too: nothing half-opened is left behind
            self._close_files(clean=False)
            for path in self.folder.iterdir():  # the folder was empty: leave it so
                if path.is_file():
                    path.unlink(missing_ok=True)
            if not isinstance(exc, OSError | ValueError | RuntimeError):
                raise
            what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            where = getattr(exc, "filename", None) or self.folder
            raise RecordingError(
                f"cannot start recording in {self.folder}: {where}: {what}"
            ) from None
        with self._pred_lock:
            self._accept_predictions = True
        self._thread = threading.Thread(target=self._main, name="recorder", daemon=True)
        self._thread.start()
        log.info("recording to %s", self.folder)

    def discard(self) -> None:
        """Stop, and remove the files of a recording whose session never got going (a source
        that could not start): the folder was new or empty, and is left so for the rerun."""
        self.stop()
        for path in self.folder.iterdir():
            if path.is_file():
                path.unlink(missing_ok=True)

    def stop(self, timeout: float = 30.0) -> dict[str, int]:
        """Drain what is left, close the files, write the final manifest; returns counts."""
        if self._stopped:
            return self.counts()
        self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("recorder thread did not finish within %.0f s", timeout)
        return self.counts()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------ bus sink
    def on_prediction(self, prediction: Prediction) -> None:
        with self._pred_lock:
            if self._accept_predictions and prediction.model in self._pred_taps:
                self._pred_pending.append(prediction)

    def on_health(self, health: dict, now: float) -> None:
        """Health is not recorded (the manifest has counts and losses)."""

    def close(self) -> None:
        self.stop()

    # ------------------------------------------------------------ state
    def counts(self) -> dict[str, int]:
        """Items written per stream (samples, events, frames, predictions)."""
        out = {t.spec.name: t.count for t in self._taps}
        out.update({self._pred_name(p.model): p.count for p in self._pred_taps.values()})
        return out

    def ring_starts(self) -> dict[str, int]:
        """Per stream, the ring index recording started at: ``count == head - start`` when all is well."""
        return {t.spec.name: t.start for t in self._taps}

    def lost(self) -> dict[str, int]:
        """Items per stream that were overwritten in the ring before the recorder read them."""
        return {t.spec.name: t.lost for t in self._taps}

    # ------------------------------------------------------------ files
    def _pred_name(self, model: str) -> str:
        return f"{PREDICTION_STREAM_PREFIX}-{model}"

    def _open_files(self) -> None:
        from recordings.aedat import AEDAT_MODALITIES, AedatStreams  # dv-processing loads here

        self._xdf = XdfWriter(self.folder / XDF_FILE, created=self._created)
        cameras = [d for d in self.drivers if any(s.modality is Modality.EVENTS for s in d.specs)]
        for driver in self.drivers:
            aedat_specs: list[StreamSpec] = []
            if driver in cameras:
                seen: set[Modality] = set()
                for spec in driver.specs:
                    if spec.modality in AEDAT_MODALITIES and spec.modality not in seen:
                        seen.add(spec.modality)
                        aedat_specs.append(spec)
            aedat_file = "davis.aedat4" if len(cameras) == 1 else f"{_safe(driver.name)}.aedat4"
            aedat = None
            if aedat_specs:
                camera = str(aedat_specs[0].metadata.get("camera") or driver.name)
                aedat = AedatStreams(
                    self.folder / aedat_file, camera, aedat_specs, self.unix_minus_lsl_us
                )
                self._aedat[aedat_file] = aedat
            for spec in driver.specs:
                reader = driver.rings[spec.name].reader()  # from the head: recording starts now
                if spec in aedat_specs:
                    tap = StreamTap(spec, reader, stream_kind(spec), aedat_file, aedat=aedat)
                    tap.extra["aedat_stream"] = aedat.dv_names[spec.name]
                elif spec.kind is RingKind.FRAMES:
                    tap = self._video_tap(spec, reader)
                elif spec.kind is RingKind.EVENTS:
                    raise ValueError(
                        f"stream {spec.name!r}: events outside an event camera's driver"
                    )
                else:
                    tap = StreamTap(spec, reader, stream_kind(spec), XDF_FILE)
                    tap.xdf_id = self._xdf.add_stream(self._xdf_info(spec), self._now())
                tap.start = reader.cursor
                self._taps.append(tap)
        for runner in self.runners:
            channels = list(runner.outputs)
            info = XdfStreamInfo(
                name=self._pred_name(runner.name),
                type=PREDICTION_TYPE,
                channel_count=len(channels),
                nominal_srate=0.0,
                channel_format="double64",
                source_id=f"affectlab-model-{runner.name}",
                channels=[prediction_channel(c) for c in channels],
                extra={"affectlab": {"modality": str(Modality.PREDICTIONS), "model": runner.name}},
            )
            sid = self._xdf.add_stream(info, self._now())
            self._pred_taps[runner.name] = PredictionTap(runner.name, channels, sid)
        self._xdf.clock_offsets(self._now())

    def _video_tap(self, spec: StreamSpec, reader: RingReader) -> StreamTap:
        from recordings.video import VideoStream  # OpenCV loads here

        file = f"{_safe(spec.name)}.mkv"
        video = VideoStream(self.folder / file, spec)
        self._videos.append(video)
        tap = StreamTap(spec, reader, "frames", file, video=video)
        times = XdfStreamInfo(
            name=spec.name + FRAME_TIMES_SUFFIX,
            type="FrameTimes",
            channel_count=1,
            nominal_srate=spec.nominal_rate,
            channel_format="int64",
            source_id=f"{spec.source or 'affectlab'}/{spec.name}{FRAME_TIMES_SUFFIX}",
            channels=[{"label": "frame", "unit": "index", "type": "FrameIndex"}],
            extra={"affectlab": {"frame_stream": spec.name, "video": file, **spec_fields(spec)}},
        )
        assert self._xdf is not None
        tap.xdf_id = self._xdf.add_stream(times, self._now())
        tap.extra.update(frame_times_stream=times.name, codec=video.codec, lossless=video.lossless)
        return tap

    def _xdf_info(self, spec: StreamSpec) -> XdfStreamInfo:
        fmt, _ = xdf_format("object" if is_string(spec) else spec.dtype)
        n = max(1, spec.n_channels)
        labels = list(spec.channel_names) or [f"ch{i}" for i in range(n)]
        units = list(spec.units) or [""] * n
        return XdfStreamInfo(
            name=spec.name,
            type=xdf_type(spec.modality),
            channel_count=n,
            nominal_srate=spec.nominal_rate,
            channel_format=fmt,
            source_id=f"{spec.source or 'affectlab'}/{spec.name}",
            channels=[
                {"label": lab, "unit": unit, "type": xdf_type(spec.modality)}
                for lab, unit in zip(labels, units, strict=True)
            ],
            extra={"affectlab": spec_fields(spec)},
        )

    def _close_files(self, clean: bool) -> None:
        """Close everything; ``clean`` writes XDF footers (False after a disk error)."""
        errors: list[str] = []
        if self._xdf is not None and not self._xdf.closed:
            try:
                self._xdf.close(write_footers=clean)
            except OSError as exc:
                errors.append(f"{self._xdf.path}: {exc.strerror or exc}")  # close() released it
        for video in self._videos:
            video.close()
        for aedat in self._aedat.values():
            try:
                aedat.close()
            except Exception as exc:  # noqa: BLE001 - every file still gets closed
                errors.append(f"{aedat.path}: {exc}")
        if errors and clean:
            raise OSError("; ".join(errors))

    # ------------------------------------------------------------ writer thread
    def _main(self) -> None:
        last_flush = last_manifest = last_offsets = time.monotonic()
        try:
            while not self._stop.wait(self.drain_s):
                t0 = time.monotonic()
                self._check_space()
                self._drain()
                now = time.monotonic()
                self.max_pass_s = max(self.max_pass_s, now - t0)
                if now - last_offsets >= self.clock_offset_s:
                    assert self._xdf is not None
                    self._xdf.clock_offsets(self._now())
                    self._xdf.boundary()
                    last_offsets = now
                if now - last_flush >= self.flush_s:
                    self._xdf_flush()
                    last_flush = now
                if now - last_manifest >= self.manifest_s:
                    write_manifest(self.folder, self.manifest())
                    last_manifest = now
            self._drain()
            with self._pred_lock:
                self._accept_predictions = False
            self._write_predictions()
            self.stop_lsl = self._now()
            self._close_files(clean=True)
            self._sizes()
            write_manifest(self.folder, self.manifest())
            self._report_losses()
            log.info("recording in %s stopped: %s", self.folder, self.counts())
        except Exception as exc:  # noqa: BLE001 - a failed disk must not take the session down
            self._fail(exc)
        finally:
            self.thread_cpu_s = time.thread_time()

    def _fail(self, exc: BaseException) -> None:
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = getattr(exc, "filename", None) or self.folder
        self.error = f"recording stopped: {where}: {what}"
        log.error("%s (what was written before stays readable)", self.error)
        with self._pred_lock:
            self._accept_predictions = False
        self._stopped = True
        if self._xdf is not None:  # counts say what is on disk, not what was handed over
            durable = self._xdf.durable_counts()
            for tap in self._taps:
                if tap.xdf_id is not None:
                    tap.count = durable[tap.xdf_id]
            for p in self._pred_taps.values():
                p.count = durable[p.xdf_id]
        try:
            self._close_files(clean=False)
        except Exception:  # noqa: BLE001 - already failing; keep the first error
            log.exception("closing the recording's files after an error failed")
        self._sizes()
        try:
            write_manifest(self.folder, self.manifest())
        except OSError:
            log.error("could not rewrite %s after the error", self.folder / MANIFEST)

    def _check_space(self) -> None:
        """Stop (as a disk error) while there is still room to close the files properly."""
        if self.reserve_bytes <= 0:
            return
        # dv-processing writes on a thread of its own: count what it may not have written
        # yet as written already, compressed as it will be (not as handed over: LZ4's savings
        # would pile up as a phantom queue and stop a long recording far too early)
        sizes = {path: path.stat().st_size if path.exists() else 0 for path in self._paths()}
        queued = 0
        now = time.monotonic()
        for name, aedat in self._aedat.items():
            path = self.folder / name
            pending = aedat.unwritten_bytes(sizes[path], now)
            queued += pending
            sizes[path] += pending
        check_room(self.folder, sizes, queued, self.reserve_bytes)

    def _paths(self) -> list[Path]:
        paths = [self.folder / name for name in self._aedat]
        paths += [v.path for v in self._videos]
        if self._xdf is not None:
            paths.append(self._xdf.path)
        return paths

    def _xdf_flush(self) -> None:
        assert self._xdf is not None
        try:
            self._xdf.flush()
        except OSError as exc:
            exc.filename = exc.filename or str(self._xdf.path)
            raise

    def _drain(self) -> None:
        for tap in self._taps:
            chunk = tap.reader.read()
            if chunk.lost:
                tap.lost += chunk.lost
                log.error(
                    "recorder LOST %d items of %s: the ring was overwritten before they were "
                    "written (%d lost so far)",
                    chunk.lost,
                    tap.spec.name,
                    tap.lost,
                )
            if len(chunk) == 0:
                continue
            self._write(tap, chunk.data, chunk.ts)
            tap.account(chunk.ts)
        self._write_predictions()

    def _write(self, tap: StreamTap, data: np.ndarray, ts: np.ndarray) -> None:
        if tap.aedat is not None:
            try:
                tap.aedat.write(tap.spec.name, data, ts)
            except OSError:
                raise
            except Exception as exc:  # dv-processing's own errors name no file
                raise OSError(0, str(exc), str(tap.aedat.path)) from exc
        elif tap.video is not None:
            first = tap.video.count
            tap.video.write(data)
            assert self._xdf is not None and tap.xdf_id is not None
            index = np.arange(first, first + len(ts), dtype=np.int64).reshape(-1, 1)
            self._xdf.write_samples(tap.xdf_id, index, ts)
        else:
            assert self._xdf is not None and tap.xdf_id is not None
            self._xdf.write_samples(tap.xdf_id, data, ts)

    def _write_predictions(self) -> None:
        with self._pred_lock:
            pending, self._pred_pending = self._pred_pending, []
        if not pending:
            return
        assert self._xdf is not None
        by_model: dict[str, list[Prediction]] = {}
        for p in pending:
            by_model.setdefault(p.model, []).append(p)
        for model, preds in by_model.items():
            tap = self._pred_taps[model]
            rows = np.array(
                [[_number(p.flat().get(c)) for c in tap.channels] for p in preds], dtype=np.float64
            )
            ts = np.array([p.t_end for p in preds], dtype=np.float64)
            self._xdf.write_samples(tap.xdf_id, rows, ts)
            if tap.count == 0:
                tap.first_t = float(ts[0])
            tap.count += len(ts)
            tap.last_t = float(ts[-1])

    def _sizes(self) -> None:
        for path in self.folder.iterdir():
            if path.is_file() and path.name != MANIFEST and not path.name.endswith(".tmp"):
                self.bytes_per_file[path.name] = path.stat().st_size

    def _report_losses(self) -> None:
        lost = {k: v for k, v in self.lost().items() if v}
        if lost:
            log.error("recording in %s lost items to ring overwrites: %s", self.folder, lost)

    # ------------------------------------------------------------ manifest
    def manifest(self) -> dict[str, Any]:
        streams = [tap.manifest_entry() for tap in self._taps]
        streams += [p.manifest_entry(self._pred_name(p.model)) for p in self._pred_taps.values()]
        files = {name: {"bytes": size} for name, size in sorted(self.bytes_per_file.items())}
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "created": self._created.isoformat(),
            "start_lsl": self.start_lsl,
            "stop_lsl": self.stop_lsl if self.error is None else None,
            "clock": {
                "unix_minus_lsl": self.unix_minus_lsl,
                "unix_minus_lsl_us": self.unix_minus_lsl_us,
            },
            "software": self._software,
            "config": self.config,
            "models": self._model_entries,
            "streams": streams,
            "files": files,
            "error": self.error,
        }


def _number(v: object) -> float:
    return float(v) if isinstance(v, (int, float)) else math.nan


def _safe(name: str) -> str:
    """A stream or driver name as a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "stream"
