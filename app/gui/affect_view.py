"""What the models say: the valence-arousal plane, affect over time, expressions, routing, latency.

Everything here is drawn from a ``FeedSnapshot`` (copies of the predictions
the bus delivered), so it shows exactly what the predictions log records.
The first model that gives valence and arousal fills the plane and the time
plot; the first that classifies expressions fills the bars; a model that
reports ``modality_attention`` (Hi-MoE) fills the modality weights, with the
inputs its window lacked marked as missing or stale.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.gui.feed import FeedSnapshot
from app.gui.theme import (
    ACCENT,
    AFFECT_COLOURS,
    BAD,
    GOOD,
    PANEL,
    TEXT,
    TEXT_DIM,
    WARN,
)
from core.prediction import AFFECT_DIMENSIONS, EXPRESSIONS, Prediction

#: predictions in the fading trail on the valence-arousal plane
TRAIL = 40
#: seconds of affect shown over time
HISTORY_S = 120.0
#: SAM scale of the affect dimensions
SCALE = (1.0, 9.0)
#: the latency table is rich text (a re-layout per change): refreshed at most this often
LATENCY_HZ = 2.0

_MASK_COLOURS = {"present": GOOD, "stale": WARN, "missing": BAD}


def _style_plot(plot: pg.PlotItem, title: str) -> None:
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setTitle(f"<span style='color:{TEXT_DIM}'>{title}</span>", size="9pt")
    for side in ("left", "bottom"):
        ax = plot.getAxis(side)
        ax.setTextPen(TEXT_DIM)
        ax.setPen(pg.mkPen("#3a404c"))


def _canvas() -> pg.GraphicsLayoutWidget:
    w = pg.GraphicsLayoutWidget()
    w.setBackground(PANEL)
    return w


def modality_weights(p: Prediction) -> list[tuple[str, float, str]] | None:
    """(input, weight, mask state) per modality of a Hi-MoE-like prediction, config order.

    The modality names come from the ``gate_<name>`` routing keys (written in
    the model's modality order, the order of ``modality_attention``).
    """
    weights = p.routing.get("modality_attention")
    if not weights:
        return None
    names = [k[len("gate_") :] for k in p.routing if k.startswith("gate_")]
    if len(names) != len(weights):
        names = (
            list(p.mask) if len(p.mask) == len(weights) else [f"m{i}" for i in range(len(weights))]
        )
    return [(n, float(w), p.mask.get(n, "present")) for n, w in zip(names, weights, strict=True)]


class AffectView(QtWidgets.QWidget):
    """Plane, time plot, expression bars, modality weights and a latency table."""

    def __init__(
        self,
        t_ref: float,
        expression_models: tuple[str, ...] | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        """``expression_models``: the session's models that classify expressions (None: not
        known; the first model whose prediction carries an expression is taken)."""
        super().__init__(parent)
        self.t_ref = t_ref
        #: predictions of windows ending before this clock time are not plotted (set_origin)
        self.since = -np.inf
        #: the model the expression bars follow, once known; its windows without an
        #: expression (missing eye frames) clear the bars instead of leaving the last one
        self.expr_model: str | None = expression_models[0] if expression_models else None
        self.self_report: tuple[float, float] | None = None
        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)

        # valence-arousal plane
        self.plane_canvas = _canvas()
        self.plane = self.plane_canvas.addPlot()
        _style_plot(self.plane, "valence · arousal")
        self.plane.setXRange(*SCALE, padding=0.02)
        self.plane.setYRange(*SCALE, padding=0.02)
        self.plane.setLabel("bottom", "valence", color=TEXT_DIM)
        self.plane.setLabel("left", "arousal", color=TEXT_DIM)
        for pos, angle in ((5.0, 90), (5.0, 0)):
            self.plane.addItem(pg.InfiniteLine(pos, angle=angle, pen=pg.mkPen("#3a404c", width=1)))
        for text, x, y, anchor in (
            ("excited", 8.9, 8.9, (1, 0)),
            ("tense", 1.1, 8.9, (0, 0)),
            ("sad", 1.1, 1.1, (0, 1)),
            ("calm", 8.9, 1.1, (1, 1)),
        ):
            label = pg.TextItem(text, color="#5a606c", anchor=anchor)
            label.setPos(x, y)
            self.plane.addItem(label)
        self.trail_line = self.plane.plot(pen=pg.mkPen(ACCENT + "55", width=1))
        self.trail = pg.ScatterPlotItem(size=7, pen=None)
        self.plane.addItem(self.trail)
        self.report_point = pg.ScatterPlotItem(
            size=13, symbol="d", pen=pg.mkPen(TEXT, width=1.5), brush=None
        )
        self.plane.addItem(self.report_point)
        self.current = pg.ScatterPlotItem(
            size=16, pen=pg.mkPen("white", width=2), brush=pg.mkBrush(ACCENT)
        )
        self.plane.addItem(self.current)
        self.plane_model = pg.TextItem("", color=TEXT_DIM, anchor=(0.5, 0))
        self.plane_canvas.setMinimumWidth(200)
        grid.addWidget(self.plane_canvas, 0, 0)

        # expressions
        self.expr_canvas = _canvas()
        self.expr = self.expr_canvas.addPlot()
        _style_plot(self.expr, "expression")
        self.expr.setXRange(0, 1, padding=0)
        self.expr.setYRange(-0.6, len(EXPRESSIONS) - 0.4, padding=0)
        self.expr.getAxis("left").setTicks(
            [[(len(EXPRESSIONS) - 1 - i, e) for i, e in enumerate(EXPRESSIONS)], []]
        )
        self.expr.getAxis("left").setWidth(66)
        self.expr_bars = pg.BarGraphItem(
            x0=np.zeros(len(EXPRESSIONS)),
            y=np.arange(len(EXPRESSIONS))[::-1],
            height=0.7,
            width=np.zeros(len(EXPRESSIONS)),
            brushes=[pg.mkBrush("#4a5160")] * len(EXPRESSIONS),
            pen=None,
        )
        self.expr.addItem(self.expr_bars)
        #: why there is no expression (inside the empty plot: the title has little room)
        self.expr_note = pg.TextItem("", color=BAD, anchor=(0.5, 0.5))
        self.expr.addItem(self.expr_note)
        self.expr_note.setPos(0.5, (len(EXPRESSIONS) - 1) / 2)
        if expression_models is not None and not expression_models:
            self.expr_note.setColor(TEXT_DIM)
            self.expr_note.setText("no model of this\nsession classifies\nexpressions")
        self.expr_canvas.setMinimumWidth(200)  # the class names and the current label
        grid.addWidget(self.expr_canvas, 0, 1)

        # affect over time
        self.time_canvas = _canvas()
        self.timeplot = self.time_canvas.addPlot()
        _style_plot(self.timeplot, "affect over time (1-9)")
        self.timeplot.setTitle(
            "  ".join(
                f"<span style='color:{AFFECT_COLOURS[d]}'>━ {d}</span>" for d in AFFECT_DIMENSIONS
            )
            + f"<span style='color:{TEXT_DIM}'>   (1-9, session time s)</span>",
            size="9pt",
        )
        self.timeplot.setYRange(*SCALE, padding=0.05)
        self.timeplot.showGrid(x=True, y=True, alpha=0.12)
        self.curves = {
            d: self.timeplot.plot(pen=pg.mkPen(AFFECT_COLOURS[d], width=2), name=d)
            for d in AFFECT_DIMENSIONS
        }
        grid.addWidget(self.time_canvas, 1, 0, 1, 2)

        # modality weights
        self.mod_canvas = _canvas()
        self.mod = self.mod_canvas.addPlot()
        _style_plot(self.mod, "modality weights")
        self.mod.disableAutoRange()
        self.mod.setYRange(0, 1, padding=0)
        self.mod.getAxis("left").setTicks([[(0, "0"), (0.5, ".5"), (1, "1")], []])
        self.mod.getAxis("left").setWidth(24)
        self.mod_bars = pg.BarGraphItem(x=[0], y0=[0], height=[0], width=0.7, pen=None)
        self.mod.addItem(self.mod_bars)
        self.mod_names: list[str] = []
        self.mod_note = pg.TextItem("", color=TEXT_DIM, anchor=(1, 1))
        self.mod.addItem(self.mod_note)

        # latency table: drawn here from the same snapshot, placed by the window (beside the sources)
        self.latency = QtWidgets.QLabel("waiting for the first prediction…")
        self.latency.setObjectName("dim")
        self.latency.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.latency.setWordWrap(True)
        self.latency.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft
        )
        self.latency.setToolTip(
            "cut: the aligner cuts the window; queue: wait for the model; model: "
            "inputs + inference; total: from the window's end to the prediction's "
            "publication (median of the last 20 windows)"
        )
        grid.addWidget(self.mod_canvas, 2, 0, 1, 2)

        grid.setRowStretch(0, 5)
        grid.setRowStretch(1, 3)
        grid.setRowStretch(2, 3)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        #: what is on screen, per model (tests compare it with the predictions log)
        self.shown: dict[str, Prediction] = {}
        self._drawn: dict[str, tuple] = {}
        self._last_latency = -1e18
        self._latency_pending: FeedSnapshot | None = None
        colour = pg.mkColor(ACCENT)
        #: the trail's fading brushes, oldest first, made once (a brush per point per redraw is slow)
        self._trail_brushes = [
            pg.mkBrush(colour.red(), colour.green(), colour.blue(), int(al))
            for al in np.linspace(25, 200, TRAIL)
        ]

    # ------------------------------------------------------------ update
    def set_origin(self, t_ref: float, now: float) -> None:
        """Session time counts from ``t_ref``. A replay's origin moves when it seeks: what
        was plotted before belongs to another stretch of the recording and would land at
        the wrong session times, so the plots start again from ``now``."""
        if t_ref == self.t_ref:
            return
        self.t_ref = t_ref
        self.since = now
        self._drawn.pop("affect", None)  # redrawn without the earlier stretch

    def refresh(self, snap: FeedSnapshot, now: float) -> None:
        """Redraw from a snapshot; ``now`` (one clock) slides the time plot."""
        # the time plot slides with the clock even when no prediction comes (a model that
        # stopped publishing must not leave its last values at the right edge, looking current)
        x1 = now - self.t_ref
        self.timeplot.setXRange(max(0.0, x1 - HISTORY_S), max(x1, 10.0), padding=0)
        if not snap.history:
            if self._latency_pending is not None:  # the last table held back by the rate limit
                self._refresh_latency(self._latency_pending)
            return
        for model, items in snap.history.items():
            if items:
                self.shown[model] = items[-1]
        affect_model = next(
            (
                m
                for m, it in snap.history.items()
                if it and {"valence", "arousal"} <= set(it[-1].affect)
            ),
            None,
        )
        if self.expr_model is None:
            self.expr_model = next(
                (m for m, it in snap.history.items() if it and it[-1].expression), None
            )
        expr_model = self.expr_model if snap.history.get(self.expr_model or "") else None
        weight_model = next(
            (m for m, it in snap.history.items() if it and "modality_attention" in it[-1].routing),
            None,
        )
        # each panel is redrawn only when its own model has a new window (they publish at 2-5 Hz)
        if affect_model is not None and self._is_new("affect", snap.history[affect_model][-1]):
            self._draw_affect(affect_model, snap.history[affect_model])
        if expr_model is not None and self._is_new("expression", snap.history[expr_model][-1]):
            self._draw_expression(snap.history[expr_model][-1])
        if weight_model is not None and self._is_new("weights", snap.history[weight_model][-1]):
            self._draw_weights(snap.history[weight_model][-1])
        self._refresh_latency(snap)

    def _refresh_latency(self, snap: FeedSnapshot) -> None:
        """The latency table at most LATENCY_HZ; a snapshot held back is drawn on a later call."""
        wall = time.monotonic()
        if wall - self._last_latency < 1.0 / LATENCY_HZ:
            self._latency_pending = snap
            return
        self._last_latency = wall
        self._latency_pending = None
        self._draw_latency(snap)

    def _is_new(self, panel: str, p: Prediction) -> bool:
        key = (p.model, p.window_index, p.t_end)
        if self._drawn.get(panel) == key:
            return False
        self._drawn[panel] = key
        return True

    def set_self_report(self, valence: float, arousal: float) -> None:
        self.self_report = (valence, arousal)
        self.report_point.setData([valence], [arousal])

    def _draw_affect(self, model: str, items: list[Prediction]) -> None:
        items = [p for p in items if p.t_end >= self.since]
        if not items:
            for item in (self.trail, self.trail_line, self.current, *self.curves.values()):
                item.setData([], [])
            return
        trail = items[-TRAIL:]
        v = np.array([p.affect["valence"] for p in trail])
        a = np.array([p.affect["arousal"] for p in trail])
        n = len(trail)
        brushes = self._trail_brushes[-n:] if n > 1 else self._trail_brushes[-1:]
        self.trail.setData(v, a, brush=brushes)
        self.trail_line.setData(v, a)
        self.current.setData([v[-1]], [a[-1]])
        self.plane.setTitle(
            f"<span style='color:{TEXT_DIM}'>valence </span><b>{v[-1]:.1f}</b>"
            f"<span style='color:{TEXT_DIM}'>  arousal </span><b>{a[-1]:.1f}</b>",
            size="9pt",
        )
        self.plane_canvas.setToolTip(
            f"{model}: the last {n} predictions; the diamond is the last self-report"
        )
        cutoff = items[-1].t_end - HISTORY_S - 5.0
        recent = [p for p in items if p.t_end >= cutoff]
        t = np.array([p.t_end for p in recent]) - self.t_ref
        for dim, curve in self.curves.items():
            if recent and dim in recent[-1].affect:
                curve.setData(t, np.array([p.affect.get(dim, np.nan) for p in recent]))
            else:
                curve.setData([], [])

    def _draw_expression(self, p: Prediction) -> None:
        if not p.expression:  # the model had no input for this window: nothing to show
            marks = {"missing": "✕", "stale": "~"}
            gone = [f"{k} {marks[v]}" for k, v in p.mask.items() if v in marks]
            self.expr_bars.setOpts(width=np.zeros(len(EXPRESSIONS)))
            # titles stay short: a title wider than the plot widens it past a narrow window
            self.expr.setTitle(f"<span style='color:{BAD}'>no expression</span>", size="9pt")
            self.expr_note.setColor(BAD)
            self.expr_note.setText("no input\n" + "  ".join(gone) if gone else "no output")
            self.expr_canvas.setToolTip(
                f"{p.model} gave no expression for window {p.window_index}: "
                "its eye frames were missing (✕) or stale (~)"
            )
            return
        self.expr_note.setText("")
        probs = np.array([p.expression.get(e, 0.0) for e in EXPRESSIONS])
        best = int(probs.argmax())
        brushes = [pg.mkBrush(ACCENT if i == best else "#4a5160") for i in range(len(EXPRESSIONS))]
        self.expr_bars.setOpts(width=probs, brushes=brushes)
        self.expr.setTitle(
            f"<span style='color:{TEXT}; font-size:12pt; font-weight:bold'>{EXPRESSIONS[best]}</span>"
            f"<span style='color:{TEXT_DIM}'>  {probs[best]:.0%}</span>",
            size="9pt",
        )
        self.expr_canvas.setToolTip(
            f"expression probabilities of {p.model}, window {p.window_index}"
        )

    def _draw_weights(self, p: Prediction) -> None:
        rows = modality_weights(p)
        if not rows:
            return
        names = [r[0] for r in rows]
        n = len(rows)
        self.mod_names = names
        self.mod.setXRange(-0.6, n - 0.4, padding=0)
        ticks = []
        heights = []
        brushes = []
        for i, (name, weight, state) in enumerate(rows):
            ticks.append(
                (
                    i,
                    name
                    if state == "present"
                    else f"{name} ✕"
                    if state == "missing"
                    else f"{name} ~",
                )
            )
            heights.append(weight if state != "missing" else 0.0)
            brushes.append(
                pg.mkBrush(_MASK_COLOURS.get(state, GOOD) if state != "present" else ACCENT)
            )
        self.mod.getAxis("bottom").setTicks([ticks, []])
        self.mod_bars.setOpts(
            x=np.arange(n),
            y0=np.zeros(n),
            height=np.array(heights),
            brushes=brushes,
            width=0.7,
            x0=None,
            y=None,
        )
        missing = [r[0] for r in rows if r[2] == "missing"]
        stale = [r[0] for r in rows if r[2] == "stale"]
        self.mod.setTitle(
            f"<span style='color:{TEXT_DIM}'>modality weights</span>"
            + (
                f"<span style='color:{BAD}'>  missing: {', '.join(missing)}</span>"
                if missing
                else ""
            )
            + (f"<span style='color:{WARN}'>  stale: {', '.join(stale)}</span>" if stale else ""),
            size="9pt",
        )
        self.mod_canvas.setToolTip(
            f"how much {p.model} relies on each modality now (fusion attention); "
            "✕ missing from the window (red), ~ stale (amber)"
        )

    def _draw_latency(self, snap: FeedSnapshot) -> None:
        stages = ["total", "model", "queue", "cut"]
        head = "".join(f"<th align='right' style='padding:0 4px'>{s}</th>" for s in stages)
        rows = []
        for model, items in snap.history.items():
            if not items:
                continue
            recent = items[-20:]
            cells = []
            for s in stages:
                vals = [p.latency[s] for p in recent if s in p.latency]
                med = float(np.median(vals)) * 1e3 if vals else float("nan")
                colour = (
                    TEXT if s != "total" else (GOOD if med < 500 else WARN if med < 1500 else BAD)
                )
                cells.append(
                    f"<td align='right' style='padding:0 4px; color:{colour}'>{med:.0f}</td>"
                )
            # the name on a row of its own keeps the table narrow enough for the panel
            rows.append(
                f"<tr><td colspan='{len(stages)}' style='color:{TEXT}; white-space:nowrap'>"
                f"{model}</td></tr><tr>{''.join(cells)}</tr>"
            )
        text = (
            f"<table cellspacing='1' style='font-size:9pt'><tr>{head}</tr>{''.join(rows)}</table>"
            f"<p style='color:#5a606c'>median of the last 20 windows</p>"
        )
        if self.latency.text() != text:
            self.latency.setText(text)
