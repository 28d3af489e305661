"""What the demo trainers need of a set of cut windows, and the tensors made from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from core.prediction import EXPRESSIONS
from models.metrics import classification_report


class CutWindows(Protocol):
    """Stacked windows as the aligner cut them (``app.demo_data.WindowSet`` is one):
    inputs with zeros where missing, which inputs were present, and the labels."""

    keys: tuple[str, ...]
    x: dict[str, np.ndarray]  # key -> (N, *shape)
    present: np.ndarray  # (N, n_inputs) bool
    affect: np.ndarray  # (N, 4) float32, 1-9
    expression: np.ndarray  # (N,) int64
    lighting: np.ndarray | None  # (N,) str, when the sessions' lighting is known

    def __len__(self) -> int: ...


def input_tensors(data: CutWindows, idx: np.ndarray) -> dict[str, torch.Tensor]:
    """Inputs of windows ``idx`` as stored (no copy of dtype), per key."""
    return {k: torch.from_numpy(np.ascontiguousarray(data.x[k][idx])) for k in data.keys}


def presence_dict(data: CutWindows, idx: np.ndarray) -> dict[str, torch.Tensor]:
    """(B,) bool tensors per input: what the aligner marked present."""
    return {k: torch.from_numpy(data.present[idx, j].copy()) for j, k in enumerate(data.keys)}


def per_lighting(data: CutWindows, pred: np.ndarray, lightings: Sequence[str]) -> dict[str, Any]:
    """Accuracy (WAR), UAR, macro-F1 and confusion, overall and per lighting (in that order)."""
    if data.lighting is None:
        raise ValueError("per-lighting figures need windows whose sessions' lighting is known")
    out: dict[str, Any] = {"all": classification_report(data.expression, pred, len(EXPRESSIONS))}
    for light in lightings:
        sel = data.lighting == light
        if sel.any():
            out[light] = classification_report(data.expression[sel], pred[sel], len(EXPRESSIONS))
            out[light]["n"] = int(sel.sum())
    out["all"]["n"] = len(data)
    return out
