"""The sources panel: every stream with its state, rate, latency, buffer fill and losses."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

from app.gui.feed import StreamState, stream_state
from app.gui.theme import BAD, GOOD, IDLE, TEXT, TEXT_DIM, WARN
from core.health import StreamHealth
from core.scheduler import StreamSource
from drivers.base import Driver

STATE_COLOURS = {
    StreamState.CONNECTED: GOOD,
    StreamState.STALE: WARN,
    StreamState.DISCONNECTED: BAD,
    StreamState.WAITING: IDLE,
    StreamState.PAUSED: IDLE,
}

COLUMNS = ("stream", "kind", "state", "rate Hz", "latency ms", "buffer", "lost", "note")


@dataclass
class StreamRow:
    """What one row shows; also what tests read."""

    name: str
    state: StreamState
    rate: float
    nominal: float
    latency_ms: float
    fill: float
    lost: int
    message: str


def _fmt_rate(rate: float, nominal: float) -> str:
    def f(x: float) -> str:
        if x >= 10_000:
            return f"{x / 1000:.0f} k"
        return f"{x:.0f}" if x >= 10 else f"{x:.1f}"

    if nominal <= 0 and rate <= 0:
        return "–"  # irregular and quiet (markers, ratings): no rate to speak of
    return f"{f(rate)} / {f(nominal)}" if nominal > 0 else f(rate)


class SourcesPanel(QtWidgets.QTableWidget):
    """One row per stream; refreshed a few times a second from health copies."""

    def __init__(
        self,
        sources: dict[str, StreamSource],
        drivers: list[Driver],
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(len(sources), len(COLUMNS), parent)
        self.sources = sources
        self.driver_of = {spec.name: d for d in drivers for spec in d.specs}
        self.rows: dict[str, StreamRow] = {}
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.setShowGrid(False)
        self.verticalHeader().setDefaultSectionSize(22)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(len(COLUMNS) - 1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(QtCore.Qt.AlignmentFlag.AlignLeft)
        for r, (name, src) in enumerate(sources.items()):
            self._set(r, 0, name, TEXT)
            self._set(r, 1, str(src.spec.modality).lower(), TEXT_DIM)
        self._widths_fitted = False
        self.setToolTip(
            "state: connected (fresh data), stale (nothing new for 10 sample periods), "
            "disconnected (the source stopped or dropped out), waiting (nothing yet)\n"
            "rate: measured / nominal; latency: arrival minus sample time of the newest chunk; "
            "buffer: ring fill; lost: items the source reported lost"
        )

    def _fit_widths(self) -> None:
        """Column widths fitted once, with the window's font, to typical contents
        (ResizeToContents would re-measure the table on every update)."""
        self.ensurePolished()
        fm = self.fontMetrics()
        bold = QtGui.QFont(self.font())
        bold.setBold(True)
        fm_bold = QtGui.QFontMetrics(bold)
        for col, sample in (
            (0, None),
            (1, None),
            (2, "● disconnected"),
            (3, "1000 / 1000"),
            (4, "1000.0"),
            (5, "100%"),
            (6, "1,000,000"),
        ):
            content = (
                self.sizeHintForColumn(col) if sample is None else fm.horizontalAdvance(sample)
            )
            self.setColumnWidth(
                col, max(content + 14, fm_bold.horizontalAdvance(COLUMNS[col]) + 26)
            )
        self._widths_fitted = True

    def _set(self, row: int, col: int, text: str, colour: str, align_right: bool = False) -> None:
        item = self.item(row, col)
        if item is None:
            item = QtWidgets.QTableWidgetItem()
            self.setItem(row, col, item)
            item.setForeground(QtGui.QColor(colour))
            if align_right:
                item.setTextAlignment(
                    QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter
                )
        # each change re-lays the table out: touch only what changed
        if item.text() != text:
            item.setText(text)
        if item.foreground().color().name() != colour:
            item.setForeground(QtGui.QColor(colour))

    def refresh(self, health: dict[str, StreamHealth], now: float, paused: bool = False) -> None:
        if not self._widths_fitted:
            self._fit_widths()
        for r, (name, src) in enumerate(self.sources.items()):
            h = health.get(name) or StreamHealth(name)
            driver = self.driver_of.get(name)
            running = driver is not None and driver.running and driver.error is None
            state = stream_state(src.spec, h, now, running, paused)
            latency = h.latency * 1e3 if math.isfinite(h.latency) else math.nan
            rate = h.effective_rate if state is StreamState.CONNECTED else 0.0
            message = h.message
            if driver is not None and driver.error is not None:
                message = f"failed: {driver.error}"
            elif state is StreamState.STALE:
                message = message or f"nothing new for {h.staleness(now):.1f} s"
            elif state is StreamState.DISCONNECTED and not message:
                message = "source stopped"
            row = StreamRow(
                name, state, rate, src.spec.nominal_rate, latency, src.ring.fill, h.lost, message
            )
            self.rows[name] = row
            colour = STATE_COLOURS[state]
            self._set(r, 2, f"● {state}", colour)
            self._set(r, 3, _fmt_rate(rate, src.spec.nominal_rate), TEXT, True)
            self._set(r, 4, "–" if math.isnan(latency) else f"{latency:.1f}", TEXT, True)
            self._set(r, 5, f"{src.ring.fill:.0%}", TEXT, True)
            self._set(r, 6, f"{h.lost:,}", BAD if h.lost else TEXT_DIM, True)
            self._set(r, 7, message, TEXT_DIM)
            state_item = self.item(r, 2)
            if state_item.toolTip() != message:
                state_item.setToolTip(message)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt's name
        return QtCore.QSize(560, 24 + 22 * max(3, self.rowCount()))
