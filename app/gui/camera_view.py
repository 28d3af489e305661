"""Camera frames: DAVIS APS frames with the live event image over them, webcams, eye boxes.

Each camera is one picture composed in numpy (grey or colour frame, then ON
and OFF events of the last ~frame interval tinted over it) and handed to one
``ImageItem``: cheap to draw and the same on screen and in a screenshot. An
event stream is paired with the frame stream of the same device by name
(``<device>-events`` and ``<device>-frames``); a DVXplorer (events only) gets
a panel of its own. A REGION stream whose metadata names a frame stream
(``webcam-eye-region``) draws its newest box on that frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.gui.feed import StreamState
from app.gui.theme import BAD, EVENT_OFF_RGB, EVENT_ON_RGB, GOOD, PANEL, TEXT_DIM, WARN
from core.scheduler import StreamSource
from core.streams import Modality, RingKind

#: seconds of events drawn over a frame when the device gives no frame rate
EVENT_SLICE_S = 1.0 / 30.0
#: at most this many events are binned per picture (a 12 M ev/s burst stays cheap)
MAX_EVENTS = 300_000
#: cameras are redrawn at most this often (they deliver 30 fps; the GUI may tick at 60)
MIN_REDRAW_S = 1.0 / 30.0
#: the event count over a picture changes every frame; read at this rate it stays readable
TEXT_HZ = 4.0

_BOX_COLOURS = {2: GOOD, 1: GOOD, 0: WARN, -1: BAD}  # RegionStatus: detected, tracked, held, lost


@dataclass
class CameraFeed:
    """One camera panel: a frame stream, an event stream, or both; optionally a region."""

    title: str
    frames: StreamSource | None
    events: StreamSource | None
    region: StreamSource | None = None

    @property
    def shape(self) -> tuple[int, int]:
        spec = (self.frames or self.events).spec  # type: ignore[union-attr]
        h, w = spec.frame_shape[:2]  # type: ignore[index]
        return int(h), int(w)


def _device(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) else name


def camera_feeds(sources: dict[str, StreamSource]) -> list[CameraFeed]:
    """Pair frame, event and region streams into camera panels (eye crops are left out)."""
    frames = {
        n: s
        for n, s in sources.items()
        if s.spec.kind is RingKind.FRAMES and "crop_of" not in s.spec.metadata
    }
    events = {
        n: s for n, s in sources.items() if s.spec.kind is RingKind.EVENTS and s.spec.frame_shape
    }
    regions = {n: s for n, s in sources.items() if s.spec.modality is Modality.REGION}
    feeds: list[CameraFeed] = []
    used_events: set[str] = set()
    for name, src in frames.items():
        device = _device(name, "-frames")
        ev_name = f"{device}-events"
        ev = events.get(ev_name) if ev_name != name else None
        if ev is not None and tuple(ev.spec.frame_shape[:2]) != tuple(src.spec.frame_shape[:2]):  # type: ignore[index]
            ev = None
        if ev is not None:
            used_events.add(ev_name)
        region = next(
            (r for r in regions.values() if r.spec.metadata.get("frame_stream") == name), None
        )
        title = f"{device} (APS + events)" if ev is not None else name
        feeds.append(CameraFeed(title, src, ev, region))
    for name, src in events.items():
        if name not in used_events:
            feeds.append(CameraFeed(f"{_device(name, '-events')} (events)", None, src))
    return feeds


def compose(
    frame: np.ndarray | None,
    shape: tuple[int, int],
    events: np.ndarray | None,
    bgr: bool = False,
    step: int = 1,
) -> np.ndarray:
    """An (H, W, 3) uint8 picture: the frame (grey or colour) with ON/OFF events tinted over it.

    ``step`` > 1 shrinks the picture ``step`` times each way (a 640 x 480 webcam in a
    panel a third as wide shows no more detail); events land on the pixel that covers them.
    Colour conversion goes through OpenCV: several times faster than a numpy channel
    flip and it lets the session's threads run meanwhile (it releases the GIL).
    """
    h, w = shape
    if step > 1:
        h, w = h // step, w // step
        if frame is not None:  # area averaging: smoother than the painter's nearest-pixel scaling
            frame = cv2.resize(np.ascontiguousarray(frame), (w, h), interpolation=cv2.INTER_AREA)
    if frame is None:
        rgb = np.full((h, w, 3), 24, dtype=np.uint8)
    elif frame.ndim == 2 or frame.shape[2] == 1:
        rgb = cv2.cvtColor(np.ascontiguousarray(frame.reshape(frame.shape[:2])), cv2.COLOR_GRAY2RGB)
    elif bgr:
        rgb = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2RGB)
    else:
        rgb = np.array(frame, dtype=np.uint8, copy=True)
    if events is not None and len(events):
        x = events["x"].astype(np.intp) // step
        y = events["y"].astype(np.intp) // step
        ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        idx = (y * w + x)[ok]
        pol = events["polarity"][ok] > 0
        flat = rgb.reshape(-1, 3)
        for mask, colour in ((pol, EVENT_ON_RGB), (~pol, EVENT_OFF_RGB)):
            hit = np.zeros(h * w, dtype=bool)
            hit[idx[mask]] = True
            # 75 % event colour over the frame: the eye stays visible under the events
            flat[hit] = (flat[hit] * 0.25 + np.asarray(colour) * 0.75).astype(np.uint8)
    return rgb


class _CameraPanel:
    """A view box with the picture, its title and the eye-region box."""

    def __init__(self, canvas: pg.GraphicsLayoutWidget, feed: CameraFeed, col: int) -> None:
        self.feed = feed
        h, w = feed.shape
        self.view = canvas.addViewBox(
            row=1, col=col, lockAspect=True, invertY=True, enableMouse=False
        )
        self.view.setMenuEnabled(False)
        self.label = canvas.addLabel(feed.title, row=0, col=col, color=TEXT_DIM, size="9pt")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.image.setImage(np.zeros((h, w, 3), np.uint8), autoLevels=False)
        self.view.setRange(QtCore.QRectF(0, 0, w, h), padding=0)
        self.box = QtWidgets.QGraphicsRectItem()
        self.box.setPen(pg.mkPen(GOOD, width=2))
        self.box.setVisible(False)
        self.view.addItem(self.box)
        self.status = pg.TextItem("", color=TEXT_DIM, anchor=(0, 0))
        self.view.addItem(self.status)
        self.status.setPos(4, 2)
        self.frame_head = -1
        self.event_head = -1
        self.last_draw = -math.inf
        self.last_text = -math.inf
        self.no_signal = False  # its streams are stale or disconnected: dimmed, says so
        self.step = 1
        self.frames_drawn = 0

    def _step(self) -> int:
        """Pixels of the camera per pixel shown, rounded down: 1 unless the panel is far smaller."""
        h, w = self.feed.shape
        vw, vh = self.view.width(), self.view.height()
        if vw < 8 or vh < 8:  # not laid out yet
            return 1
        return max(1, int(min(w / vw, h / vh)))

    def refresh(self, now_wall: float) -> bool:
        feed = self.feed
        fh = feed.frames.ring.head if feed.frames else 0
        eh = feed.events.ring.head if feed.events else 0
        if (fh, eh) == (
            self.frame_head,
            self.event_head,
        ) or now_wall - self.last_draw < MIN_REDRAW_S:
            return False
        self.frame_head, self.event_head, self.last_draw = fh, eh, now_wall
        frame = None
        t_frame = math.nan
        if feed.frames is not None and fh:
            chunk = feed.frames.ring.latest(1)
            if len(chunk):
                frame, t_frame = chunk.data[0], float(chunk.ts[0])
        events = None
        if feed.events is not None and eh:
            ring = feed.events.ring
            t1 = ring.last_timestamp()
            if not math.isnan(t_frame):  # the events that led up to this frame
                t1 = min(t1, t_frame)
            rate = feed.frames.spec.nominal_rate if feed.frames is not None else 0.0
            span = 1.0 / rate if rate > 0 else EVENT_SLICE_S
            lo = max(ring.search(t1 - span), ring.head - MAX_EVENTS, ring.oldest_index())
            hi = ring.search(t1, side="right")
            events = ring.copy_span(lo, hi).data if hi > lo else None
        bgr = bool(feed.frames and feed.frames.spec.metadata.get("color") == "BGR")
        step = self._step()
        # uint8 RGB without levels goes straight into a QImage (no per-pixel rescale)
        self.image.setImage(compose(frame, feed.shape, events, bgr, step), autoLevels=False)
        if step != self.step:  # the picture keeps the camera's coordinates (eye box, range)
            self.step = step
            self.image.setRect(QtCore.QRectF(0, 0, feed.shape[1], feed.shape[0]))
        n_ev = 0 if events is None else len(events)
        if (
            feed.events is not None
            and not self.no_signal
            and now_wall - self.last_text >= 1.0 / TEXT_HZ
        ):
            self.last_text = now_wall
            self.status.setText(f"{n_ev:,} events")
        self._draw_region()
        self.frames_drawn += 1
        return True

    def show_states(self, states: Mapping[str, StreamState]) -> None:
        """Dim the picture while every stream of this camera is stale or disconnected (the
        sources panel's states): its last picture must not pass for live."""
        names = [s.spec.name for s in (self.feed.frames, self.feed.events) if s is not None]
        down = (StreamState.STALE, StreamState.DISCONNECTED)
        silent = all(states.get(n) in down for n in names)
        if silent != self.no_signal:
            self._show_no_signal(silent)

    def _show_no_signal(self, silent: bool) -> None:
        self.no_signal = silent
        self.image.setOpacity(0.3 if silent else 1.0)
        self.status.setColor(BAD if silent else TEXT_DIM)
        self.status.setText("no signal" if silent else "")
        self.last_text = -math.inf  # the event count comes back at the next picture

    def _draw_region(self) -> None:
        region = self.feed.region
        if region is None or region.ring.head == 0:
            self.box.setVisible(False)
            return
        x, y, w, h, status = (float(v) for v in region.ring.latest(1).data[0])
        if not all(math.isfinite(v) for v in (x, y, w, h)) or status < 0:
            self.box.setVisible(False)
            return
        self.box.setRect(QtCore.QRectF(x, y, w, h))
        self.box.setPen(pg.mkPen(_BOX_COLOURS.get(int(status), GOOD), width=2))
        self.box.setVisible(True)


class CameraView(QtWidgets.QWidget):
    """Every camera of the session side by side."""

    def __init__(
        self, sources: dict[str, StreamSource], parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.feeds = camera_feeds(sources)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(PANEL)
        self.panels = [_CameraPanel(self.canvas, f, i) for i, f in enumerate(self.feeds)]
        if self.panels:
            layout.addWidget(self.canvas)
        else:
            label = QtWidgets.QLabel("no camera in this session")
            label.setObjectName("dim")
            label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(label)

    def refresh(self, now_wall: float) -> int:
        return sum(p.refresh(now_wall) for p in self.panels)

    def show_states(self, states: Mapping[str, StreamState]) -> None:
        for panel in self.panels:
            panel.show_states(states)

    def picture(self, index: int = 0) -> np.ndarray | None:
        """The picture shown in panel ``index`` (tests)."""
        if index >= len(self.panels):
            return None
        return self.panels[index].image.image

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt's name
        return QtCore.QSize(360 * max(1, len(self.panels)), 300)
