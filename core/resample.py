"""Turning ring contents into the fixed shapes a model asked for.

Pure numpy functions, no state, so the aligner stays a scheduler and these
stay testable on their own:

- ``resample_numeric``: irregular or differently-clocked samples onto an
  exact time grid. Upsampling interpolates linearly; downsampling by a factor
  of 1.5 or more averages every source sample that falls in a target sample's
  period first (a boxcar anti-alias filter), so 256 Hz EEG handed to a 64 Hz
  model does not fold its beta band into theta. The boxcar is the period up to
  each instant (causal: a window's last instant needs no later data), so what
  it shows lags that instant by half a target period (62 ms at 8 Hz): the same
  live and in replay, and what the models were trained on.
- ``sample_frames``: the newest frame at or before each requested instant,
  resized by bilinear interpolation.
- ``bin_events``: events into per-slice, per-polarity pixel histograms.
"""

from __future__ import annotations

import numpy as np

from core.window import EventRepresentation


def target_grid(t_end: float, window_s: float, rate: float) -> np.ndarray:
    """``round(window_s * rate)`` instants ending exactly at ``t_end``, ``1/rate`` apart."""
    n = max(1, round(window_s * rate))
    return t_end - (n - 1 - np.arange(n)) / rate


def resample_numeric(
    ts: np.ndarray, data: np.ndarray, grid: np.ndarray, source_rate: float, target_rate: float
) -> np.ndarray:
    """Samples ``data`` (n, channels) stamped ``ts`` onto ``grid``; returns (channels, len(grid)).

    Outside the data's span the edge value is held (np.interp semantics); the
    caller decides from coverage whether that makes the input stale. A sample that
    is not a number (some amplifiers send NaN for a dropped sample) is left out of its
    channel, as if it had not come: the running sums of the boxcar would otherwise
    carry it into every later bin of the window.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    n_ch = data.shape[1]
    out = np.empty((n_ch, len(grid)), dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        for c in range(n_ch):
            ok = finite[:, c]
            out[c] = resample_numeric(ts[ok], data[ok, c], grid, source_rate, target_rate)[0]
        return out
    if len(ts) == 0:
        out.fill(np.nan)
        return out
    if len(ts) == 1:
        out[:] = data[0][:, None]
        return out
    if source_rate > 0 and source_rate >= 1.5 * target_rate:
        return _boxcar(ts, data, grid, target_rate, out)
    for c in range(n_ch):
        out[c] = np.interp(grid, ts, data[:, c])
    return out


def _boxcar(
    ts: np.ndarray, data: np.ndarray, grid: np.ndarray, target_rate: float, out: np.ndarray
) -> np.ndarray:
    """Mean of the samples in (t - 1/rate, t] for each grid instant t; interpolate empty bins."""
    lo = np.searchsorted(ts, grid - 1.0 / target_rate, side="right")
    hi = np.searchsorted(ts, grid, side="right")
    csum = np.vstack([np.zeros((1, data.shape[1])), np.cumsum(data, axis=0)])
    count = hi - lo
    filled = count > 0
    means = (csum[hi[filled]] - csum[lo[filled]]) / count[filled, None]
    out[:, filled] = means.T
    if not filled.all():
        empty = ~filled
        for c in range(data.shape[1]):
            out[c, empty] = np.interp(grid[empty], ts, data[:, c])
    return out


def resize_bilinear(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(n, H, W[, C]) -> (n, h, w[, C]) float32, pixel centres aligned (like cv2.INTER_LINEAR).

    Shrinking by a large factor first averages whole blocks so thin structures
    (eyelashes, the lid line) are not skipped by the sampling grid.
    """
    frames = np.asarray(frames, dtype=np.float32)
    h, w = size
    H, W = frames.shape[1], frames.shape[2]
    fy, fx = H // h, W // w
    if fy >= 2 or fx >= 2:
        fy, fx = max(1, fy), max(1, fx)
        Hc, Wc = (H // fy) * fy, (W // fx) * fx
        rest = frames.shape[3:]
        frames = frames[:, :Hc, :Wc].reshape(len(frames), Hc // fy, fy, Wc // fx, fx, *rest)
        frames = frames.mean(axis=(2, 4))
        H, W = frames.shape[1], frames.shape[2]
    if (h, w) == (H, W):
        return np.ascontiguousarray(frames)
    ys = np.clip((np.arange(h) + 0.5) * H / h - 0.5, 0, H - 1)
    xs = np.clip((np.arange(w) + 0.5) * W / w - 0.5, 0, W - 1)
    y0 = np.floor(ys).astype(np.intp)
    x0 = np.floor(xs).astype(np.intp)
    y1 = np.minimum(y0 + 1, H - 1)
    x1 = np.minimum(x0 + 1, W - 1)
    wy = (ys - y0).astype(np.float32)
    wx = (xs - x0).astype(np.float32)
    extra = (1,) * (frames.ndim - 3)
    wy = wy.reshape(1, h, 1, *extra)
    wx = wx.reshape(1, 1, w, *extra)
    top = frames[:, y0][:, :, x0] * (1 - wx) + frames[:, y0][:, :, x1] * wx
    bottom = frames[:, y1][:, :, x0] * (1 - wx) + frames[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def frame_scale(dtype: np.dtype) -> float:
    """What full scale is for a frame dtype, so every model sees [0, 1]."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u" or dtype.kind == "i":
        return float(np.iinfo(dtype).max)
    return 1.0


def sample_frames(
    ts: np.ndarray, frames: np.ndarray, instants: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """The newest frame at or before each instant (the oldest one if none is), resized to [0, 1]."""
    idx = np.searchsorted(ts, instants, side="right") - 1
    idx = np.clip(idx, 0, len(ts) - 1)
    picked = resize_bilinear(frames[idx], size)
    return picked / frame_scale(frames.dtype)


def bin_events(
    ts: np.ndarray,
    events: np.ndarray,
    slice_ends: np.ndarray,
    slice_s: float,
    sensor_size: tuple[int, int],
    size: tuple[int, int],
    representation: EventRepresentation,
) -> np.ndarray:
    """Per-slice event histograms: (count, channels, h, w) float32.

    Slice i holds events with ``slice_ends[i] - slice_s <= t < slice_ends[i]``;
    pixels are scaled from the sensor resolution to ``size``. Channel 0 is OFF
    and 1 is ON (polarity 0/1) for COUNT and BINARY; SIGNED has one channel.
    """
    count = len(slice_ends)
    h, w = size
    H, W = sensor_size
    hist = np.zeros((count, 2, h, w), dtype=np.float32)
    if len(ts):
        starts = np.searchsorted(ts, slice_ends - slice_s, side="left")
        stops = np.searchsorted(ts, slice_ends, side="left")
        for i in range(count):
            ev = events[starts[i] : stops[i]]
            if len(ev) == 0:
                continue
            y = np.minimum(ev["y"].astype(np.intp) * h // H, h - 1)
            x = np.minimum(ev["x"].astype(np.intp) * w // W, w - 1)
            p = (ev["polarity"] > 0).astype(np.intp)
            flat = np.bincount((p * h + y) * w + x, minlength=2 * h * w)
            hist[i] = flat.reshape(2, h, w)
    if representation is EventRepresentation.BINARY:
        return (hist > 0).astype(np.float32)
    if representation is EventRepresentation.SIGNED:
        return hist[:, 1:2] - hist[:, 0:1]
    return hist
