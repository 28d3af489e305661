"""The control strip: session, recording, markers, self-report, and replay transport.

Widgets only: the dashboard connects them to the session, so this module
knows nothing about sessions and each control can be disabled with a tooltip
saying why (a build without recording, a live session without replay).
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

#: replay speeds offered; None = as fast as possible
SPEEDS: tuple[tuple[str, float | None], ...] = (
    ("0.25×", 0.25),
    ("0.5×", 0.5),
    ("1×", 1.0),
    ("2×", 2.0),
    ("4×", 4.0),
    ("8×", 8.0),
    ("max", None),
)
SEEK_STEPS = 1000


def _slider(lo: int, hi: int, value: int) -> QtWidgets.QSlider:
    s = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setTickPosition(QtWidgets.QSlider.TickPosition.TicksBelow)
    s.setTickInterval(1)
    s.setPageStep(1)
    s.setMinimumWidth(60)
    return s


def _dim(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setObjectName("dim")
    return label


class Controls(QtWidgets.QWidget):
    """Buttons and sliders along the top of the window."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)

        session = QtWidgets.QGroupBox("SESSION")
        s = QtWidgets.QHBoxLayout(session)
        self.start = QtWidgets.QPushButton("Stop")
        self.start.setObjectName("startButton")
        self.start.setToolTip("start or stop the session (sources, models, sinks)")
        self.clock = QtWidgets.QLabel("00:00")
        self.clock.setObjectName("big")
        self.clock.setToolTip("session time")
        s.addWidget(self.start)
        s.addWidget(self.clock)
        row.addWidget(session)

        record = QtWidgets.QGroupBox("RECORD")
        r = QtWidgets.QHBoxLayout(record)
        self.record = QtWidgets.QPushButton("● Record")
        self.record.setObjectName("recordButton")
        self.record.setCheckable(True)
        self.record.setToolTip("record every stream and prediction to a session folder")
        self.record_info = _dim("not recording")
        self.record_info.setMinimumWidth(110)
        r.addWidget(self.record)
        r.addWidget(self.record_info, 1)
        row.addWidget(record, 2)

        marker = QtWidgets.QGroupBox("MARKER")
        m = QtWidgets.QHBoxLayout(marker)
        self.marker_text = QtWidgets.QLineEdit()
        self.marker_text.setPlaceholderText("label (optional)")
        self.marker_text.setMaximumWidth(130)
        self.marker = QtWidgets.QPushButton("Insert  [M]")
        self.marker.setToolTip("put a marker on the stream 'affectlab-markers' now (key M)")
        m.addWidget(self.marker_text)
        m.addWidget(self.marker)
        row.addWidget(marker)

        report = QtWidgets.QGroupBox("SELF-REPORT (1-9)")
        g = QtWidgets.QHBoxLayout(report)
        self.valence = _slider(1, 9, 5)
        self.arousal = _slider(1, 9, 5)
        self.valence_value = QtWidgets.QLabel("5")
        self.arousal_value = QtWidgets.QLabel("5")
        self.valence.valueChanged.connect(lambda v: self.valence_value.setText(str(v)))
        self.arousal.valueChanged.connect(lambda v: self.arousal_value.setText(str(v)))
        self.submit = QtWidgets.QPushButton("Submit")
        self.submit.setToolTip(
            "store the participant's valence and arousal on 'affectlab-self-report'"
        )
        for label, slider, value in (
            ("valence", self.valence, self.valence_value),
            ("arousal", self.arousal, self.arousal_value),
        ):
            g.addWidget(_dim(label))
            g.addWidget(slider)
            g.addWidget(value)
        g.addWidget(self.submit)
        row.addWidget(report, 2)

        self.replay_box = QtWidgets.QGroupBox("REPLAY")
        p = QtWidgets.QHBoxLayout(self.replay_box)
        self.play = QtWidgets.QPushButton("Pause")
        self.play.setToolTip("play or pause the replay (space)")
        self.speed = QtWidgets.QComboBox()
        for text, value in SPEEDS:
            self.speed.addItem(text, value)
        self.speed.setCurrentIndex(2)
        self.speed.setToolTip("replay speed; max = as fast as the pipeline goes")
        self.seek = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.seek.setRange(0, SEEK_STEPS)
        self.seek.setMinimumWidth(160)
        self.seek.setToolTip("position in the recording; drag, click or use the keys to seek")
        self.position = _dim("0.0 / 0.0 s")
        p.addWidget(self.play)
        p.addWidget(self.speed)
        p.addWidget(self.seek, 1)
        p.addWidget(self.position)
        row.addWidget(self.replay_box, 3)
        self.replay_box.setVisible(False)
        self._tips = {
            id(w): w.toolTip()
            for w in (
                self.record,
                self.marker,
                self.marker_text,
                self.valence,
                self.arousal,
                self.submit,
            )
        }

    def speed_value(self) -> float | None:
        return self.speed.currentData()

    def select_speed(self, speed: float | None) -> None:
        """Show ``speed`` as chosen; one the list does not offer (``--speed 3``) is added to
        it in its place, so that the box never shows another speed than the replay's."""
        values = [self.speed.itemData(i) for i in range(self.speed.count())]
        if speed in values:
            i = values.index(speed)
        else:
            i = next((k for k, v in enumerate(values) if v is None or v > speed), len(values))
            self.speed.insertItem(i, f"{speed:g}×", speed)
        self.speed.blockSignals(True)
        self.speed.setCurrentIndex(i)
        self.speed.blockSignals(False)

    def enable(self, widgets: list[QtWidgets.QWidget]) -> None:
        """Undo ``disable``: enabled, with the tooltip they were built with."""
        for w in widgets:
            w.setEnabled(True)
            w.setToolTip(self._tips.get(id(w), w.toolTip()))

    def disable(self, widgets: list[QtWidgets.QWidget], why: str) -> None:
        """Grey out controls this session cannot serve, saying why on hover."""
        for w in widgets:
            w.setEnabled(False)
            w.setToolTip(why)
