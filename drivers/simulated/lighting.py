"""The four lighting conditions of the SEE data set as a camera response model.

The eye camera draws scene radiance on a 0-255 scale; a condition turns it
into what an APS sensor would record:

- normal: unit gain, read noise and a little shot noise.
- overexposure: gain 1.7 plus offset, so the sclera and the brightest skin
  clip at 255 and contrast collapses into the highlights.
- low_light: about an eighth of the light; photon shot noise (variance
  proportional to the signal) dominates a dark, grainy picture.
- hdr: a strong left-to-right exposure gradient (e^1.0 to e^-1.4): the left
  side clips while the right side sinks into the dark.

The pupil also answers the light (smaller when overexposed, wider in the dark).
The DVS half of the pixel sees the same exposure before the APS readout (no
noise, no clipping, no 8-bit steps; ``CameraResponse.apply``'s ``irradiance``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

LIGHTING_CONDITIONS: tuple[str, ...] = ("normal", "overexposure", "low_light", "hdr")

_ALIASES = {
    "normal": "normal",
    "overexposure": "overexposure",
    "overexposed": "overexposure",
    "low_light": "low_light",
    "low-light": "low_light",
    "lowlight": "low_light",
    "low": "low_light",
    "hdr": "hdr",
}


def lighting_name(name: str) -> str:
    """The canonical condition for a name as written in configs or SEE file names."""
    key = str(name).strip().lower().replace(" ", "_")
    if key not in _ALIASES:
        raise ValueError(
            f"unknown lighting {name!r}; expected one of {', '.join(LIGHTING_CONDITIONS)}"
        )
    return _ALIASES[key]


@dataclass(frozen=True)
class Lighting:
    name: str
    gain: float
    offset: float
    read_noise: float  # DN, standard deviation
    shot_noise: float  # variance per DN of signal
    gradient: tuple[float, float] = (0.0, 0.0)  # log gain at the left and right edges
    pupil_px: float = 0.0  # change of the pupil radius, canonical pixels

    def harsher(self, severity: float) -> Lighting:
        """The same condition with its exposure error ``severity`` times as many stops.

        For stress tests beyond the conditions a model was trained under: at 2,
        low light lets in 0.12^2 of the light (its black level and noise per DN
        stay), overexposure gains 1.7^2 and twice the flare, HDR's gradient
        doubles. Normal light has no error to scale. 1 is the condition itself.
        """
        if not severity > 0:
            raise ValueError(f"lighting severity must be > 0, got {severity}")
        if severity == 1.0 or self.name == "normal":
            return self
        lo, hi = self.gradient
        return replace(
            self,
            gain=self.gain**severity,
            offset=self.offset * severity if self.gain > 1.0 else self.offset,  # flare vs black
            gradient=(lo * severity, hi * severity),
        )


LIGHTINGS: dict[str, Lighting] = {
    "normal": Lighting("normal", 1.0, 0.0, 1.2, 0.02),
    "overexposure": Lighting("overexposure", 1.7, 25.0, 1.2, 0.02, pupil_px=-4.0),
    "low_light": Lighting("low_light", 0.12, 3.0, 1.5, 1.5, pupil_px=6.0),
    "hdr": Lighting("hdr", 1.0, 0.0, 1.2, 0.3, gradient=(1.0, -1.4)),
}


class CameraResponse:
    """Applies one condition to float radiance frames of a fixed size, fast.

    Noise comes from a small bank of precomputed Gaussian fields twice the frame
    size; each frame reads a window at an offset hashed from its index, so the
    noise is deterministic per frame and costs a slice instead of a draw.
    """

    def __init__(
        self,
        condition: str,
        shape: tuple[int, int],
        seed: int,
        bank: int = 4,
        severity: float = 1.0,
    ):
        self.lighting = LIGHTINGS[lighting_name(condition)].harsher(severity)
        self.severity = float(severity)
        h, w = shape
        self.shape = (h, w)
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x11647])
        self._bank = rng.standard_normal((bank, 2 * h, 2 * w), dtype=np.float32)
        lo, hi = self.lighting.gradient
        x = (np.arange(w, dtype=np.float32) + 0.5) / w
        self._gain = (self.lighting.gain * np.exp(lo + (hi - lo) * x)).astype(np.float32)[None, :]

    def _noise(self, k: int) -> np.ndarray:
        h, w = self.shape
        mix = (k * 0x9E3779B1 + self.seed * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
        mix ^= mix >> 15
        mix = (mix * 0x2C1B3C6D) & 0xFFFFFFFF
        mix ^= mix >> 12
        b = mix % len(self._bank)
        dy = (mix >> 4) % h
        dx = (mix >> 13) % w
        return self._bank[b, dy : dy + h, dx : dx + w]

    def apply(
        self, radiance: np.ndarray, k: int, out: np.ndarray, irradiance: np.ndarray | None = None
    ) -> None:
        """Write frame ``k`` (uint8) into ``out`` from float32 radiance ``(H, W)``.

        ``irradiance`` (optional, float32) receives the same exposure before the
        APS readout: no sensor noise, no clipping at full scale, no 8-bit steps.
        That is what the DVS half of a DAVIS pixel sees: its own noise is
        modelled by the event emulator, and its logarithmic photoreceptor
        (about 120 dB against the APS's 56 dB) keeps answering where the frame
        has saturated.
        """
        li = self.lighting
        signal = radiance * self._gain
        signal += li.offset
        if irradiance is not None:
            np.maximum(signal, 0.0, out=irradiance)
        signal += 0.5  # the float -> uint8 cast truncates
        level = np.clip(signal, 0.0, 255.0)
        # Noise before the clip: a saturated pixel reads full scale, without noise.
        sigma = np.sqrt(li.read_noise**2 + li.shot_noise * level)
        signal += sigma * self._noise(k)
        np.clip(signal, 0.0, 255.0, out=signal)
        out[...] = signal
