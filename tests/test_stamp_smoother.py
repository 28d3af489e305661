"""The LSL driver's de-jitter: smooths jitter and bursts, follows a drifting clock, and
starts a new line at a hole instead of running over it."""

import numpy as np
import pytest

from drivers.stamp_smoother import StampSmoother

RATE = 250.0


def _smooth(raw: np.ndarray, chunk: int, hole_s: float = 0.3) -> tuple[np.ndarray, StampSmoother]:
    s = StampSmoother(RATE, hole_s)
    out = np.concatenate([s(raw[a : a + chunk]) for a in range(0, len(raw), chunk)])
    return out, s


def test_jitter_is_smoothed_to_the_true_times():
    n = int(RATE * 60)
    true = 100.0 + np.arange(n) / RATE
    raw = np.maximum.accumulate(true + np.random.default_rng(0).normal(0.0, 0.002, n))
    out, s = _smooth(raw, chunk=7)
    settled = slice(int(RATE * 5), None)
    assert np.abs(out - true)[settled].max() < 0.0005  # against ~0.006 raw
    assert s.holes == 0


def test_bursts_become_evenly_spaced_samples():
    """Blocks of 50 samples stamped together every 0.2 s (a device's blocks pushed sample
    by sample as the last one is due): evenly spaced after smoothing, at their true times
    (fitted raw, they were a fixed half-block late)."""
    n = int(RATE * 30)
    true = np.arange(n) / RATE
    raw = true[(np.arange(n) // 50) * 50 + 49]  # each block stamped at its last sample
    out, s = _smooth(raw, chunk=50)
    settled = slice(int(RATE * 5), None)
    steps = np.diff(out[settled])
    assert steps.min() > 0.9 / RATE and steps.max() < 1.25 / RATE  # raw: 0 and 0.2 s
    lag = (out - true)[settled]
    assert np.ptp(lag) < 0.005
    assert lag.mean() == pytest.approx(0.0, abs=0.001)
    assert s.holes == 0


def test_a_clock_running_fast_is_followed():
    n = int(RATE * 120)
    true = np.arange(n) / (RATE * 1.002)  # the sender's clock: 0.2 % more samples per s
    raw = true + np.random.default_rng(1).normal(0.0, 0.001, n)
    out, _ = _smooth(raw, chunk=25)
    assert np.abs(out - true)[int(RATE * 10) :].max() < 0.0005


def test_a_pause_stays_a_hole_and_the_stamps_after_it_are_right():
    n = int(RATE * 20)
    true = 50.0 + np.arange(n) / RATE
    true[n // 2 :] += 1.5  # the sender stops for 1.5 s with its outlet alive
    raw = true + np.random.default_rng(2).normal(0.0, 0.001, n)
    out, s = _smooth(raw, chunk=10)
    assert s.holes == 1
    assert np.diff(out)[n // 2 - 1] == pytest.approx(1.5 + 1 / RATE, abs=0.005)
    assert np.abs(out - true)[n // 2 : n // 2 + int(RATE)].max() < 0.005


def test_a_hole_inside_a_chunk_splits_it():
    true = np.r_[np.arange(500), np.arange(600, 1100)] / RATE
    out, s = _smooth(true, chunk=1000)
    assert s.holes == 1
    np.testing.assert_allclose(out, true, atol=1e-9)


def test_stamps_never_go_back_and_reset_starts_a_new_line():
    rng = np.random.default_rng(4)
    raw = np.maximum.accumulate(np.arange(5000) / RATE + rng.normal(0.0, 0.01, 5000))
    s = StampSmoother(RATE, 0.3)
    cuts = np.unique(np.r_[0, rng.integers(1, 5000, 200), 5000])  # chunks of 1 to ~100
    out = np.concatenate([s(raw[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    assert np.all(np.diff(out) >= 0)
    assert s.holes == 0
    s.reset()
    later = 1000.0 + np.arange(10) / RATE  # a new line, anchored on its first stamp
    np.testing.assert_allclose(s(later), later, atol=1e-9)
    assert s.holes == 0  # a reset is not a hole


def test_six_hours_at_1000_hz_stay_exact():
    """Indices reach 21 million: means and co-moments, not raw sums, keep the fit exact."""
    s = StampSmoother(1000.0, 0.3)
    chunk = 100_000  # 100 s a chunk keeps the test quick
    wobble = np.where(np.arange(chunk) % 2, 0.001, -0.001)  # +-1 ms of jitter
    for a in range(0, 6 * 3_600_000, chunk):
        true = 7e5 + (a + np.arange(chunk)) / 1000.0
        out = s(true + wobble)
    assert np.abs(out - true).max() < 1e-4
    assert s.holes == 0


def test_a_rate_of_zero_is_refused():
    with pytest.raises(ValueError, match="rate"):
        StampSmoother(0.0, 0.3)


def test_jittery_bursts_never_step_back():
    """Blocks of 25 stamped together and delivered up to tens of ms late (a BLE-style
    sender): a refit may put a block's first stamp before the last one handed out. The
    ring would clamp it and count it as non-monotonic, and the aligner would see two
    samples out of order: the stamps that leave the smoother must never go back."""
    n, block = int(RATE * 20), 25
    true = np.arange(n) / RATE
    for seed in range(6):
        late = np.abs(np.random.default_rng(seed).normal(0.0, 0.02, n // block))
        raw = np.maximum.accumulate(
            true[(np.arange(n) // block) * block + block - 1] + np.repeat(late, block)
        )
        out, s = _smooth(raw, chunk=block)
        assert np.all(np.diff(out) >= 0), seed
        assert s.holes == 0


@pytest.mark.parametrize("chunk", [25, 225_000])  # pulled as it comes, or one backlog
def test_a_sender_whose_rate_changes_is_followed_to_its_new_period(chunk):
    """A sender's clock changes its pace by 0.1 % (temperature, an NTP step) and keeps
    it: the line must forget the old pace (90 s half time), or every stamp after drifts
    further off. 600 s later the smoothed period is within a tenth of the change of
    the new one, however the stamps were chunked."""
    old = 1 / RATE
    new = old * 1.001
    n_old, n_new = int(RATE * 300), int(RATE * 600)
    true = 1000.0 + np.r_[np.arange(n_old) * old, n_old * old + np.arange(n_new) * new]
    raw = true + np.random.default_rng(5).normal(0.0, 0.001, len(true))
    out, s = _smooth(raw, chunk=chunk)
    k = min(chunk, 250)  # the last chunk's spacing is the line's slope
    period = (out[-1] - out[-k]) / (k - 1)
    assert abs(period - new) < 0.1 * (new - old)
    assert s.holes == 0


def test_the_first_burst_of_a_line_is_spread_at_the_nominal_period():
    """The first block after a hole (or at the start) is 50 samples stamped together: it
    is placed back from its last stamp at the nominal period, not squeezed into a fraction
    of its real length (after which the next block's stamps would jump)."""
    s = StampSmoother(RATE, 0.3)
    out = s(np.full(50, 5.0))
    np.testing.assert_allclose(np.diff(out) * RATE, 1.0, atol=1e-9)  # in nominal periods
    assert out[-1] == 5.0


@pytest.mark.parametrize("stall_s", [0.35, 0.5, 1.0])
def test_a_sender_that_stalls_and_pushes_its_backlog_is_right_after_it(stall_s):
    """A sender that stamps as it pushes stalls, then pushes the samples it owes back to
    back (their stamps squeezed into microseconds) and goes on; read in 5 ms pulls. The
    samples after the backlog are stamped right at once (it bent the line: 66 ms early
    1 s after a 0.5 s stall, 3 ms still at 60 s)."""
    n = int(RATE * 90)
    true = np.arange(n) / RATE
    push = true + np.abs(np.random.default_rng(1).normal(0.0, 0.0003, n))
    owed = (true >= 30.0) & (true < 30.0 + stall_s)
    push[owed] = 30.0 + stall_s + np.arange(owed.sum()) * 2e-6
    push = np.maximum.accumulate(push)
    s = StampSmoother(RATE, 0.3)
    out = np.empty(n)
    pulls = np.searchsorted(push, np.arange(0.0, 91.0, 0.005), side="right")
    for a, b in zip(pulls[:-1], pulls[1:], strict=True):
        if b > a:
            out[a:b] = s(push[a:b])
    after = true >= 30.0 + stall_s
    err = np.abs(out - true)[after]
    assert err.max() < 1.0 / RATE  # at most a period, the backlog's newest sample
    assert err[int(RATE * 1) :].max() < 0.001
