"""MCO-E Net lite on the demo's cut eye-camera windows (mco-e-net-lite-sim): the task and
its figures, per lighting.

Events are blanked (zero counts) in a random share of training windows so the
model still works when the event stream is missing live; the frames-only
variant gets no events at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.prediction import EXPRESSIONS
from models.demo.windows import CutWindows, per_lighting
from models.metrics import accuracy, uar
from models.tasks import batch_order, count_batches
from models.zoo import see_loss


def batch_tensors(
    data: CutWindows, idx: np.ndarray, frames_only: bool, blank: np.ndarray | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """frames (B, T, 1, H, W) in [0, 1]; events (B, T, 2, H, W) counts (zeros where missing
    or where ``blank``), or None for the frames-only model."""
    frames = torch.from_numpy(np.ascontiguousarray(data.x["frames"][idx]))[:, :, None]
    if frames_only:
        return frames, None
    events = data.x["events"][idx].astype(np.float32)
    gone = ~data.present[idx, data.keys.index("events")]
    if blank is not None:
        gone |= blank
    events[gone] = 0.0
    return frames, torch.from_numpy(events)


def predict(
    model: nn.Module, data: CutWindows, frames_only: bool, no_events: bool = False
) -> np.ndarray:
    """Class probabilities (N, 7); ``no_events``: as if the event stream were missing."""
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(data), 64):
            idx = np.arange(s, min(s + 64, len(data)))
            blank = np.ones(len(idx), dtype=bool) if no_events else None
            f, e = batch_tensors(data, idx, frames_only, blank)
            out.append(torch.softmax(model(f, e).logits.float(), -1).numpy())
    return np.concatenate(out)


@dataclass
class MCOWindowsTask:
    """``models.training.Task`` over cut eye-camera windows, events blanked at random."""

    train: CutWindows
    val: CutWindows
    batch_size: int
    frames_only: bool
    event_dropout: float

    def n_batches(self) -> int:
        return count_batches(len(self.train), self.batch_size)

    def prepare(self, model: nn.Module, seed: int) -> None:
        """Nothing to fit: the model normalises raw frames and counts with fixed statistics."""

    def batches(self, epoch_seed: int) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng(epoch_seed)
        for part in batch_order(len(self.train), self.batch_size, rng):
            idx = np.sort(part)
            blank = rng.random(len(idx)) < self.event_dropout
            f, e = batch_tensors(self.train, idx, self.frames_only, blank)
            yield {"frames": f, "events": e, "labels": torch.from_numpy(self.train.expression[idx])}

    def loss(
        self, model: nn.Module, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return see_loss(model(batch["frames"], batch["events"]).logits, batch["labels"])

    def validate(self, model: nn.Module) -> dict[str, float]:
        pred = predict(model, self.val, self.frames_only).argmax(1)
        y = self.val.expression
        return {
            "score": accuracy(y, pred),
            "war": accuracy(y, pred),
            "uar": uar(y, pred, len(EXPRESSIONS)),
        }


def majority(train: CutWindows, data: CutWindows, lightings: Sequence[str]) -> dict[str, Any]:
    """The constant predictor: the most frequent training class, per lighting."""
    major = int(np.bincount(train.expression, minlength=len(EXPRESSIONS)).argmax())
    pred = np.full(len(data), major)
    return {"class": EXPRESSIONS[major], **per_lighting(data, pred, lightings)}


def evaluate(
    model: nn.Module,
    data: CutWindows,
    train: CutWindows,
    frames_only: bool,
    lightings: Sequence[str],
) -> dict[str, Any]:
    """With all inputs, with the events missing (fused model) and the majority class,
    each overall and per lighting."""
    out = {"all_inputs": per_lighting(data, predict(model, data, frames_only).argmax(1), lightings)}
    if not frames_only:
        no_events = predict(model, data, False, True).argmax(1)
        out["events_missing"] = per_lighting(data, no_events, lightings)
    out["majority_class"] = majority(train, data, lightings)
    return out
