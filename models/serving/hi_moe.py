"""Serving Hi-MoE: physiology (and optionally face frames) -> affect, with what it attended to.

Every modality of the config is one input of the same name. A missing input
is simply marked absent: the model zeroes it (eq. 2), its gate falls back to
its learned default and fusion masks it out, so any subset of devices works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.prediction import AFFECT_DIMENSIONS, ModelOutput
from core.window import FrameInput, ModelInputs, NumericInput, Window
from models.hi_moe import HiMoE, HiMoEConfig
from models.hi_moe_config import FRAMES
from models.serving.base import Family, Runner, floats, window_array, with_channel_counts


@dataclass
class HiMoEPrepared:
    """Tensors (1, C, T) or (1, F, H, W) per present modality; presence (1,) bool for all."""

    tensors: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]


class HiMoERunner(Runner):
    """Affect (valence, arousal, dominance, liking on 1-9) and the model's routing.

    Routing: ``modality_attention`` (fusion weights per modality, config order,
    0 where missing), ``router_weights`` (emotion experts), ``present`` and
    ``gate_<modality>`` (that modality's expert gate).
    """

    def __init__(self, model: HiMoE, *args, **kwargs) -> None:
        super().__init__(model, *args, **kwargs)
        self.config: HiMoEConfig = model.config
        counts = {m.name: m.channels for m in self.config.modalities if m.kind != FRAMES}
        self.inputs = with_channel_counts(self.inputs, counts)
        self.outputs = tuple(self.config.outputs)

    def prepare(self, window: Window) -> HiMoEPrepared:
        tensors: dict[str, torch.Tensor] = {}
        present: dict[str, torch.Tensor] = {}
        for spec in self.config.modalities:
            data = window_array(window, spec.name, spec.input_shape, self.name)
            if data is not None:
                tensors[spec.name] = torch.from_numpy(np.ascontiguousarray(data))[None].to(
                    self.device
                )
            present[spec.name] = torch.tensor([data is not None], device=self.device)
        return HiMoEPrepared(tensors, present)

    def infer(self, prepared: HiMoEPrepared) -> ModelOutput:
        with torch.inference_mode():
            out = self.model(prepared.tensors, prepared.present)
        routing = {
            "modality_attention": floats(out.modality_attention[0]),
            "router_weights": floats(out.router_weights[0]),
            "present": [float(bool(prepared.present[n][0])) for n in self.config.names],
        }
        for i, name in enumerate(self.config.names):
            routing[f"gate_{name}"] = floats(out.gate_weights[0, i])
        affect = dict(zip(out.output_names, floats(out.regression[0]), strict=True))
        return ModelOutput(affect=affect, routing=routing)


def validate(config_json: str, inputs: ModelInputs) -> HiMoEConfig:
    """Every modality an input of its name, cut to the shape its encoder expects."""
    config = HiMoEConfig.from_json(config_json)
    if set(config.names) != set(inputs.inputs):
        raise ValueError(
            f"modalities {list(config.names)} do not match declared inputs {list(inputs.inputs)}"
        )
    unknown = [o for o in config.outputs if o not in AFFECT_DIMENSIONS]
    if unknown:
        raise ValueError(f"outputs {unknown} are not affect dimensions {list(AFFECT_DIMENSIONS)}")
    for spec in config.modalities:
        want = inputs.inputs[spec.name]
        if spec.kind == FRAMES:
            ok = isinstance(want, FrameInput) and (want.count, *want.size) == spec.input_shape
        else:
            ok = (
                isinstance(want, NumericInput)
                and round(want.window_s * want.rate) == spec.samples
                and want.rate == spec.rate
                and len(want.channels) in (0, spec.channels)
            )
        if not ok:
            raise ValueError(
                f"input {spec.name!r} ({want}) does not deliver the {spec.input_shape} "
                f"the model's encoder expects"
            )
    return config


def build(config_json: str, inputs: ModelInputs) -> HiMoE:
    return HiMoE(validate(config_json, inputs))


FAMILY = Family(
    name="hi-moe",
    architecture="HiMoE",
    model_type=HiMoE,
    config_json=lambda m: m.config.to_json(),
    validate=validate,
    build=build,
    outputs=lambda m: tuple(m.config.outputs),
    runner=HiMoERunner,
)
