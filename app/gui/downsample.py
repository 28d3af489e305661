"""Peak-preserving min/max downsampling and channel stacking for the signal view.

A screen can show only about one value pair per pixel column, but a blink or
an R-peak that falls between two decimated samples must not vanish. So each
bin of ``k`` samples becomes two points, its minimum and its maximum, in time
order; a 64-channel, 256 Hz, 10 s window (164 k values per channel set) turns
into ~1 k points per channel at the same look. No Qt here: it is plain numpy.
"""

from __future__ import annotations

import numpy as np


def minmax_downsample(ts: np.ndarray, data: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) stamps and (n, C) values -> at most 2 * ``bins`` points per channel.

    Short inputs (n <= 2 * bins) are returned as they are. Otherwise bins of
    k = n // bins samples are cut from the newest end (the oldest n mod k < k
    samples, less than one pixel column, are left out) and each bin gives its
    min and its max, ordered by where they occur so that lines do not zig-zag
    backwards. Returns (m,) stamps and (m, C) values.
    """
    n = len(ts)
    if data.ndim == 1:
        data = data[:, None]
    if bins < 1 or n <= 2 * bins:
        return ts, data
    k = n // bins
    bins = n // k
    start = n - bins * k
    block = data[start:].reshape(bins, k, data.shape[1])
    i_min = block.argmin(axis=1)  # (bins, C)
    i_max = block.argmax(axis=1)
    first = np.minimum(i_min, i_max)
    second = np.maximum(i_min, i_max)
    rows = np.arange(bins)[:, None]
    cols = np.arange(data.shape[1])[None, :]
    out = np.empty((bins, 2, data.shape[1]), dtype=data.dtype)
    out[:, 0] = block[rows, first, cols]
    out[:, 1] = block[rows, second, cols]
    # one time axis for every channel: the bin's first and last stamp
    tb = ts[start:].reshape(bins, k)
    t_out = np.stack([tb[:, 0], tb[:, -1]], axis=1).reshape(-1)
    return t_out, out.reshape(bins * 2, data.shape[1])


def stack_channels(
    x: np.ndarray, y: np.ndarray, centre: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(m,) x and (m, C) y -> one polyline per channel in a single pair of arrays.

    Channel ``i`` is drawn around height ``C - 1 - i`` (first channel on top),
    scaled so that ``scale[i]`` spans 0.9 of a lane; a NaN after each channel
    breaks the line, so one plot item (``connect="finite"``) draws them all.
    """
    m, c = y.shape
    ys = np.empty((c, m + 1), dtype=np.float64)
    ys[:, :m] = (y.T - centre[:, None]) * (0.9 / scale[:, None])
    ys[:, :m] += (c - 1 - np.arange(c))[:, None]
    ys[:, m] = np.nan
    xs = np.empty((c, m + 1), dtype=np.float64)
    xs[:, :m] = x[None, :]
    xs[:, m] = np.nan
    return xs.reshape(-1), ys.reshape(-1)


def robust_range(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel centre and span of (m, C) values, ignoring the 1 % extremes on each side
    and values that are not numbers (one NaN from a device, or a break drawn at a hole,
    would otherwise make the lane's centre NaN and blank the channel for good).

    Returns (centre, span); span is never zero, so a flat channel stays a flat line.
    """
    c = y.shape[1]
    finite = np.isfinite(y)
    if len(y) == 0 or not finite.any():
        return np.zeros(c), np.ones(c)
    if finite.all():
        lo, hi = np.percentile(y, [1.0, 99.0], axis=0)
    else:
        lo, hi = np.zeros(c), np.zeros(c)
        for j in range(c):
            col = y[finite[:, j], j]
            if len(col):
                lo[j], hi[j] = np.percentile(col, [1.0, 99.0])
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return (lo + hi) / 2.0, span


def break_at_holes(ts: np.ndarray, data: np.ndarray, gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(n,) stamps and (n, C) values with a row of NaN inside every step longer than ``gap_s``,
    so that a trace breaks where the stream dropped out instead of bridging the hole with a
    straight line that looks like data."""
    if len(ts) < 2:
        return ts, data
    holes = np.flatnonzero(np.diff(ts) > gap_s)
    if len(holes) == 0:
        return ts, data
    mids = (ts[holes] + ts[holes + 1]) / 2.0
    gaps = np.full((len(holes), data.shape[1]), np.nan)
    return np.insert(ts, holes + 1, mids), np.insert(data, holes + 1, gaps, axis=0)
