"""Random signals addressed by absolute index, so any chunk can be rendered alone.

Simulated streams must be deterministic for a seed and continuous across chunk
boundaries however they are cut. Stateful generators (an IIR filter, an RNG
advanced sample by sample) only give that when chunks arrive in order; here
every random number is a pure function of (seed, stream, index): white noise
comes in fixed blocks, each drawn from its own seeded generator, and coloured
noise is white noise through an FIR filter, which only needs the ``L - 1``
white samples before a chunk. Rendering [0, 1000) in one call or ten gives the
same numbers up to float rounding of the FFT.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict

import numpy as np
from scipy import fft as sfft

#: offset that keeps block numbers of negative indices non-negative for SeedSequence
_BLOCK_OFFSET = 1 << 40


def stable_id(name: str) -> int:
    """A stream number that does not change between runs (``hash()`` does)."""
    return zlib.crc32(name.encode("utf-8"))


def rng_for(seed: int, name: str, *more: int) -> np.random.Generator:
    """An independent generator for one named use of a seed."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stable_id(name), *more])


class WhiteNoise:
    """Unit Gaussian white noise, ``channels`` wide, at any absolute index.

    Blocks of ``block`` samples are drawn on demand and the last few are kept,
    since consecutive chunks of a live stream hit the same block again and again.
    """

    def __init__(self, seed: int, name: str, channels: int = 1, block: int = 2048, cache: int = 4):
        self.seed = int(seed)
        self.stream = stable_id(name)
        self.channels = int(channels)
        self.block = int(block)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(2, cache)
        self._lock = threading.Lock()

    def _block(self, b: int) -> np.ndarray:
        # The participant's noises are shared by several driver threads: guard the cache.
        with self._lock:
            arr = self._cache.get(b)
            if arr is None:
                rng = np.random.default_rng(
                    [self.seed & 0xFFFFFFFF, self.stream, b + _BLOCK_OFFSET]
                )
                arr = rng.standard_normal((self.block, self.channels))
                self._cache[b] = arr
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(b)
            return arr

    def take(self, start: int, n: int) -> np.ndarray:
        """Samples ``start .. start + n - 1`` as float64 ``(n, channels)``; start may be negative."""
        out = np.empty((n, self.channels))
        pos = 0
        while pos < n:
            idx = start + pos
            b, off = divmod(idx, self.block)
            k = min(self.block - off, n - pos)
            out[pos : pos + k] = self._block(b)[off : off + k]
            pos += k
        return out

    def at(self, indices: np.ndarray) -> np.ndarray:
        """Samples at arbitrary integer indices, ``(len(indices), channels)``."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((indices.size, self.channels))
        if indices.size == 0:
            return out
        blocks = indices // self.block
        for b in np.unique(blocks):
            sel = blocks == b
            out[sel] = self._block(int(b))[indices[sel] - b * self.block]
        return out


class ValueNoise:
    """Smooth random drift: Catmull-Rom spline through random knots every ``knot_s`` seconds.

    Unit standard deviation at the knots; a pure function of time, so slow
    fluctuations (temperature drift, heart-rate variability) need no state.
    """

    def __init__(self, seed: int, name: str, knot_s: float, channels: int = 1):
        if knot_s <= 0:
            raise ValueError("knot_s must be > 0")
        self.knot_s = float(knot_s)
        self.channels = channels
        self._white = WhiteNoise(seed, name, channels, block=256, cache=8)

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        """Values at times ``t`` (seconds): shape ``t.shape`` for one channel, else ``t.shape + (channels,)``."""
        t = np.asarray(t, dtype=np.float64)
        flat = t.reshape(-1) / self.knot_s
        k = np.floor(flat).astype(np.int64)
        if flat.size == 0:
            return np.zeros(t.shape + ((self.channels,) if self.channels > 1 else ()))
        u = (flat - k)[:, None]
        lo, hi = int(k.min()) - 1, int(k.max()) + 2
        knots = self._white.take(lo, hi - lo + 1)
        i = k - lo
        p0, p1, p2, p3 = knots[i - 1], knots[i], knots[i + 1], knots[i + 2]
        u2 = u * u
        u3 = u2 * u
        out = 0.5 * (
            2 * p1
            + (p2 - p0) * u
            + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u2
            + (3 * p1 - p0 - 3 * p2 + p3) * u3
        )
        if self.channels == 1:
            return out[:, 0].reshape(t.shape)
        return out.reshape(t.shape + (self.channels,))


class FirBank:
    """White noise through a bank of FIR filters: band-limited noise at any index range.

    ``taps`` is ``(filters, L)``; each row is scaled to unit output variance, so
    a gain applied afterwards is the band's RMS amplitude.
    """

    def __init__(self, white: WhiteNoise, taps: np.ndarray):
        taps = np.atleast_2d(np.asarray(taps, dtype=np.float64))
        norms = np.sqrt((taps**2).sum(axis=1, keepdims=True))
        self.taps = taps / np.where(norms > 0, norms, 1.0)
        self.white = white
        self.length = self.taps.shape[1]
        self._spectra: dict[int, np.ndarray] = {}

    def _spectrum(self, nfft: int) -> np.ndarray:
        spec = self._spectra.get(nfft)
        if spec is None:
            spec = sfft.rfft(self.taps, nfft, axis=1)[:, :, None]
            if len(self._spectra) > 8:
                self._spectra.clear()
            self._spectra[nfft] = spec
        return spec

    #: below this many samples a direct dot product beats two FFTs (live chunks are a few samples)
    direct_below: int = 16

    def render(self, start: int, n: int) -> np.ndarray:
        """Filtered samples ``start .. start + n - 1``: float64 ``(filters, n, channels)``."""
        L = self.length
        w = self.white.take(start - L + 1, n + L - 1)
        if n < self.direct_below:
            windows = np.lib.stride_tricks.sliding_window_view(w, L, axis=0)  # (n, channels, L)
            return np.einsum("ncl,fl->fnc", windows, self.taps[:, ::-1])
        nfft = sfft.next_fast_len(n + L - 1, real=True)
        y = sfft.irfft(self._spectrum(nfft) * sfft.rfft(w, nfft, axis=0)[None], nfft, axis=1)
        return y[:, L - 1 : L - 1 + n]
