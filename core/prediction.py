"""What the worker publishes: one Prediction per inferred window."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Expression classes of SEE and MCO-E Net, in their label order.
EXPRESSIONS: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)

#: Continuous affect dimensions, on the 1-9 SAM scale of DEAP.
AFFECT_DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")

#: Every latency a Prediction carries: the stages, the wait in the worker's
#: hand-off ("queue"), and "total": publish time minus the window's end on the
#: one clock, i.e. how old the newest data was when its prediction went out.
LATENCIES: tuple[str, ...] = ("cut", "queue", "inputs", "model", "publish", "total")

#: latencies that rows carry; "publish" is only known after the sinks ran
ROW_LATENCIES: tuple[str, ...] = tuple(k for k in LATENCIES if k != "publish")


@dataclass
class ModelOutput:
    """What a model adapter returns for one window; the worker wraps it in a Prediction."""

    affect: dict[str, float] = field(default_factory=dict)
    expression: dict[str, float] = field(default_factory=dict)
    routing: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Prediction:
    """A model's output for the window ending at ``t_end`` (one clock).

    ``affect`` holds whichever of AFFECT_DIMENSIONS the model gives;
    ``expression`` holds probabilities over EXPRESSIONS when it classifies.
    ``latency`` is seconds spent per stage; ``routing`` is what the model
    attended to (gate and router weights, modality weights) for the GUI.
    """

    model: str
    window_index: int
    t_end: float
    affect: dict[str, float] = field(default_factory=dict)
    expression: dict[str, float] = field(default_factory=dict)
    mask: dict[str, str] = field(default_factory=dict)
    routing: dict[str, list[float]] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    published_at: float = 0.0

    @property
    def label(self) -> str | None:
        if not self.expression:
            return None
        return max(self.expression, key=self.expression.__getitem__)

    def flat(self) -> dict[str, Any]:
        """One flat row for logs (CSV, JSON lines, Parquet) and the LSL outlet."""
        row: dict[str, Any] = {
            "model": self.model,
            "window": self.window_index,
            "t_end": self.t_end,
            "published_at": self.published_at,
        }
        for k in AFFECT_DIMENSIONS:
            if k in self.affect:
                row[k] = self.affect[k]
        for k in EXPRESSIONS:
            if k in self.expression:
                row[f"p_{k}"] = self.expression[k]
        if self.expression:
            row["label"] = self.label
        for k, v in self.mask.items():
            row[f"mask_{k}"] = v
        for k in ROW_LATENCIES:
            if k in self.latency:
                row[f"latency_{k}"] = self.latency[k]
        return row


def prediction_columns(outputs: list[str], input_keys: list[str]) -> list[str]:
    """Every column ``Prediction.flat()`` can fill for models with these outputs and inputs,
    in a stable order: identity, outputs, label, masks, latencies."""
    columns = ["model", "window", "t_end", "published_at"]
    columns += [c for c in dict.fromkeys(outputs)]
    if any(c.startswith("p_") for c in outputs):
        columns.append("label")
    columns += [f"mask_{k}" for k in dict.fromkeys(input_keys)]
    columns += [f"latency_{k}" for k in ROW_LATENCIES]
    return columns
