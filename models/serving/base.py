"""What every served model family shares: the file format, ModelInputs as JSON, the runner base.

A model file is one safetensors file: the tensors, and string metadata that
says everything needed to rebuild the model without importing anything of the
training run: the family, the architecture's hyperparameters, the
``ModelInputs`` the aligner must serve (as JSON), the output columns and
provenance (what it was trained on, by which command, when). Loading never
unpickles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from core.prediction import ModelOutput
from core.streams import Modality
from core.window import (
    EventInput,
    EventRepresentation,
    FrameInput,
    InputSpec,
    ModelInputs,
    NumericInput,
    Presence,
    Window,
)
from models.errors import ModelLoadError  # defined torch-free so the CLI can catch it

FORMAT = "affectlab-model/1"
REQUIRED_METADATA = ("format", "architecture", "name", "config", "inputs", "outputs", "trained_on")


# --------------------------------------------------------------------------- ModelInputs <-> JSON
def _spec_to_dict(spec: InputSpec) -> dict[str, Any]:
    if isinstance(spec, NumericInput):
        return {
            "type": "numeric",
            "modality": str(spec.modality),
            "window_s": spec.window_s,
            "rate": spec.rate,
            "channels": list(spec.channels),
            "n_channels": spec.n_channels,
        }
    if isinstance(spec, FrameInput):
        return {
            "type": "frames",
            "modality": str(spec.modality),
            "window_s": spec.window_s,
            "count": spec.count,
            "size": list(spec.size),
        }
    return {
        "type": "events",
        "modality": str(spec.modality),
        "window_s": spec.window_s,
        "count": spec.count,
        "slice_s": spec.slice_s,
        "size": list(spec.size),
        "representation": str(spec.representation),
    }


def _spec_from_dict(d: dict[str, Any]) -> InputSpec:
    kind = d["type"]
    modality = Modality(d["modality"])
    if kind == "numeric":
        return NumericInput(
            modality,
            float(d["window_s"]),
            float(d["rate"]),
            tuple(d.get("channels", ())),
            int(d.get("n_channels", 0)),
        )
    if kind == "frames":
        return FrameInput(modality, float(d["window_s"]), int(d["count"]), tuple(d["size"]))
    if kind == "events":
        return EventInput(
            modality,
            float(d["window_s"]),
            int(d["count"]),
            float(d["slice_s"]),
            tuple(d["size"]),
            EventRepresentation(d.get("representation", "count")),
        )
    raise ValueError(f"unknown input type {kind!r}")


def inputs_to_json(inputs: ModelInputs) -> str:
    return json.dumps(
        {
            "model": inputs.model,
            "hop_s": inputs.hop_s,
            "allowed_lateness_s": inputs.allowed_lateness_s,
            "stale_after_s": inputs.stale_after_s,
            "inputs": {k: _spec_to_dict(v) for k, v in inputs.inputs.items()},
        }
    )


def inputs_from_json(text: str) -> ModelInputs:
    d = json.loads(text)
    return ModelInputs(
        model=d["model"],
        inputs={k: _spec_from_dict(v) for k, v in d["inputs"].items()},
        hop_s=float(d["hop_s"]),
        allowed_lateness_s=float(d["allowed_lateness_s"]),
        stale_after_s=float(d["stale_after_s"]),
    )


# --------------------------------------------------------------------------- files
def read_safetensors_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model file {path} is not a readable safetensors file: {exc}"
        ) from exc


def load_tensors(model: nn.Module, path: Path) -> None:
    """The file's tensors into ``model``, strictly: every name and every shape must match."""
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model file {path} is not a readable safetensors file: {exc}"
        ) from exc
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ModelLoadError(
            f"model file {path}: tensors do not match its architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    wrong = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise ModelLoadError(
            f"model file {path}: tensors do not match its architecture ({len(wrong)} of another "
            f"shape, e.g. {k}: {tuple(state[k].shape)} where it takes {tuple(own[k].shape)})"
        )
    model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- runners
def present_for_model(presence: Presence, data: np.ndarray | None) -> bool:
    """STALE data is still data to the model (the mask reports it); only MISSING is absent."""
    return presence is not Presence.MISSING and data is not None


def window_array(window: Window, key: str, want: tuple[int, ...], model: str) -> np.ndarray | None:
    """Input ``key`` of ``window`` as float32 of shape ``want``, or None when it is missing.

    A wrong shape is an error naming the model, the input and the stream.
    """
    item = window.inputs.get(key)
    if item is None or not present_for_model(item.presence, item.data):
        return None
    data = np.asarray(item.data, dtype=np.float32)
    if data.shape != want:
        raise ValueError(
            f"model {model!r} input {key!r}: expected shape {want}, got {data.shape}"
            + (f" from stream {item.stream!r}" if item.stream else "")
        )
    return data


def floats(t: torch.Tensor) -> list[float]:
    return [float(x) for x in t.detach().float().cpu().reshape(-1)]


class Runner:
    """What every family's runner shares (``core.worker.ModelRunner``: prepare + infer)."""

    outputs: tuple[str, ...] = ()

    def __init__(
        self,
        model: nn.Module,
        inputs: ModelInputs,
        device: str,
        metadata: dict[str, str] | None = None,
        path: Path | None = None,
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.name = inputs.model
        self.device = device
        self.metadata = dict(metadata or {})
        self.path = path

    def prepare(self, window: Window) -> Any:
        raise NotImplementedError

    def infer(self, prepared: Any) -> ModelOutput:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a manifest records about the model."""
        keep = (
            "name",
            "family",
            "architecture",
            "trained_on",
            "training_command",
            "trained_at",
            "format",
        )
        return {
            **{k: self.metadata[k] for k in keep if k in self.metadata},
            "path": str(self.path) if self.path else None,
            "device": self.device,
        }


def with_channel_counts(inputs: ModelInputs, counts: dict[str, int]) -> ModelInputs:
    """``inputs`` with each numeric input's ``n_channels`` set from the model's weights, so
    the aligner refuses a stream with another count when the session starts (files saved
    before ``n_channels`` existed do not carry it)."""
    specs = {
        key: replace(spec, n_channels=counts[key])
        if isinstance(spec, NumericInput) and key in counts
        else spec
        for key, spec in inputs.inputs.items()
    }
    return replace(inputs, inputs=specs)


@dataclass(frozen=True)
class Family:
    """One servable model family: how to rebuild it from a file and serve it.

    ``validate(config_json, inputs)`` raises ValueError when the config and
    the ModelInputs disagree; ``build(config_json, inputs)`` validates and
    makes a fresh model; ``outputs(model)`` lists the
    flat columns its runner fills; ``runner(model, inputs, device, metadata,
    path)`` wraps it for the worker.
    """

    name: str
    architecture: str
    model_type: type[nn.Module]
    config_json: Callable[[nn.Module], str]
    validate: Callable[[str, ModelInputs], object]
    build: Callable[[str, ModelInputs], nn.Module]
    outputs: Callable[[nn.Module], tuple[str, ...]]
    runner: Callable[..., Runner]
