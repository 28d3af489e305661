"""DAVIS event cameras through dv-processing: a live camera, DV network streams, or an AEDAT4 file.

The three inputs share dv-processing's source interface (REFERENCE 6):
``getNextEventBatch``, ``getNextFrame``, ``getNextImuBatch`` and
``getNextTriggerBatch`` return the next batch or None. Each kind becomes one
stream named ``<name>-events``, ``-frames``, ``-imu``, ``-triggers``:

- events: ``core.streams.EVENT_DTYPE`` (x, y, polarity 1 = ON) in an event
  ring; the spec's ``frame_shape`` is (H, W) of the sensor (or of the ROI);
- frames: APS frames, uint8 grayscale (H, W) (colour DAVIS frames are converted);
- imu: accel x/y/z (g), gyro x/y/z (deg/s), temperature (degC), float32;
- triggers: the dv ``TriggerType`` code of each trigger, float32.

Time. dv stamps are int64 microseconds since the Unix epoch; live and network
stamps are mapped onto the one clock with ``core.clock.UnixClockMapper``
(re-measured while running). A network stream from another host carries that
host's Unix clock: keep hosts NTP-synced, or the offset shows up as latency.
A file is played with ``timestamps = "now"`` (default: the recording's first
stamp lands on the LSL time playback starts, so it lines up with live
streams) or ``"recorded"`` (the original Unix times mapped as if live: for
lining a file up with other recordings of the same session), at the recorded
pace (``playback = "realtime"``) or as fast as possible (``"fast"``). A file
is read stream by stream until each returns None, because ``isRunning``
turns False as soon as ANY stream ends; batches are delivered in the order of
their newest stamp.

Network. One ``NetworkReader`` per stream and port (or UNIX socket), as DV
serves them. A reader that stops running is a disconnection: the stream is
marked disconnected (a gap) and reconnected every ``reconnect_interval``
seconds until the server returns. Before reading, each connection is checked
to carry the expected type and resolution (reading a stream as the wrong type
kills the process inside dv-processing).

Event ring sizing. A DAVIS346 bursts up to 12 M events/s, so the event ring is
sized for ``event_ring_seconds`` (default 1 s) at ``max_event_rate`` (default
12 M/s) plus 10 % headroom, capped at ``event_ring_max_mb`` (default 256 MB at
13 bytes per event with its stamp; the default ring is 13.2 M events, 172 MB,
resident once it has wrapped): a reader that polls at least once per
``event_ring_seconds`` loses nothing at the sensor's top rate. Events that a
burst overwrites sooner than that after they arrived (faster than the ring was
sized for) are counted in the stream's ``health.lost``.

Filters. ``noise_filter`` runs dv's ``BackgroundActivityNoiseFilter``
(C++) on each batch; filters reject out-of-order input, so a new one is made
for every connection and every replay. ``roi = [x, y, w, h]`` keeps only
the eye region: events inside it (coordinates shifted to the ROI) and frames
cropped to it. Camera controls (``exposure_us``, ``frame_interval_us``,
``auto_exposure``) apply to a live camera; other inputs skip them with a note.
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dv_processing as dv
import numpy as np

from core.clock import UnixClockMapper, lsl_now
from core.ring import Ring, ring_for
from core.streams import EVENT_DTYPE, Modality, StreamSpec
from drivers.base import Driver, DriverError
from drivers.davis_file import batches_in_order, open_recording, probe
from drivers.davis_network import open_network_stream
from drivers.davis_streams import stream_specs
from drivers.dv_data import (
    AVAILABLE,
    KINDS,
    READ,
    Endpoint,
    OverrunMeter,
    Roi,
    ShiftedTime,
    UnixTime,
    dv_error_text,
    event_arrays,
    gray_frame,
    imu_arrays,
    open_camera,
    trigger_arrays,
)

log = logging.getLogger(__name__)

SOURCE = "drivers.davis"
INPUTS = ("camera", "network", "file")
DAVIS346_RESOLUTION = (346, 260)  # (width, height), as dv speaks
DAVIS346_MAX_RATE = 12e6  # events/s
EVENT_BYTES = EVENT_DTYPE.itemsize + 8  # an event and its float64 stamp in the ring
RING_HEADROOM = 1.1  # a stream at exactly the top rate is not an overrun by timing jitter
MAX_FPS = 60.0  # frames per second the frame ring is sized for
IMU_MAX_RATE = 2000.0  # samples per second the IMU ring is sized for
DEFAULT_PORTS = {"events": 7777, "frames": 7778}  # drivers.davis_server's convention


@dataclass
class _Link:
    """One handle and the kinds it delivers: a camera (all kinds) or one network reader."""

    kinds: tuple[str, ...]
    label: str
    endpoint: Endpoint | None = None
    handle: Any = None
    next_try: float = 0.0
    lost_why: str = ""  # why it was dropped, kept in front of each failed retry's message


# ------------------------------------------------------------------ the driver
class DavisDriver(Driver):
    """A DAVIS (or any DV camera) from ``input`` = "camera", "network" or "file".

    Cameras and files are opened in the constructor (their resolution and
    streams size the rings), so a missing device or file is a ``DriverError``
    at once. Network streams are connected when the driver starts and are
    reconnected whenever their server comes back.
    """

    def __init__(
        self,
        input: str = "camera",
        *,
        name: str = "davis",
        serial: str | None = None,
        endpoints: Mapping[str, Endpoint] | None = None,
        resolution: tuple[int, int] | None = None,
        file: str | Path | None = None,
        playback: str = "realtime",
        timestamps: str = "now",
        streams: Sequence[str] | None = None,
        noise_filter: bool = False,
        noise_filter_ms: float = 2.0,
        roi: Roi | Sequence[int] | None = None,
        exposure_us: int | None = None,
        frame_interval_us: int | None = None,
        auto_exposure: bool | None = None,
        reconnect_interval: float = 1.0,
        poll_interval: float = 0.002,
        max_batches: int = 256,
        max_event_rate: float = DAVIS346_MAX_RATE,
        event_ring_seconds: float = 1.0,
        event_ring_max_mb: float = 256.0,
        frame_ring_mb: float = 128.0,
        ring_seconds: float | None = None,
        clock: UnixClockMapper | None = None,
    ) -> None:
        if input not in INPUTS:
            raise DriverError(f"DAVIS input must be one of {', '.join(INPUTS)}, got {input!r}")
        if playback not in ("realtime", "fast"):
            raise DriverError(f"playback must be 'realtime' or 'fast', got {playback!r}")
        if timestamps not in ("now", "recorded"):
            raise DriverError(f"timestamps must be 'now' or 'recorded', got {timestamps!r}")
        self.input = input
        self.playback = playback
        self.timestamps = timestamps
        self.reconnect_interval = float(reconnect_interval)
        self.poll_interval = float(poll_interval)
        self.max_batches = int(max_batches)
        self.noise_filter_ms = float(noise_filter_ms) if noise_filter else 0.0
        self.clock = clock or UnixClockMapper()
        self.notes: list[str] = []
        self.filtered = 0  # events the noise filter removed
        self.file = Path(file) if file is not None else None
        self.serial = serial
        self.controls = {
            k: v
            for k, v in (
                ("exposure_us", exposure_us),
                ("frame_interval_us", frame_interval_us),
                ("auto_exposure", auto_exposure),
            )
            if v is not None
        }
        self._camera: Any = None
        self._file_streams: dict[str, str] = {}
        self._time_range = (0, 0)
        self.camera_name = ""
        self.endpoints: dict[str, Endpoint] = {}

        if input == "camera":
            kinds, self.resolution = self._probe_camera(serial)
            self.where = self.camera_name
        elif input == "network":
            eps = (
                dict(endpoints)
                if endpoints
                else {k: Endpoint(port=p) for k, p in DEFAULT_PORTS.items()}
            )
            bad = sorted(set(eps) - set(KINDS))
            if bad:
                raise DriverError(f"unknown DV stream kind {bad[0]!r}; kinds: {', '.join(KINDS)}")
            self.endpoints = {k: eps[k] for k in KINDS if k in eps}
            kinds = list(self.endpoints)
            self.resolution = tuple(resolution) if resolution else DAVIS346_RESOLUTION
            self.where = ", ".join(f"{k} at {e}" for k, e in self.endpoints.items())
        else:
            kinds, self.resolution = self._probe_file()
            self.where = str(self.file)
        if streams is not None:
            missing = [k for k in streams if k not in kinds]
            if missing:
                have = ", ".join(kinds) or "none"
                raise DriverError(f"{self._label()} has no {missing[0]} stream; it has {have}")
            kinds = [k for k in KINDS if k in streams]
        if not kinds:
            raise DriverError(f"{self._label()} offers no stream to read")
        self.kinds = tuple(kinds)

        self.roi = Roi(*roi) if roi is not None and not isinstance(roi, Roi) else roi
        if self.roi is not None:
            try:
                self.roi.check(self.resolution)
            except ValueError as exc:
                raise DriverError(f"{self._label()}: {exc}") from exc
        self.frame_rate = 1e6 / frame_interval_us if frame_interval_us else 0.0
        w, h = (self.roi.w, self.roi.h) if self.roi else self.resolution
        self.shape = (int(h), int(w))
        cap_events = int(event_ring_max_mb * 1e6 // EVENT_BYTES)
        self.event_capacity = max(
            1024, min(round(RING_HEADROOM * max_event_rate * event_ring_seconds), cap_events)
        )
        self.event_ring_seconds = float(event_ring_seconds)
        self.frame_ring_mb = float(frame_ring_mb)
        self.stream = {k: f"{name}-{k}" for k in self.kinds}
        super().__init__(name, self._specs(name, max_event_rate), ring_seconds)
        self._overrun = OverrunMeter(self.event_capacity, self.event_ring_seconds)
        self._noise: Any = None
        self._time: UnixTime | ShiftedTime = UnixTime(self.clock)
        self.finished = False  # a file played to its end

        if self.controls and input != "camera":
            self._note(
                f"camera controls ({', '.join(self.controls)}) apply to a live camera only; "
                f"ignored for {input} input"
            )
        if self._camera is not None:
            self._apply_controls(self._camera)
        waiting = "waiting for the server" if input == "network" else "not started"
        for t in self._trackers.values():
            t.health.message = "; ".join([waiting, *self.notes])

    # ------------------------------------------------------------ opening
    def _label(self) -> str:
        if self.input == "file":
            return f"AEDAT4 file {self.file}"
        if self.input == "network":
            return f"DV network source ({self.where})"
        return f"DV camera {self.camera_name}".strip()

    def _note(self, text: str) -> None:
        if text in self.notes:
            return
        self.notes.append(text)
        log.info("%s: %s", self.name if hasattr(self, "name") else "davis", text)

    def _probe_camera(self, serial: str | None) -> tuple[list[str], tuple[int, int]]:
        cam = open_camera(serial)
        self._camera = cam
        self.camera_name = str(cam.getCameraName())
        if self.serial is None and hasattr(cam, "getSerialNumber"):
            self.serial = str(cam.getSerialNumber())
        kinds = [k for k in KINDS if getattr(cam, AVAILABLE[k])()]
        res = cam.getEventResolution() or cam.getFrameResolution()
        if res is None:
            raise DriverError(f"{self.camera_name} reports no resolution")
        return kinds, (int(res[0]), int(res[1]))

    def _probe_file(self) -> tuple[list[str], tuple[int, int]]:
        assert self.file is not None
        layout = probe(self.file)
        self._file_streams = layout.streams
        self.camera_name = layout.camera_name
        self._time_range = layout.time_range
        return layout.kinds, layout.resolution

    def _apply_controls(self, cam: Any) -> None:
        """Exposure and frame interval on a live DAVIS; cameras without APS skip them."""
        c = self.controls
        if not c:
            return
        if not hasattr(cam, "setExposureDuration"):
            self._note(f"{self.camera_name} has no APS frames; camera controls ignored")
            return
        if "exposure_us" in c and "auto_exposure" not in c:
            cam.setAutoExposure(False)  # a fixed exposure means no auto-exposure
        if "auto_exposure" in c:
            cam.setAutoExposure(bool(c["auto_exposure"]))
        if "exposure_us" in c:
            cam.setExposureDuration(datetime.timedelta(microseconds=int(c["exposure_us"])))
        if "frame_interval_us" in c:
            cam.setFrameInterval(datetime.timedelta(microseconds=int(c["frame_interval_us"])))

    # ------------------------------------------------------------ specs and rings
    def _specs(self, name: str, max_event_rate: float) -> list[StreamSpec]:
        W, H = self.resolution
        meta: dict[str, Any] = {
            "input": self.input,
            "where": self.where,
            "camera": self.camera_name,
            "sensor_width": W,
            "sensor_height": H,
        }
        if self.roi is not None:
            meta["roi"] = self.roi.as_list()
        return stream_specs(
            self.stream,
            f"{SOURCE}:{self.input}:{self.where}",
            meta,
            self.shape,
            frame_rate=self.frame_rate,
            noise_filter_ms=self.noise_filter_ms,
            event_capacity=self.event_capacity,
            max_event_rate=max_event_rate,
        )

    def _make_ring(self, spec: StreamSpec, seconds: float) -> Ring:
        if spec.modality is Modality.EVENTS:
            return ring_for(spec, seconds, capacity=self.event_capacity)
        if spec.modality is Modality.FRAMES and spec.frame_shape:
            cap = int(self.frame_ring_mb * 1e6 / int(np.prod(spec.frame_shape)))
            want = math.ceil(max(spec.nominal_rate, MAX_FPS) * seconds)
            return ring_for(spec, seconds, capacity=max(8, min(want, cap)))
        if spec.modality is Modality.IMU:
            return ring_for(spec, seconds, capacity=max(4096, math.ceil(IMU_MAX_RATE * seconds)))
        return super()._make_ring(spec, seconds)

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Release a camera that was opened but never started (start/stop do it otherwise)."""
        if not self.running:
            self._close()

    def _close(self) -> None:
        # Readers are released before anything else in this process; dropping a
        # NetworkReader after its writer (same process) hangs in dv-processing.
        for link in getattr(self, "_links", []):
            link.handle = None
        self._links = []
        self._camera = None

    def _run(self) -> None:
        self._noise = self._new_noise_filter()
        if self.input == "file":
            self._run_file()
        else:
            self._run_live()

    def _new_noise_filter(self) -> Any:
        if not self.noise_filter_ms or "events" not in self.kinds:
            return None
        return dv.noise.BackgroundActivityNoiseFilter(
            self.resolution, datetime.timedelta(microseconds=round(self.noise_filter_ms * 1000))
        )

    # ------------------------------------------------------------ live: camera or network
    def _run_live(self) -> None:
        if self.input == "camera":
            self._links = [_Link(self.kinds, self.camera_name, handle=self._camera)]
        else:
            self._links = [
                _Link((k,), f"DV {k} stream at {e}", endpoint=e) for k, e in self.endpoints.items()
            ]
        self._time = UnixTime(self.clock)
        last_offset = -math.inf
        while not self.stopping:
            got = False
            now = lsl_now()
            for link in self._links:
                if link.handle is None:
                    if now >= link.next_try:
                        self._connect(link)
                    continue
                got |= self._drain(link)
            if now - last_offset > 1.0:
                last_offset = now
                for t in self._trackers.values():
                    t.health.clock_offset = self._time.offset
            if not got and self.wait(self.poll_interval):
                break

    def _connect(self, link: _Link) -> None:
        link.next_try = lsl_now() + self.reconnect_interval
        try:
            handle = self._open_link(link)
        except (DriverError, RuntimeError) as exc:
            self._link_message(link, f"waiting for {link.label}: {dv_error_text(exc)}")
            return
        if handle is None:
            return
        link.handle = handle
        if "events" in link.kinds:
            self._noise = self._new_noise_filter()  # the new connection may restart time
        link.lost_why = ""
        self._link_message(link, "")
        log.info("%s: connected to %s", self.name, link.label)

    def _open_link(self, link: _Link) -> Any:
        if link.endpoint is None:  # the same camera again, by its serial number
            cam = open_camera(self.serial)
            self._apply_controls(cam)
            self._camera = cam
            return cam
        reader, problem = open_network_stream(
            link.endpoint, link.kinds[0], self.resolution, link.label
        )
        if reader is None:
            self._link_message(link, problem)
            return None
        if not self.camera_name:
            self.camera_name = str(reader.getCameraName())
        return reader

    def _link_message(self, link: _Link, message: str) -> None:
        if message and link.lost_why:  # a retry that failed: why it went first
            message = f"{link.lost_why}; reconnecting: {message}"
        for kind in link.kinds:
            self._trackers[self.stream[kind]].health.message = message

    def _drain(self, link: _Link) -> bool:
        handle = link.handle
        got = False
        try:
            for kind in link.kinds:
                got |= self._read_kind(handle, kind)
            if not got and not handle.isRunning():
                self._drop_link(link, f"{link.label} went away")
        except RuntimeError as exc:
            self._drop_link(link, f"{link.label} failed: {dv_error_text(exc)}")
        return got

    def _drop_link(self, link: _Link, why: str) -> None:
        """A disconnection: a gap in each of the link's streams, then retries."""
        for kind in link.kinds:
            self._trackers[self.stream[kind]].on_disconnect(f"{why}; reconnecting")
        link.lost_why = why
        link.handle = None
        if link.endpoint is None:
            self._camera = None  # reopened (by serial) when it comes back
        link.next_try = lsl_now() + self.reconnect_interval
        log.warning("%s: %s; reconnecting every %.1f s", self.name, why, self.reconnect_interval)

    def _read_kind(self, handle: Any, kind: str) -> bool:
        read = getattr(handle, READ[kind])
        if kind == "events":
            merged = None
            for _ in range(self.max_batches):
                store = read()
                if store is None:
                    break
                if store.isEmpty():
                    continue
                if merged is None:
                    merged = store
                    continue
                try:
                    merged.add(store)  # one numpy conversion and one ring write per round
                except IndexError:  # out of order: deliver what we have, start anew
                    self._deliver("events", merged, lsl_now())
                    merged = store
            if merged is None:
                return False
            self._deliver("events", merged, lsl_now())
            return True
        got = False
        for _ in range(self.max_batches):
            item = read()
            if item is None:
                break
            got = True
            self._deliver(kind, item, lsl_now())
        return got

    # ------------------------------------------------------------ file
    def _run_file(self) -> None:
        assert self.file is not None
        rec = open_recording(self.file)
        start = lsl_now()
        first_us = self._time_range[0]
        if self.timestamps == "now":
            self._time = ShiftedTime(first_us, start)
        else:
            self._time = UnixTime(self.clock)
        for t in self._trackers.values():
            t.health.clock_offset = self._time.offset
            t.health.message = ""
        pace = self.playback == "realtime"
        ended = True
        for kind, newest, item in batches_in_order(rec, self._file_streams, self.kinds):
            if pace:
                delay = start + (newest - first_us) * 1e-6 - lsl_now()
                if delay > 0 and self.wait(delay):
                    ended = False
                    break
            if self.stopping:
                ended = False
                break
            self._deliver(kind, item, lsl_now())
        del rec
        if ended and not self.stopping:
            self.finished = True
            for t in self._trackers.values():
                t.on_disconnect(f"end of AEDAT4 file {self.file}")

    # ------------------------------------------------------------ delivery
    def _deliver(self, kind: str, item: Any, arrival: float) -> None:
        stream = self.stream[kind]
        if kind == "events":
            self._deliver_events(stream, item, arrival)
        elif kind == "frames":
            self._deliver_frame(stream, item, arrival)
        else:
            t_us, data = imu_arrays(item) if kind == "imu" else trigger_arrays(item)
            if len(t_us):
                self.push(stream, data, self._time.to_lsl(t_us), arrival)

    def _deliver_events(self, stream: str, store: Any, arrival: float) -> None:
        if self._noise is not None:
            n_in = store.size()
            try:
                self._noise.accept(store)
            except IndexError:  # time went back (a restarted source): a fresh filter
                self._noise = self._new_noise_filter()
                self._noise.accept(store)
            store = self._noise.generateEvents()
            self.filtered += n_in - store.size()
        t_us, ev = event_arrays(store)
        if self.roi is not None:
            t_us, ev = self.roi.crop_events(t_us, ev)
        n = len(t_us)
        if n == 0:
            return
        ts = self._time.to_lsl(t_us)
        self.push(stream, ev, ts, arrival)
        lost = self._overrun.on_write(n, float(ts[0]), float(ts[-1]))
        if lost:
            self._trackers[stream].health.lost += lost

    def _deliver_frame(self, stream: str, frame: Any, arrival: float) -> None:
        img = gray_frame(np.asarray(frame.image))
        if self.roi is not None:
            img = self.roi.crop_frame(img)
        if img.shape != self.shape:
            h = self._trackers[stream].health
            h.lost += 1
            h.message = f"frame of {img.shape} dropped: the stream is {self.shape}"
            return
        ts = self._time.to_lsl(np.array([frame.timestamp], np.int64))
        self.push(stream, img[None], ts, arrival)
