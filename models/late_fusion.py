"""Late fusion: one small regressor per modality, predictions averaged over those present.

The first baseline of the Hi-MoE paper's tables. Each modality has its own
encoder and its own heads and never sees another modality, so training the
model as a whole (the sum of the per-modality losses, each masked to windows
where its modality is present) is training independent regressors side by
side. At prediction time the regressions (and the high/low probabilities) of
the present modalities are averaged, renormalised over those present; a window
with no modality at all gets the scale's midpoint and probability 1/2.

Weights (``weighting``): "validation" (default) weighs each modality, per
output dimension, by its own validation CCC squared (negative CCC counts as
0, plus a small floor), as the ensemble paper weighs its members by validation
score; ``SignalTask.validate`` refits them at every validation, so the best
checkpoint carries the weights it was selected with. Squaring sharpens the
weights towards the modalities that carry a dimension: on simulated DEAP
(fold 0 of 5) it gave CCC 0.352 against 0.336 for plain CCC weights and 0.251
for "equal" (the plain average, kept as an option).

This is what makes it the natural yardstick for missing data: a missing
modality simply drops out of the average, so late fusion degrades gracefully
but cannot use one modality to interpret another.

Encoders are the concatenation baseline's (``models.baselines``): a 1-D conv
stack with mean / log-energy pooling and a standardised per-channel stats
branch for signals, a strided 2-D conv stack for frame stacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.prediction import AFFECT_DIMENSIONS
from models.baselines import (
    FRAMES,
    NUMERIC,
    FrameEncoder,
    InputLayout,
    NumericEncoder,
    batch_size_of,
)
from models.config_checks import check_fractions, check_sizes

WEIGHTINGS = ("validation", "equal")
WEIGHT_FLOOR = 1e-4  # a modality that predicts nothing still counts when it is all there is


@dataclass(frozen=True)
class LateFusionConfig:
    """Per-modality inputs (``InputLayout``: numeric ``(C, T)`` or frames ``(F, H, W)``) and sizes."""

    layouts: tuple[InputLayout, ...]
    dim: int = 48  # encoder feature width
    hidden: int = 64  # head MLP width
    conv_width: int = 24
    image_widths: tuple[int, ...] = (16, 24, 32, 32)
    dropout: float = 0.1
    outputs: tuple[str, ...] = AFFECT_DIMENSIONS
    output_range: tuple[float, float] = (1.0, 9.0)
    binary_heads: bool = True
    weighting: str = "validation"  # or "equal"

    def __post_init__(self) -> None:
        lays = tuple(
            lay
            if isinstance(lay, InputLayout)
            else InputLayout(lay["key"], lay["kind"], tuple(lay["shape"]))
            for lay in self.layouts
        )
        if not lays:
            raise ValueError("LateFusionConfig needs at least one modality")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting {self.weighting!r}: expected one of {WEIGHTINGS}")
        for lay in lays:
            if lay.kind not in (NUMERIC, FRAMES):
                raise ValueError(f"late fusion input {lay.key!r}: kind {lay.kind!r} not supported")
        keys = [lay.key for lay in lays]
        if len(set(keys)) != len(keys):
            raise ValueError(f"modality keys must be unique, got {keys}")
        object.__setattr__(self, "layouts", lays)
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "image_widths", tuple(int(w) for w in self.image_widths))
        object.__setattr__(self, "output_range", tuple(float(v) for v in self.output_range))
        if not self.output_range[1] > self.output_range[0]:
            raise ValueError(f"output_range {self.output_range} must be (low, high), low < high")
        check_sizes(self, {"dim": 1, "hidden": 1, "conv_width": 1})
        check_fractions(self, ("dropout",))
        if not self.image_widths or min(self.image_widths) < 1:
            raise ValueError(f"image_widths must be integers >= 1, got {list(self.image_widths)}")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(lay.key for lay in self.layouts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layouts": [
                {"key": x.key, "kind": x.kind, "shape": list(x.shape)} for x in self.layouts
            ],
            "dim": self.dim,
            "hidden": self.hidden,
            "conv_width": self.conv_width,
            "image_widths": list(self.image_widths),
            "dropout": self.dropout,
            "outputs": list(self.outputs),
            "output_range": list(self.output_range),
            "binary_heads": self.binary_heads,
            "weighting": self.weighting,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LateFusionConfig:
        return cls(**d)


@dataclass
class LateFusionOutput:
    regression: torch.Tensor  # (B, D): mean over present modalities, within output_range
    binary_logits: torch.Tensor | None  # (B, D): logit of the mean high-probability
    branch_regression: torch.Tensor  # (B, M, D): every modality's own prediction
    branch_logits: torch.Tensor | None  # (B, M, D)
    present: torch.Tensor  # (B, M) bool, as the model saw it
    output_range: tuple[float, float] = (1.0, 9.0)


class Branch(nn.Module):
    """One modality's regressor: encoder -> MLP -> regression (and high/low) per dimension."""

    def __init__(self, lay: InputLayout, cfg: LateFusionConfig) -> None:
        super().__init__()
        if lay.kind == NUMERIC:
            self.encoder: nn.Module = NumericEncoder(*lay.shape, cfg.dim, cfg.conv_width)
        else:
            self.encoder = FrameEncoder(lay.shape, cfg.dim, cfg.image_widths)
        n = len(cfg.outputs)
        self.trunk = nn.Sequential(
            nn.Linear(cfg.dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout)
        )
        self.regression = nn.Linear(cfg.hidden, n)
        self.binary = nn.Linear(cfg.hidden, n) if cfg.binary_heads else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.trunk(self.encoder(x))
        return self.regression(h), (self.binary(h) if self.binary is not None else None)


class LateFusion(nn.Module):
    """Independent per-modality regressors; the output is their mean over present modalities."""

    def __init__(self, config: LateFusionConfig) -> None:
        super().__init__()
        self.config = config
        self.branches = nn.ModuleDict({lay.key: Branch(lay, config) for lay in config.layouts})
        # (M, D) weight of each modality's prediction per output; ones = the plain average
        self.register_buffer("branch_weights", torch.ones(len(config.layouts), len(config.outputs)))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # checkpoints from before the weights existed were plain averages
        state_dict.setdefault(prefix + "branch_weights", torch.ones_like(self.branch_weights))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def fit_branch_weights(self, branch_regression: torch.Tensor, targets: torch.Tensor) -> None:
        """Weights from each modality's own CCC on held-out windows (``weighting="validation"``).

        ``branch_regression`` (N, M, D) with every modality present, ``targets`` (N, D).
        """
        if self.config.weighting != "validation":
            return
        from models.metrics import ccc  # numpy metric, the one every table uses

        pred = branch_regression.detach().float().cpu().numpy()
        y = targets.detach().float().cpu().numpy()
        w = torch.empty_like(self.branch_weights)
        for m in range(pred.shape[1]):
            for d in range(pred.shape[2]):
                ok = np.isfinite(y[:, d])
                c = ccc(y[ok, d], pred[ok, m, d]) if ok.sum() > 1 else 0.0
                w[m, d] = max(float(np.nan_to_num(c)), 0.0) ** 2 + WEIGHT_FLOOR
        self.branch_weights.copy_(w)

    @torch.no_grad()
    def fit_input_stats(
        self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Fit each signal encoder's stats standardisation on training windows where it is present."""
        for lay in self.config.layouts:
            x = inputs.get(lay.key)
            if x is None or lay.kind != NUMERIC:
                continue
            p = None if present is None else present.get(lay.key)
            x = x if p is None else x[p.to(torch.bool)]
            if x.shape[0] > 0:
                self.branches[lay.key].encoder.fit_stats(torch.nan_to_num(x.float()))

    def forward(
        self,
        inputs: dict[str, torch.Tensor | None],
        present: dict[str, torch.Tensor] | None = None,
    ) -> LateFusionOutput:
        """``inputs[key]`` batches (absent or None: missing for the whole batch); ``present[key]`` (B,)."""
        cfg = self.config
        present = dict(present or {})
        b = batch_size_of("LateFusion", cfg.keys, inputs, present)
        ref = next(iter(self.parameters()))
        n = len(cfg.outputs)
        low, high = cfg.output_range
        regs, logits, masks = [], [], []
        for lay in cfg.layouts:
            x = inputs.get(lay.key)
            p = present.get(lay.key)
            if x is None:
                p = torch.zeros(b, dtype=torch.bool, device=ref.device)
            elif p is None:
                p = torch.ones(b, dtype=torch.bool, device=ref.device)
            p = p.to(device=ref.device, dtype=torch.bool).reshape(b)
            if x is not None:
                lay.check(x)
            if x is None or not bool(p.any()):
                r = torch.zeros(b, n, device=ref.device, dtype=ref.dtype)
                lg = torch.zeros(b, n, device=ref.device, dtype=ref.dtype)
            else:
                keep = p.view(b, *([1] * (x.dim() - 1)))
                x = torch.where(keep, torch.nan_to_num(x.to(ref)), 0.0)
                raw, lg_ = self.branches[lay.key](x)
                r = low + (high - low) * torch.sigmoid(raw)
                lg = lg_ if lg_ is not None else torch.zeros_like(r)
            regs.append(r)
            logits.append(lg)
            masks.append(p)
        branch_reg = torch.stack(regs, 1)  # (B, M, D)
        branch_lg = torch.stack(logits, 1)
        pm = torch.stack(masks, 1)  # (B, M)
        w = pm.to(branch_reg.dtype).unsqueeze(-1) * self.branch_weights.to(branch_reg)
        count = w.sum(1)
        mid = 0.5 * (low + high)
        regression = torch.where(count > 0, (w * branch_reg).sum(1) / count.clamp_min(1e-12), mid)
        binary = None
        if cfg.binary_heads:
            prob = (w * torch.sigmoid(branch_lg)).sum(1) / count.clamp_min(1e-12)
            prob = torch.where(count > 0, prob, 0.5).clamp(1e-6, 1 - 1e-6)
            binary = torch.logit(prob)
        return LateFusionOutput(
            regression=regression,
            binary_logits=binary,
            branch_regression=branch_reg,
            branch_logits=branch_lg if cfg.binary_heads else None,
            present=pm,
            output_range=cfg.output_range,
        )


def late_fusion_loss(
    output: LateFusionOutput, targets: torch.Tensor, binary_targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each modality's own loss on the windows where it is present, summed over modalities.

    MSE in units of half the label range (as Hi-MoE's, so the two compare on one
    scale) plus BCE for the high/low heads (targets default to "above the
    midpoint"). Non-finite targets are left out.
    """
    low, high = output.output_range
    half = 0.5 * (high - low)
    pred = output.branch_regression  # (B, M, D)
    y = targets.to(pred).unsqueeze(1).expand_as(pred)
    finite = torch.isfinite(y)
    w = (output.present.unsqueeze(-1) & finite).to(pred.dtype)
    safe = torch.where(finite, y, pred.detach())
    per_mod = w.sum((0, 2)).clamp_min(1.0)  # (M,)
    mse = ((w * ((pred - safe) / half) ** 2).sum((0, 2)) / per_mod).sum()
    parts = {"mse": mse}
    total = mse
    if output.branch_logits is not None:
        bt = (
            (safe > 0.5 * (low + high)).to(pred.dtype)
            if binary_targets is None
            else binary_targets.to(pred).unsqueeze(1).expand_as(pred)
        )
        bce = F.binary_cross_entropy_with_logits(output.branch_logits, bt, reduction="none")
        bce = ((w * bce).sum((0, 2)) / per_mod).sum()
        parts["bce"] = bce
        total = total + bce
    return total, parts
