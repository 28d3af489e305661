"""The live session dashboard: one window over a running Session.

The window never waits on the engine. A QTimer (60 Hz) reads ring buffers
(lock-free copies), the drivers' health copies and the ``DashboardFeed``
snapshot; slow things (building a session, which loads the models, and
stopping one, which joins threads) run on helper threads and report back
through the same timer. Recording, markers, self-report and replay go through
the Session's own methods, so the window adds no data path of its own.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.gui.affect_view import AffectView
from app.gui.camera_view import CameraView
from app.gui.controls import Controls
from app.gui.feed import DashboardFeed, StreamState
from app.gui.replay_steering import ReplaySteering
from app.gui.signal_view import SignalView
from app.gui.sources_panel import SourcesPanel
from app.gui.theme import BAD, RECORD, STYLE_SHEET, TEXT_DIM
from core.prediction import EXPRESSIONS

if TYPE_CHECKING:
    from app.session import Session

#: repaint target
FRAME_HZ = 60.0
#: sources panel, clock and title refresh
SLOW_HZ = 4.0
#: affect view refresh at most (models publish at 2-5 Hz)
AFFECT_HZ = 5.0


def _group(title: str, widget: QtWidgets.QWidget) -> QtWidgets.QGroupBox:
    box = QtWidgets.QGroupBox(title)
    lay = QtWidgets.QVBoxLayout(box)
    lay.setContentsMargins(4, 8, 4, 4)
    lay.addWidget(widget)
    return box


def _free_folder(folder: Path, name: str) -> Path:
    """``folder`` itself when it is new or empty, else a fresh time-stamped subfolder."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return folder
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = folder / f"{name}-{stamp}"
    i = 1
    while candidate.exists():
        i += 1
        candidate = folder / f"{name}-{stamp}-{i}"
    return candidate


def expression_models(session: Session) -> tuple[str, ...]:
    """The session's models whose outputs are the expression probabilities (``p_<class>``)."""
    classes = {f"p_{e}" for e in EXPRESSIONS}
    return tuple(r.name for r in session.runners if r.outputs and set(r.outputs) <= classes)


class Dashboard(QtWidgets.QMainWindow):
    """Controls on top; sources and signals on the left; cameras and affect on the right."""

    def __init__(
        self,
        make_session: Callable[[], Session],
        *,
        session: Session | None = None,
        title: str = "affectlab",
        record_dir: Path | None = None,
        on_session_end: Callable[[Session], None] | None = None,
    ) -> None:
        super().__init__()
        pg.setConfigOptions(antialias=False, useOpenGL=False)  # OpenGL draws blank offscreen
        self.make_session = make_session
        self.app_title = title
        self.record_dir = record_dir
        self.on_session_end = on_session_end
        self.session: Session | None = None
        self.feed: DashboardFeed | None = None
        self.state = "starting"
        self.error: str | None = None
        self.frames = 0  # completed refreshes (the bench counts them)
        self.markers_sent = 0
        self._seen = -1
        self._last_slow = 0.0
        self._last_affect = 0.0
        self._pending: Session | BaseException | None = None
        self._building: threading.Thread | None = None
        self._down: tuple[str, ...] = ()  # streams reported disconnected in the status bar
        self._stopping: threading.Thread | None = None

        self.setStyleSheet(STYLE_SHEET)
        self.resize(1600, 960)
        self.controls = Controls()
        self.status = QtWidgets.QStatusBar()
        self.setStatusBar(self.status)
        self.body = QtWidgets.QWidget()
        root = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(root)
        lay.setContentsMargins(8, 6, 8, 4)
        lay.setSpacing(6)
        lay.addWidget(self.controls)
        lay.addWidget(self.body, 1)
        self.setCentralWidget(root)
        self.sources_panel: SourcesPanel | None = None
        self.signal_view: SignalView | None = None
        self.camera_view: CameraView | None = None
        self.affect_view: AffectView | None = None

        c = self.controls
        c.start.clicked.connect(self._start_stop)
        c.record.clicked.connect(self._record_clicked)
        c.marker.clicked.connect(self.add_marker)
        c.marker_text.returnPressed.connect(self.add_marker)
        QtGui.QShortcut(QtGui.QKeySequence("M"), self, activated=self.add_marker)
        c.submit.clicked.connect(self.submit_self_report)
        self.replay_steering = ReplaySteering(c, self._replay)
        QtGui.QShortcut(
            QtGui.QKeySequence("Space"), self, activated=self.replay_steering.toggle_play
        )

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(int(1000 / FRAME_HZ))
        self.timer.timeout.connect(self.tick)
        self.timer.start()
        if session is not None:
            self.attach(session)
        self._update_title()

    # ------------------------------------------------------------ session lifecycle
    def attach(self, session: Session) -> None:
        """Start ``session`` (it must not be started yet) and show it.

        A session that cannot start raises before the window changes: the previous
        session's views and controls stay as they were.
        """
        feed = DashboardFeed()
        session.bus.add(feed)  # before start: the first predictions reach the window too
        session.start()  # stops and discards what it opened when it fails
        self.session, self.feed = session, feed
        self._seen = -1
        self.error = None
        self._build_views(session)
        self._configure_controls(session)
        self.state = "running"
        if getattr(session, "recording", None) is not None:  # recording from the first sample
            self.state = "recording"
            self.controls.record.setChecked(True)
            self.controls.record.setText("■ Stop recording")
        self.status.showMessage(
            f"session {session.config.name!r}: {len(session.sources)} streams, "
            f"models {', '.join(r.name + ' on ' + r.device for r in session.runners) or 'none'}"
        )
        self._update_title()

    def _build_views(self, session: Session) -> None:
        old = self.body.layout()
        if old is not None:  # the previous session's views go
            while old.count():
                item = old.takeAt(0)
                if item.widget() is not None:
                    item.widget().deleteLater()
            QtWidgets.QWidget().setLayout(
                old
            )  # hands the layout to a temporary that takes it along
        t_ref = session.started_at or session.clock.now()
        self.sources_panel = SourcesPanel(session.sources, session.drivers)
        self.signal_view = SignalView(session.sources, t_ref)
        self.camera_view = CameraView(session.sources)
        self.affect_view = AffectView(t_ref, expression_models(session))

        top = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(top)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(_group("SOURCES", self.sources_panel), 1)
        models = _group("MODELS · LATENCY (ms)", self.affect_view.latency)
        models.setMinimumWidth(190)
        models.setMaximumWidth(300)
        row.addWidget(models)
        left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        left.addWidget(top)
        left.addWidget(_group("SIGNALS", self.signal_view))
        left.setStretchFactor(0, 0)
        left.setStretchFactor(1, 1)
        rows = self.sources_panel.rowCount()
        left.setSizes([min(340, 70 + 23 * rows), 700])
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(_group("CAMERA", self.camera_view))
        right.addWidget(_group("AFFECT", self.affect_view))
        right.setSizes([270 if self.camera_view.panels else 60, 670])
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([1010, 590])
        lay = QtWidgets.QVBoxLayout(self.body)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)

    def _configure_controls(self, session: Session) -> None:
        c = self.controls
        c.start.setText("Stop")
        c.start.setEnabled(True)
        missing = "this build of affectlab has no {} yet (Session.{} is missing)"
        has_rec = hasattr(session, "start_recording") and hasattr(session, "stop_recording")
        c.record.setChecked(False)
        if has_rec:
            c.enable([c.record])
        else:
            c.disable([c.record], missing.format("recording", "start_recording"))
        replay = getattr(session, "replay", None)
        if replay is not None:
            c.disable([c.record], "a replay is already a recording: nothing new to record")
        c.record_info.setText("not recording" if has_rec else "recording unavailable")
        from_recording = (
            "a replay shows the recording's own markers and self-reports; new ones cannot be added"
        )
        if not hasattr(session, "add_marker"):
            c.disable([c.marker, c.marker_text], missing.format("markers", "add_marker"))
        elif replay is not None:
            c.disable([c.marker, c.marker_text], from_recording)
        else:
            c.enable([c.marker, c.marker_text])
        if not hasattr(session, "add_self_report"):
            c.disable(
                [c.valence, c.arousal, c.submit], missing.format("self-report", "add_self_report")
            )
        elif replay is not None:
            c.disable([c.valence, c.arousal, c.submit], from_recording)
        else:
            c.enable([c.valence, c.arousal, c.submit])
        c.replay_box.setVisible(replay is not None)
        if replay is not None:
            c.select_speed(replay.speed)

    def _start_stop(self) -> None:
        if self.session is not None and self.state in ("running", "recording"):
            self.stop_session()
        elif self.state in ("stopped", "failed"):
            self.start_new_session()

    def stop_session(self) -> None:
        """Stop the session on a helper thread (joins can take seconds). It closes a recording
        itself, after its drivers and workers, so the last items go in too; ``tick`` shows
        what was saved once it is done."""
        session = self.session
        if session is None or self._stopping is not None:
            return
        self.state = "stopping"
        self.controls.start.setEnabled(False)
        self._stopping = threading.Thread(
            target=self._stop_worker, args=(session,), name="gui-stop", daemon=True
        )
        self._stopping.start()
        self._update_title()

    def _stop_worker(self, session: Session) -> None:
        try:
            session.stop()
        finally:
            if self.on_session_end is not None:
                self.on_session_end(session)

    def start_new_session(self) -> None:
        """Build a fresh session (loads models) off the GUI thread; ``tick`` attaches it."""
        self.state = "starting"
        self.controls.start.setEnabled(False)
        self._update_title()

        def build() -> None:
            try:
                self._pending = self.make_session()
            except BaseException as exc:  # noqa: BLE001 - shown to the person, not raised
                self._pending = exc

        self._building = threading.Thread(target=build, name="gui-build-session", daemon=True)
        self._building.start()

    # ------------------------------------------------------------ actions
    def _record_clicked(self, checked: bool) -> None:
        if checked:
            if not self.start_recording():
                self.controls.record.setChecked(False)
        else:
            self._stop_recording()

    def start_recording(self, folder: Path | None = None) -> bool:
        """Record to ``folder`` (or the preset ``record_dir``, or one chosen in a dialog)."""
        session = self.session
        if session is None or self.state != "running":
            return False
        if folder is None:
            folder = self.record_dir
        if folder is None:
            chosen = QtWidgets.QFileDialog.getExistingDirectory(
                self, "Record the session into a folder"
            )
            if not chosen:
                return False
            folder = Path(chosen)
        folder = _free_folder(Path(folder), session.config.name)
        from recordings.errors import RecordingError

        try:
            session.start_recording(folder)
        except RecordingError as exc:
            self._show_error(f"cannot record: {exc}")
            return False
        self.state = "recording"
        self.controls.record.setChecked(True)
        self.controls.record.setText("■ Stop recording")
        self.status.showMessage(f"recording to {folder}")
        self._update_title()
        return True

    def _stop_recording(self) -> None:
        session = self.session
        if session is None or not hasattr(session, "stop_recording") or session.recording is None:
            return
        session.stop_recording()
        self._show_recorded(session)

    def _show_recorded(self, session: Session) -> None:
        """Say what the session's last recording saved, and offer Record again."""
        recorded = getattr(session, "recorded", None)
        if recorded is None:
            return
        folder, counts = recorded
        total = sum((counts or {}).values())
        self.controls.record.setChecked(False)
        self.controls.record.setText("● Record")
        self.controls.record_info.setText(f"saved {total:,} items to {folder}")
        self.status.showMessage(f"recorded {total:,} items to {folder}")
        if self.state == "recording":
            self.state = "running"
        self._update_title()

    def add_marker(self) -> None:
        session = self.session
        if (
            session is None
            or not hasattr(session, "add_marker")
            or self.state not in ("running", "recording")
        ):
            return
        label = self.controls.marker_text.text().strip() or f"marker {self.markers_sent + 1}"
        try:
            session.add_marker(label)
        except RuntimeError as exc:  # e.g. a replay: its markers come from the recording
            self._show_error(str(exc))
            return
        self.markers_sent += 1
        self.status.showMessage(
            f"marker {label!r} at {session.clock.now() - session.started_at:.1f} s"
        )

    def submit_self_report(self) -> None:
        session = self.session
        if (
            session is None
            or not hasattr(session, "add_self_report")
            or self.state not in ("running", "recording")
        ):
            return
        v, a = float(self.controls.valence.value()), float(self.controls.arousal.value())
        try:
            session.add_self_report(v, a)
        except RuntimeError as exc:
            self._show_error(str(exc))
            return
        if self.affect_view is not None:
            self.affect_view.set_self_report(v, a)
        self.status.showMessage(f"self-report: valence {v:g}, arousal {a:g}")

    def _replay(self):  # -> ReplayControl | None
        return getattr(self.session, "replay", None) if self.session is not None else None

    def _show_error(self, text: str) -> None:
        self.error = text
        self.status.showMessage(text)
        self.controls.record_info.setText(f"<span style='color:{BAD}'>{text}</span>")

    # ------------------------------------------------------------ refresh
    def tick(self) -> None:
        """One frame: rings -> plots, feed -> affect; a few times a second, health and title."""
        self._adopt_pending()
        if self._stopping is not None and not self._stopping.is_alive():
            self._stopping = None
            self.state = "stopped"
            if self.session is not None:
                self._show_recorded(self.session)
            c = self.controls
            c.start.setText("Start")
            c.start.setEnabled(True)
            c.disable(
                [c.record, c.marker, c.marker_text, c.valence, c.arousal, c.submit],
                "the session is stopped: press Start for a new one",
            )
            self._update_title()
        session = self.session
        if session is None or self.signal_view is None:
            return
        now = session.clock.now()
        # a replay's time origin is known only once it runs (and moves with a seek)
        self.signal_view.t_ref = session.time_origin()
        self.affect_view.set_origin(self.signal_view.t_ref, now)
        if self.state not in ("stopped", "stopping"):
            self.signal_view.refresh(now)
            self.camera_view.refresh(time.monotonic())
        wall = time.monotonic()
        if wall - self._last_affect >= 1.0 / AFFECT_HZ:  # predictions come at a few Hz
            self._last_affect = wall
            snap = self.feed.snapshot(since=self._seen)
            self._seen = snap.received
            self.affect_view.refresh(
                snap, now if self.state != "stopped" else session.stopped_at or now
            )
        if wall - self._last_slow >= 1.0 / SLOW_HZ:
            self._last_slow = wall
            self._slow_refresh(now)
        self.frames += 1

    def _adopt_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        self._building = None
        if not isinstance(pending, BaseException):
            try:
                self.attach(pending)
                return
            except Exception as exc:  # noqa: BLE001 - a device that is not there: shown, not raised
                pending = exc
        self.state = "failed"
        self.controls.start.setEnabled(True)
        self.controls.start.setText("Start")
        self._show_error(f"the session could not start: {pending}")
        self._update_title()

    def _slow_refresh(self, now: float) -> None:
        session = self.session
        assert session is not None and self.sources_panel is not None
        replay = self._replay()
        paused = bool(replay is not None and replay.paused)
        self.sources_panel.refresh(session.health(), now, paused)
        assert self.camera_view is not None
        self.camera_view.show_states({n: r.state for n, r in self.sources_panel.rows.items()})
        self._report_lost_streams()
        elapsed = (session.stopped_at or now) - session.started_at if session.started_at else 0.0
        if replay is not None:
            elapsed = replay.position
        self.controls.clock.setText(_clock(elapsed))
        rec = getattr(session, "recording", None)
        if rec is not None:
            if rec.error:
                self._show_error(f"recording stopped: {rec.error}")
                self.controls.record.setChecked(False)
                self.controls.record.setText("● Record")
                self.state = "running"
            else:
                total = sum(rec.counts().values())
                recorded = now - rec.start_lsl if rec.start_lsl is not None else 0.0
                self.controls.record_info.setText(
                    f"<span style='color:{RECORD}'>● REC</span> {_clock(recorded)}  ·  {total:,} items  ·  "
                    f"<span style='color:{TEXT_DIM}'>{rec.folder}</span>"
                )
        if session.engine_error is not None and self.state != "failed":
            self._show_error(f"engine failed: {session.engine_error}")
        self.replay_steering.update()
        self._update_title()

    def _report_lost_streams(self) -> None:
        """Streams that went down, and why, in the status bar: the sources table's note
        column is often scrolled out of sight."""
        assert self.sources_panel is not None
        down = tuple(
            f"{row.name}: {row.message}"
            for row in self.sources_panel.rows.values()
            if row.state is StreamState.DISCONNECTED
        )
        if down == self._down:
            return
        if down:
            self.status.showMessage("disconnected: " + "; ".join(down))
        elif self._down:
            self.status.showMessage("every stream is connected again")
        self._down = down

    def _update_title(self) -> None:
        name = self.session.config.name if self.session is not None else "no session"
        state = self.state
        replay = self._replay()
        if replay is not None and state == "running":
            state = (
                "replay finished"
                if replay.finished
                else "replay paused"
                if replay.paused
                else "replaying"
            )
        text = f"{self.app_title} — {name} — {state}"
        if self.windowTitle() != text:
            self.setWindowTitle(text)

    # ------------------------------------------------------------ teardown
    def shutdown(self) -> None:
        """Stop the timer, any recording and the session; waits for them (window closing)."""
        self.timer.stop()
        if self._building is not None:  # Start was pressed: a session is (being) built
            self._building.join(60.0)
            self._building = None
            pending, self._pending = self._pending, None
            if pending is not None and not isinstance(pending, BaseException):
                pending.abandon()  # never started: no empty log left behind
                self.state = "stopped"
        if self.session is not None and self.state in ("running", "recording"):
            self.session.stop()  # closes a recording after its drivers: the last items go in
            self.state = "stopped"
            if self.on_session_end is not None:
                self.on_session_end(self.session)
        if self._stopping is not None:
            self._stopping.join(30.0)
            self._stopping = None

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        event.accept()


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
