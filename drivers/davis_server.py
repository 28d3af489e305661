"""A virtual DAVIS346 served over DV network streams, so a DAVIS setup can be tried with no camera.

Frames come from the virtual participant's eye camera (``drivers.simulated``),
a webcam or a video file (grayscale, resized to 346 x 260); DVS events are
emulated from those frames by the same ``EventEmulator`` the simulated driver
uses. Events and APS frames are written with ``dv.io.NetworkWriter``, one
server per stream as DV does: events on ``port``, frames on ``port + 1``. Any
DV client (DV GUI, dv-processing's ``NetworkReader``, ``drivers.davis``)
reads them as it would a real camera's streams.

Timing: frame ``k`` is taken at ``t0 + k / fps`` (Unix microseconds, as a
DAVIS stamps). Its events lie in ``(t_{k-1}, t_k]`` and are sent when frame
``k`` is, so event latency is at most one frame interval. A server that falls
behind skips frames as a camera drops them (the emulator then sees a longer
interval, which is what a real sensor would see). While nobody is connected
the server only keeps time: rendering resumes and the emulator restarts
when a client connects.

dv-processing 2.0.4 has no numpy -> ``EventStore`` constructor (REFERENCE 6);
``events_to_store`` is the fastest exact way found here (``push_back`` of
tuples mapped in C, about 5 M events/s, 3-4 x a Python loop), and
``events_to_store_binned`` packs one ``imageToEvents`` call per time bin and
layer for dense bursts (stamps move forward to the newest event of their bin).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import dv_processing as dv
import numpy as np

from drivers.simulated.events import EventEmulator
from drivers.simulated.eye_camera import DAVIS346_SIZE, VirtualEyeCamera
from drivers.simulated.participant import VirtualParticipant
from drivers.video_seek import SEEK_FROM, skip_frames

DAVIS346_WH = (DAVIS346_SIZE[1], DAVIS346_SIZE[0])  # (width, height), as dv speaks
CAMERA_NAME = "DAVIS346_virtual"


# ------------------------------------------------------------------ numpy -> EventStore
def events_to_store(t_us: np.ndarray, x: np.ndarray, y: np.ndarray, polarity: np.ndarray):
    """An exact ``dv.EventStore`` from arrays (stamps non-decreasing, int64 microseconds).

    ``map`` over ``zip`` feeds ``push_back`` from C with no Python loop body;
    ``deque(maxlen=0)`` drains it. Python ints from ``tolist()`` cast fastest.
    """
    store = dv.EventStore()
    if len(t_us):
        deque(
            map(
                store.push_back,
                zip(
                    np.asarray(t_us, np.int64).tolist(),
                    np.asarray(x).tolist(),
                    np.asarray(y).tolist(),
                    (np.asarray(polarity) > 0).tolist(),
                    strict=True,
                ),
            ),
            maxlen=0,
        )
    return store


def events_to_store_binned(
    t_us: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    polarity: np.ndarray,
    resolution: tuple[int, int],
    bin_us: int,
):
    """A ``dv.EventStore`` built with one ``imageToEvents`` call per time bin and layer.

    Every event is kept (pixel and polarity exact); its stamp becomes that of
    the newest event in its bin, so order is kept across calls. A pixel that
    fires more than once in a bin waits for a further layer (image). Each call
    scans the whole sensor (about 40 us for 346 x 260), so this only beats
    ``events_to_store`` when bins hold thousands of events.
    """
    if bin_us < 1:
        raise ValueError("bin_us must be >= 1")
    w, h = resolution
    t_us = np.asarray(t_us, np.int64)
    store = dv.EventStore()
    n = len(t_us)
    if n == 0:
        return store
    bins = t_us // bin_us  # sorted, since the stamps are
    edges = np.r_[np.flatnonzero(bins[1:] != bins[:-1]) + 1, n]
    pix = np.asarray(y, np.int64) * w + np.asarray(x, np.int64)
    val = np.where(np.asarray(polarity) > 0, 255, 0).astype(np.uint8)
    img = np.full((h, w), 128, np.uint8)
    flat = img.reshape(-1)
    owner = np.empty(w * h, np.int64)  # which event of the layer holds each pixel
    start = 0
    for end in edges.tolist():
        stamp = int(t_us[end - 1])
        p, v = pix[start:end], val[start:end]
        start = end
        while len(p):
            idx = np.arange(len(p))
            owner[p[::-1]] = idx[::-1]
            mine = owner[p] == idx  # one event per pixel in this layer, the rest wait
            q = p[mine]
            flat[q] = v[mine]
            store.add(dv.data.generate.imageToEvents(stamp, img, 255, 0))
            flat[q] = 128
            p, v = p[~mine], v[~mine]
    return store


# ------------------------------------------------------------------ frame sources
class FrameSource(Protocol):
    """Where the virtual camera's frames come from."""

    fps: float
    live: bool  # paces itself (a webcam): read() blocks until its next frame
    description: str

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Frame ``index`` as (APS frame, emulator input), uint8 (260, 346); None at the end."""
        ...

    def close(self) -> None: ...


class VirtualEyeFrames:
    """The virtual participant's right eye (``drivers.simulated``): deterministic per index.

    Events are emulated from the exposure without sensor noise, as the simulated driver does.
    """

    live = False

    def __init__(self, seed: int = 0, lighting: str = "normal", fps: float = 30.0) -> None:
        self.participant = VirtualParticipant(seed)
        self.camera = VirtualEyeCamera(
            self.participant, size=DAVIS346_SIZE, fps=fps, lighting=lighting
        )
        self.fps = float(fps)
        self.description = f"virtual participant (seed {seed}, lighting {self.camera.lighting})"

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        frames, irradiance = self.camera.render_pair(index, 1)
        return frames[0], irradiance[0]

    def close(self) -> None:
        pass


def to_sensor_frame(frame: np.ndarray) -> np.ndarray:
    """Grayscale, 346 x 260, uint8: what a DAVIS346 APS readout looks like."""
    if frame.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        frame = cv2.cvtColor(frame, code)
    if frame.shape != DAVIS346_SIZE:
        frame = cv2.resize(frame, DAVIS346_WH, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame, dtype=np.uint8)


class VideoFrames:
    """A video file (looped, played at its own rate) or a webcam index; events from real video."""

    def __init__(
        self, video: str | Path | int, fps: float | None = None, loop: bool = True
    ) -> None:
        self.webcam = isinstance(video, int)
        self.live = self.webcam
        self.loop = loop
        self.path = None if self.webcam else Path(video)
        if self.path is not None and not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        self._cap = cv2.VideoCapture(video if self.webcam else str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            what = f"webcam {video}" if self.webcam else f"video file {self.path}"
            raise OSError(f"cannot open {what} with OpenCV")
        rate = float(fps or self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = rate if 0 < rate <= 1000 and math.isfinite(rate) else 30.0
        self.description = f"webcam {video}" if self.webcam else f"video file {self.path}"
        self._pos = 0  # index of the next frame the capture will deliver
        self._offset = 0  # index of the file's first frame in the current loop
        self.skipped = 0

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        cap = self._cap
        if not self.webcam and index - self._pos >= SEEK_FROM:
            # far behind (a client connecting after an idle stretch, a slow decoder):
            # seek, since decoding every missed frame would only put it further behind
            where = skip_frames(cap, index - self._pos, self.loop)
            if where is None:
                return None
            self.skipped += index - self._pos
            self._pos, self._offset = index, index - where
        if not self.webcam:
            while self._pos < index:  # a frame or two behind: drop them as a camera would
                if not self._grab():
                    return None
                self.skipped += 1
        if not self._grab():
            return None
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            return None
        out = to_sensor_frame(frame)
        return out, out

    def _grab(self) -> bool:
        if self._cap.grab():
            self._pos += 1
            return True
        if self.webcam or not self.loop or self._pos == self._offset:
            return False
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._offset = self._pos
        if self._cap.grab():
            self._pos += 1
            return True
        return False

    def close(self) -> None:
        self._cap.release()


# ------------------------------------------------------------------ the server
def free_port_pair(host: str = "127.0.0.1") -> int:
    """A free port whose successor is free too: the events and frames ports of a server."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind((host, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free consecutive ports")


def _thread_ids() -> set[int]:
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:  # not Linux
        return set()


def _lower_priority(threads: set[int]) -> bool:
    """Nice 19 for the given threads (Linux): they then run on CPU nobody else wants.

    Each ``dv.io.NetworkWriter`` of dv-processing 2.0.4 runs a thread that
    busy-polls a whole core, even with no client and nothing to send. At nice 19
    it still shows as busy, but yields to the renderer and to other processes.
    """
    done = False
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, 19)
            done = True
        except (OSError, AttributeError):
            pass
    return done


@dataclass
class ServerStats:
    frames: int = 0
    events: int = 0
    dropped_frames: int = 0
    unsent_frames: int = 0  # rendered while the frames port had no client: never written
    unsent_events: int = 0  # emulated while the events port had no client: never written
    seconds: float = 0.0
    convert_s: float = 0.0  # time spent building EventStores
    idle_s: float = 0.0  # time with no client connected
    clients: dict[str, int] = field(default_factory=dict)

    @property
    def active_s(self) -> float:
        """Seconds with a client connected."""
        return max(0.0, self.seconds - self.idle_s)

    def summary(self) -> str:
        active = self.active_s
        rate = self.events / active if active > 0 else 0.0
        fps = self.frames / active if active > 0 else 0.0
        per_frame = 1e3 * self.convert_s / self.frames if self.frames else 0.0
        return (
            f"served {self.frames} frames ({fps:.1f} fps) and {self.events} events "
            f"({rate / 1e3:.1f} k ev/s) in {active:.1f} s with a client ({self.idle_s:.1f} s "
            f"idle); dropped {self.dropped_frames} frames; not sent (no client on that port) "
            f"{self.unsent_frames} frames and {self.unsent_events} events; EventStores took "
            f"{per_frame:.2f} ms per frame"
        )


class VirtualDavisServer:
    """Serves one frame source as a DAVIS346's event and frame streams.

    ``time_bin_us`` > 0 builds EventStores with ``events_to_store_binned``
    (for very busy scenes); 0 keeps every event's microsecond stamp.
    """

    def __init__(
        self,
        source: FrameSource,
        host: str = "127.0.0.1",
        port: int = 7777,
        frames_port: int | None = None,
        *,
        events: bool = True,
        camera_name: str = CAMERA_NAME,
        emulator: EventEmulator | None = None,
        seed: int = 0,
        time_bin_us: int = 0,
        calm_writers: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.host = host
        self.port = int(port)
        self.frames_port = int(frames_port if frames_port is not None else port + 1)
        self.camera_name = camera_name
        self.time_bin_us = int(time_bin_us)
        self.emulator = (emulator or EventEmulator(DAVIS346_SIZE, seed=seed)) if events else None
        self._log = log or (lambda _msg: None)
        self.stats = ServerStats()
        self._events_writer = None
        before = _thread_ids()
        if events:
            stream = dv.io.Stream.EventStream(0, "events", camera_name, DAVIS346_WH)
            self._events_writer = dv.io.NetworkWriter(host, self.port, stream)
        stream = dv.io.Stream.FrameStream(0, "frames", camera_name, DAVIS346_WH)
        try:
            self._frames_writer = dv.io.NetworkWriter(host, self.frames_port, stream)
        except RuntimeError:
            self._events_writer = None
            raise
        self.calmed = calm_writers and _lower_priority(_thread_ids() - before)

    @property
    def endpoints(self) -> dict[str, str]:
        out = {"frames": f"{self.host}:{self.frames_port}"}
        if self._events_writer is not None:
            out["events"] = f"{self.host}:{self.port}"
        return out

    def client_counts(self) -> dict[str, int]:
        if self._frames_writer is None:
            return {}
        out = {"frames": self._frames_writer.getClientCount()}
        if self._events_writer is not None:
            out["events"] = self._events_writer.getClientCount()
        return out

    def serve(
        self, duration: float | None = None, stop: threading.Event | None = None
    ) -> ServerStats:
        """Run in real time until ``duration`` seconds pass or ``stop`` is set."""
        stop = stop or threading.Event()
        src, fps = self.source, self.source.fps
        start = time.monotonic()
        t0_us = dv.now()
        k = 0  # next frame index
        serving = False
        prev_us = t0_us - 1
        while not stop.is_set():
            now = time.monotonic()
            if duration is not None and now - start >= duration:
                break
            if not any(self.client_counts().values()):
                if serving:
                    self._log("no client connected; idling")
                serving = False
                stop.wait(0.05)
                self.stats.idle_s += time.monotonic() - now
                continue
            if not serving:
                serving = True
                if self.emulator is not None:
                    self.emulator.reset()  # a fresh client sees a camera that just started
                k = max(k, int((now - start) * fps))
            if not src.live:
                due = start + k / fps
                if due > now:
                    if stop.wait(due - now):
                        break
                else:
                    late = int((time.monotonic() - start) * fps) - k
                    if late > 0:  # more than a frame behind: drop, as a camera would
                        self.stats.dropped_frames += late
                        k += late
            pair = src.read(k)
            if pair is None:
                self._log(f"{src.description} ended")
                break
            aps, scene = pair
            if src.live:
                t_us = max(dv.now(), prev_us + 1)
                t_rel = (t_us - t0_us) * 1e-6
            else:
                t_rel = k / fps
                t_us = t0_us + round(t_rel * 1e6)
            self._send(aps, scene, t_rel, t_us, t0_us, prev_us)
            prev_us = t_us
            k += 1
        self.stats.seconds = time.monotonic() - start
        self.stats.clients = self.client_counts()
        return self.stats

    def _send(
        self, aps: np.ndarray, scene: np.ndarray, t_rel: float, t_us: int, t0_us: int, prev_us: int
    ) -> None:
        if self.emulator is not None and self._events_writer is not None:
            ev, ts = self.emulator.emulate(scene, t_rel)  # always: the emulator keeps time
            if len(ev) and not self._events_writer.getClientCount():
                self.stats.unsent_events += len(ev)
            elif len(ev):
                stamps = np.clip(t0_us + np.round(ts * 1e6).astype(np.int64), prev_us + 1, t_us)
                c0 = time.perf_counter()
                if self.time_bin_us > 0:
                    store = events_to_store_binned(
                        stamps, ev["x"], ev["y"], ev["polarity"], DAVIS346_WH, self.time_bin_us
                    )
                else:
                    store = events_to_store(stamps, ev["x"], ev["y"], ev["polarity"])
                self.stats.convert_s += time.perf_counter() - c0
                self._events_writer.writeEvents(store)
                self.stats.events += len(ev)
        if not self._frames_writer.getClientCount():
            self.stats.unsent_frames += 1  # the events client alone, or nobody yet
            return
        self._frames_writer.writeFrame(dv.Frame(int(t_us), aps))
        self.stats.frames += 1

    def close(self) -> None:
        """Stop the frame source; the writers stay open until the process ends.

        dv-processing 2.0.4's ``NetworkWriter`` destructor can hang for good:
        always while a client is connected, and now and then after every client
        has left. It holds the GIL while it hangs, so no watchdog thread can
        rescue the process. A process that served therefore leaves with
        ``os._exit`` (as ``affectlab serve`` does): the OS closes the sockets and
        clients see a disconnection.
        """
        self.source.close()
