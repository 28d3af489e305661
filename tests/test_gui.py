"""The dashboard on real sessions (simulated sources, the demo models), offscreen Qt."""

from __future__ import annotations

import csv
import math
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from app.config import (  # noqa: E402
    ModelConfig,
    SinkConfig,
    SourceConfig,
    load_config,
    shipped_config,
)
from app.gui import Dashboard  # noqa: E402
from app.gui.camera_view import compose  # noqa: E402
from app.gui.controls import SEEK_STEPS  # noqa: E402
from app.gui.downsample import (  # noqa: E402
    break_at_holes,
    minmax_downsample,
    robust_range,
    stack_channels,
)
from app.gui.feed import DashboardFeed, StreamState, stream_state  # noqa: E402
from app.session import Session  # noqa: E402
from core.health import StreamHealth  # noqa: E402
from core.prediction import Prediction  # noqa: E402
from core.streams import Modality, StreamSpec  # noqa: E402

WAIT_MS = 30_000  # generous: the machine is shared


def demo_config(tmp_path: Path, models: bool = True, log: bool = False):
    cfg = load_config(shipped_config("demo"))
    sinks = [SinkConfig("predictions", {"path": str(tmp_path / "preds.csv")})] if log else []
    return replace(cfg, sinks=sinks, models=cfg.models if models else [])


# ---------------------------------------------------------------- plain parts
def test_minmax_downsample_keeps_every_peak():
    rng = np.random.default_rng(0)
    n, c = 100_000, 3
    ts = np.arange(n) / 1000.0
    data = rng.normal(0, 1, (n, c)).astype(np.float32)
    data[12_345, 0] = 50.0  # a spike between any two decimated samples
    data[67_891, 2] = -40.0
    x, y = minmax_downsample(ts, data, 500)
    assert len(x) == len(y) <= 2 * 500 + 2
    assert y[:, 0].max() == 50.0 and y[:, 2].min() == -40.0
    assert np.all(np.diff(x) >= 0)  # time order kept
    assert x[-1] == ts[-1]  # the newest sample is never cut
    # short inputs pass through untouched
    x2, y2 = minmax_downsample(ts[:300], data[:300], 500)
    assert len(x2) == 300 and np.array_equal(y2, data[:300])


def test_a_nan_sample_or_a_hole_is_a_break_not_a_dead_lane_or_a_bridge():
    ts = np.arange(1000) / 100.0
    y = np.stack([np.sin(ts), np.cos(ts)], axis=1)
    clean_centre, clean_span = robust_range(y)
    y[500, 0] = np.nan  # one sample a device could not give
    centre, span = robust_range(y)
    assert np.isfinite(centre).all() and np.isfinite(span).all()  # the lane keeps its scale
    np.testing.assert_allclose(centre, clean_centre, atol=0.02)
    np.testing.assert_allclose(span, clean_span, rtol=0.02)
    assert robust_range(np.full((5, 2), np.nan))[1].tolist() == [1.0, 1.0]
    hole = (ts < 4.0) | (ts >= 7.0)  # the stream dropped out from 4 to 7 s
    t2, y2 = break_at_holes(ts[hole], y[hole], 0.1)
    assert len(t2) == hole.sum() + 1
    i = int(np.flatnonzero(np.isnan(y2[:, 1]))[0])
    assert t2[i - 1] == pytest.approx(3.99) and t2[i + 1] == pytest.approx(7.0)
    x, _ = minmax_downsample(t2, y2, 100)
    xs, ys = stack_channels(x, minmax_downsample(t2, y2, 100)[1], centre, span)
    drawn = np.isfinite(ys) & (xs > 4.0) & (xs < 7.0)  # nothing drawn inside the hole
    assert not drawn.any()


def test_stack_channels_one_polyline_per_channel():
    x = np.linspace(0, 1, 10)
    y = np.stack([np.sin(x), np.cos(x)], axis=1)
    xs, ys = stack_channels(x, y, np.zeros(2), np.ones(2))
    assert len(xs) == len(ys) == 2 * 11
    assert np.isnan(ys[10]) and np.isnan(ys[21])
    assert np.all(ys[:10] > 0.5) and np.all(ys[11:21] < 1.0)  # first channel on the upper lane


def test_compose_converts_colour_shrinks_and_tints_events():
    h, w = 6, 8
    bgr = np.zeros((h, w, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    rgb = compose(bgr, (h, w), None, bgr=True)
    assert rgb.shape == (h, w, 3) and np.all(rgb[..., 2] == 200) and np.all(rgb[..., 0] == 0)
    assert np.all(bgr[..., 0] == 200)  # the ring's frame is never written to
    events = np.zeros(2, dtype=[("x", "<i2"), ("y", "<i2"), ("polarity", "u1")])
    events["x"], events["y"], events["polarity"] = (5, 1), (3, 0), (1, 0)
    grey = np.full((h, w), 100, np.uint8)
    small = compose(grey, (h, w), events, step=2)  # a panel half the camera's size
    assert small.shape == (h // 2, w // 2, 3)
    tinted = np.argwhere(np.any(small != 100, axis=2))
    assert {tuple(t) for t in tinted} == {(1, 2), (0, 0)}  # each event on the pixel covering it
    assert np.all(small[1, 1] == 100)  # untouched pixels keep the frame


def test_stream_state_classification():
    eeg = StreamSpec("eeg", Modality.EEG, 128.0, ("a",))
    markers = StreamSpec("m", Modality.MARKERS, 0.0, ("label",), dtype="object")
    h = StreamHealth("eeg", connected=True, received=10, last_sample_time=100.0)
    assert stream_state(eeg, h, 100.5, True) is StreamState.CONNECTED
    assert stream_state(eeg, h, 102.0, True) is StreamState.STALE
    assert stream_state(eeg, h, 102.0, True, paused=True) is StreamState.PAUSED
    assert stream_state(eeg, h, 100.5, False) is StreamState.DISCONNECTED
    assert stream_state(eeg, replace(h, connected=False), 100.5, True) is StreamState.DISCONNECTED
    assert stream_state(eeg, StreamHealth("eeg"), 100.0, True) is StreamState.WAITING
    hm = StreamHealth("m", connected=True, received=1, last_sample_time=0.0)
    assert stream_state(markers, hm, 1e6, True) is StreamState.CONNECTED  # sparse: never stale
    assert (
        stream_state(markers, StreamHealth("m"), 1e6, True) is StreamState.CONNECTED
    )  # nor waiting
    assert stream_state(markers, hm, 1e6, False) is StreamState.DISCONNECTED


def test_feed_takes_predictions_from_many_threads():
    feed = DashboardFeed(history=10_000)

    def publish(model: str) -> None:
        for i in range(2000):
            feed.on_prediction(Prediction(model, i, float(i), affect={"valence": float(i)}))

    threads = [threading.Thread(target=publish, args=(f"m{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    snaps = []
    while any(t.is_alive() for t in threads):
        snaps.append(feed.snapshot())
    for t in threads:
        t.join()
    snap = feed.snapshot()
    assert snap.received == 8000
    assert all(
        [p.window_index for p in snap.history[f"m{k}"]] == list(range(2000)) for k in range(4)
    )
    assert all(sum(len(v) for v in s.history.values()) == s.received for s in snaps)
    assert feed.snapshot(since=snap.received).history == {}  # nothing new: nothing copied


# ---------------------------------------------------------------- the window
def test_dashboard_on_the_demo_fills_and_shows_what_is_logged(qtbot, tmp_path):
    cfg = demo_config(tmp_path, log=True)
    window = Dashboard(lambda: Session(cfg), session=Session(cfg), title="affectlab")
    qtbot.addWidget(window)
    window.show()
    assert "demo" in window.windowTitle() and "running" in window.windowTitle()

    def filled() -> None:
        points = window.signal_view.points_shown()
        assert set(points) == {"sim-eeg", "sim-ecg", "sim-eda", "sim-ppg", "sim-resp", "sim-temp"}
        assert all(n > 0 for n in points.values()), points
        assert window.camera_view.panels[0].frames_drawn > 0
        assert set(window.affect_view.shown) == {"hi-moe-sim", "mco-e-net-lite-sim"}
        rows = window.sources_panel.rows
        assert rows and all(r.state is StreamState.CONNECTED for r in rows.values()), rows

    qtbot.waitUntil(filled, timeout=WAIT_MS)

    # 32 lanes, each filling with a real trace (at least 60 min/max pairs) as seconds of EEG arrive
    def eeg_filled() -> None:
        assert window.signal_view.points_shown()["sim-eeg"] >= 32 * 120
        trace = window.signal_view.traces["sim-eeg"]
        x, _ = trace.curve.getData()
        assert np.nanmax(x) - np.nanmin(x) > 2.0
        # data in session time, slid by the curve's offset to "seconds ago": the newest sample
        # sits near 0 s in the fixed view, and the whole trace within the visible span
        ago = np.nanmax(x) + trace.curve.pos().x()
        assert -1.0 < ago <= 0.1
        assert trace.plot.getViewBox().viewRange()[0] == [-window.signal_view.seconds, 0.0]

    qtbot.waitUntil(eeg_filled, timeout=WAIT_MS)
    picture = window.camera_view.picture(0)
    assert picture is not None and picture.shape == (260, 346, 3) and picture.std() > 5
    # the modality weights come from Hi-MoE's routing, one bar per physiological input
    assert window.affect_view.mod_names == ["eeg", "ecg", "ppg", "eda", "resp", "temp"]

    window.stop_session()
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=WAIT_MS)
    assert "stopped" in window.windowTitle()
    snap = window.feed.snapshot()
    # the view catches up with the last prediction by itself (the timer keeps running)
    qtbot.waitUntil(
        lambda: all(
            window.affect_view.shown.get(m) is items[-1] for m, items in snap.history.items()
        ),
        timeout=WAIT_MS,
    )
    with open(tmp_path / "preds.csv", newline="") as f:
        logged = list(csv.DictReader(f))
    assert len(logged) == snap.received > 0
    for model, items in snap.history.items():
        rows = [r for r in logged if r["model"] == model]
        assert [int(r["window"]) for r in rows] == [p.window_index for p in items]
        for row, p in zip(rows, items, strict=True):
            for k, v in p.flat().items():
                if isinstance(v, float):
                    assert math.isclose(float(row[k]), v, rel_tol=1e-6, abs_tol=1e-9), (
                        k,
                        row[k],
                        v,
                    )
        shown = window.affect_view.shown[model]
        assert shown is items[-1]
        assert int(rows[-1]["window"]) == shown.window_index


def test_a_stream_that_stops_is_shown_disconnected(qtbot, tmp_path):
    cfg = demo_config(tmp_path, models=False)
    window = Dashboard(lambda: Session(cfg), session=Session(cfg))
    qtbot.addWidget(window)
    window.show()
    rows = window.sources_panel.rows
    qtbot.waitUntil(
        lambda: (
            "sim-davis-frames" in rows and rows["sim-davis-frames"].state is StreamState.CONNECTED
        ),
        timeout=WAIT_MS,
    )
    camera = next(d for d in window.session.drivers if "sim-davis-frames" in d.rings)
    camera.stop()
    qtbot.waitUntil(
        lambda: (
            rows["sim-davis-frames"].state is StreamState.DISCONNECTED
            and rows["sim-davis-events"].state is StreamState.DISCONNECTED
        ),
        timeout=WAIT_MS,
    )
    assert rows["sim-eeg"].state is StreamState.CONNECTED
    assert rows["sim-davis-frames"].rate == 0.0
    # said where it is seen: the table's note column is often scrolled out of sight
    qtbot.waitUntil(
        lambda: "disconnected: sim-davis-frames: " in window.status.currentMessage(),
        timeout=WAIT_MS,
    )
    # and the window fits a 1024 x 768 screen
    assert window.minimumSizeHint().width() <= 1024


def test_a_dead_eye_camera_clears_the_expression_and_dims_its_picture(qtbot, tmp_path):
    """The last expression and eye picture must not stay on screen looking current."""
    cfg = demo_config(tmp_path)
    window = Dashboard(lambda: Session(cfg), session=Session(cfg))
    qtbot.addWidget(window)
    view, panel = window.affect_view, window.camera_view.panels[0]
    assert view.expr_model == "mco-e-net-lite-sim"
    qtbot.waitUntil(lambda: view.shown.get("mco-e-net-lite-sim") is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(view.shown["mco-e-net-lite-sim"].expression), timeout=WAIT_MS)
    assert view.expr_bars.opts["width"].max() > 0 and not panel.no_signal
    camera = next(d for d in window.session.drivers if "sim-davis-frames" in d.rings)
    camera.stop()
    qtbot.waitUntil(lambda: not view.shown["mco-e-net-lite-sim"].expression, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.no_signal, timeout=WAIT_MS)
    assert "no expression" in view.expr.titleLabel.text
    assert view.expr_note.textItem.toPlainText() == "no input\nframes ✕  events ✕"
    assert view.expr_bars.opts["width"].max() == 0
    assert panel.status.textItem.toPlainText() == "no signal"


def test_a_session_without_an_expression_model_says_so(qtbot, tmp_path):
    cfg = demo_config(tmp_path)
    no_camera = replace(cfg, models=[m for m in cfg.models if m.name == "hi-moe-sim"])
    window = Dashboard(lambda: Session(no_camera), session=Session(no_camera))
    qtbot.addWidget(window)
    assert window.affect_view.expr_model is None
    note = window.affect_view.expr_note.textItem.toPlainText()
    assert note == "no model of this\nsession classifies\nexpressions"


def test_stop_and_start_builds_a_new_session(qtbot, tmp_path):
    cfg = demo_config(tmp_path, models=False)
    built = []

    def make() -> Session:
        built.append(Session(cfg))
        return built[-1]

    window = Dashboard(make, session=make())
    qtbot.addWidget(window)
    first = window.session
    window.controls.start.click()
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=WAIT_MS)
    assert window.controls.start.text() == "Start"
    assert not any(d.running for d in first.drivers)
    assert not window.controls.marker.isEnabled() and not window.controls.record.isEnabled()
    window.controls.start.click()
    qtbot.waitUntil(lambda: window.state == "running", timeout=WAIT_MS)
    assert window.session is built[-1] and window.session is not first and len(built) == 2
    assert window.controls.marker.isEnabled() and window.controls.record.isEnabled()
    assert "Start" not in window.controls.marker.toolTip()
    qtbot.waitUntil(
        lambda: window.signal_view.points_shown().get("sim-ecg", 0) > 0, timeout=WAIT_MS
    )


def test_start_after_stop_logs_beside_the_last_log(qtbot, tmp_path):
    """The command's sessions: a predictions log is never overwritten, so the new one may
    not reuse its name (the new session then could not start at all)."""
    from app.headless import DashboardSessions

    sessions = DashboardSessions(demo_config(tmp_path, models=False, log=True))
    window = Dashboard(sessions.build, session=sessions.build(), on_session_end=sessions.ended)
    qtbot.addWidget(window)
    first = window.session
    window.controls.start.click()  # Stop
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=WAIT_MS)
    assert sessions.last_ended is first
    window.controls.start.click()  # Start
    qtbot.waitUntil(lambda: window.state == "running", timeout=WAIT_MS)
    assert window.session is not first and not window.error
    window.shutdown()
    assert sessions.last_ended is window.session
    assert (tmp_path / "preds.csv").is_file() and (tmp_path / "preds-2.csv").is_file()


def test_the_window_never_outgrows_the_rings_and_the_time_plot_slides(qtbot, tmp_path):
    from app.gui.affect_view import AffectView
    from app.gui.feed import FeedSnapshot

    session = Session(demo_config(tmp_path, models=False))
    window = Dashboard(lambda: session, session=session)
    qtbot.addWidget(window)
    held = min(
        s.ring.capacity / s.spec.nominal_rate
        for s in window.signal_view.sources.values()
        if s.spec.nominal_rate > 0
    )
    assert window.signal_view.span.maximum() == int(held) < 60  # 30 s rings by default
    window.shutdown()
    view = AffectView(0.0)  # with no prediction coming, the plot still follows the clock
    view.refresh(FeedSnapshot(), 3.0)
    view.refresh(FeedSnapshot(), 60.0)
    assert view.timeplot.viewRange()[0][1] == pytest.approx(60.0)


def test_a_moved_origin_replots_only_what_comes_after_it(qtbot):
    """A replay that seeks moves its origin: the earlier predictions belong to another
    stretch of the recording and are not drawn at the new session times."""
    from app.gui.affect_view import AffectView
    from app.gui.feed import FeedSnapshot

    view = AffectView(100.0)
    qtbot.addWidget(view)

    def at(t: float) -> Prediction:
        return Prediction("m", int(t), t, affect={"valence": 5.0, "arousal": 5.0})

    before = [at(t) for t in (101.0, 102.0, 103.0)]
    view.refresh(FeedSnapshot({"m": before}, 3), 103.0)
    x, _ = view.curves["valence"].getData()
    assert list(x) == [1.0, 2.0, 3.0]
    view.set_origin(90.0, 103.5)  # seek 13.5 s ahead at clock time 103.5
    after = [*before, at(104.0), at(105.0)]
    view.refresh(FeedSnapshot({"m": after}, 5), 105.0)
    x, _ = view.curves["valence"].getData()
    assert list(x) == [14.0, 15.0]
    view.set_origin(200.0, 106.0)  # nothing after this one yet: nothing drawn
    view.refresh(FeedSnapshot({"m": [*after, at(105.5)]}, 6), 106.0)
    assert len(view.curves["valence"].getData()[0] or []) == 0


def test_a_session_that_cannot_be_built_is_a_message(qtbot, tmp_path):
    cfg = demo_config(tmp_path, models=False)
    window = Dashboard(
        lambda: Session(replace(cfg, models=[ModelConfig("no-such-model")])), session=Session(cfg)
    )
    qtbot.addWidget(window)
    window.stop_session()
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=WAIT_MS)
    window.controls.start.click()
    qtbot.waitUntil(lambda: window.state == "failed", timeout=WAIT_MS)
    assert "could not start" in window.error and "no-such-model" in window.error
    assert window.controls.start.isEnabled()


def test_a_session_that_cannot_start_is_a_message_and_the_old_views_stay(qtbot, tmp_path):
    """A device that is missing only shows when the session starts (a serial port that is
    not there): the window says so and offers Start again instead of a Stop that does nothing."""
    cfg = demo_config(tmp_path, models=False)
    board = SourceConfig("brainflow", "board", {"board": "cyton", "serial_port": "/dev/nonesuch"})
    no_board = replace(cfg, sources=[*cfg.sources, board], models=[])
    window = Dashboard(lambda: Session(no_board), session=Session(cfg))
    qtbot.addWidget(window)
    first, views = window.session, window.signal_view
    window.stop_session()
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=WAIT_MS)
    window.controls.start.click()
    qtbot.waitUntil(lambda: window.state == "failed", timeout=WAIT_MS)
    assert "could not start" in window.error and "cyton" in window.error
    assert window.controls.start.text() == "Start" and window.controls.start.isEnabled()
    assert window.session is first and window.signal_view is views
    assert not window.controls.record.isEnabled()


def test_closing_while_a_session_is_built_leaves_no_empty_log(qtbot, tmp_path):
    from app.headless import DashboardSessions

    sessions = DashboardSessions(demo_config(tmp_path, models=False, log=True))
    window = Dashboard(sessions.build, session=sessions.build(), on_session_end=sessions.ended)
    qtbot.addWidget(window)
    window.controls.start.click()  # Stop
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=WAIT_MS)
    window.controls.start.click()  # Start: the next session is being built ...
    window.shutdown()  # ... as the window closes
    assert window.state == "stopped"
    assert (tmp_path / "preds.csv").is_file()
    assert not (tmp_path / "preds-2.csv").exists()


def test_an_interrupt_while_the_window_opens_leaves_nothing_behind(tmp_path, qapp):
    """Ctrl-C or SIGTERM in the seconds before the window takes them over (the models
    loading, the first session starting) ends the command as everywhere else: 130 or 143,
    and no empty log nor half recording to refuse the rerun."""
    from app.gui.launch import run_dashboard

    cfg = demo_config(tmp_path, models=False, log=True)

    def make() -> Session:
        session = Session(cfg)

        def interrupted() -> None:
            raise KeyboardInterrupt  # what the signal handler raises

        session.start = interrupted
        return session

    code = run_dashboard(make, record_at_start=tmp_path / "rec")
    assert code == 130
    assert not (tmp_path / "preds.csv").exists()
    assert not any((tmp_path / "rec").iterdir())


def test_an_interrupt_once_the_first_session_runs_still_ends_it_as_usual(
    tmp_path, qapp, monkeypatch
):
    """The window starts its first session before its views are built: a signal landing
    then finds a session that ran, which is stopped and reported (--stats) as at any
    later moment, not dropped without its statistics."""
    from app.gui.launch import run_dashboard

    cfg = demo_config(tmp_path, models=False, log=True)
    built: list[Session] = []
    ended: list[Session] = []

    def interrupted(self, session) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Dashboard, "_build_views", interrupted)
    code = run_dashboard(
        lambda: built.append(Session(cfg)) or built[-1], on_session_end=ended.append
    )
    assert code == 130
    assert ended == built and built[0].started_at and built[0].stopped_at
    assert (tmp_path / "preds.csv").exists()


def test_cli_demo_screenshot(tmp_path, qapp):
    import json

    from PySide6 import QtGui

    from app.cli import main

    shot = tmp_path / "dash.png"
    stats = tmp_path / "stats.json"
    record = tmp_path / "session"
    code = main(
        [
            "demo",
            "--duration",
            "4",
            "--screenshot",
            str(shot),
            "--no-lsl",
            "--quiet",
            "--stats",
            str(stats),
            "--record",
            str(record),
        ]
    )
    assert code == 0
    image = QtGui.QImage(str(shot))
    assert image.width() >= 800 and image.height() >= 500
    assert json.loads(stats.read_text())["streams"]["sim-eeg"]["received"] > 0
    manifest = json.loads((record / "manifest.json").read_text())  # --record: from the first sample
    assert manifest["stop_lsl"] is not None
    assert {s["name"]: s["count"] for s in manifest["streams"]}["sim-eeg"] > 0
    # a folder that is not empty: a message and exit code 2, no window, and nothing opened
    # that the corrected command would find in its way (the predictions log)
    log = tmp_path / "p.csv"
    args = ["demo", "--duration", "1", "--no-lsl", "--quiet", "--predictions", str(log)]
    assert main([*args, "--record", str(record)]) == 2 and not log.exists()
    # a screenshot that cannot be written: said before anything starts, exit code 2
    again = tmp_path / "stats2.json"
    bad_shot = stats / "dash.png"  # inside a file
    assert main([*args, "--screenshot", str(bad_shot), "--stats", str(again)]) == 2
    assert not again.exists() and not log.exists()


def test_record_button_markers_and_self_report_write_a_session(qtbot, tmp_path):
    import json

    import pyxdf

    cfg = demo_config(tmp_path, models=False)
    folder = tmp_path / "rec"
    window = Dashboard(lambda: Session(cfg), session=Session(cfg), record_dir=folder)
    qtbot.addWidget(window)
    window.show()
    rows = window.sources_panel.rows
    qtbot.waitUntil(
        lambda: "sim-eeg" in rows and rows["sim-eeg"].state is StreamState.CONNECTED,
        timeout=WAIT_MS,
    )
    session = window.session
    qtbot.waitUntil(lambda: session.clock.now() - session.started_at > 3.0, timeout=WAIT_MS)
    window.controls.record.click()
    assert window.state == "recording" and window.session.recording is not None
    assert "recording" in window.windowTitle()
    # the REC clock counts the recording's own time, not the session's
    qtbot.waitUntil(lambda: "REC" in window.controls.record_info.text(), timeout=WAIT_MS)
    shown = window.controls.record_info.text().split("</span>")[1].split()[0]
    minutes, seconds = (int(v) for v in shown.split(":"))
    assert 60 * minutes + seconds < session.clock.now() - session.started_at - 2.0
    qtbot.wait(600)
    window.controls.marker_text.setText("stimulus on")
    window.controls.marker.click()
    window.controls.valence.setValue(7)
    window.controls.arousal.setValue(3)
    window.controls.submit.click()
    # the marker shows as a labelled line across the signal plots
    qtbot.waitUntil(lambda: len(window.signal_view.marker_lines) == 1, timeout=WAIT_MS)
    assert window.affect_view.self_report == (7.0, 3.0)
    # the views show "seconds ago": the marker line slides left as time passes
    _, lines = window.signal_view.marker_lines[0]
    first = lines[0][1].value()
    assert -window.signal_view.seconds <= first <= 0.5
    qtbot.waitUntil(lambda: lines[0][1].value() < first - 0.3, timeout=WAIT_MS)
    qtbot.wait(600)
    window.controls.record.click()  # stop
    assert window.state == "running" and window.session.recording is None
    assert "saved" in window.controls.record_info.text()

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stop_lsl"] is not None
    counts = {s["name"]: s["count"] for s in manifest["streams"]}
    assert (
        counts["sim-eeg"] > 0
        and counts["affectlab-markers"] == 1
        and counts["affectlab-self-report"] == 1
    )
    streams, _ = pyxdf.load_xdf(str(folder / "streams.xdf"), dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    assert by_name["affectlab-markers"]["time_series"][0][0] == "stimulus on"
    assert list(by_name["affectlab-self-report"]["time_series"][0]) == [7.0, 3.0]
    # a second recording with the same preset folder goes to a fresh subfolder, never over the first
    window.controls.record.click()
    second = window.session.recording.folder
    assert second.parent == folder and second != folder
    window.controls.record.click()
    assert (second / "manifest.json").exists()


@pytest.mark.parametrize("how", ["stop button", "window closed"])
def test_stopping_while_recording_records_every_item_the_session_received(qtbot, tmp_path, how):
    """The session closes the recording after its drivers and workers stop, so the files
    hold every sample it received (the dashboard closed it first: 15 of 3,060 EEG samples
    and 2 of 43 predictions were missing in a reviewer's recording)."""
    import json

    cfg = demo_config(tmp_path, models=False)
    folder = tmp_path / "rec"
    session = Session(cfg)
    session.start_recording(folder)
    window = Dashboard(lambda: Session(cfg), session=session)
    qtbot.addWidget(window)
    window.show()
    assert window.state == "recording"
    ring = session.sources["sim-eeg"].ring
    qtbot.waitUntil(lambda: ring.head > 256, timeout=WAIT_MS)
    if how == "stop button":
        window.controls.start.click()
        qtbot.waitUntil(lambda: window.state == "stopped", timeout=WAIT_MS)
        assert "saved" in window.controls.record_info.text()
        assert not window.controls.record.isChecked()
    else:
        window.close()
    manifest = json.loads((folder / "manifest.json").read_text())
    counts = {s["name"]: s["count"] for s in manifest["streams"]}
    received = {name: src.ring.head for name, src in session.sources.items() if name in counts}
    assert counts["sim-eeg"] > 256 and "sim-davis-events" in received
    assert {name: counts[name] for name in received} == received


def test_replay_controls_move_the_replay(qtbot, tmp_path):
    from recordings.replay import ReplayControl
    from recordings.sources import open_recording

    cfg = demo_config(tmp_path, models=False)
    folder = tmp_path / "rec"
    live = Session(cfg)
    live.start_recording(folder)
    live.run_for(4.0)
    recording = open_recording(folder)

    def make_replay(speed: float = 1.0) -> Session:
        control = ReplayControl(recording, speed=speed)
        return Session(
            replace(cfg, name="replay", sources=[]),
            clock=control.clock,
            drivers=[control.driver],
            replay=control,
        )

    window = Dashboard(make_replay, session=make_replay())
    qtbot.addWidget(window)
    window.show()
    replay = window.session.replay
    c = window.controls
    assert (
        c.replay_box.isVisibleTo(window) and not c.marker.isEnabled() and not c.record.isEnabled()
    )
    qtbot.waitUntil(lambda: replay.position > 0.3, timeout=WAIT_MS)
    c.play.click()  # pause
    assert replay.paused
    qtbot.waitUntil(lambda: "paused" in window.windowTitle(), timeout=WAIT_MS)
    held = replay.position
    qtbot.wait(400)
    assert replay.position == pytest.approx(held, abs=0.05)
    c.speed.setCurrentIndex(next(i for i in range(c.speed.count()) if c.speed.itemData(i) == 2.0))
    assert replay.speed == 2.0
    c.seek.setValue(750)  # 75 % of the recording, as a click on the track or a key does
    qtbot.waitUntil(lambda: replay.position >= 0.7 * replay.duration, timeout=WAIT_MS)
    # the plots count session time from the moved origin, and drop what came before it
    qtbot.waitUntil(lambda: window.affect_view.t_ref == replay.origin, timeout=WAIT_MS)
    assert window.affect_view.since > -math.inf
    c.play.click()  # play
    assert not replay.paused
    qtbot.waitUntil(
        lambda: replay.finished or replay.position > 0.8 * replay.duration, timeout=WAIT_MS
    )
    qtbot.waitUntil(
        lambda: window.signal_view.points_shown().get("sim-ecg", 0) > 0, timeout=WAIT_MS
    )
    qtbot.waitUntil(lambda: replay.finished and c.play.text() == "Play", timeout=WAIT_MS)
    c.play.click()  # at the end: again from the start
    assert not replay.paused and not replay.finished
    qtbot.waitUntil(lambda: 0 < replay.position < 0.5 * replay.duration, timeout=WAIT_MS)
    # a click on the track seeks once: a middle click (Fusion's "absolute set") both sets
    # the value and presses the handle, and seeking on each made it seek twice
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    seeks: list[float] = []
    seek = replay.seek
    replay.seek = lambda t: (seeks.append(t), seek(t))[1]
    for button in (QtCore.Qt.MouseButton.MiddleButton, QtCore.Qt.MouseButton.LeftButton):
        away = 0.9 if c.seek.value() < SEEK_STEPS / 2 else 0.1  # the track, not the handle
        track = QtCore.QPoint(int(c.seek.width() * away), c.seek.height() // 2)
        seeks.clear()
        QTest.mouseClick(c.seek, button, pos=track)
        assert len(seeks) == 1, (button, seeks)
    window.shutdown()
    # a speed from the command line that the list lacks is shown, and 1x can be chosen
    other = Dashboard(lambda: make_replay(3.0), session=make_replay(3.0))
    qtbot.addWidget(other)
    box = other.controls.speed
    assert (box.currentText(), box.currentData()) == ("3×", 3.0)
    box.setCurrentIndex(box.findText("1×"))
    assert other.session.replay.speed == 1.0
    other.shutdown()
    recording.close()
