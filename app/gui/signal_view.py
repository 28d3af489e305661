"""Physiological streams scrolling over the last N seconds.

Built to stay fast with many channels at full rate: one plot per stream and
ONE curve item per stream (its channels stacked in lanes, split by NaN), data
clipped to the visible span by the ring's binary search, and min/max
downsampled to one point pair per two pixel columns. A curve is rebuilt only
when its ring has new samples, and at most REBUILD_HZ times a second; between
rebuilds the picture just slides. Sliding moves the curves, not the views:
each view shows a fixed span of "seconds ago" and each curve (data in session
time) is shifted by ``setPos``, one transform per frame, so no view range,
axis or range signal changes per frame and the axes are drawn once (measured
with bench/bench_gui.py: 8 range changes a frame cost more than the curves).
Marker lines (few) are moved one by one while they are in view.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.gui.downsample import break_at_holes, minmax_downsample, robust_range, stack_channels
from app.gui.theme import MARKER_COLOUR, PANEL, TEXT_DIM, modality_colour
from core.scheduler import StreamSource, continuity_limit
from core.streams import Modality, RingKind

#: modalities plotted when present (and ticked by default)
PHYSIOLOGICAL = (
    Modality.EEG,
    Modality.ECG,
    Modality.EMG,
    Modality.EOG,
    Modality.EDA,
    Modality.PPG,
    Modality.RESP,
    Modality.TEMP,
)
#: numeric streams that are not signals to scroll
NOT_SIGNALS = (
    Modality.REGION,
    Modality.MARKERS,
    Modality.RATINGS,
    Modality.PREDICTIONS,
    Modality.TRIGGERS,
)
#: at most this many channel names on a lane axis; more get every k-th name
MAX_LANE_LABELS = 16
#: lanes are re-scaled every this many redraws (percentiles cost more than the drawing)
RESCALE_EVERY = 8
#: screen pixels per min/max pair: 2 keeps every peak visible at half the points of 1
PIXELS_PER_BIN = 2.0
#: points drawn per stream at most: 64 lanes a few pixels high need no more (paint cost is per point)
MAX_POINTS_PER_STREAM = 24_000
#: curves are rebuilt from their rings at most this often; the slide between rebuilds stays
#: at the frame rate, so new samples show at most 1/REBUILD_HZ s late (invisible) and the
#: per-frame cost halves at a 60 Hz timer
REBUILD_HZ = 30.0


#: the longest window the picker offers, when the rings hold that much
MAX_WINDOW_S = 60


def max_window_s(sources: Iterable[StreamSource]) -> int:
    """The longest window every plotted stream's ring can fill (30 s by default): a longer
    one showed half-empty lanes, as if the streams had started or dropped out then."""
    held = [s.ring.capacity / s.spec.nominal_rate for s in sources if s.spec.nominal_rate > 0]
    return max(1, min([MAX_WINDOW_S, *(int(h) for h in held)]))


def plottable(source: StreamSource) -> bool:
    spec = source.spec
    return (
        spec.kind is RingKind.NUMERIC
        and spec.modality not in NOT_SIGNALS
        and spec.dtype != "object"
    )


class LaneCurve(pg.PlotCurveItem):
    """A PlotCurveItem whose bounds are handed over with the data instead of derived.

    PlotCurveItem finds its bounding rectangle from the data (min/max of every point)
    and pads it by a pixel it measures through the view: more costly than building the
    path at 60 Hz over eight streams. Here the rectangle comes with the data: the
    visible span at the rebuild (older points slide out to the left and are clipped by
    the view; nothing newer can slide in before the next rebuild) and the lanes' extent.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._rect = QtCore.QRectF()

    def set_lanes(
        self, xs: np.ndarray, ys: np.ndarray, x_lo: float, x_hi: float, y_lo: float, y_hi: float
    ) -> None:
        """New data, and the rectangle (item coordinates) they may paint in."""
        self.prepareGeometryChange()
        self._rect = QtCore.QRectF(x_lo, y_lo, max(x_hi - x_lo, 1e-9), max(y_hi - y_lo, 1e-9))
        self.setData(xs, ys, connect="finite", skipFiniteCheck=True)

    def clear_lanes(self) -> None:
        self.prepareGeometryChange()
        self._rect = QtCore.QRectF()
        self.setData([], [])

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt's name
        return self._rect


@dataclass
class _Trace:
    """One stream's plot, its single curve and what it last drew."""

    source: StreamSource
    plot: pg.PlotItem
    curve: LaneCurve
    drawn_head: int = -1
    drawn_bins: int = -1
    tick_height: int = -1
    rebuilds: int = 0
    last_rebuild: float = -1e18
    centre: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def gap_s(self) -> float:
        """Steps longer than this are holes, drawn as breaks (the aligner's rule; an irregular
        stream's samples hold for a second)."""
        return continuity_limit(self.source.spec.nominal_rate, 1.0)


class SignalView(QtWidgets.QWidget):
    """Stream picker on the left, stacked scrolling plots on the right."""

    def __init__(
        self,
        sources: dict[str, StreamSource],
        t_ref: float,
        seconds: float = 10.0,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.sources = {n: s for n, s in sources.items() if plottable(s)}
        #: marker streams: each marker is a dashed vertical line across the plots, labelled on top
        self.marker_sources = [s for s in sources.values() if s.spec.modality is Modality.MARKERS]
        self.marker_lines: list[tuple[float, list[tuple[pg.PlotItem, pg.InfiniteLine]]]] = []
        self._markers_head = -1
        self.t_ref = t_ref
        self.seconds = seconds
        self.traces: dict[str, _Trace] = {}
        self.time_axis: pg.AxisItem | None = None
        #: min/max downsampling to the plot's width; False draws every sample (bench baseline)
        self.downsample = True

        self.picker = QtWidgets.QListWidget()
        self.picker.setFixedWidth(130)
        self.picker.setToolTip("streams to plot")
        for name, src in self.sources.items():
            item = QtWidgets.QListWidgetItem(name)
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            shown = src.spec.modality in PHYSIOLOGICAL
            item.setCheckState(
                QtCore.Qt.CheckState.Checked if shown else QtCore.Qt.CheckState.Unchecked
            )
            item.setForeground(pg.mkColor(modality_colour(src.spec.modality)))
            self.picker.addItem(item)
        self.picker.itemChanged.connect(self._rebuild)

        self.span = QtWidgets.QSpinBox()
        self.span.setRange(1, max_window_s(self.sources.values()))
        self.span.setValue(int(seconds))
        self.span.setSuffix(" s")
        self.span.setToolTip("seconds shown")
        self.span.valueChanged.connect(self._set_seconds)

        left = QtWidgets.QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addWidget(self.picker, 1)
        row = QtWidgets.QHBoxLayout()
        label = QtWidgets.QLabel("window")
        label.setObjectName("dim")
        row.addWidget(label)
        row.addWidget(self.span)
        left.addLayout(row)

        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(PANEL)
        self.canvas.ci.setSpacing(2)
        # the curves move every frame: a spatial index would be rebuilt each time for nothing
        self.canvas.scene().setItemIndexMethod(QtWidgets.QGraphicsScene.ItemIndexMethod.NoIndex)
        self.empty = QtWidgets.QLabel("no physiological streams in this session")
        self.empty.setObjectName("dim")
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setVisible(not self.sources)

        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(left)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.empty, 1)
        self.canvas.setVisible(bool(self.sources))
        self._rebuild()

    # ------------------------------------------------------------ layout
    def selected(self) -> list[str]:
        out = []
        for i in range(self.picker.count()):
            item = self.picker.item(i)
            if item.checkState() == QtCore.Qt.CheckState.Checked:
                out.append(item.text())
        return out

    def set_selected(self, names: list[str]) -> None:
        self.picker.blockSignals(True)
        for i in range(self.picker.count()):
            item = self.picker.item(i)
            checked = item.text() in names
            item.setCheckState(
                QtCore.Qt.CheckState.Checked if checked else QtCore.Qt.CheckState.Unchecked
            )
        self.picker.blockSignals(False)
        self._rebuild()

    def _set_seconds(self, value: int) -> None:
        self.seconds = float(value)
        if self.time_axis is not None:
            self.time_axis.setRange(-self.seconds, 0)
        for t in self.traces.values():
            t.drawn_head = -1
            t.plot.getViewBox().setXRange(-self.seconds, 0, padding=0)

    def _rebuild(self, *_: object) -> None:
        self.marker_lines.clear()  # their plots go with the canvas
        self._markers_head = -1
        self.canvas.clear()
        self.traces.clear()
        self.time_axis: pg.AxisItem | None = None
        names = self.selected()
        for row, name in enumerate(names):
            src = self.sources[name]
            spec = src.spec
            colour = modality_colour(spec.modality)
            plot = self.canvas.addPlot(row=row, col=0)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            n = max(1, spec.n_channels)
            # fixed ranges: "seconds ago" across, one lane per channel up; the curves slide instead
            plot.setXRange(-self.seconds, 0, padding=0)
            plot.setYRange(-0.6, n - 0.4, padding=0)
            unit = (
                f" [{spec.units[0]}]"
                if spec.units and len(set(spec.units)) == 1 and spec.units[0]
                else ""
            )
            rate = f"{spec.nominal_rate:g} Hz" if spec.nominal_rate else "irregular"
            plot.setTitle(
                f"<span style='color:{colour}'>{name}</span>"
                f"<span style='color:{TEXT_DIM}'>  {n} ch · {rate}{unit}</span>",
                size="9pt",
                justify="left",
            )
            left = plot.getAxis("left")
            left.setWidth(46)
            left.setTextPen(TEXT_DIM)
            left.setPen(pg.mkPen("#3a404c"))
            bottom = plot.getAxis("bottom")
            bottom.setTextPen(TEXT_DIM)
            bottom.setPen(pg.mkPen("#3a404c"))
            weight = min(2, 1 + n // 12)  # many channels get more height
            plot.setMinimumHeight(36)
            plot.setPreferredHeight(60 * weight)
            self.canvas.ci.layout.setRowStretchFactor(row, weight)
            # The views never change range, so no axis needs to follow them through signals
            for side in ("top", "right"):
                plot.getAxis(side).unlinkFromView()
            left.unlinkFromView()
            left.setRange(-0.6, n - 0.4)
            if row < len(names) - 1:
                plot.hideAxis("bottom")  # one time axis, under the last plot
                bottom.unlinkFromView()
            else:
                bottom.unlinkFromView()  # static: the view scrolls under it
                bottom.setRange(-self.seconds, 0)
                plot.setLabel("bottom", "seconds ago", color=TEXT_DIM)
                plot.setMinimumHeight(36 + 44)  # the lane plus the time axis under it
                plot.setPreferredHeight(60 * weight + 44)
                self.time_axis = bottom
            # a bare PlotCurveItem: PlotDataItem's bookkeeping (data bounds, clipping, display
            # transforms) costs more than the path itself here, and the data are already clipped
            curve = LaneCurve(
                pen=pg.mkPen(colour, width=1),
                connect="finite",
                antialias=False,
                skipFiniteCheck=True,
            )
            plot.addItem(curve, ignoreBounds=True)
            # axes and title never change while the curves slide: Qt keeps them as pixmaps and
            # blits them when a repaint touches them, instead of calling their Python paint
            for item in (left, bottom, plot.titleLabel):
                item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            self.traces[name] = _Trace(src, plot, curve)

    # ------------------------------------------------------------ update
    def refresh(self, now: float) -> int:
        """Slide the view to ``now`` (one clock) and redraw streams with new samples.

        Returns how many curves were rebuilt (for the bench and tests).
        """
        rebuilt = 0
        x1 = now - self.t_ref
        wall = time.monotonic()
        for trace in self.traces.values():  # slide: session time x1 lands on "0 s ago"
            trace.curve.setPos(-x1, 0.0)
        self._draw_markers(now)
        self._slide_markers(x1)
        for trace in self.traces.values():
            self._label_lanes(trace)
            ring = trace.source.ring
            bins = self._bins(trace) if self.downsample else 1 << 30
            head = ring.head
            if head == trace.drawn_head and bins == trace.drawn_bins:
                continue
            if wall - trace.last_rebuild < 1.0 / REBUILD_HZ and bins == trace.drawn_bins:
                continue
            trace.last_rebuild = wall
            chunk = ring.range(now - self.seconds - 0.5, now + 1.0, pad_before=1)
            trace.drawn_head = head
            trace.drawn_bins = bins
            if len(chunk) == 0:
                trace.curve.clear_lanes()
                continue
            data = chunk.data.reshape(len(chunk), -1).astype(np.float64, copy=False)
            ts, data = break_at_holes(chunk.ts, data, trace.gap_s)
            x, y = minmax_downsample(ts - self.t_ref, data, bins)
            trace.rebuilds += 1
            if trace.scale.shape != (y.shape[1],) or _off_lane(y, trace.centre, trace.scale):
                trace.centre, trace.scale = robust_range(y)  # snap: the trace left its lane
            elif trace.rebuilds % RESCALE_EVERY == 0:  # ease the lanes' scale: no jumping picture
                centre, span = robust_range(y)
                trace.centre = 0.6 * trace.centre + 0.4 * centre
                trace.scale = 0.6 * trace.scale + 0.4 * span
            xs, ys = stack_channels(x, y, trace.centre, trace.scale)
            # the rectangle: what is visible now (the view clips the curve to its own box, so
            # lanes that overflow until the next rescale paint nothing outside it). Kept inside
            # the view, a slide repaints the view alone, not the axes and titles around it.
            lanes = y.shape[1]
            trace.curve.set_lanes(
                xs, ys, max(float(x[0]), x1 - self.seconds), float(x[-1]) + 0.5, -0.6, lanes - 0.4
            )
            rebuilt += 1
        return rebuilt

    def _draw_markers(self, now: float) -> None:
        """Lines for markers in the visible span (they scroll with the data: session time)."""
        head = sum(m.ring.head for m in self.marker_sources)
        if head == self._markers_head or not self.traces:
            return
        self._markers_head = head
        self._clear_markers()
        plots = [t.plot for t in self.traces.values()]
        for source in self.marker_sources:
            chunk = source.ring.range(now - 120.0, now + 1.0)  # enough for the longest window
            if len(chunk) == 0:
                continue
            for label, t in zip(chunk.data.reshape(len(chunk), -1)[:, 0], chunk.ts, strict=True):
                x = float(t) - self.t_ref
                lines = []
                for i, plot in enumerate(plots):
                    line = pg.InfiniteLine(
                        x,
                        angle=90,
                        pen=pg.mkPen(MARKER_COLOUR, width=1, style=QtCore.Qt.PenStyle.DashLine),
                        label=str(label) if i == 0 else None,
                        labelOpts={
                            "position": 0.95,
                            "color": MARKER_COLOUR,
                            "anchors": [(0, 0), (0, 0)],
                        },
                    )
                    plot.addItem(line, ignoreBounds=True)
                    lines.append((plot, line))
                self.marker_lines.append((x, lines))

    def _slide_markers(self, x1: float) -> None:
        """Markers are in session time, the views in "seconds ago": move the ones in view."""
        for x, lines in self.marker_lines:
            ago = x - x1
            shown = -self.seconds - 1.0 <= ago <= 1.0
            for _plot, line in lines:
                if shown:
                    line.setPos(ago)
                if line.isVisible() != shown:
                    line.setVisible(shown)

    def _clear_markers(self) -> None:
        for _, lines in self.marker_lines:
            for plot, line in lines:
                plot.removeItem(line)
        self.marker_lines.clear()

    @staticmethod
    def _bins(trace: _Trace) -> int:
        """Min/max pairs per channel: one per PIXELS_PER_BIN columns, fewer for thin lanes.

        A lane a few pixels high shows no more detail than its height allows, so its
        horizontal detail follows (16 bins per pixel of lane height, at least 60), and
        a stream never exceeds the points budget: paint cost grows with points drawn.
        """
        view = trace.plot.getViewBox()
        width = int(view.width() / PIXELS_PER_BIN) or 400
        channels = max(1, trace.source.spec.n_channels)
        lane_px = view.height() / channels
        budget = MAX_POINTS_PER_STREAM // (2 * channels)
        return int(max(60, min(width, budget, lane_px * 16)))

    def _label_lanes(self, trace: _Trace) -> None:
        """Channel names on the lanes, thinned to what the plot's height has room for."""
        height = int(trace.plot.getViewBox().height())
        if height == trace.tick_height:
            return
        trace.tick_height = height
        spec = trace.source.spec
        names = spec.channel_names or (spec.name,)
        trace.plot.getAxis("left").setTicks([_lane_ticks(names, len(names), height), []])

    def points_shown(self) -> dict[str, int]:
        """Finite points per shown curve (tests: the plots fill)."""
        out = {}
        for name, t in self.traces.items():
            _, y = t.curve.getData()
            out[name] = 0 if y is None else int(np.count_nonzero(np.isfinite(y)))
        return out


def _off_lane(y: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> bool:
    """True when a channel overflows its lane or fills under a fifth of it (rescale at once)."""
    lo, hi = y.min(axis=0), y.max(axis=0)
    overflow = (hi - centre > scale) | (centre - lo > scale)
    tiny = (hi - lo) < 0.2 * scale
    return bool(np.any(overflow | (tiny & (hi > lo))))


def _lane_ticks(channels: tuple[str, ...], n: int, height_px: int) -> list[tuple[float, str]]:
    room = max(1, height_px // 13)  # one label per 13 px
    step = max(1, int(np.ceil(n / min(room, MAX_LANE_LABELS))))
    return [(float(n - 1 - i), str(ch)) for i, ch in enumerate(channels) if i % step == 0]
