"""The virtual participant: a latent affect that every simulated sensor follows.

The session is a chain of *episodes*. Each episode has an expression (one of
``core.prediction.EXPRESSIONS``) and target valence, arousal, dominance and
liking (1-9, DEAP's SAM scale) drawn uniformly from a box that agrees with
that expression (happiness: high valence; sadness: low valence, low arousal;
angry: low valence, high arousal, high dominance; fear: the same but low
dominance; surprise: high arousal; disgust: low valence, middling arousal;
neutral: the middle). Liking follows valence with noise of its own. Targets are
drawn afresh for every episode, so the process keeps returning towards the
middle of the scale (mean-reverting) while the boxes together span 1-9.

Between episodes the dimensions move along a smooth step over a few seconds
and the expression switches halfway through; within an episode a slow smooth
drift (typically +-0.3, never beyond +-0.6) keeps them alive. Episode lengths are gamma distributed
around ``mean_dwell_s``; expressions follow a Markov chain that never repeats
itself, weighted (``NEXT_WEIGHTS``) so that the four negative expressions,
the two positive ones and neutral each take about a third of the time and
valence averages near the middle. The session starts
neutral, as a session at rest does.

Everything is a pure function of (seed, t): the episode chain is drawn in order
from its own generator and only grown (``schedule.LazyTimeline``), so states can
be asked for in any order, from several threads.

The participant also owns what several sensors must agree on: the eyes (blinks
and gaze, seen by the eye camera and as artefacts in frontal EEG) and the body
rhythms (heartbeats shared by ECG and PPG, breathing, skin-conductance responses).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.prediction import AFFECT_DIMENSIONS, EXPRESSIONS
from drivers.simulated.noise import ValueNoise, rng_for
from drivers.simulated.schedule import Columns, LazyTimeline

#: Per expression: (valence, arousal, dominance) boxes the episode targets are drawn from.
EXPRESSION_REGIONS: dict[
    str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
] = {
    "angry": ((1.2, 3.8), (6.2, 8.8), (5.5, 8.8)),
    "disgust": ((1.2, 3.8), (4.0, 6.2), (4.0, 7.0)),
    "fear": ((1.2, 3.8), (6.2, 8.8), (1.2, 3.8)),
    "happiness": ((6.2, 8.8), (4.5, 7.5), (5.0, 8.0)),
    "neutral": ((4.2, 5.8), (2.5, 5.0), (4.0, 6.0)),
    "sadness": ((1.2, 3.8), (1.2, 3.8), (1.2, 4.5)),
    "surprise": ((4.5, 7.5), (6.5, 8.8), (3.0, 6.0)),
}

NEUTRAL = EXPRESSIONS.index("neutral")
#: how likely each expression is to come next (the current one excluded)
NEXT_WEIGHTS = {
    "angry": 1.0,
    "disgust": 1.0,
    "fear": 1.0,
    "happiness": 2.5,
    "neutral": 2.0,
    "sadness": 1.0,
    "surprise": 1.5,
}
DRIFT_LIMIT = 0.6  # SAM points: within-episode drift stays inside +-DRIFT_LIMIT
DRIFT_KNOT_S = 6.0
MIN_TRANSITION_S, MAX_TRANSITION_S = 2.0, 4.0


@dataclass(frozen=True)
class AffectState:
    """The participant's ground truth at one moment."""

    valence: float
    arousal: float
    dominance: float
    liking: float
    expression: str
    expression_index: int

    def affect(self) -> dict[str, float]:
        """The four dimensions, keyed like ``Prediction.affect``."""
        return {k: getattr(self, k) for k in AFFECT_DIMENSIONS}

    def to_dict(self) -> dict[str, float | str | int]:
        return asdict(self)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class VirtualParticipant:
    """A person whose affect changes during the session; ``t`` is seconds since session start."""

    def __init__(self, seed: int = 0, mean_dwell_s: float = 20.0):
        if mean_dwell_s <= 0:
            raise ValueError("mean_dwell_s must be > 0")
        self.seed = int(seed)
        self.mean_dwell_s = float(mean_dwell_s)
        self._episodes = LazyTimeline(rng_for(seed, "participant.episodes"), self._next_episodes)
        self._drift = ValueNoise(seed, "participant.drift", DRIFT_KNOT_S, channels=4)
        # Imported here: both modules take a participant and would otherwise import each other.
        from drivers.simulated.oculomotor import EyeBehaviour
        from drivers.simulated.rhythms import BodyRhythms

        self.eyes = EyeBehaviour(self)
        self.body = BodyRhythms(self)

    # ------------------------------------------------------------ episode chain
    def _next_episodes(
        self, rng: np.random.Generator, prev: Columns | None, batch: int = 32
    ) -> Columns:
        cols: dict[str, list[float]] = {k: [] for k in ("t", "tau", "expr", "v", "a", "d", "l")}
        if prev is None:
            t, dwell, expr = 0.0, self._dwell(rng), NEUTRAL
        else:
            t = float(prev["t"][-1] + prev["dwell"][-1])
            expr = self._next_expression(rng, int(prev["expr"][-1]))
            dwell = self._dwell(rng)
        dwells: list[float] = []
        for _ in range(batch):
            (v0, v1), (a0, a1), (d0, d1) = EXPRESSION_REGIONS[EXPRESSIONS[expr]]
            v = rng.uniform(v0, v1)
            cols["t"].append(t)
            cols["tau"].append(
                min(MAX_TRANSITION_S, max(MIN_TRANSITION_S, 0.3 * dwell), 0.5 * dwell)
            )
            cols["expr"].append(expr)
            cols["v"].append(v)
            cols["a"].append(rng.uniform(a0, a1))
            cols["d"].append(rng.uniform(d0, d1))
            cols["l"].append(float(np.clip(0.7 * v + 1.5 + rng.normal(0.0, 1.0), 1.2, 8.8)))
            dwells.append(dwell)
            t += dwell
            expr = self._next_expression(rng, expr)
            dwell = self._dwell(rng)
        out = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
        out["expr"] = out["expr"].astype(np.int64)
        out["dwell"] = np.asarray(dwells)
        return out

    def _dwell(self, rng: np.random.Generator) -> float:
        return max(0.25 * self.mean_dwell_s, rng.gamma(3.0, self.mean_dwell_s / 3.0))

    @staticmethod
    def _next_expression(rng: np.random.Generator, current: int) -> int:
        weights = np.array([NEXT_WEIGHTS[e] for e in EXPRESSIONS])
        weights[current] = 0.0
        return int(rng.choice(len(EXPRESSIONS), p=weights / weights.sum()))

    def episodes(self, t_max: float) -> Columns:
        """The episode chain up to ``t_max``: columns t (start), dwell, tau, expr, v, a, d, l."""
        return self._episodes.covering(t_max)

    # ------------------------------------------------------------ queries
    def _locate(self, t: np.ndarray) -> tuple[Columns, np.ndarray, np.ndarray, np.ndarray]:
        cols = self._episodes.covering(float(np.max(t)) if t.size else 0.0)
        i = np.maximum(np.searchsorted(cols["t"], t, side="right") - 1, 0)
        prev = np.maximum(i - 1, 0)
        into = t - cols["t"][i]
        w = np.where(i == 0, 1.0, smoothstep(into / cols["tau"][i]))
        return cols, i, prev, w

    def states(self, t: np.ndarray | float) -> dict[str, np.ndarray]:
        """Vectorised truth at times ``t``: valence, arousal, dominance, liking, expression_index."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        cols, i, prev, w = self._locate(t)
        drift = DRIFT_LIMIT * np.tanh(0.5 * self._drift(t))
        out: dict[str, np.ndarray] = {}
        for j, (name, key) in enumerate(zip(AFFECT_DIMENSIONS, ("v", "a", "d", "l"), strict=True)):
            col = cols[key]
            out[name] = np.clip(col[prev] + (col[i] - col[prev]) * w + drift[:, j], 1.0, 9.0)
        switched = (i == 0) | (t - cols["t"][i] >= 0.5 * cols["tau"][i])
        out["expression_index"] = np.where(switched, cols["expr"][i], cols["expr"][prev])
        return out

    def state_at(self, t: float) -> AffectState:
        s = self.states(np.array([float(t)]))
        k = int(s["expression_index"][0])
        return AffectState(
            valence=float(s["valence"][0]),
            arousal=float(s["arousal"][0]),
            dominance=float(s["dominance"][0]),
            liking=float(s["liking"][0]),
            expression=EXPRESSIONS[k],
            expression_index=k,
        )

    def expression_weights(self, t: np.ndarray | float) -> np.ndarray:
        """Soft expression mix ``(n, len(EXPRESSIONS))``: how far each face is formed.

        During a transition the face morphs from the previous expression to the
        next along the same smooth step as the dimensions; the eye camera draws it.
        """
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        cols, i, prev, w = self._locate(t)
        out = np.zeros((t.size, len(EXPRESSIONS)))
        rows = np.arange(t.size)
        np.add.at(out, (rows, cols["expr"][prev]), 1.0 - w)
        np.add.at(out, (rows, cols["expr"][i]), w)
        return out
