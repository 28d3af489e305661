"""The one clock: LSL seconds, the virtual replay clock, and Unix -> LSL mapping."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import numpy as np
import pylsl
import pytest

from core.clock import (
    RealClock,
    UnixClockMapper,
    VirtualClock,
    lsl_now,
    measure_unix_offset,
)

# ------------------------------------------------------------------ real clock


def test_real_clock_is_monotonic() -> None:
    clock = RealClock()
    t = np.array([clock.now() for _ in range(10_000)])
    assert np.all(np.diff(t) >= 0)


def test_real_clock_is_the_lsl_clock() -> None:
    clock = RealClock()
    for _ in range(100):
        a = pylsl.local_clock()
        t = clock.now()
        b = pylsl.local_clock()
        assert a <= t <= b
    a = pylsl.local_clock()
    assert a <= lsl_now() <= pylsl.local_clock()


def test_real_clock_sleep_until() -> None:
    clock = RealClock()
    target = clock.now() + 0.02
    asyncio.run(clock.sleep_until(target))
    assert clock.now() >= target
    before = clock.now()
    asyncio.run(clock.sleep_until(before - 10.0))  # the past: returns at once
    assert clock.now() - before < 1.0


# ------------------------------------------------------------------ virtual clock


def test_virtual_clock_advances_and_never_goes_back() -> None:
    clock = VirtualClock(start=5.0)
    assert clock.now() == 5.0
    clock.advance_to(7.5)
    assert clock.now() == 7.5
    clock.advance_to(6.0)
    assert clock.now() == 7.5
    clock.advance_to(np.float64(8.0))
    assert clock.now() == 8.0 and type(clock.now()) is float


def test_virtual_wait_until_reached_returns_at_once() -> None:
    clock = VirtualClock(10.0)
    assert clock.wait_until(10.0, timeout=0) is True
    assert clock.wait_until(3.0) is True


def test_virtual_wait_until_times_out() -> None:
    clock = VirtualClock(0.0)
    assert clock.wait_until(1.0, timeout=0.01) is False
    assert clock.now() == 0.0


def test_virtual_wait_until_wakes_when_another_thread_advances() -> None:
    clock = VirtualClock(0.0)
    results: list[tuple[bool, float]] = []

    def waiter() -> None:
        ok = clock.wait_until(3.0, timeout=10.0)
        results.append((ok, clock.now()))

    th = threading.Thread(target=waiter)
    th.start()
    for t in (1.0, 2.0, 2.5):
        clock.advance_to(t)
        time.sleep(0.005)
        assert th.is_alive()  # not there yet
    clock.advance_to(3.0)
    th.join(timeout=5)
    assert not th.is_alive()
    assert results == [(True, 3.0)]


def test_virtual_close_releases_waiters_with_false() -> None:
    clock = VirtualClock(0.0)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(clock.wait_until(100.0, timeout=10.0)))
        for _ in range(3)
    ]
    for th in threads:
        th.start()
    time.sleep(0.01)
    assert not clock.closed
    clock.close()
    for th in threads:
        th.join(timeout=5)
    assert clock.closed
    assert results == [False, False, False]
    # After close, a wait for a time already reached still reports True.
    assert clock.wait_until(0.0) is True
    assert clock.wait_until(1.0) is False


def test_virtual_async_sleep_until_with_a_thread_advancing() -> None:
    clock = VirtualClock(0.0)
    woke_at: list[float] = []

    def advance() -> None:
        for k in range(1, 41):
            clock.advance_to(k * 0.25)
            time.sleep(0.001)

    async def main() -> None:
        th = threading.Thread(target=advance)
        th.start()
        for target in (2.0, 5.0, 10.0):
            await clock.sleep_until(target)
            woke_at.append(clock.now())
        await asyncio.to_thread(th.join)

    asyncio.run(asyncio.wait_for(main(), timeout=10))
    assert woke_at[0] >= 2.0 and woke_at[1] >= 5.0 and woke_at[2] == 10.0


def test_virtual_async_sleep_until_released_by_close() -> None:
    clock = VirtualClock(0.0)

    async def main() -> float:
        threading.Timer(0.02, clock.close).start()
        await clock.sleep_until(1e9)
        return clock.now()

    assert asyncio.run(asyncio.wait_for(main(), timeout=5)) == 0.0


def test_virtual_async_sleep_does_not_block_the_loop() -> None:
    clock = VirtualClock(0.0)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    async def main() -> None:
        task = asyncio.create_task(ticker())
        threading.Timer(0.05, clock.advance_to, args=(1.0,)).start()
        await clock.sleep_until(1.0)
        task.cancel()

    asyncio.run(asyncio.wait_for(main(), timeout=5))
    assert ticks >= 5  # the loop kept running other tasks while waiting


# ------------------------------------------------------------------ Unix -> LSL


def test_measure_unix_offset_matches_time_minus_lsl() -> None:
    est = measure_unix_offset()
    direct = time.time() - pylsl.local_clock()
    assert abs(est.offset - direct) < 5e-3
    assert 0.0 <= est.uncertainty < 1e-3
    assert abs(est.measured_at - lsl_now()) < 1.0
    assert measure_unix_offset(n=0).uncertainty >= 0.0  # at least one bracket


def test_the_offset_comes_from_the_tightest_bracket_at_its_middle(monkeypatch) -> None:
    """Scripted readings (LSL, Unix, LSL) x 3: the Unix reading is known only to lie
    within its bracket, so the narrowest bracket is the estimate, its middle the LSL
    time of the Unix reading, and half its width the error bound (BrainFlow and DVS
    stamps are mapped with this offset: a wrong one shifts them against every other
    stream)."""
    import core.clock as clock_mod

    lsl = iter([10.0, 10.0 + 2**-8, 20.0, 20.0 + 2**-10, 30.0, 30.0 + 2**-9])
    unix = iter([1010.75, 1020.5, 1030.25])
    monkeypatch.setattr(clock_mod, "lsl_now", lambda: next(lsl))
    monkeypatch.setattr(clock_mod, "time", SimpleNamespace(time=lambda: next(unix)))
    est = measure_unix_offset(n=3)
    mid = 20.0 + 2**-11  # the middle of the 2nd (the narrowest) bracket
    assert est.offset == 1020.5 - mid
    assert est.uncertainty == 2**-11
    assert est.measured_at == mid


def test_mapper_round_trip_scalar_and_array() -> None:
    mapper = UnixClockMapper(refresh_s=3600.0)
    x = lsl_now()
    # Unix seconds as float64 resolve ~0.24 us at today's magnitude: that bounds the trip.
    assert mapper.unix_to_lsl(mapper.lsl_to_unix(x)) == pytest.approx(x, abs=5e-7)
    assert mapper.lsl_to_unix(x) - x == pytest.approx(mapper.offset, abs=5e-7)
    arr = x + np.linspace(-5.0, 5.0, 101)
    np.testing.assert_allclose(mapper.unix_to_lsl(mapper.lsl_to_unix(arr)), arr, atol=1e-6)
    # A Unix reading taken now lands on the LSL clock now.
    a = lsl_now()
    mapped = mapper.unix_to_lsl(time.time())
    b = lsl_now()
    assert a - 5e-3 <= mapped <= b + 5e-3


def test_mapper_offset_consistent_with_wall_clock() -> None:
    mapper = UnixClockMapper()
    assert abs(mapper.offset - (time.time() - pylsl.local_clock())) < 5e-3


def test_unix_us_to_lsl_on_int64_microseconds() -> None:
    mapper = UnixClockMapper(refresh_s=3600.0)
    now_us = int(time.time() * 1e6)
    us = now_us + np.arange(0, 10_000, 7, dtype=np.int64)  # dv-processing style stamps
    lsl = mapper.unix_us_to_lsl(us)
    assert lsl.dtype == np.float64
    assert abs(lsl[0] - lsl_now()) < 5e-3
    # Microsecond steps survive (float64 at Unix magnitudes resolves ~0.25 us).
    np.testing.assert_allclose(np.diff(lsl), 7e-6, atol=5e-7)
    np.testing.assert_allclose(mapper.lsl_to_unix(lsl), us * 1e-6, atol=1e-6)


def test_mapper_refreshes_its_estimate() -> None:
    mapper = UnixClockMapper(refresh_s=0.0)
    first = mapper.estimate
    time.sleep(0.002)
    second = mapper.estimate
    assert second.measured_at > first.measured_at
    assert abs(second.offset - first.offset) < 5e-3
    stable = UnixClockMapper(refresh_s=3600.0)
    assert stable.estimate is stable.estimate
