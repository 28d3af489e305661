"""Loading a model file and serving it to the inference worker.

A model file is one safetensors file: the tensors, and string metadata that
says everything needed to rebuild the model without importing anything of the
training run: architecture hyperparameters, the ``ModelInputs`` the aligner
must serve (as JSON), output names and provenance (what it was trained on, by
which command, when). Loading never unpickles.

``TorchRunner`` is the adapter of ``core.worker.ModelRunner``: Window ->
tensors (``prepare``) -> ``ModelOutput`` (``infer``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from core.prediction import AFFECT_DIMENSIONS, EXPRESSIONS, ModelOutput
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
from core.worker import pick_device
from models.baselines import (
    EVENTS,
    FRAMES,
    NUMERIC,
    ConcatFusion,
    FusionConfig,
    InputLayout,
)
from models.registry import SHIPPED, shipped_path

FORMAT = "affectlab-model/1"
ARCHITECTURES = {"ConcatFusion": ConcatFusion}
REQUIRED_METADATA = ("format", "architecture", "name", "config", "inputs", "outputs", "trained_on")
#: the flat column names every ConcatFusion runner fills, in order
OUTPUTS: tuple[str, ...] = (*AFFECT_DIMENSIONS, *(f"p_{e}" for e in EXPRESSIONS))


class ModelLoadError(ValueError):
    """A model name or file that cannot be served, phrased for the person who configured it."""


# --------------------------------------------------------------------------- ModelInputs <-> JSON
def _spec_to_dict(spec: InputSpec) -> dict[str, Any]:
    if isinstance(spec, NumericInput):
        return {
            "type": "numeric",
            "modality": str(spec.modality),
            "window_s": spec.window_s,
            "rate": spec.rate,
            "channels": list(spec.channels),
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
            modality, float(d["window_s"]), float(d["rate"]), tuple(d.get("channels", ()))
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


def layouts_for(
    inputs: ModelInputs, channels: dict[str, int] | None = None
) -> tuple[InputLayout, ...]:
    """The tensor shape the aligner delivers for each input.

    A numeric input that names no channels takes every channel of its stream;
    how many that is must then be given in ``channels`` (default 1).
    """
    out: list[InputLayout] = []
    for key, spec in inputs.inputs.items():
        if isinstance(spec, NumericInput):
            n = len(spec.channels) or (channels or {}).get(key, 1)
            out.append(InputLayout(key, NUMERIC, (n, max(1, round(spec.window_s * spec.rate)))))
        elif isinstance(spec, FrameInput):
            out.append(InputLayout(key, FRAMES, (spec.count, *spec.size)))
        else:
            ch = 1 if spec.representation is EventRepresentation.SIGNED else 2
            out.append(InputLayout(key, EVENTS, (spec.count, ch, *spec.size)))
    return tuple(out)


# --------------------------------------------------------------------------- files
def save_model(
    path: str | Path,
    model: ConcatFusion,
    inputs: ModelInputs,
    provenance: dict[str, Any],
) -> Path:
    """Write tensors and metadata; ``provenance`` holds trained_on, command, date, metrics."""
    if "trained_on" not in provenance:
        raise ValueError("provenance must say what the model was trained on ('trained_on')")
    if tuple(model.keys) != tuple(inputs.inputs):
        raise ValueError(
            f"model inputs {list(model.keys)} differ from the ModelInputs {list(inputs.inputs)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": FORMAT,
        "architecture": type(model).__name__,
        "name": inputs.model,
        "config": json.dumps(model.config.to_dict()),
        "inputs": inputs_to_json(inputs),
        "outputs": json.dumps(list(OUTPUTS)),
    }
    for k, v in provenance.items():
        metadata[k] = v if isinstance(v, str) else json.dumps(v)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    path.chmod(0o644)  # safetensors writes 0600; shipped weights must be readable by all
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a model file, checked for the keys a runner needs."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model file {path} is not a readable safetensors file: {exc}"
        ) from exc
    absent = [k for k in REQUIRED_METADATA if k not in meta]
    if absent:
        raise ModelLoadError(
            f"model file {path} lacks metadata {', '.join(absent)}; "
            "it was not written by affectlab's save_model"
        )
    if meta["format"] != FORMAT:
        raise ModelLoadError(
            f"model file {path} has format {meta['format']!r}, expected {FORMAT!r}"
        )
    if meta["architecture"] not in ARCHITECTURES:
        raise ModelLoadError(
            f"model file {path} needs architecture {meta['architecture']!r}; "
            f"this version knows {', '.join(ARCHITECTURES)}"
        )
    return meta


def load_model(
    path: str | Path, device: str = "cpu"
) -> tuple[ConcatFusion, ModelInputs, dict[str, str]]:
    """Rebuild the model from a file's metadata and load its tensors (no pickle)."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        config = FusionConfig.from_dict(json.loads(meta["config"]))
        inputs = inputs_from_json(meta["inputs"])
        outputs = tuple(json.loads(meta["outputs"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"model file {path} has malformed metadata: {exc}") from exc
    if config.keys != tuple(inputs.inputs):
        raise ModelLoadError(
            f"model file {path}: encoder inputs {list(config.keys)} do not match "
            f"declared inputs {list(inputs.inputs)}"
        )
    if outputs != OUTPUTS:
        raise ModelLoadError(f"model file {path}: outputs {list(outputs)} are not {list(OUTPUTS)}")
    model = ARCHITECTURES[meta["architecture"]](config)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model file {path} is not a readable safetensors file: {exc}"
        ) from exc
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelLoadError(
            f"model file {path}: tensors do not match its architecture "
            f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise ModelLoadError(
            f"model file {path}: tensors do not match its architecture: {exc}"
        ) from exc
    model.to(device).eval()
    return model, inputs, meta


def resolve(name_or_path: str) -> Path:
    """A shipped model name or a path to a ``.safetensors`` file -> the file."""
    if name_or_path in SHIPPED:
        path = shipped_path(name_or_path)
        if not path.is_file():
            raise ModelLoadError(
                f"the weights of shipped model {name_or_path!r} are missing ({path}); "
                "retrain them with `affectlab train-demo`"
            )
        return path
    path = Path(name_or_path).expanduser()
    if path.suffix == ".safetensors" or path.exists():
        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist")
        return path
    raise ModelLoadError(
        f"unknown model {name_or_path!r}; shipped models: {', '.join(sorted(SHIPPED))} "
        "(or give the path of a .safetensors file)"
    )


# --------------------------------------------------------------------------- the runner
@dataclass
class Prepared:
    """One window as tensors on the runner's device; None marks a missing input."""

    tensors: dict[str, torch.Tensor | None]
    present: torch.Tensor  # (1, n_inputs) float


def present_for_model(presence: Presence, data: np.ndarray | None) -> bool:
    """STALE data is still data to the model (the mask reports it); only MISSING is absent."""
    return presence is not Presence.MISSING and data is not None


class TorchRunner:
    """Serves a ConcatFusion model to the inference worker (core.worker.ModelRunner)."""

    def __init__(
        self,
        model: ConcatFusion,
        inputs: ModelInputs,
        device: str,
        metadata: dict[str, str] | None = None,
        path: Path | None = None,
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.name = inputs.model
        self.device = device
        self.outputs = OUTPUTS
        self.metadata = dict(metadata or {})
        self.path = path
        self._layouts = {lay.key: lay for lay in model.config.layouts}
        self._keys = model.keys

    def prepare(self, window: Window) -> Prepared:
        tensors: dict[str, torch.Tensor | None] = {}
        present = np.zeros((1, len(self._keys)), dtype=np.float32)
        for i, key in enumerate(self._keys):
            item = window.inputs.get(key)
            if item is None or not present_for_model(item.presence, item.data):
                tensors[key] = None
                continue
            assert item.data is not None
            data = np.asarray(item.data, dtype=np.float32)
            want = self._layouts[key].shape
            if data.shape != want:
                raise ValueError(
                    f"model {self.name!r} input {key!r}: expected shape {want}, got {data.shape}"
                    + (f" from stream {item.stream!r}" if item.stream else "")
                )
            tensors[key] = torch.from_numpy(np.ascontiguousarray(data))[None].to(self.device)
            present[0, i] = 1.0
        return Prepared(tensors, torch.from_numpy(present).to(self.device))

    def infer(self, prepared: Prepared) -> ModelOutput:
        with torch.inference_mode():
            out = self.model(prepared.tensors, prepared.present)
            affect = out.affect[0].float().cpu().numpy()
            probs = torch.softmax(out.logits[0].float(), dim=-1).cpu().numpy()
            norms = out.norms[0].float().cpu().numpy()
        share = norms / norms.sum() if norms.sum() > 0 else norms
        return ModelOutput(
            affect={k: float(v) for k, v in zip(AFFECT_DIMENSIONS, affect, strict=True)},
            expression={k: float(p) for k, p in zip(EXPRESSIONS, probs, strict=True)},
            routing={
                # per input, in the order of self.inputs.inputs
                "feature_norm": [float(x) for x in norms],
                "modality_weight": [float(x) for x in share],
                "present": [float(x) for x in prepared.present[0].cpu().numpy()],
            },
        )

    def describe(self) -> dict[str, Any]:
        """What a manifest records about the model."""
        keep = ("name", "architecture", "trained_on", "training_command", "trained_at", "format")
        return {
            **{k: self.metadata[k] for k in keep if k in self.metadata},
            "path": str(self.path) if self.path else None,
            "device": self.device,
        }


def load_runner(name_or_path: str, device: str = "auto") -> TorchRunner:
    """A runner for a shipped model name ("concat-fusion-sim") or a .safetensors path."""
    path = resolve(name_or_path)
    chosen = pick_device(device)
    model, inputs, meta = load_model(path, chosen)
    return TorchRunner(model, inputs, chosen, meta, path)


def set_inference_threads(threads: int | None = None) -> int:
    """Size torch's CPU thread pool for live inference and return the size chosen.

    The drivers and the aligner need a core of their own: with every core in
    torch's pool, OpenMP workers spin against the driver threads and a few-ms
    model stretches into seconds (measured on two cores). Default: all cores
    but one. Process-wide, so the session calls it once.
    """
    import os

    n = threads if threads else max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(n)
    return n
