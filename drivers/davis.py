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
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dv_processing as dv
import numpy as np

from core.clock import UnixClockMapper, lsl_now
from core.ring import Ring, ring_for
from core.streams import EVENT_DTYPE, Modality, StreamSpec
from drivers.base import Driver, DriverError, OptionError, distinct_choices

log = logging.getLogger(__name__)

SOURCE = "drivers.davis"
KINDS = ("events", "frames", "imu", "triggers")
INPUTS = ("camera", "network", "file")
DAVIS346_RESOLUTION = (346, 260)  # (width, height), as dv speaks
DAVIS346_MAX_RATE = 12e6  # events/s
EVENT_BYTES = EVENT_DTYPE.itemsize + 8  # an event and its float64 stamp in the ring
RING_HEADROOM = 1.1  # a stream at exactly the top rate is not an overrun by timing jitter
MAX_FPS = 60.0  # frames per second the frame ring is sized for
IMU_MAX_RATE = 2000.0  # samples per second the IMU ring is sized for
DEFAULT_PORTS = {"events": 7777, "frames": 7778}  # drivers.davis_server's convention
IMU_CHANNELS = ("accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z", "temperature")
IMU_UNITS = ("g", "g", "g", "deg/s", "deg/s", "deg/s", "degC")

_READ = {
    "events": "getNextEventBatch",
    "frames": "getNextFrame",
    "imu": "getNextImuBatch",
    "triggers": "getNextTriggerBatch",
}
_AVAILABLE = {
    "events": "isEventStreamAvailable",
    "frames": "isFrameStreamAvailable",
    "imu": "isImuStreamAvailable",
    "triggers": "isTriggerStreamAvailable",
}
_IS_TYPE = {
    "events": "isStreamOfEventType",
    "frames": "isStreamOfFrameType",
    "imu": "isStreamOfImuType",
    "triggers": "isStreamOfTriggerType",
}


# ------------------------------------------------------------------ plain data
@dataclass(frozen=True)
class Endpoint:
    """Where one DV network stream is served: TCP ``host:port`` or a UNIX socket path."""

    host: str = "127.0.0.1"
    port: int | None = None
    socket: str | None = None

    def __post_init__(self) -> None:
        if (self.port is None) == (self.socket is None):
            raise ValueError("an endpoint needs a port or a socket path (not both)")

    def connect(self) -> Any:
        """A ``dv.io.NetworkReader``; raises RuntimeError when nobody serves there."""
        if self.socket is not None:
            return dv.io.NetworkReader(self.socket)
        return dv.io.NetworkReader(self.host, int(self.port or 0))

    def __str__(self) -> str:
        return f"unix:{self.socket}" if self.socket is not None else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Roi:
    """An eye region in sensor pixels; events and frames are cropped to it."""

    x: int
    y: int
    w: int
    h: int

    def check(self, resolution: tuple[int, int]) -> None:
        W, H = resolution
        if self.w < 1 or self.h < 1 or self.x < 0 or self.y < 0:
            raise ValueError(f"roi {self.as_list()} must have x, y >= 0 and w, h >= 1")
        if self.x + self.w > W or self.y + self.h > H:
            raise ValueError(f"roi {self.as_list()} reaches outside the {W} x {H} sensor")

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def crop_events(self, t_us: np.ndarray, ev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = ev["x"]
        y = ev["y"]
        keep = (x >= self.x) & (x < self.x + self.w) & (y >= self.y) & (y < self.y + self.h)
        out = ev[keep]
        out["x"] -= self.x
        out["y"] -= self.y
        return t_us[keep], out

    def crop_frame(self, img: np.ndarray) -> np.ndarray:
        return img[self.y : self.y + self.h, self.x : self.x + self.w]


# ------------------------------------------------------------------ dv -> numpy
def event_arrays(store: Any) -> tuple[np.ndarray, np.ndarray]:
    """Unix-microsecond stamps and ``EVENT_DTYPE`` records of a ``dv.EventStore``."""
    a = store.numpy()
    ev = np.empty(len(a), EVENT_DTYPE)
    ev["x"] = a["x"]
    ev["y"] = a["y"]
    ev["polarity"] = a["polarity"]
    return np.ascontiguousarray(a["timestamp"]), ev


def imu_arrays(batch: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Stamps and (n, 7) float32 rows in ``IMU_CHANNELS`` order of a dv IMU batch."""
    t = np.fromiter((m.timestamp for m in batch), np.int64, len(batch))
    rows = [
        (
            m.accelerometerX,
            m.accelerometerY,
            m.accelerometerZ,
            m.gyroscopeX,
            m.gyroscopeY,
            m.gyroscopeZ,
            m.temperature,
        )
        for m in batch
    ]
    return t, np.asarray(rows, np.float32).reshape(len(batch), len(IMU_CHANNELS))


def trigger_arrays(batch: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Stamps and (n, 1) float32 ``TriggerType`` codes of a dv trigger batch."""
    t = np.fromiter((tr.timestamp for tr in batch), np.int64, len(batch))
    codes = np.fromiter((int(tr.type) for tr in batch), np.float32, len(batch))
    return t, codes.reshape(-1, 1)


def gray_frame(img: np.ndarray) -> np.ndarray:
    """APS frames are grayscale on a DAVIS346; colour models' BGR(A) frames are converted."""
    if img.ndim == 3:
        if img.shape[2] == 1:
            return img[:, :, 0]
        import cv2  # only colour DAVIS models need it

        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        return cv2.cvtColor(img, code)
    return img


class UnixTime:
    """dv's Unix microseconds on the one clock, through a re-measured Unix -> LSL offset."""

    def __init__(self, mapper: UnixClockMapper) -> None:
        self.mapper = mapper
        self._ref_us: int | None = None
        self._ref_lsl = 0.0
        self._offset = math.nan

    def to_lsl(self, t_us: np.ndarray) -> np.ndarray:
        # Unix seconds as float64 keep only ~0.2 us, so stamps are taken relative to one
        # integer reference, and that reference is mapped only when the offset is re-measured:
        # stamps of consecutive batches then keep their exact microsecond distances.
        offset = self.mapper.offset
        if self._ref_us is None:
            self._ref_us = int(t_us[0])
        if offset != self._offset:
            self._offset = offset
            self._ref_lsl = self._ref_us * 1e-6 - offset
        return (np.asarray(t_us, np.int64) - self._ref_us) * 1e-6 + self._ref_lsl

    @property
    def offset(self) -> float:
        """Seconds added to source (Unix) seconds to land on the one clock."""
        return -self.mapper.offset


class ShiftedTime:
    """A recording's microseconds moved so that ``origin_us`` lands at LSL ``origin_lsl``."""

    def __init__(self, origin_us: int, origin_lsl: float) -> None:
        self.origin_us = int(origin_us)
        self.origin_lsl = float(origin_lsl)

    def to_lsl(self, t_us: np.ndarray) -> np.ndarray:
        return (np.asarray(t_us, np.int64) - self.origin_us) * 1e-6 + self.origin_lsl

    @property
    def offset(self) -> float:
        return self.origin_lsl - self.origin_us * 1e-6


class OverrunMeter:
    """Counts events a burst overwrote sooner than ``hold_s`` after they arrived.

    The event ring promises ``hold_s`` seconds at the sensor's top rate; what a
    faster burst pushes out before that is data a reader keeping the promised
    pace never saw. Chunks are tracked by (start, end, oldest, newest stamp),
    stamps inside a chunk interpolated by index, so this costs O(1) per write
    and reads nothing from the ring.
    """

    def __init__(self, capacity: int, hold_s: float) -> None:
        self.capacity = int(capacity)
        self.hold_s = float(hold_s)
        self._chunks: deque[tuple[int, int, float, float]] = deque()
        self._head = 0
        self._counted = 0  # absolute index below which overwrites were accounted
        self.lost = 0

    def on_write(self, n: int, oldest: float, newest: float) -> int:
        start, self._head = self._head, self._head + n
        self._chunks.append((start, self._head, oldest, newest))
        floor = self._head - self.capacity
        young = newest - self.hold_s  # items stamped after this were overwritten too soon
        lost = 0
        while self._chunks and self._chunks[0][0] < floor:
            c0, c1, t0, t1 = self._chunks[0]
            a, b = max(c0, self._counted), min(c1, floor)
            if b > a and t1 > young:
                if t0 > young or c1 - c0 < 2:
                    first = a
                else:  # the first index of the chunk stamped after `young`
                    first = c0 + math.floor((young - t0) / (t1 - t0) * (c1 - c0 - 1)) + 1
                lost += max(0, b - max(a, first))
            if c1 <= floor:
                self._chunks.popleft()
            else:
                break
        self._counted = max(self._counted, floor)
        self.lost += lost
        return lost


# ------------------------------------------------------------------ cameras
def find_cameras() -> list[str]:
    """The cameras dv-processing discovers, as 'DAVIS346 (serial 00000499)'."""
    return [describe_descriptor(d) for d in dv.io.camera.discover()]


def describe_descriptor(d: Any) -> str:
    model = str(getattr(d, "cameraModel", "camera")).split(".")[-1]
    return f"{model} (serial {getattr(d, 'serialNumber', '?')})"


def open_camera(serial: str | None = None) -> Any:
    """Open a DV camera, checking ``discover()`` first (``open()`` with none attached raises)."""
    found = list(dv.io.camera.discover())
    if not found:
        raise DriverError(
            "no DV camera found: dv.io.camera.discover() lists none (looked for iniVation "
            "DAVIS, DVXplorer and DVS cameras on USB; is one plugged in, with udev rules "
            "installed?)"
        )
    chosen = found[0]
    if serial is not None:
        match = [d for d in found if str(d.serialNumber) == str(serial)]
        if not match:
            listed = ", ".join(describe_descriptor(d) for d in found)
            raise DriverError(f"no DV camera with serial {serial}; found: {listed}")
        chosen = match[0]
    try:
        return dv.io.camera.open(chosen)
    except (RuntimeError, IndexError) as exc:
        raise DriverError(f"cannot open {describe_descriptor(chosen)}: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    """dv's messages carry a boost source location and a stack trace; keep the sentence."""
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip()[:1].isdigit()]
    text = next((ln for ln in lines if "Error:" in ln), lines[0] if lines else text)
    return text.split(" [", 1)[0].split("RuntimeError: ", 1)[-1].strip()


@dataclass
class _Link:
    """One handle and the kinds it delivers: a camera (all kinds) or one network reader."""

    kinds: tuple[str, ...]
    label: str
    endpoint: Endpoint | None = None
    handle: Any = None
    next_try: float = 0.0


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
        kinds = [k for k in KINDS if getattr(cam, _AVAILABLE[k])()]
        res = cam.getEventResolution() or cam.getFrameResolution()
        if res is None:
            raise DriverError(f"{self.camera_name} reports no resolution")
        return kinds, (int(res[0]), int(res[1]))

    def _open_recording(self) -> Any:
        assert self.file is not None
        if not self.file.is_file():
            raise DriverError(f"AEDAT4 file not found: {self.file}")
        try:
            return dv.io.MonoCameraRecording(str(self.file))
        except RuntimeError as exc:
            raise DriverError(f"cannot read AEDAT4 file {self.file}: {_short(exc)}") from exc

    def _probe_file(self) -> tuple[list[str], tuple[int, int]]:
        rec = self._open_recording()
        names = list(rec.getStreamNames())
        for kind in KINDS:
            for n in names:
                if getattr(rec, _IS_TYPE[kind])(n):
                    self._file_streams[kind] = n
                    break
        res = None
        if "events" in self._file_streams:
            res = rec.getEventResolution(self._file_streams["events"])
        if res is None and "frames" in self._file_streams:
            res = rec.getFrameResolution(self._file_streams["frames"])
        self.camera_name = str(rec.getCameraName())
        self._time_range = tuple(int(t) for t in rec.getTimeRange())
        del rec
        if res is None:
            raise DriverError(
                f"AEDAT4 file {self.file} has no event or frame stream (streams: {names})"
            )
        return [k for k in KINDS if k in self._file_streams], (int(res[0]), int(res[1]))

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
        h, w = self.shape
        meta: dict[str, Any] = {
            "input": self.input,
            "where": self.where,
            "camera": self.camera_name,
            "sensor_width": W,
            "sensor_height": H,
        }
        if self.roi is not None:
            meta["roi"] = self.roi.as_list()
        src = f"{SOURCE}:{self.input}:{self.where}"
        specs = []
        for kind in self.kinds:
            stream = self.stream[kind]
            if kind == "events":
                specs.append(
                    StreamSpec(
                        name=stream,
                        modality=Modality.EVENTS,
                        nominal_rate=0.0,
                        dtype=str(EVENT_DTYPE),
                        frame_shape=(h, w),
                        source=src,
                        metadata={
                            **meta,
                            "width": w,
                            "height": h,
                            "polarity": "1 = ON, 0 = OFF",
                            "noise_filter_ms": self.noise_filter_ms,
                            "ring_capacity": self.event_capacity,
                            "max_event_rate": max_event_rate,
                        },
                    )
                )
            elif kind == "frames":
                specs.append(
                    StreamSpec(
                        name=stream,
                        modality=Modality.FRAMES,
                        nominal_rate=self.frame_rate,
                        dtype="uint8",
                        frame_shape=(h, w),
                        source=src,
                        metadata={**meta, "width": w, "height": h, "color": "gray"},
                    )
                )
            elif kind == "imu":
                specs.append(
                    StreamSpec(
                        name=stream,
                        modality=Modality.IMU,
                        nominal_rate=0.0,
                        channel_names=IMU_CHANNELS,
                        units=IMU_UNITS,
                        dtype="float32",
                        source=src,
                        metadata=meta,
                    )
                )
            else:
                specs.append(
                    StreamSpec(
                        name=stream,
                        modality=Modality.TRIGGERS,
                        nominal_rate=0.0,
                        channel_names=("type",),
                        dtype="float32",
                        source=src,
                        metadata={
                            **meta,
                            "codes": {t.name: int(t) for t in dv.TriggerType.__members__.values()},
                        },
                    )
                )
        return specs

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
            self._link_message(link, f"waiting for {link.label}: {_short(exc)}")
            return
        if handle is None:
            return
        link.handle = handle
        if "events" in link.kinds:
            self._noise = self._new_noise_filter()  # the new connection may restart time
        self._link_message(link, "")
        log.info("%s: connected to %s", self.name, link.label)

    def _open_link(self, link: _Link) -> Any:
        if link.endpoint is None:  # the same camera again, by its serial number
            cam = open_camera(self.serial)
            self._apply_controls(cam)
            self._camera = cam
            return cam
        reader = link.endpoint.connect()
        kind = link.kinds[0]
        if not getattr(reader, _AVAILABLE[kind])():
            sd = reader.getStreamDefinition()
            served = (
                f"a {sd.mTypeIdentifier} stream {sd.mName!r}" if sd is not None else "no stream"
            )
            del reader
            self._link_message(link, f"{link.label} serves {served}, not {kind}; will retry")
            return None
        if kind in ("events", "frames"):
            res = reader.getEventResolution() if kind == "events" else reader.getFrameResolution()
            if res is not None and tuple(res) != tuple(self.resolution):
                del reader
                W, H = self.resolution
                self._link_message(
                    link,
                    f"{link.label} is {res[0]} x {res[1]} but the config says {W} x {H}; "
                    f"set resolution = [{res[0]}, {res[1]}]",
                )
                return None
        if not self.camera_name:
            self.camera_name = str(reader.getCameraName())
        return reader

    def _link_message(self, link: _Link, message: str) -> None:
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
            self._drop_link(link, f"{link.label} failed: {_short(exc)}")
        return got

    def _drop_link(self, link: _Link, why: str) -> None:
        """A disconnection: a gap in each of the link's streams, then retries."""
        for kind in link.kinds:
            self._trackers[self.stream[kind]].on_disconnect(f"{why}; reconnecting")
        link.handle = None
        if link.endpoint is None:
            self._camera = None  # reopened (by serial) when it comes back
        link.next_try = lsl_now() + self.reconnect_interval
        log.warning("%s: %s; reconnecting every %.1f s", self.name, why, self.reconnect_interval)

    def _read_kind(self, handle: Any, kind: str) -> bool:
        read = getattr(handle, _READ[kind])
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
        rec = self._open_recording()
        pending: dict[str, tuple[int, Any]] = {}
        for kind in self.kinds:
            self._queue_next(rec, kind, pending)
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
        while pending and not self.stopping:
            kind = min(pending, key=lambda k: pending[k][0])
            newest, item = pending.pop(kind)
            if pace:
                delay = start + (newest - first_us) * 1e-6 - lsl_now()
                if delay > 0 and self.wait(delay):
                    break
            self._deliver(kind, item, lsl_now())
            self._queue_next(rec, kind, pending)
        del rec
        if not pending and not self.stopping:
            self.finished = True
            for t in self._trackers.values():
                t.on_disconnect(f"end of AEDAT4 file {self.file}")

    def _queue_next(self, rec: Any, kind: str, pending: dict[str, tuple[int, Any]]) -> None:
        """The kind's next non-empty batch with its newest stamp; nothing at the stream's end."""
        read = getattr(rec, _READ[kind])
        name = self._file_streams[kind]
        while True:
            item = read(name)
            if item is None:
                return
            if kind == "events":
                if item.isEmpty():
                    continue
                newest = int(item.getHighestTime())
            elif kind == "frames":
                newest = int(item.timestamp)
            else:
                if len(item) == 0:
                    continue
                newest = int(item[-1].timestamp)
            pending[kind] = (newest, item)
            return

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


# ------------------------------------------------------------------ config
COMMON_OPTIONS = {
    "input",
    "name",
    "streams",
    "noise_filter",
    "noise_filter_ms",
    "roi",
    "exposure_us",
    "frame_interval_us",
    "auto_exposure",
    "max_event_rate",
    "event_ring_seconds",
    "event_ring_max_mb",
    "frame_ring_mb",
    "ring_seconds",
}
INPUT_OPTIONS = {
    "camera": {"serial", "reconnect_interval", "poll_interval"},
    "network": {
        "host",
        "resolution",
        "reconnect_interval",
        "poll_interval",
        *(f"{k}_port" for k in KINDS),
        *(f"{k}_socket" for k in KINDS),
    },
    "file": {"file", "playback", "timestamps"},
}
OPTIONS = COMMON_OPTIONS.union(*INPUT_OPTIONS.values())


def _number(o: Mapping[str, Any], key: str, default: float | None, lo: float, hi: float) -> Any:
    v = o.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise OptionError(key, f"expected a number from {lo:g} to {hi:g}, got {v!r}")
    return v


def _integer(o: Mapping[str, Any], key: str, lo: int, hi: int) -> int | None:
    v = o.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise OptionError(key, f"expected an integer from {lo} to {hi}, got {v!r}")
    return v


def _flag(o: Mapping[str, Any], key: str) -> bool | None:
    v = o.get(key)
    if v is not None and not isinstance(v, bool):
        raise OptionError(key, f"expected true or false, got {v!r}")
    return v


def _choice(o: Mapping[str, Any], key: str, choices: Sequence[str], default: str) -> str:
    v = o.get(key, default)
    if v not in choices:
        raise OptionError(key, f"expected one of {', '.join(choices)}, got {v!r}")
    return v


def _endpoints(o: Mapping[str, Any]) -> dict[str, Endpoint] | None:
    host = o.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise OptionError("host", f"expected a host name or address, got {host!r}")
    eps: dict[str, Endpoint] = {}
    for kind in KINDS:
        pk, sk = f"{kind}_port", f"{kind}_socket"
        if pk in o and sk in o:
            raise OptionError(sk, f"give either {pk} or {sk}, not both")
        if pk in o:
            eps[kind] = Endpoint(host=host, port=_integer(o, pk, 1, 65535))
        elif sk in o:
            path = o[sk]
            if not isinstance(path, str) or not path:
                raise OptionError(sk, f"expected a UNIX socket path, got {path!r}")
            eps[kind] = Endpoint(socket=path)
    if not eps:
        return {k: Endpoint(host=host, port=p) for k, p in DEFAULT_PORTS.items()}
    return eps


def from_config(options: Mapping[str, Any]) -> list[Driver]:
    """One DavisDriver from a ``[[sources]]`` table of kind "davis".

    ``input`` = "camera" (default; ``serial`` picks one of several), "network"
    (``host`` default 127.0.0.1; ``events_port``, ``frames_port``, ``imu_port``,
    ``triggers_port`` for TCP or ``<kind>_socket`` for UNIX socket paths; with
    none given, events on 7777 and frames on 7778 as ``affectlab serve
    virtual-davis`` serves them; ``resolution`` [w, h] default [346, 260];
    ``reconnect_interval`` s) or "file" (``file``, ``playback`` realtime|fast,
    ``timestamps`` now|recorded). For all: ``name`` (stream prefix, default
    "davis"), ``streams`` (camera/file: kinds to publish), ``noise_filter``,
    ``noise_filter_ms``, ``roi`` [x, y, w, h], ``exposure_us``,
    ``frame_interval_us``, ``auto_exposure``, ``max_event_rate``,
    ``event_ring_seconds``, ``event_ring_max_mb``, ``frame_ring_mb``, ``ring_seconds``.
    """
    o = dict(options)
    unknown = sorted(set(o) - OPTIONS)
    if unknown:
        raise OptionError(
            unknown[0], f"unknown option of a davis source; allowed: {', '.join(sorted(OPTIONS))}"
        )
    inp = _choice(o, "input", INPUTS, "camera")
    foreign = sorted(set(o) - COMMON_OPTIONS - INPUT_OPTIONS[inp])
    if foreign:
        owner = next(i for i in INPUTS if foreign[0] in INPUT_OPTIONS[i])
        raise OptionError(foreign[0], f"applies to input = {owner!r} only (this source is {inp!r})")
    name = o.get("name", "davis")
    if not isinstance(name, str) or not name:
        raise OptionError("name", f"expected a non-empty string, got {name!r}")
    streams = o.get("streams")
    if streams is not None:
        if inp == "network":
            raise OptionError("streams", "for network input, choose streams by giving their ports")
        distinct_choices(streams, "streams", KINDS)
    kwargs: dict[str, Any] = {"name": name, "streams": streams}
    roi = o.get("roi")
    if roi is not None:
        if (
            not isinstance(roi, list)
            or len(roi) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi)
            or roi[0] < 0
            or roi[1] < 0
            or roi[2] < 1
            or roi[3] < 1
        ):
            raise OptionError(
                "roi", f"expected [x, y, width, height] in sensor pixels, got {roi!r}"
            )
        kwargs["roi"] = Roi(*roi)
    kwargs["noise_filter"] = bool(_flag(o, "noise_filter"))
    kwargs["noise_filter_ms"] = _number(o, "noise_filter_ms", 2.0, 0.001, 10000)
    kwargs["exposure_us"] = _integer(o, "exposure_us", 1, 10_000_000)
    kwargs["frame_interval_us"] = _integer(o, "frame_interval_us", 1, 10_000_000)
    kwargs["auto_exposure"] = _flag(o, "auto_exposure")
    kwargs["max_event_rate"] = _number(o, "max_event_rate", DAVIS346_MAX_RATE, 1, 1e9)
    kwargs["event_ring_seconds"] = _number(o, "event_ring_seconds", 1.0, 0.01, 3600)
    kwargs["event_ring_max_mb"] = _number(o, "event_ring_max_mb", 256.0, 1, 65536)
    kwargs["frame_ring_mb"] = _number(o, "frame_ring_mb", 128.0, 1, 65536)
    kwargs["ring_seconds"] = _number(o, "ring_seconds", None, 1, 86400)
    if inp in ("camera", "network"):
        kwargs["reconnect_interval"] = _number(o, "reconnect_interval", 1.0, 0.05, 3600)
        kwargs["poll_interval"] = _number(o, "poll_interval", 0.002, 0.0001, 1)
    if inp == "camera":
        serial = o.get("serial")
        if serial is not None and (not isinstance(serial, (str, int)) or isinstance(serial, bool)):
            raise OptionError("serial", f"expected the camera's serial number, got {serial!r}")
        kwargs["serial"] = None if serial is None else str(serial)
    elif inp == "network":
        kwargs["endpoints"] = _endpoints(o)
        res = o.get("resolution")
        if res is not None:
            if (
                not isinstance(res, list)
                or len(res) != 2
                or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 8192 for v in res
                )
            ):
                raise OptionError("resolution", f"expected [width, height] in pixels, got {res!r}")
            kwargs["resolution"] = (res[0], res[1])
    else:
        file = o.get("file")
        if not isinstance(file, str) or not file:
            raise OptionError("file", f"expected the path of an AEDAT4 file, got {file!r}")
        kwargs["file"] = file
        kwargs["playback"] = _choice(o, "playback", ("realtime", "fast"), "realtime")
        kwargs["timestamps"] = _choice(o, "timestamps", ("now", "recorded"), "now")
    return [DavisDriver(inp, **kwargs)]
