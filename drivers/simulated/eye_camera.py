"""A virtual DAVIS346 in front of the participant's right eye: grayscale APS frames.

The face is drawn with numpy on coordinate grids in a canonical 346 x 260
pixel space and sampled at the requested size (the DAVIS346 resolution by
default, or e.g. 100 x 100 for training data, squashed as MCO-E Net resizes).
What moves (A arousal):

- lids, brow, cheek and wrinkles follow the expression mix of the participant
  (``EXPRESSION_FACES``): surprise opens wide and raises the brow with forehead
  wrinkles; fear opens wide with the brow raised and drawn together;
  happiness squints, pushes the lower lid up with the cheek and shows crow's
  feet; anger lowers the brow and draws it inward over tense lids; sadness
  raises the inner brow and lowers the upper lid (drooping outward); disgust
  squints and wrinkles the nose; neutral is at rest. Transitions morph;
- blinks (about 15/min, 150 ms) and gaze (the iris moves) from ``oculomotor``;
- the pupil widens with arousal and with darkness;
- a slow micro-drift of lids and brow keeps a held expression alive.

Frame ``k`` is taken at ``k / fps`` seconds; frames are deterministic per index.
The lighting model is in ``lighting``.
"""

from __future__ import annotations

import numpy as np

from core.prediction import EXPRESSIONS
from core.streams import Modality, StreamSpec
from drivers.simulated.lighting import CameraResponse, lighting_name
from drivers.simulated.noise import ValueNoise, rng_for
from drivers.simulated.participant import VirtualParticipant
from drivers.simulated.sensor import SOURCE

DAVIS346_SIZE = (260, 346)  # (H, W)
CANON_W, CANON_H = 346.0, 260.0

FACE_PARAMS = (
    "open_upper",
    "open_lower",
    "lower_raise",
    "droop",
    "brow_raise",
    "brow_inner",
    "brow_draw",
    "cheek",
    "nose_wrinkle",
    "forehead",
    "crows_feet",
)
#: Per expression: lid openings (x rest), lower-lid raise (px), outward droop of the
#: upper lid, brow raise (px), inner-brow raise (px, negative lowers), brow drawn
#: toward the nose (px), cheek raise, nose wrinkle, forehead wrinkles, crow's feet (0-1).
EXPRESSION_FACES: dict[str, tuple[float, ...]] = {
    "angry": (0.95, 0.70, 5.0, 0.0, -14.0, -14.0, 10.0, 0.0, 0.2, 0.0, 0.0),
    "disgust": (0.62, 0.55, 7.0, 0.0, -8.0, -6.0, 5.0, 0.5, 1.0, 0.0, 0.3),
    "fear": (1.30, 1.10, 2.0, 0.0, 14.0, 10.0, 9.0, 0.0, 0.0, 0.7, 0.0),
    "happiness": (0.72, 0.45, 8.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0),
    "neutral": (1.00, 1.00, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "sadness": (0.68, 0.95, 0.0, 0.45, 0.0, 16.0, 4.0, 0.0, 0.0, 0.3, 0.0),
    "surprise": (1.40, 1.15, -2.0, 0.0, 24.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0),
}
_FACE_TABLE = np.array([EXPRESSION_FACES[e] for e in EXPRESSIONS])

# canonical geometry (pixels of the 346 x 260 frame)
X_INNER, Y_INNER, X_OUTER, Y_OUTER = 62.0, 150.0, 292.0, 138.0
UPPER_HEIGHT, LOWER_HEIGHT = 58.0, 26.0
IRIS_CENTER, IRIS_RADIUS, PUPIL_RADIUS = (177.0, 128.0), 42.0, 12.0
BROW_Y, BROW_X0, BROW_X1 = 64.0, 50.0, 318.0
SKIN, SCLERA, IRIS, PUPIL, BROW = 150.0, 205.0, 95.0, 18.0, 58.0


class VirtualEyeCamera:
    """Renders the participant's eye region under one lighting condition."""

    key = "davis-frames"

    def __init__(
        self,
        participant: VirtualParticipant,
        size: tuple[int, int] = DAVIS346_SIZE,
        fps: float = 30.0,
        lighting: str = "normal",
        severity: float = 1.0,
    ):
        h, w = (int(size[0]), int(size[1]))
        if h < 16 or w < 16:
            raise ValueError(f"eye camera size {size} is too small (at least 16 x 16)")
        if fps <= 0:
            raise ValueError("fps must be > 0")
        self.participant = participant
        self.seed = participant.seed
        self.size = (h, w)
        self.fps = float(fps)
        self.lighting = lighting_name(lighting)
        self.response = CameraResponse(self.lighting, self.size, self.seed, severity=severity)
        self._jitter = ValueNoise(self.seed, "eye.micro", 1.5, channels=2)
        # pixel centres in canonical coordinates
        self.x = ((np.arange(w) + 0.5) * CANON_W / w).astype(np.float32)
        self.y = ((np.arange(h) + 0.5) * CANON_H / h).astype(np.float32)
        self._aa = np.float32(max(1.0, CANON_W / w, CANON_H / h))  # edge softness, canonical px
        u = (self.x - X_INNER) / (X_OUTER - X_INNER)
        self._u = u
        self._s = np.maximum(np.sin(np.pi * np.clip(u, 0.0, 1.0)), 0.0).astype(np.float32)
        self._y_line = (Y_INNER + (Y_OUTER - Y_INNER) * u).astype(np.float32)
        self._build_static()

    # ------------------------------------------------------------ static layers
    def _build_static(self) -> None:
        rng = rng_for(self.seed, "eye.skin")
        X, Y = self.x[None, :], self.y[:, None]
        cx, cy = CANON_W / 2, CANON_H / 2
        vignette = 1.0 - 0.22 * (((X - cx) / cx) ** 2 + ((Y - cy) / cy) ** 2)
        socket = -22.0 * np.exp(-(((X - 177.0) / 150.0) ** 2 + ((Y - 132.0) / 70.0) ** 2))
        texture = self._smooth_noise(rng, 6) * 4.0 + rng.standard_normal(vignette.shape) * 0.8
        self._skin = (SKIN * vignette + socket + texture).astype(np.float32)
        hairs = (
            5.0
            * np.sin(self.x * 0.9 + rng.uniform(0, 6))
            * np.sin(self.x * 0.23 + rng.uniform(0, 6))
        )
        self._brow_tex = (BROW + hairs[None, :] + 5.0 * self._smooth_noise(rng, 3)).astype(
            np.float32
        )
        self._sclera = (SCLERA - 45.0 * (1.0 - self._s) ** 2).astype(np.float32)
        # wrinkle and fold patterns, scaled per frame by the expression
        fore = np.clip((40.0 - Y) / 20.0, 0.0, 1.0) * np.clip((X - 40.0) / 40.0, 0.0, 1.0)
        self._forehead = (fore * np.maximum(np.cos(Y * 0.55), 0.0) ** 6 * 16.0).astype(np.float32)
        cheek_bulge = 14.0 * np.exp(-(((X - 185.0) / 110.0) ** 2 + ((Y - 205.0) / 30.0) ** 2))
        fold = (
            -22.0
            * np.exp(-(((Y - 188.0 - 0.0006 * (X - 185.0) ** 2) / 4.0) ** 2))
            * np.exp(-(((X - 185.0) / 120.0) ** 2))
        )
        self._cheek = (cheek_bulge + fold).astype(np.float32)
        ang = np.arctan2(Y - Y_OUTER, X - X_OUTER)
        rad = np.hypot(X - X_OUTER, Y - Y_OUTER)
        rays = (
            np.maximum(np.cos(ang * 9.0), 0.0) ** 12
            * np.clip((rad - 12.0) / 10.0, 0, 1)
            * np.clip((60.0 - rad) / 20.0, 0, 1)
        )
        self._crows = (-20.0 * rays * (X > X_OUTER)).astype(np.float32)
        diag = np.maximum(np.cos((X + 0.8 * Y) * 0.5), 0.0) ** 8
        nose_zone = np.exp(-(((X - 25.0) / 30.0) ** 2 + ((Y - 190.0) / 45.0) ** 2))
        self._nose = (-24.0 * diag * nose_zone).astype(np.float32)

    def _smooth_noise(self, rng: np.random.Generator, cell: int) -> np.ndarray:
        h, w = self.size
        coarse = rng.standard_normal((h // cell + 2, w // cell + 2))
        yi = np.arange(h) / cell
        xi = np.arange(w) / cell
        y0, x0 = yi.astype(int), xi.astype(int)
        fy, fx = (yi - y0)[:, None], (xi - x0)[None, :]
        c = coarse
        return (c[y0][:, x0] * (1 - fx) + c[y0][:, x0 + 1] * fx) * (1 - fy) + (
            c[y0 + 1][:, x0] * (1 - fx) + c[y0 + 1][:, x0 + 1] * fx
        ) * fy

    # ------------------------------------------------------------ per-frame parameters
    def times(self, n_start: int, n: int) -> np.ndarray:
        return (n_start + np.arange(n, dtype=np.float64)) / self.fps

    def face(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Per-frame face parameters at times ``t`` (seconds): the expression mix, blink, gaze, pupil."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        p = self.participant
        params = p.expression_weights(t) @ _FACE_TABLE
        out = {name: params[:, i] for i, name in enumerate(FACE_PARAMS)}
        jitter = self._jitter(t)
        out["open_upper"] = out["open_upper"] * (1.0 + 0.03 * jitter[:, 0])
        out["brow_raise"] = out["brow_raise"] + 1.5 * jitter[:, 1]
        out["closure"] = p.eyes.closure(t)
        out["gaze_x"], out["gaze_y"] = p.eyes.gaze(t)
        arousal = p.states(t)["arousal"]
        out["pupil"] = PUPIL_RADIUS + 5.0 * (arousal - 5.0) / 4.0 + self.response.lighting.pupil_px
        return out

    def openness(self, t: np.ndarray) -> np.ndarray:
        """Height of the eye opening at its widest, canonical pixels (what the lids leave visible)."""
        f = self.face(t)
        upper = UPPER_HEIGHT * f["open_upper"] * (1.0 - f["closure"])
        lower = LOWER_HEIGHT * f["open_lower"] - f["lower_raise"]
        return np.maximum(upper + lower, 0.0)

    # ------------------------------------------------------------ drawing
    def spec(self, name_prefix: str = "sim") -> StreamSpec:
        severity = self.response.severity
        harsher = {} if severity == 1.0 else {"lighting_severity": severity}
        return StreamSpec(
            name=f"{name_prefix}-{self.key}",
            modality=Modality.FRAMES,
            nominal_rate=self.fps,
            dtype="uint8",
            frame_shape=self.size,
            source=f"{SOURCE}.VirtualEyeCamera",
            metadata={
                "lighting": self.lighting,
                **harsher,
                "participant_seed": self.seed,
                "eye": "right",
                "sensor": "virtual DAVIS346 APS",
            },
        )

    def render(self, n_start: int, n: int) -> np.ndarray:
        """Frames ``n_start .. n_start + n - 1`` as uint8 ``(n, H, W)``."""
        return self._render(n_start, n, with_irradiance=False)[0]

    def render_pair(self, n_start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The APS frames (uint8) and what the DVS sees of the same exposures (float32
        irradiance in DN, neither noisy, clipped nor quantised): the event emulator's input."""
        frames, irradiance = self._render(n_start, n, with_irradiance=True)
        assert irradiance is not None
        return frames, irradiance

    def _render(
        self, n_start: int, n: int, with_irradiance: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        out = np.empty((n, *self.size), dtype=np.uint8)
        irradiance = np.empty(out.shape, np.float32) if with_irradiance else None
        if n == 0:
            return out, irradiance
        face = self.face(self.times(n_start, n))
        for i in range(n):
            row = {k: float(v[i]) for k, v in face.items()}
            self.response.apply(
                self._draw(row), n_start + i, out[i], None if irradiance is None else irradiance[i]
            )
        return out, irradiance

    def _draw(self, f: dict[str, float]) -> np.ndarray:
        """Scene radiance (float32, 0-255) of one frame."""
        aa = self._aa
        Y = self.y[:, None]
        s, u = self._s, self._u
        img = self._skin.copy()
        for key, layer in (
            ("forehead", self._forehead),
            ("cheek", self._cheek),
            ("crows_feet", self._crows),
            ("nose_wrinkle", self._nose),
        ):
            amount = f[key]
            if amount > 0.01:
                img += (-amount if key == "forehead" else amount) * layer

        # lids: opening between the upper and lower lid curves
        rest_upper = self._y_line - UPPER_HEIGHT * f["open_upper"] * s**0.8 * (
            1.0 - f["droop"] * np.clip(u, 0, 1) ** 2
        )
        upper = self._y_line + (rest_upper - self._y_line) * (1.0 - f["closure"])
        lower = self._y_line + LOWER_HEIGHT * f["open_lower"] * s**1.2 - f["lower_raise"] * s
        lower = np.maximum(lower, upper)
        inside = np.clip((Y - upper) / aa, 0.0, 1.0) * np.clip((lower - Y) / aa, 0.0, 1.0)
        eye = np.broadcast_to(self._sclera, img.shape).copy()
        self._draw_iris(eye, f)
        img += inside * (eye - img)

        # lashes on the upper margin, a faint lower margin, the lid crease
        lash = np.clip(1.0 - np.abs(Y - (upper - 1.5)) / (2.5 + aa), 0.0, 1.0) * np.sqrt(s)
        img -= 85.0 * lash
        margin = np.clip(1.0 - np.abs(Y - (lower + 1.0)) / (1.5 + aa), 0.0, 1.0) * s
        img -= 18.0 * margin
        crease_y = rest_upper - 16.0 - 4.0 * f["open_upper"]
        crease = np.clip(1.0 - np.abs(Y - crease_y) / (4.0 + aa), 0.0, 1.0) * s
        img -= 22.0 * crease

        # brow: a band thick at the inner end, thin at the outer end
        x0 = BROW_X0 - f["brow_draw"]
        span = (self.x - x0) / (BROW_X1 - x0)
        w_inner = np.clip(1.0 - span / 0.45, 0.0, 1.0)
        arch = 10.0 * (1.0 - (2.0 * span - 1.1) ** 2)
        brow_y = (
            BROW_Y
            - f["brow_raise"]
            - f["brow_inner"] * w_inner
            - arch
            + 0.6 * f["brow_draw"] * w_inner
        )
        half = 13.0 - 6.0 * np.clip(span, 0, 1)
        ends = np.clip(span * 20.0, 0.0, 1.0) * np.clip((1.0 - span) * 12.0, 0.0, 1.0)
        brow = np.clip((half - np.abs(Y - brow_y)) / (2.0 + aa), 0.0, 1.0) * ends
        img += brow * (self._brow_tex - img)
        return img

    def _draw_iris(self, eye: np.ndarray, f: dict[str, float]) -> None:
        """Iris, pupil and corneal highlight, drawn only inside their bounding box."""
        aa = self._aa
        cx = IRIS_CENTER[0] + 55.0 * f["gaze_x"]
        cy = IRIS_CENTER[1] + 22.0 * f["gaze_y"]
        r = IRIS_RADIUS + aa
        xs = np.flatnonzero(np.abs(self.x - cx) <= r)
        ys = np.flatnonzero(np.abs(self.y - cy) <= r)
        if xs.size == 0 or ys.size == 0:
            return
        sl = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        dx = self.x[sl[1]][None, :] - cx
        dy = self.y[sl[0]][:, None] - cy
        d = np.sqrt(dx * dx + dy * dy)
        iris_val = IRIS - 30.0 * (d / IRIS_RADIUS) ** 2 + 7.0 * np.cos(d * 0.7)
        a_iris = np.clip((IRIS_RADIUS - d) / aa, 0.0, 1.0)
        pupil = max(4.0, f["pupil"])
        a_pupil = np.clip((pupil - d) / aa, 0.0, 1.0)
        hx, hy = dx + 13.0, dy + 14.0
        a_spec = np.clip((5.0 - np.sqrt(hx * hx + hy * hy)) / aa, 0.0, 1.0)
        patch = eye[sl]
        patch += a_iris * (iris_val - patch)
        patch += a_pupil * (PUPIL - patch)
        patch += a_spec * (250.0 - patch)
