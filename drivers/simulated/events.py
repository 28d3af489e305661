"""A DVS emulator: events from consecutive frames, the way v2e and ESIM make them.

Each pixel remembers a reference log intensity. When the log intensity of a
new frame differs from it by ``n`` whole contrast thresholds, the pixel emits
``n`` events of that sign and its reference moves by ``n * C`` (REFERENCE 6).
Thresholds differ per pixel (mean ``threshold``, spread ``threshold_sigma``),
separately for ON and OFF. Intensity is assumed to change linearly in log
space between the two frames, so each event is stamped when the line crosses
its level. A refractory period drops events that follow a pixel's previous
event too closely (the reference still moves). Noise: shot noise (random ON/OFF
events, ``shot_noise_hz`` per pixel in the dark, a quarter of that at full
brightness, which also move the reference as in v2e, so a pixel often answers
a noise event with one of the opposite sign at the next frame) and leak (the reference drifts down
by ``leak_hz * C`` per second, so static pixels now and then fire ON).

Log intensity uses v2e's lin-log curve: linear below ``lin_log_cutoff`` DN so
that the darkest pixels do not explode into noise. Polarity is 1 for ON, 0 for OFF.

Input is either 8-bit video (uint8, as v2e reads it: the events then inherit the
video's clipping and quantisation) or the irradiance itself as floats on the same
DN scale, unbounded above. The virtual DAVIS gives the latter: a DVS pixel's
logarithmic photoreceptor spans about 120 dB against the APS readout's 56 dB, so
it neither saturates where the frame clips nor sees the frame's 8-bit steps.
"""

from __future__ import annotations

import numpy as np

from core.streams import EVENT_DTYPE
from drivers.simulated.noise import rng_for


def lin_log(x: np.ndarray, cutoff: float = 20.0) -> np.ndarray:
    """log(DN), linear below ``cutoff`` (v2e's ``lin_log``), as float32; negatives read as 0.

    Computed in float32 (a live 346 x 260 frame in well under a millisecond); the
    uint8 table is built by this same function, so both inputs give equal values.
    """
    x = np.asarray(x, dtype=np.float32)
    c = np.float32(cutoff)
    y = np.log(np.maximum(x, c))
    linear = x <= c
    y[linear] = np.maximum(x[linear], np.float32(0.0)) * np.float32(np.log(cutoff) / cutoff)
    return y


def lin_log_table(cutoff: float = 20.0) -> np.ndarray:
    """``lin_log`` of every 8-bit value: uint8 frames are looked up, not computed."""
    return lin_log(np.arange(256), cutoff)


class EventEmulator:
    """Stateful: feed frames in time order; each call returns the events since the last one."""

    def __init__(
        self,
        shape: tuple[int, int],
        seed: int = 0,
        threshold: float = 0.2,
        threshold_sigma: float = 0.03,
        refractory_s: float = 0.5e-3,
        shot_noise_hz: float = 0.2,
        leak_hz: float = 0.05,
        lin_log_cutoff: float = 20.0,
    ):
        if threshold <= 0:
            raise ValueError("threshold must be > 0")
        self.shape = (int(shape[0]), int(shape[1]))
        self.refractory_s = float(refractory_s)
        self.shot_noise_hz = float(shot_noise_hz)
        self.leak_hz = float(leak_hz)
        self._rng = rng_for(seed, "dvs.emulator")
        n = self.shape[0] * self.shape[1]
        floor = max(0.01, 0.25 * threshold)
        self.c_on = np.maximum(self._rng.normal(threshold, threshold_sigma, n), floor).astype(
            np.float32
        )
        self.c_off = np.maximum(self._rng.normal(threshold, threshold_sigma, n), floor).astype(
            np.float32
        )
        self._leak = (np.maximum(self._rng.normal(1.0, 0.1, n), 0.0) * leak_hz * self.c_on).astype(
            np.float32
        )
        self._cutoff = float(lin_log_cutoff)
        self._lut = lin_log_table(lin_log_cutoff)
        self._ref: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self._t_prev = 0.0
        self._last_t = np.full(n, -np.inf)
        self.frames = 0
        self.events = 0

    def reset(self) -> None:
        """Forget the previous frame; the next one only sets the references."""
        self._ref = self._prev = None
        self._last_t[:] = -np.inf

    def emulate(self, frame: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Events between the previous frame and this one (taken at ``t``), sorted by time.

        ``frame``: uint8 video, or float irradiance in DN (>= 0, may exceed 255).
        Returns a structured ``EVENT_DTYPE`` array and float64 stamps in
        ``(t_previous, t]``. The first frame only initialises the pixels.
        """
        frame = np.asarray(frame)
        if frame.shape != self.shape or not (
            frame.dtype == np.uint8 or np.issubdtype(frame.dtype, np.floating)
        ):
            raise ValueError(
                f"emulator expects uint8 or float frames of shape {self.shape}, "
                f"got {frame.dtype} {frame.shape}"
            )
        flat = frame.reshape(-1)
        log_i = self._log_intensity(flat)
        self.frames += 1
        if self._ref is None:
            self._ref, self._prev, self._t_prev = log_i.copy(), log_i, float(t)
            return np.empty(0, EVENT_DTYPE), np.empty(0)
        t = float(t)
        dt = t - self._t_prev
        if dt <= 0:
            raise ValueError(f"frames must come in time order: {t} after {self._t_prev}")
        ref, prev = self._ref, self._prev
        if self.leak_hz > 0:
            ref -= self._leak * np.float32(dt)
        diff = log_i - ref
        parts = [
            self._crossings(diff, log_i, prev, dt, on=True),
            self._crossings(diff, log_i, prev, dt, on=False),
        ]
        if self.shot_noise_hz > 0:
            parts.append(self._shot_noise(flat, dt))
        pix = np.concatenate([p[0] for p in parts])
        pol = np.concatenate([p[1] for p in parts])
        ts = np.concatenate([p[2] for p in parts])
        order = np.argsort(ts, kind="stable")
        pix, pol, ts = pix[order], pol[order], ts[order]
        events = np.empty(len(pix), EVENT_DTYPE)
        events["y"], events["x"] = np.divmod(pix, self.shape[1])
        events["polarity"] = pol
        self._prev, self._t_prev = log_i, t
        self.events += len(events)
        return events, ts

    def _log_intensity(self, flat: np.ndarray) -> np.ndarray:
        if flat.dtype == np.uint8:
            return np.take(self._lut, flat)
        return lin_log(flat, self._cutoff)

    def _crossings(
        self, diff: np.ndarray, log_i: np.ndarray, prev: np.ndarray, dt: float, on: bool
    ):
        c = self.c_on if on else self.c_off
        signed = diff if on else -diff
        counts = np.floor(signed / c).astype(np.int64)
        pixels = np.flatnonzero(counts > 0)
        if pixels.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0)
        k = counts[pixels]
        step = c[pixels] if on else -c[pixels]
        self._ref[pixels] += k * step  # the reference moves by n * C, refractory or not
        total = int(k.sum())
        group = np.repeat(np.arange(pixels.size), k)
        j = np.arange(1, total + 1) - np.repeat(np.cumsum(k) - k, k)
        base = self._ref[pixels] - k * step  # reference before this frame
        span = (log_i[pixels] - prev[pixels]).astype(np.float64)
        level = base[group] + j * step[group]
        flat_span = np.abs(span) < 1e-6
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = (level - prev[pixels][group]) / span[group]
        if np.any(flat_span):  # leak or noise pushed a static pixel: spread over the interval
            still = flat_span[group]
            frac[still] = j[still] / (k[group][still] + 1.0)
        ts = self._t_prev + np.clip(frac, 1e-6, 1.0) * dt
        keep = np.ones(total, dtype=bool)
        if self.refractory_s > 0:
            ok = ts >= self._last_t[pixels][group] + self.refractory_s
            dropped = np.bincount(group, weights=~ok, minlength=pixels.size)
            spacing = np.where(
                flat_span, dt / (k + 1.0), dt * np.abs(step) / np.maximum(np.abs(span), 1e-6)
            )
            every = np.maximum(
                1, np.ceil(self.refractory_s / np.maximum(spacing, 1e-12) - 1e-9)
            ).astype(np.int64)
            keep = ok & (((j - 1 - dropped[group]).astype(np.int64) % every[group]) == 0)
            np.maximum.at(self._last_t, pixels[group[keep]], ts[keep])
        pol = np.full(int(keep.sum()), 1 if on else 0, np.int8)
        return pixels[group[keep]], pol, ts[keep]

    def _shot_noise(self, flat: np.ndarray, dt: float):
        n_pix = flat.size
        count = self._rng.poisson(self.shot_noise_hz * n_pix * dt)
        pix = self._rng.integers(0, n_pix, count)
        dark = 1.0 - np.minimum(flat[pix], 255.0) / 255.0
        pix = pix[self._rng.random(count) < 0.25 + 0.75 * dark]
        on = self._rng.random(pix.size) < 0.5
        ts = self._t_prev + (1.0 - self._rng.random(pix.size)) * dt
        np.add.at(self._ref, pix, np.where(on, self.c_on[pix], -self.c_off[pix]))
        return pix.astype(np.int64), on.astype(np.int8), ts
