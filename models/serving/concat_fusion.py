"""Serving ConcatFusion (the interim demo model): every input -> affect and expression.

The model takes every input as a tensor (None where missing) and a presence
row; it normalises its inputs inside ``forward``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from core.prediction import AFFECT_DIMENSIONS, EXPRESSIONS, ModelOutput
from core.window import (
    EventInput,
    EventRepresentation,
    FrameInput,
    ModelInputs,
    NumericInput,
    Window,
)
from models.baselines import EVENTS, FRAMES, NUMERIC, ConcatFusion, FusionConfig, InputLayout
from models.serving.base import Family, Runner, window_array, with_channel_counts

#: the flat column names every ConcatFusion runner fills, in order
OUTPUTS: tuple[str, ...] = (*AFFECT_DIMENSIONS, *(f"p_{e}" for e in EXPRESSIONS))


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
            assert isinstance(spec, EventInput)
            ch = 1 if spec.representation is EventRepresentation.SIGNED else 2
            out.append(InputLayout(key, EVENTS, (spec.count, ch, *spec.size)))
    return tuple(out)


@dataclass
class Prepared:
    """One window as tensors on the runner's device; None marks a missing input."""

    tensors: dict[str, torch.Tensor | None]
    present: torch.Tensor  # (1, n_inputs) float


class TorchRunner(Runner):
    """Serves a ConcatFusion model to the inference worker (core.worker.ModelRunner)."""

    outputs = OUTPUTS

    def __init__(self, model: ConcatFusion, *args, **kwargs) -> None:
        super().__init__(model, *args, **kwargs)
        self._layouts = {lay.key: lay for lay in model.config.layouts}
        counts = {k: lay.shape[0] for k, lay in self._layouts.items() if lay.kind == NUMERIC}
        self.inputs = with_channel_counts(self.inputs, counts)
        self._keys = model.keys

    def prepare(self, window: Window) -> Prepared:
        tensors: dict[str, torch.Tensor | None] = {}
        present = np.zeros((1, len(self._keys)), dtype=np.float32)
        for i, key in enumerate(self._keys):
            data = window_array(window, key, self._layouts[key].shape, self.name)
            if data is None:
                tensors[key] = None
                continue
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


def validate(config_json: str, inputs: ModelInputs) -> FusionConfig:
    config = FusionConfig.from_dict(json.loads(config_json))
    if config.keys != tuple(inputs.inputs):
        raise ValueError(
            f"encoder inputs {list(config.keys)} do not match declared inputs {list(inputs.inputs)}"
        )
    return config


def build(config_json: str, inputs: ModelInputs) -> ConcatFusion:
    return ConcatFusion(validate(config_json, inputs))


FAMILY = Family(
    name="concat-fusion",
    architecture="ConcatFusion",
    model_type=ConcatFusion,
    config_json=lambda m: json.dumps(m.config.to_dict()),
    validate=validate,
    build=build,
    outputs=lambda _m: OUTPUTS,
    runner=TorchRunner,
)
