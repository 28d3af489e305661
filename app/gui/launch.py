"""Running the dashboard as a command: the window's process, its exit code, Ctrl-C in the
terminal, the timed close with a screenshot (``--duration``, ``--screenshot``).

Kept apart from ``dashboard.py``, which is the window itself: this is what ``demo``,
``run`` and ``replay`` call, and what a test of the window never needs.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from app.gui.dashboard import Dashboard
from app.interrupts import ending_signals, ignore_from_now, uninterruptible

if TYPE_CHECKING:
    from app.session import Session


def run_dashboard(
    make_session: Callable[[], Session],
    *,
    duration: float | None = None,
    screenshot: Path | None = None,
    record_dir: Path | None = None,
    title: str = "affectlab",
    on_session_end: Callable[[Session], None] | None = None,
    record_at_start: Path | None = None,
) -> int:
    """Open the window, start a session from ``make_session``, return an exit code when it closes.

    With ``duration`` the window closes by itself after that many seconds,
    saving ``screenshot`` (PNG) first. The first session is built here, before
    the window opens, so a config or device error surfaces as the caller's
    exception (a message, not a dialog). ``on_session_end`` sees every session
    once it has stopped (statistics files). ``record_at_start`` records the first session
    from its first sample into that folder (``--record``; a RecordingError is the caller's).
    ``record_dir`` only presets the folder the Record button uses (else it asks).
    Exit code 0, or 1 when the engine failed or the screenshot could not be written.
    """
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    # until the window takes over Ctrl-C and SIGTERM: the seconds the models take to load
    with ending_signals() as starting:
        session = make_session()
        try:
            if record_at_start is not None:
                session.start_recording(Path(record_at_start))  # from the first sample
            window = Dashboard(
                make_session,
                session=session,
                title=title,
                record_dir=record_dir,
                on_session_end=on_session_end,
            )
        except BaseException:  # a folder refused, a signal: no empty log nor recording left
            session.abandon()
            if session.started_at and on_session_end is not None:
                on_session_end(session)  # it ran: its statistics, as at any later signal
            raise
    if starting.signum is not None:
        return starting.exit_code
    window.show()
    interrupted = _close_on_ctrl_c(window)
    unsaved: list[str] = []
    if duration:

        def finish() -> None:
            # the window closes whatever happens to the screenshot: a session that never
            # ended would never write its statistics nor stop its recording
            try:
                if screenshot is not None:
                    save_screenshot(window, screenshot)
            except OSError as exc:
                unsaved.append(str(exc))
                print(f"affectlab: {exc}", file=sys.stderr)
            finally:
                window.close()

        QtCore.QTimer.singleShot(int(duration * 1000), finish)
    try:
        app.exec()
    finally:
        if interrupted:
            ignore_from_now()  # a second Ctrl-C must not cut the ending short
        elif threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with uninterruptible():
        window.shutdown()
    if interrupted:
        return 128 + interrupted[0]  # 130 for Ctrl-C, 143 for SIGTERM
    failed = window.session is not None and window.session.engine_error is not None
    return 1 if failed or unsaved else 0


def _close_on_ctrl_c(window: Dashboard) -> list[int]:
    """Ctrl-C in the terminal (or SIGTERM) closes the window cleanly, as it ends a headless
    session.

    Qt's event loop runs in C++, where Python never sees the signal; a idle timer gives
    the interpreter a moment now and then to run the handler. Returns a list that gets
    the signal's number once one came (read after the loop ends).
    """
    pressed: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return pressed

    def handler(signum: int, _frame: object) -> None:
        pressed.append(signum)
        window.close()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)  # kill, timeout, systemd: the same clean end
    ticker = QtCore.QTimer(window)
    ticker.timeout.connect(lambda: None)
    ticker.start(200)
    return pressed


def save_screenshot(window: QtWidgets.QWidget, path: Path) -> None:
    """The window as a PNG (works offscreen: QT_QPA_PLATFORM=offscreen); OSError saying why
    when it cannot be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"could not write the screenshot {str(path)!r}: {exc}") from exc
    if not window.grab().save(str(path), "PNG"):
        raise OSError(f"could not write the screenshot {str(path)!r}")
