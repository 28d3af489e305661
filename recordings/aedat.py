"""An event camera's streams into one AEDAT4 file through dv-processing's MonoCameraWriter.

One file per event-camera driver holds its events, APS frames, IMU and
triggers under dv's usual stream names (``events``, ``frames``, ``imu``,
``triggers``), so DV, dv-processing and ``drivers.davis`` (input ``file``)
open it. Stamps are int64 Unix microseconds as a camera writes them:
``round(lsl * 1e6) + unix_minus_lsl_us``, with one offset for the whole
recording (in the manifest), so a replay maps them back to the original
one-clock seconds: bit for bit for a camera's own whole-microsecond stamps (a
DAVIS, a DV network stream: ``core.clock.unix_us_to_lsl`` both ways), to the
nearest microsecond for the simulated camera, which stamps between them.

dv-processing 2.0.4 has no numpy -> EventStore constructor; events go through
``drivers.davis_server.events_to_store`` (about 5 M events/s, see
bench/bench_recorder.py for what the recorder sustains). The writer's file
thread busy-polls a core while the file is open; it is set to nice 19 (as
``drivers.davis_server`` does for dv's network writers) so that it only uses
CPU the session does not need.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import dv_processing as dv
import numpy as np

from core.streams import Modality, StreamSpec
from drivers.davis_server import _lower_priority, _thread_ids, events_to_store
from drivers.dv_data import IMU_CHANNELS

#: modalities an event camera's driver publishes that belong in its AEDAT4 file
AEDAT_MODALITIES = (Modality.EVENTS, Modality.FRAMES, Modality.IMU, Modality.TRIGGERS)
#: dv's stream names per modality
AEDAT_STREAM_NAMES = {
    Modality.EVENTS: "events",
    Modality.FRAMES: "frames",
    Modality.IMU: "imu",
    Modality.TRIGGERS: "triggers",
}
#: the compression ratio is the best one the file showed in this many seconds of disk checks
RATIO_WINDOW_S = 10.0
#: below this many bytes handed over the file's header (about 1 kB) distorts the ratio;
#: until then what is not on disk yet counts 1:1
RATIO_MIN_BYTES = 1 << 20


def lsl_to_unix_us(ts: np.ndarray, unix_minus_lsl_us: int) -> np.ndarray:
    """One-clock seconds -> int64 Unix microseconds (rounded; order is kept)."""
    return np.rint(np.asarray(ts, np.float64) * 1e6).astype(np.int64) + np.int64(unix_minus_lsl_us)


def _resolution(spec: StreamSpec) -> tuple[int, int]:
    """(width, height) as dv speaks, from a spec's (H, W[, C])."""
    assert spec.frame_shape is not None
    return int(spec.frame_shape[1]), int(spec.frame_shape[0])


class AedatStreams:
    """The AEDAT4 writer of one event-camera driver's streams (at most one per modality)."""

    def __init__(
        self, path: Path, camera_name: str, specs: list[StreamSpec], unix_minus_lsl_us: int
    ):
        self.path = Path(path)
        self.unix_minus_lsl_us = int(unix_minus_lsl_us)
        #: uncompressed bytes handed to dv so far (LZ4 makes them about 0.6 as many on
        #: disk), for the recorder's disk-space guard: see ``unwritten_bytes``
        self.bytes_in = 0
        self._ratios: deque[tuple[float, float]] = deque()  # (check time, file / bytes_in)
        self.dv_names: dict[str, str] = {}  # our stream -> dv stream name
        self._writes: dict[str, object] = {}
        config = dv.io.MonoCameraWriter.Config(camera_name)
        for spec in specs:
            dv_name = AEDAT_STREAM_NAMES[spec.modality]
            if dv_name in self.dv_names.values():
                raise ValueError(
                    f"{camera_name}: two {dv_name} streams cannot share one AEDAT4 file"
                )
            if spec.modality is Modality.EVENTS:
                config.addEventStream(_resolution(spec), dv_name)
                self._writes[spec.name] = self._events
            elif spec.modality is Modality.FRAMES:
                config.addFrameStream(_resolution(spec), dv_name)
                self._writes[spec.name] = self._frames
            elif spec.modality is Modality.IMU:
                if tuple(spec.channel_names) != IMU_CHANNELS:
                    raise ValueError(f"stream {spec.name!r}: IMU channels {spec.channel_names}")
                config.addImuStream(dv_name)
                self._writes[spec.name] = self._imu
            else:
                config.addTriggerStream(dv_name)
                self._writes[spec.name] = self._triggers
            self.dv_names[spec.name] = dv_name
        before = _thread_ids()
        self._writer: dv.io.MonoCameraWriter | None = dv.io.MonoCameraWriter(str(self.path), config)
        # its file thread busy-polls a core for as long as the file is open (about 1 core here,
        # dv-processing 2.0.4); at nice 19 it only takes CPU nobody else wants
        self.niced = _lower_priority(_thread_ids() - before)
        self._writer.setPackagingCount(0)  # IMU/triggers go straight to serialisation

    def write(self, stream: str, data: np.ndarray, ts: np.ndarray) -> None:
        """Write a ring chunk of ``stream`` (stamps in one-clock seconds)."""
        if len(ts) and self._writer is not None:
            self.bytes_in += data.nbytes + 8 * len(ts)
            self._writes[stream](
                self.dv_names[stream], data, lsl_to_unix_us(ts, self.unix_minus_lsl_us)
            )

    def unwritten_bytes(self, file_size: int, now: float) -> int:
        """Bytes still to land in the file, as dv will write them (compressed); ``now`` is
        ``time.monotonic()`` at a disk check, ``file_size`` the file's size then.

        ``bytes_in - file_size`` is not that: it grows with LZ4's savings (about 4.3 bytes
        an event, 1.5 GB an hour at 100 k events/s), and a guard counting them stops a long
        recording gigabytes early. dv exposes no queue length, so the queue is what was
        handed over, at the compression ratio, less what is on disk. ``file_size / bytes_in``
        never exceeds the ratio (dv may be behind) and equals it whenever dv has caught up,
        which it does within milliseconds when it gets the CPU; the best of the last
        ``RATIO_WINDOW_S`` is the ratio, and a dv starved for seconds still counts as behind.
        """
        if self.bytes_in >= RATIO_MIN_BYTES:
            self._ratios.append((now, min(1.0, file_size / self.bytes_in)))
        while self._ratios and self._ratios[0][0] < now - RATIO_WINDOW_S:
            self._ratios.popleft()
        ratio = max((r for _, r in self._ratios), default=1.0)
        return max(0, round(self.bytes_in * ratio) - file_size)

    def _events(self, name: str, ev: np.ndarray, t_us: np.ndarray) -> None:
        assert self._writer is not None
        store = events_to_store(t_us, ev["x"], ev["y"], ev["polarity"])
        self._writer.writeEvents(store, name)

    def _frames(self, name: str, frames: np.ndarray, t_us: np.ndarray) -> None:
        assert self._writer is not None
        for img, t in zip(frames, t_us.tolist(), strict=True):
            if img.ndim == 3 and img.shape[2] == 1:
                img = img[:, :, 0]
            self._writer.writeFrame(dv.Frame(t, np.ascontiguousarray(img)), name)

    def _imu(self, name: str, rows: np.ndarray, t_us: np.ndarray) -> None:
        assert self._writer is not None
        for r, t in zip(rows.astype(np.float64).tolist(), t_us.tolist(), strict=True):
            ax, ay, az, gx, gy, gz, temp = r
            self._writer.writeImu(dv.IMU(t, temp, ax, ay, az, gx, gy, gz, 0.0, 0.0, 0.0), name)

    def _triggers(self, name: str, codes: np.ndarray, t_us: np.ndarray) -> None:
        assert self._writer is not None
        for c, t in zip(np.asarray(codes).reshape(-1).tolist(), t_us.tolist(), strict=True):
            self._writer.writeTrigger(dv.Trigger(t, dv.TriggerType(int(c))), name)

    def close(self) -> None:
        """dv-processing writes the file's index and closes it when the writer is deleted."""
        self._writer = None

    @property
    def closed(self) -> bool:
        return self._writer is None
