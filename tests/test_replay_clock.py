"""The replay clock's pace, read against the LSL clock it is built on, and the range a replay
may start from. Bracketed by readings taken before and after, so a busy machine cannot
change the answer."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from app.config import load_config, shipped_config
from app.session import Session
from core.clock import lsl_now
from recordings.replay import ReplayClock, ReplayControl
from recordings.sources import open_recording


def _elapsed_bounds(clock: ReplayClock, before: float, after: float) -> tuple[float, float, float]:
    """(least real seconds, replay clock reading, most real seconds) since the clock was made
    between ``before`` and ``after``."""
    time.sleep(0.2)
    r1 = lsl_now()
    now = clock.now()
    r2 = lsl_now()
    return r1 - after, now, r2 - before


@pytest.mark.parametrize("speed", [0.5, 4.0])
def test_a_paced_replay_clock_runs_at_its_speed(speed):
    """``--speed 4`` must play four times as fast; a clock that ignored it would play
    every replay in real time without a word."""
    before = lsl_now()
    clock = ReplayClock(100.0, speed)
    after = lsl_now()
    least, now, most = _elapsed_bounds(clock, before, after)
    assert least * speed <= now - 100.0 <= most * speed


def test_a_speed_change_and_a_pause_carry_the_time_over():
    clock = ReplayClock(100.0, 1.0)
    time.sleep(0.1)
    before = lsl_now()
    clock.set_mode(3.0, False)
    after = lsl_now()
    at_change = clock._base  # the replay time the new speed counts from
    least, now, most = _elapsed_bounds(clock, before, after)
    assert at_change >= 100.1 - 1e-6
    assert least * 3.0 <= now - at_change <= most * 3.0
    clock.set_mode(3.0, True)  # paused: the time stands
    held = clock.now()
    time.sleep(0.1)
    assert clock.now() == held >= now


def test_a_replay_cannot_start_past_the_end_of_its_recording(tmp_path):
    cfg = load_config(shipped_config("demo"))
    session = Session(replace(cfg, models=[], sinks=[]))
    session.start_recording(tmp_path / "rec")
    session.run_for(1.0)
    recording = open_recording(tmp_path / "rec")
    try:
        with pytest.raises(ValueError, match=r"--from 99 s is past the end of .*rec"):
            ReplayControl(recording, from_s=99.0)
        ReplayControl(recording, from_s=0.5)  # within it: fine
    finally:
        recording.close()
