"""The replay controls of the dashboard: Play/Pause, speed and the seek slider, wired to the
session's ``ReplayControl`` (when the session is a replay) and kept showing where it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.gui.controls import SEEK_STEPS, Controls


class ReplaySteering:
    """Steers the replay that ``replay_of()`` returns (None: a live session, nothing to do).

    A drag of the seek slider seeks once, when released; a click on the track or a key
    (Page Up, End) moves the value without a drag and seeks as it does. A middle click
    does both (it sets the value, then presses and releases the handle unmoved), so a
    release seeks only after a drag.
    """

    def __init__(self, controls: Controls, replay_of: Callable[[], Any]) -> None:
        self.controls = controls
        self.replay_of = replay_of
        self.holding = False  # the seek slider is held down
        self.dragged = False  # ... and was moved while held
        c = controls
        c.play.clicked.connect(self.toggle_play)
        c.speed.currentIndexChanged.connect(self._speed_changed)
        c.seek.sliderPressed.connect(self._pressed)
        c.seek.sliderMoved.connect(lambda _value: setattr(self, "dragged", True))
        c.seek.sliderReleased.connect(self._released)
        c.seek.valueChanged.connect(self._moved)

    def toggle_play(self) -> None:
        replay = self.replay_of()
        if replay is None:
            return
        if replay.finished:  # Play at the end plays it again from the start, as a player does
            replay.seek(0.0)
            replay.play()
        elif replay.paused:
            replay.play()
        else:
            replay.pause()
        self.update()

    def update(self) -> None:
        """Show the replay's state and position (the slider follows unless it is held)."""
        replay = self.replay_of()
        if replay is None:
            return
        c = self.controls
        c.play.setText("Play" if replay.paused or replay.finished else "Pause")
        if not self.holding and replay.duration > 0:
            c.seek.blockSignals(True)
            c.seek.setValue(round(replay.position / replay.duration * SEEK_STEPS))
            c.seek.blockSignals(False)
        end = "  (end)" if replay.finished else ""
        c.position.setText(f"{replay.position:.1f} / {replay.duration:.1f} s{end}")

    def _speed_changed(self, _index: int) -> None:
        replay = self.replay_of()
        if replay is not None:
            replay.set_speed(self.controls.speed_value())

    def _pressed(self) -> None:
        self.holding, self.dragged = True, False

    def _moved(self, _value: int) -> None:
        if not self.controls.seek.isSliderDown():
            self._seek_to_slider()

    def _released(self) -> None:
        self.holding = False
        if self.dragged:
            self._seek_to_slider()

    def _seek_to_slider(self) -> None:
        replay = self.replay_of()
        if replay is not None and replay.duration > 0:
            replay.seek(self.controls.seek.value() / SEEK_STEPS * replay.duration)
