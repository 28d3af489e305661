"""A webcam (OpenCV device index) or a video file played as one, with an optional eye region.

Each frame is stamped with the host clock right after ``grab()`` (the moment
the frame is in our hands; DESIGN "one clock"), converted to grayscale or kept
BGR, resized if asked, and written to a frame ring. A video file stands in for
a webcam: it is played at its own rate (``CAP_PROP_FPS``), and when the driver
falls behind it skips frames as a camera would drop them, counting them as
lost, so the stream stays real time. With ``loop`` the file starts over.

With ``eye_region`` the driver also finds the eye (``drivers.eye_region``:
Haar face, then Haar eyes in the upper face, smoothed and held) and publishes
per frame ``x, y, w, h, status`` of the region in frame pixels, and (with
``eye_crop``) the region resampled to a fixed-size grayscale frame, which is
what the eye models take as input.

Streams, for ``name`` "webcam": ``webcam-frames``, ``webcam-eye-region`` and
``webcam-eye``. (A driver built directly is named "webcam"; in a session config a
source without ``name`` is "<kind><index>", e.g. "webcam1".)
"""

from __future__ import annotations

import contextlib
import glob
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.clock import lsl_now
from core.ring import Ring, ring_for
from core.streams import Modality, StreamSpec
from drivers.base import Driver, DriverError, OptionError, number_option
from drivers.eye_region import (
    EYE_CHOICES,
    EyeRegionOptions,
    EyeRegionTracker,
    RegionStatus,
    crop,
)
from drivers.video_seek import frames_left, skip_frames

SOURCE = "drivers.webcam"
REGION_CHANNELS = ("x", "y", "w", "h", "status")
#: by modality, so the region is never mistaken for a signal (REGION would be the right one).
REGION_MODALITY = Modality.REGION


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's warnings while probing devices that may not exist."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def device_name(index: int) -> str:
    """The kernel's name of /dev/video<index> (Linux), or ''."""
    path = Path(f"/sys/class/video4linux/video{index}/name")
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def find_webcams(max_index: int = 10, skip: tuple[int, ...] = ()) -> list[tuple[int, str]]:
    """Indices that open as video capture devices, with their names where the OS gives one.

    On Linux only the /dev/video* nodes present are tried; elsewhere 0..max_index-1.
    """
    nodes = sorted(
        int(m.group(1))
        for p in glob.glob("/dev/video*")
        if (m := re.fullmatch(r"/dev/video(\d+)", p))
    )
    candidates = (
        nodes if Path("/dev").is_dir() and Path("/sys/class").is_dir() else range(max_index)
    )
    found: list[tuple[int, str]] = []
    with quiet_opencv():
        for i in candidates:
            if i in skip:
                continue
            cap = cv2.VideoCapture(i)
            try:
                if cap.isOpened():
                    found.append((i, device_name(i)))
            finally:
                cap.release()
    return found


def describe_webcams(found: list[tuple[int, str]]) -> str:
    if not found:
        return "none"
    return ", ".join(f"{i} ({name})" if name else str(i) for i, name in found)


class WebcamDriver(Driver):
    """OpenCV capture from a device index or a video file, with an optional stable eye region.

    ``size`` and ``eye_size`` are (width, height). The capture is opened in
    the constructor (the frame shape sizes the ring), so a missing camera or
    file is a ``DriverError`` right away. Frame rings hold ``ring_seconds`` of
    frames but no more than ``frame_ring_mb`` megabytes.
    """

    def __init__(
        self,
        device: int | None = 0,
        file: str | Path | None = None,
        *,
        name: str = "webcam",
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        gray: bool = True,
        loop: bool = False,
        eye_region: bool = False,
        eye_crop: bool = True,
        eye_size: tuple[int, int] = (100, 100),
        eye_options: EyeRegionOptions | None = None,
        reconnect_interval: float = 2.0,
        ring_seconds: float | None = None,
        frame_ring_mb: float = 128.0,
    ) -> None:
        self.file = Path(file) if file is not None else None
        self.device = None if self.file is not None else int(device if device is not None else 0)
        self.gray = gray
        self.loop = loop
        self.reconnect_interval = reconnect_interval
        self.frame_ring_mb = frame_ring_mb
        self._requested_fps = fps
        self._requested_size = tuple(size) if size else None
        self._cap = self._open()
        self.fps = self._frame_rate(fps)
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (int(size[0]), int(size[1])) if size else (w, h)
        if min(self.size) < 1:
            raise DriverError(f"{self.label}: cannot tell the frame size")
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.file else 0

        self.frame_stream = f"{name}-frames"
        self.region_stream = f"{name}-eye-region" if eye_region else None
        self.eye_stream = f"{name}-eye" if eye_region and eye_crop else None
        opts = eye_options or EyeRegionOptions()
        if tuple(opts.output_size) != tuple(eye_size):
            opts = EyeRegionOptions(**{**opts.__dict__, "output_size": tuple(eye_size)})
        self.eye_tracker = EyeRegionTracker(opts) if eye_region else None
        super().__init__(name, self._specs(name), ring_seconds)
        self.lost_frames = 0

    # ------------------------------------------------------------ opening
    @property
    def label(self) -> str:
        return f"video file {self.file}" if self.file is not None else f"webcam {self.device}"

    def _open(self) -> cv2.VideoCapture:
        if self.file is not None:
            if not self.file.is_file():
                raise DriverError(f"video file not found: {self.file}")
            cap = cv2.VideoCapture(str(self.file))
            if not cap.isOpened():
                raise DriverError(
                    f"cannot open video file {self.file} (not a video OpenCV can read)"
                )
            return cap
        cap = self._open_device()
        if cap is None:
            found = find_webcams(skip=(self.device,))
            raise DriverError(f"no webcam at index {self.device}; found: {describe_webcams(found)}")
        return cap

    def _frame_rate(self, requested: float | None) -> float:
        """Frames per second the source delivers: a file's own (``fps`` plays it at that rate
        instead); a device's as it reports it once asked for ``fps``. A camera gives what it
        can, and taking the request at its word counted every other frame of a 30 fps camera
        asked for 60 as lost, and recorded a rate it never had."""
        reported = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if self.file is not None:
            rate = float(requested or reported)
        else:
            rate = reported if 0 < reported <= 1000 else float(requested or 0.0)
        if not 0 < rate <= 1000 or not math.isfinite(rate):
            rate = 30.0  # devices and files that do not say; the stamps are what count
        return rate

    def _open_device(self) -> cv2.VideoCapture | None:
        with quiet_opencv():
            cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            return None
        if self._requested_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._requested_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._requested_size[1])
        if self._requested_fps:
            cap.set(cv2.CAP_PROP_FPS, self._requested_fps)
        return cap

    def _specs(self, name: str) -> list[StreamSpec]:
        w, h = self.size
        where = str(self.file) if self.file is not None else f"device {self.device}"
        meta = {"device": where, "fps": self.fps, "width": w, "height": h}
        specs = [
            StreamSpec(
                name=self.frame_stream,
                modality=Modality.FRAMES,
                nominal_rate=self.fps,
                dtype="uint8",
                frame_shape=(h, w) if self.gray else (h, w, 3),
                source=f"{SOURCE}:{where}",
                metadata={**meta, "color": "gray" if self.gray else "BGR"},
            )
        ]
        if self.eye_tracker is not None and self.region_stream is not None:
            o = self.eye_tracker.options
            specs.append(
                StreamSpec(
                    name=self.region_stream,
                    modality=REGION_MODALITY,
                    nominal_rate=self.fps,
                    channel_names=REGION_CHANNELS,
                    units=("px", "px", "px", "px", ""),
                    dtype="float32",
                    source=f"{SOURCE}.eye_region:{where}",
                    metadata={
                        **meta,
                        "frame_stream": self.frame_stream,
                        "eye": o.eye,
                        "mirrored": o.mirrored,
                        "status": {s.name.lower(): int(s) for s in RegionStatus},
                    },
                )
            )
            if self.eye_stream is not None:
                ew, eh = o.output_size
                specs.append(
                    StreamSpec(
                        name=self.eye_stream,
                        modality=Modality.FRAMES,
                        nominal_rate=self.fps,
                        dtype="uint8",
                        frame_shape=(eh, ew),
                        source=f"{SOURCE}.eye_region:{where}",
                        metadata={
                            **meta,
                            "color": "gray",
                            "eye": o.eye,
                            "crop_of": self.frame_stream,
                        },
                    )
                )
        # The eye crop goes first: a model input of modality FRAMES that is not bound
        # explicitly takes the first frame stream, and the eye models want the crop.
        specs.sort(key=lambda s: s.name != self.eye_stream)
        return specs

    def _make_ring(self, spec: StreamSpec, seconds: float) -> Ring:
        if spec.modality is Modality.FRAMES and spec.frame_shape:
            frame_bytes = int(np.prod(spec.frame_shape))
            cap = int(self.frame_ring_mb * 1e6 / frame_bytes)
            want = math.ceil((spec.nominal_rate or 30.0) * seconds)
            return ring_for(spec, seconds, capacity=max(8, min(want, cap)))
        return super()._make_ring(spec, seconds)

    # ------------------------------------------------------------ thread
    def _run(self) -> None:
        if self.file is not None:
            self._run_file()
        else:
            self._run_device()

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def close(self) -> None:
        """Release the capture of a driver that was never started (start/stop do it otherwise)."""
        if not self.running:
            self._close()

    def _run_file(self) -> None:
        cap = self._cap
        assert cap is not None
        period = 1.0 / self.fps
        t0 = lsl_now()
        k = 0  # frames consumed (published or skipped) since t0
        while not self.stopping:
            due = t0 + k * period
            delay = due - lsl_now()
            if delay > 0 and self.wait(delay):
                break
            # more than a frame behind: drop frames as a camera would, and say so
            behind = int((lsl_now() - due) * self.fps)
            if behind > 0:
                left = frames_left(cap)
                if skip_frames(cap, behind, self.loop) is None:
                    self._count_lost(min(behind, left))  # the end was among the skipped
                    self._disconnect(f"end of video file {self.file}")
                    return
                k += behind
                self._count_lost(behind)
            if not cap.grab():
                if self.loop and k > 0:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    if cap.grab():
                        ts = lsl_now()
                        self._retrieve_and_publish(cap, ts)
                        k += 1
                        continue
                self._disconnect(f"end of video file {self.file}")
                return
            ts = lsl_now()
            self._retrieve_and_publish(cap, ts)
            k += 1

    def _run_device(self) -> None:
        last_ts: float | None = None
        suspect = 0  # frames a late read may have missed, or may find waiting in the driver
        while not self.stopping:
            cap = self._cap
            if cap is None:
                if self.wait(self.reconnect_interval):
                    break
                self._cap = self._open_device()
                last_ts, suspect = None, 0
                continue
            if not cap.grab():
                if suspect:
                    self._count_lost(suspect)
                self._disconnect(f"webcam {self.device} stopped delivering frames; reopening")
                cap.release()
                self._cap = None
                continue
            ts = lsl_now()
            if last_ts is not None:
                # A hole in the arrivals is lost frames only if none of them turns up: a
                # reader that was late (a busy machine) finds the camera's buffered frames
                # waiting and reads them back to back, so those pay the hole back first.
                gap = (ts - last_ts) * self.fps
                if gap < 0.5 and suspect:
                    suspect -= 1
                else:  # any frame that was not waiting settles the earlier hole
                    if suspect:
                        self._count_lost(suspect)
                    suspect = max(0, round(gap) - 1)
            last_ts = ts
            self._retrieve_and_publish(cap, ts)
        if suspect:
            self._count_lost(suspect)

    def _count_lost(self, n: int) -> None:
        self.lost_frames += n
        for stream in (self.frame_stream, self.region_stream, self.eye_stream):
            if stream is not None:
                self._trackers[stream].health.lost += n

    def _disconnect(self, message: str) -> None:
        for t in self._trackers.values():
            t.on_disconnect(message)
        if self.eye_tracker is not None:
            self.eye_tracker.reset()

    def _retrieve_and_publish(self, cap: cv2.VideoCapture, ts: float) -> None:
        ok, frame = cap.retrieve()
        if ok and frame is not None:
            self.publish_frame(frame, ts)

    def publish_frame(self, frame: np.ndarray, ts: float) -> None:
        """Convert, push, and track the eye region of one captured BGR (or gray) frame."""
        w, h = self.size
        if frame.shape[:2] != (h, w):
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        gray = frame if frame.ndim == 2 else None
        if gray is None and (self.gray or self.eye_tracker is not None):
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self.gray:
            out = gray
        else:
            out = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        stamp = np.array([ts])
        self.push(self.frame_stream, out[None], stamp)
        if self.eye_tracker is None or self.region_stream is None:
            return
        assert gray is not None
        state = self.eye_tracker.update(gray)
        self.push(self.region_stream, state.as_row()[None].astype(np.float32), stamp)
        health = self._trackers[self.region_stream].health
        health.message = {
            RegionStatus.LOST: "no face found",
            RegionStatus.HELD: "eye missed; holding the last region",
        }.get(state.status, "")
        if self.eye_stream is not None and state.box is not None:
            self.push(
                self.eye_stream,
                crop(gray, state.box, self.eye_tracker.options.output_size)[None],
                stamp,
            )


# ------------------------------------------------------------------ config
OPTIONS = {
    "name",
    "device",
    "file",
    "fps",
    "size",
    "gray",
    "loop",
    "eye_region",
    "eye_crop",
    "eye_size",
    "eye",
    "mirrored",
    "detect_every",
    "hold_frames",
    "smoothing",
    "frame_ring_mb",
    "ring_seconds",
}


def _pair(key: str, value: Any, lo: int = 8, hi: int = 8192) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in value)
    ):
        raise OptionError(key, f"expected [width, height] in pixels ({lo}-{hi}), got {value!r}")
    return int(value[0]), int(value[1])


def from_config(options: Mapping[str, Any]) -> list[Driver]:
    """One WebcamDriver from a ``[[sources]]`` table of kind "webcam".

    Options: ``device`` (index, default 0) or ``file`` (a video played as a
    webcam), ``fps``, ``size`` ([width, height]), ``gray`` (default true),
    ``loop`` (files), ``eye_region`` (default false), ``eye_crop`` (default
    true), ``eye_size`` ([width, height] or one number, default 100), ``eye``
    ("right", "left", "both"), ``mirrored``, ``detect_every``, ``hold_frames``,
    ``smoothing``, ``frame_ring_mb``, ``ring_seconds`` and ``name`` (stream name prefix).
    """
    o = dict(options)
    unknown = sorted(set(o) - OPTIONS)
    if unknown:
        raise OptionError(
            unknown[0], f"unknown option of a webcam source; allowed: {', '.join(sorted(OPTIONS))}"
        )
    if "device" in o and "file" in o:
        raise OptionError("file", "give either device or file, not both")
    device = o.get("device", 0)
    if isinstance(device, bool) or not isinstance(device, int) or device < 0:
        raise OptionError("device", f"expected a camera index (0, 1, ...), got {device!r}")
    file = o.get("file")
    if file is not None and (not isinstance(file, str) or not file):
        raise OptionError("file", f"expected a path to a video file, got {file!r}")
    for flag in ("gray", "loop", "eye_region", "eye_crop", "mirrored"):
        if flag in o and not isinstance(o[flag], bool):
            raise OptionError(flag, f"expected true or false, got {o[flag]!r}")
    if o.get("loop") and file is None:
        raise OptionError("loop", "applies to a video file only")
    fps = o.get("fps")
    if fps is not None and (
        isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000
    ):
        raise OptionError("fps", f"expected frames per second (0-1000], got {fps!r}")
    size = _pair("size", o["size"], 16) if "size" in o else None
    eye_size = _pair("eye_size", o.get("eye_size", 100), 16, 1024)
    eye = o.get("eye", "right")
    if eye not in EYE_CHOICES:
        raise OptionError("eye", f"expected one of {', '.join(EYE_CHOICES)}, got {eye!r}")
    ints = {"detect_every": (1, 1000, 5), "hold_frames": (0, 100000, 15)}
    values: dict[str, Any] = {}
    for key, (lo, hi, default) in ints.items():
        v = o.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise OptionError(key, f"expected an integer from {lo} to {hi}, got {v!r}")
        values[key] = v
    smoothing = o.get("smoothing", 0.35)
    if (
        isinstance(smoothing, bool)
        or not isinstance(smoothing, (int, float))
        or not 0 < smoothing <= 1
    ):
        raise OptionError("smoothing", f"expected a number in (0, 1], got {smoothing!r}")
    ring_mb = o.get("frame_ring_mb", 128.0)
    if (
        isinstance(ring_mb, bool)
        or not isinstance(ring_mb, (int, float))
        or not 1 <= ring_mb <= 65536
    ):
        raise OptionError("frame_ring_mb", f"expected megabytes from 1 to 65536, got {ring_mb!r}")
    name = o.get("name", "webcam")
    if not isinstance(name, str) or not name:
        raise OptionError("name", f"expected a non-empty string, got {name!r}")
    eye_options = EyeRegionOptions(
        eye=eye,
        output_size=eye_size,
        mirrored=bool(o.get("mirrored", False)),
        smoothing=float(smoothing),
        **values,
    )
    return [
        WebcamDriver(
            device=device,
            file=file,
            name=name,
            fps=float(fps) if fps is not None else None,
            size=size,
            gray=bool(o.get("gray", True)),
            loop=bool(o.get("loop", False)),
            eye_region=bool(o.get("eye_region", False)),
            eye_crop=bool(o.get("eye_crop", True)),
            eye_size=eye_size,
            eye_options=eye_options,
            frame_ring_mb=float(ring_mb),
            ring_seconds=number_option(o, "ring_seconds", None, 1, 86400),
        )
    ]
