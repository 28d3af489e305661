"""dv-processing data as numpy and on the one clock: the pieces the DAVIS driver, the
recorder and the replay share (REFERENCE 6).

dv speaks Unix microseconds and its own containers (``EventStore``, ``Frame``, IMU
and trigger batches); these helpers turn them into ``core.streams`` arrays, map the
stamps onto the LSL clock, count events a burst overwrites too soon, and open a
camera with a message a person can act on.
"""

from __future__ import annotations

import logging
import math
import socket
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dv_processing as dv
import numpy as np

from core.clock import UnixClockMapper, unix_us_to_lsl
from core.streams import EVENT_DTYPE
from drivers.base import DriverError

log = logging.getLogger(__name__)

KINDS = ("events", "frames", "imu", "triggers")
IMU_CHANNELS = ("accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z", "temperature")
IMU_UNITS = ("g", "g", "g", "deg/s", "deg/s", "deg/s", "degC")

#: the dv-processing method that reads, checks availability of, or tests the type of each kind
READ = {
    "events": "getNextEventBatch",
    "frames": "getNextFrame",
    "imu": "getNextImuBatch",
    "triggers": "getNextTriggerBatch",
}
AVAILABLE = {
    "events": "isEventStreamAvailable",
    "frames": "isFrameStreamAvailable",
    "imu": "isImuStreamAvailable",
    "triggers": "isTriggerStreamAvailable",
}
IS_TYPE = {
    "events": "isStreamOfEventType",
    "frames": "isStreamOfFrameType",
    "imu": "isStreamOfImuType",
    "triggers": "isStreamOfTriggerType",
}


#: how long a DV server may take to accept a connection and send its stream header
#: (a live one does both within milliseconds)
PROBE_TIMEOUT_S = 1.0


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
        """A ``dv.io.NetworkReader``; raises RuntimeError when nobody serves there.

        The endpoint is probed first: dv-processing's ``NetworkReader`` constructor
        blocks, holding Python's GIL, until the server has sent its stream header, so
        against a host that does not answer (a camera PC switched off) or a port where
        something else listens, it froze the whole process (dashboard, other drivers,
        stopping the session) for the TCP timeout or for good.
        """
        self.probe()
        if self.socket is not None:
            return dv.io.NetworkReader(self.socket)
        return dv.io.NetworkReader(self.host, int(self.port or 0))

    def probe(self, timeout: float = PROBE_TIMEOUT_S) -> None:
        """Raise RuntimeError unless something here accepts a connection and starts
        talking within ``timeout`` s, as a DV server does (its header comes at once)."""
        try:
            if self.socket is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(self.socket)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((self.host, int(self.port or 0)), timeout)
        except TimeoutError as exc:
            raise RuntimeError(f"{self}: no answer within {timeout:g} s") from exc
        except OSError as exc:
            raise RuntimeError(f"{self}: {exc.strerror or exc}") from exc
        with sock:
            sock.settimeout(timeout)
            try:
                header = sock.recv(16, socket.MSG_PEEK)
            except TimeoutError as exc:
                raise RuntimeError(
                    f"{self} accepted the connection but sent no DV stream header within "
                    f"{timeout:g} s: is this a DV server's port?"
                ) from exc
            except OSError as exc:
                raise RuntimeError(f"{self}: {exc.strerror or exc}") from exc
        if not header:
            raise RuntimeError(f"{self} closed the connection without sending a DV stream header")

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
    """dv's Unix microseconds on the one clock, through a re-measured Unix -> LSL offset
    taken to the whole microsecond (the stamps' own resolution)."""

    def __init__(self, mapper: UnixClockMapper) -> None:
        self.mapper = mapper

    def to_lsl(self, t_us: np.ndarray) -> np.ndarray:
        return unix_us_to_lsl(t_us, round(self.mapper.offset * 1e6))

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
        raise DriverError(
            f"cannot open {describe_descriptor(chosen)}: {dv_error_text(exc)}"
        ) from exc


def dv_error_text(exc: BaseException) -> str:
    """dv's messages carry a boost source location and a stack trace; keep the sentence."""
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip()[:1].isdigit()]
    info = next((ln for ln in lines if "Error info: " in ln), None)
    if info is not None:  # "EndOfFile: Error info: File x End-Of-File reached"
        return info.split("Error info: ", 1)[1].strip()
    text = next((ln for ln in lines if "Error:" in ln), lines[0] if lines else text)
    return text.split(" [", 1)[0].split("RuntimeError: ", 1)[-1].strip()
