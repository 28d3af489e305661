"""Serving MCO-E Net: eye frames (+ event counts) -> expression probabilities and expert routing.

Raw inputs go in as the aligner cuts them (frames in [0, 1], per-polarity
event counts): the model normalises them itself (``models/cards/mco_e_net.md``).

Missing inputs: without events (a plain camera, or the event stream dropped
out) the event branch gets zero counts, which is what a still scene gives;
the demo checkpoint is trained with events blanked at random so it copes.
Without frames there is nothing for an eye-frame model to look at: the runner
returns no expression rather than a guess (the log leaves the columns empty,
the LSL outlet sends NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.prediction import EXPRESSIONS, ModelOutput
from core.window import ModelInputs, Window
from models.mco_e_net import MCOENet, MCOENetConfig
from models.serving.base import Family, Runner, floats, window_array

#: luminance weights (ITU-R BT.601, as OpenCV's BGR2GRAY) for a colour frame fed to a grey
#: stem, in the channel order colour frames have in affectlab: OpenCV's blue, green, red
#: (the webcam driver's and a recorded video's frames say "color": "BGR")
BGR_LUMA = np.array([0.114, 0.587, 0.299], dtype=np.float32)


@dataclass
class MCOPrepared:
    frames: torch.Tensor | None  # (1, T, C, H, W), None when the frames are missing
    events: torch.Tensor | None  # (1, T, 2, H, W); zeros when missing; None for frames_only
    present: list[float]  # frames, events


class MCOENetRunner(Runner):
    """Probabilities over ``core.prediction.EXPRESSIONS`` and routing.

    Routing: ``expert_weights`` (the top-k weights the HCE-MoE used, zero
    elsewhere, summing to 1), ``router_probs`` (the router's full softmax) and
    ``present`` (frames, events).
    """

    def __init__(self, model: MCOENet, *args, **kwargs) -> None:
        super().__init__(model, *args, **kwargs)
        self.config: MCOENetConfig = model.config
        self.outputs = tuple(f"p_{c}" for c in model.classes)
        size = self.config.image_size
        self._frames_shape = (self.config.frames, *size)
        self._events_shape = (self.config.frames, self.config.event_channels, *size)

    def _frames(self, window: Window) -> np.ndarray | None:
        """(T, C, H, W) for the model, or None; colour frames (T, H, W, 3), in OpenCV's BGR
        order, are turned to grey for a 1-channel stem (a webcam standing in for the eye
        camera) or to RGB for a 3-channel one."""
        item = window.inputs.get("frames")
        if item is None or item.data is None or np.ndim(item.data) != 4:
            data = window_array(window, "frames", self._frames_shape, self.name)
            return None if data is None else data[:, None]
        data = window_array(window, "frames", (*self._frames_shape, 3), self.name)
        if data is None:
            return None
        if self.config.frame_channels == 1:
            return (data @ BGR_LUMA)[:, None]
        return np.moveaxis(data[..., ::-1], -1, 1)

    def prepare(self, window: Window) -> MCOPrepared:
        frames = self._frames(window)
        events = None
        present = [float(frames is not None), 0.0]
        if not self.config.frames_only:
            events = window_array(window, "events", self._events_shape, self.name)
            present[1] = float(events is not None)
            if events is None:
                events = np.zeros(self._events_shape, dtype=np.float32)

        def tensor(a: np.ndarray | None) -> torch.Tensor | None:
            if a is None:
                return None
            return torch.from_numpy(np.ascontiguousarray(a))[None].to(self.device)

        return MCOPrepared(tensor(frames), tensor(events), present)

    def infer(self, prepared: MCOPrepared) -> ModelOutput:
        if prepared.frames is None:
            return ModelOutput(routing={"present": prepared.present})
        with torch.inference_mode():
            out = self.model(prepared.frames, prepared.events)
            probs = floats(torch.softmax(out.logits[0].float(), dim=-1))
        return ModelOutput(
            expression=dict(zip(self.model.classes, probs, strict=True)),
            routing={
                "expert_weights": floats(out.routing[0]),
                "router_probs": floats(out.router_probs[0]),
                "present": prepared.present,
            },
        )


def validate(config_json: str, inputs: ModelInputs) -> MCOENetConfig:
    """The inputs must be exactly what the config's ``model_inputs`` asks the aligner for."""
    config = MCOENetConfig.from_json(config_json)
    if config.n_classes != len(EXPRESSIONS):
        raise ValueError(f"{config.n_classes} classes; served models classify {len(EXPRESSIONS)}")
    want = config.model_inputs(inputs.model).inputs
    if want != inputs.inputs:
        raise ValueError(f"declared inputs {inputs.inputs} are not what the config needs: {want}")
    return config


def build(config_json: str, inputs: ModelInputs) -> MCOENet:
    return MCOENet(validate(config_json, inputs))


FAMILY = Family(
    name="mco-e-net",
    architecture="MCOENet",
    model_type=MCOENet,
    config_json=lambda m: m.config.to_json(),
    validate=validate,
    build=build,
    outputs=lambda m: tuple(f"p_{c}" for c in m.classes),
    runner=MCOENetRunner,
)
