"""MCO-E Net's configuration: the ``paper`` sizes of the release and our ``lite`` real-time
variant, and the aligner inputs it declares (``models/cards/mco_e_net.md`` says why each).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from core.prediction import EXPRESSIONS
from core.streams import Modality
from core.window import EventInput, EventRepresentation, FrameInput, ModelInputs
from models.config_checks import check_fractions, check_sizes

MODALITIES: tuple[str, ...] = ("rgb", "evt")
EVENT_INPUTS: tuple[str, ...] = ("counts", "intensity")
#: expert type by index modulo 3, as the released HCEMoE builds them
EXPERT_TYPES: tuple[str, ...] = ("focal", "attention", "deep")
#: SEE's APS frame rate; events are accumulated over one frame period
SEE_FPS = 30.0


# --------------------------------------------------------------------------- configuration
#: MCOENetConfig's sizes and the least each may be (a 0 fails deep inside torch, or divides by it)
_SIZES: dict[str, int] = {
    "n_classes": 2,
    "frame_stride": 1,
    "backbone_width": 1,
    "backbone_outputs": 1,
    "d_model": 1,
    "d_state": 1,
    "d_conv": 1,
    "expand": 1,
    "dt_rank": 1,
    "mcib_heads": 1,
    "fusion_dim": 1,
    "n_experts": 1,
    "expert_tokens": 1,
    "focal_hidden": 1,
    "focal_kernel": 1,
    "attn_heads": 1,
    "deep_layers": 0,
    "deep_mult": 1,
    "router_heads": 1,
    "router_hidden": 1,
}


@dataclass(frozen=True)
class MCOENetConfig:
    """Architecture hyperparameters: with the weights, enough to rebuild the model."""

    name: str = "paper"
    n_classes: int = len(EXPRESSIONS)
    # inputs
    frames: int = 4  # T sampled steps per window; the first and the last are used
    frame_stride: int = 4  # SEE frames between sampled steps (released: every 4th)
    image_size: tuple[int, int] = (100, 100)
    frame_channels: int = 3  # backbone stem; grayscale input is replicated to it
    event_channels: int = 2  # 2: (OFF, ON) counts; 3: SEE's JPEG event frames
    event_input: str = "counts"  # "counts" (log-scaled) | "intensity" (SEE JPEG, standardised)
    event_clip: float = 16.0  # counts per pixel and slice above this saturate
    frames_only: bool = False
    # backbones
    backbone_width: int = 64
    backbone_outputs: int = 1000  # K: the ImageNet-sized fc output the released model keeps
    share_time_backbone: bool = False  # False: one ResNet per (modality, step), 4 in all
    # MCO-Mamba
    d_model: int = 4
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 1
    share_backward_dt_bias: bool = False  # True: the released forward (backward scan reuses it)
    # MCIB and fusion
    mcib_heads: int = 2
    fusion_dim: int = 1024
    fusion_dropout: float = 0.5
    # HCE-MoE
    n_experts: int = 8
    top_k: int = 2
    expert_tokens: int = 1  # the fused vector as this many tokens (1 = released)
    focal_hidden: int = 512
    focal_kernel: int = 3
    attn_heads: int = 2
    deep_layers: int = 5
    deep_mult: int = 4
    deep_dropout: float = 0.5
    deep_alpha: float = 0.3
    router_heads: int = 4
    router_hidden: int = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        prefix = f"MCOENetConfig {self.name!r}: "
        check_sizes(self, _SIZES, prefix)
        check_fractions(self, ("fusion_dropout", "deep_dropout"), prefix)
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ValueError(f"{prefix}image_size must be (height, width)")
        checks = [
            (self.frames >= 2, "frames must be >= 2 (the first and the last step are used)"),
            (self.frame_channels in (1, 3), "frame_channels must be 1 or 3"),
            (self.event_input in EVENT_INPUTS, f"event_input must be one of {EVENT_INPUTS}"),
            (self.event_channels >= 1 and self.event_clip > 0, "bad event_channels/event_clip"),
            ((2 * self.backbone_outputs) % self.d_model == 0, "d_model must divide 2*outputs"),
            (self.d_model % self.mcib_heads == 0, "mcib_heads must divide d_model"),
            (1 <= self.top_k <= self.n_experts, "need 1 <= top_k <= n_experts"),
            (self.fusion_dim % self.expert_tokens == 0, "expert_tokens must divide fusion_dim"),
            (self.token_dim % self.attn_heads == 0, "attn_heads must divide the token width"),
            (self.token_dim % self.router_heads == 0, "router_heads must divide the token width"),
            (self.focal_kernel % 2 == 1, "focal_kernel must be odd"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"MCOENetConfig {self.name!r}: {msg}")

    # ----------------------------------------------------------------- presets
    @classmethod
    def paper(cls, **overrides: Any) -> MCOENetConfig:
        """The released sizes: four ResNet-18 with 1000-way heads, 500 tokens, 8 experts, top-2."""
        return cls(**{"name": "paper", **overrides})

    @classmethod
    def lite(cls, **overrides: Any) -> MCOENetConfig:
        """Real-time variant: one quarter-width ResNet-18 per modality, light experts.

        Each modality's backbone sees both steps as one batch; the fused vector is
        8 tokens of 32, so the attention expert and the router really attend.
        """
        kw: dict[str, Any] = {
            "name": "lite",
            "frame_channels": 1,
            "backbone_width": 16,
            "backbone_outputs": 256,
            "share_time_backbone": True,
            "fusion_dim": 256,
            "n_experts": 6,
            "expert_tokens": 8,
            "focal_hidden": 64,
            "deep_layers": 2,
            "deep_mult": 2,
            "router_hidden": 128,
        }
        kw.update(overrides)
        return cls(**kw)

    # ----------------------------------------------------------------- derived
    @property
    def seq_len(self) -> int:
        """Tokens per modality entering MCO-Mamba."""
        return 2 * self.backbone_outputs // self.d_model

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def token_dim(self) -> int:
        return self.fusion_dim // self.expert_tokens

    @property
    def window_s(self) -> float:
        """Seconds the T sampled steps span at SEE's frame rate."""
        return self.frames * self.frame_stride / SEE_FPS

    def model_inputs(
        self,
        model: str,
        hop_s: float = 0.2,
        allowed_lateness_s: float = 0.1,
        stale_after_s: float = 0.5,
    ) -> ModelInputs:
        """What the aligner must cut: T frames and T event slices of one frame period each."""
        inputs: dict[str, FrameInput | EventInput] = {
            "frames": FrameInput(Modality.FRAMES, self.window_s, self.frames, self.image_size)
        }
        if not self.frames_only:
            if self.event_input != "counts" or self.event_channels != 2:
                raise ValueError("live event input is per-polarity counts (2 channels)")
            inputs["events"] = EventInput(
                Modality.EVENTS,
                self.window_s,
                self.frames,
                1.0 / SEE_FPS,
                self.image_size,
                EventRepresentation.COUNT,
            )
        return ModelInputs(model, inputs, hop_s, allowed_lateness_s, stale_after_s)

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MCOENetConfig:
        d = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown MCOENetConfig fields {sorted(unknown)}")
        return cls(**d)

    def with_(self, **changes: Any) -> MCOENetConfig:
        return replace(self, **changes)
