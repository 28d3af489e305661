"""The concatenation-fusion baseline as a regressor of any rating scale, with branch heads.

``models.baselines.ConcatFusion`` is the ABAW EMI design wired for the live demo:
the 1-9 scale (``5 + 4 tanh``), four dimensions and an expression head. The
paper's recipe also supervises every branch on its own ("auxiliary branch
supervision"), which needs each input's feature, and DREAMER rates on 1-5.
This thin variant reuses ConcatFusion's encoders, missing embeddings, trunk and
regression head unchanged, maps the head onto ``output_range``
(``mid + half tanh``), drops the unused expression head, and adds one linear
auxiliary head per input on that input's own feature. It takes presence as a
dict like Hi-MoE and late fusion, so the three are interchangeable in training,
evaluation and ensembles.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from core.prediction import AFFECT_DIMENSIONS
from models.baselines import NUMERIC, ConcatFusion, FusionConfig, batch_size_of
from models.losses import mse_pearson_loss


@dataclass(frozen=True)
class ConcatRegressorConfig:
    fusion: FusionConfig
    outputs: tuple[str, ...] = AFFECT_DIMENSIONS
    output_range: tuple[float, float] = (1.0, 9.0)

    def __post_init__(self) -> None:
        fusion = (
            self.fusion
            if isinstance(self.fusion, FusionConfig)
            else FusionConfig.from_dict(self.fusion)
        )
        object.__setattr__(self, "fusion", fusion)
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "output_range", tuple(float(v) for v in self.output_range))
        if fusion.n_affect != len(self.outputs):
            raise ValueError(f"fusion.n_affect {fusion.n_affect} != {len(self.outputs)} outputs")
        if not self.output_range[1] > self.output_range[0]:
            raise ValueError(f"output_range {self.output_range} must be (low, high), low < high")

    def to_dict(self) -> dict[str, Any]:
        return {
            "fusion": self.fusion.to_dict(),
            "outputs": list(self.outputs),
            "output_range": list(self.output_range),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConcatRegressorConfig:
        return cls(
            FusionConfig.from_dict(d["fusion"]), tuple(d["outputs"]), tuple(d["output_range"])
        )


@dataclass
class ConcatRegressorOutput:
    regression: torch.Tensor  # (B, D) within output_range
    branch_regression: torch.Tensor  # (B, M, D): each input's auxiliary head
    present: torch.Tensor  # (B, M) bool
    output_range: tuple[float, float] = (1.0, 9.0)
    binary_logits: torch.Tensor | None = None  # no high/low head: threshold the regression


class ConcatRegressor(nn.Module):
    """ConcatFusion's encoders -> concatenation (missing: learned embedding) -> shared head."""

    def __init__(self, config: ConcatRegressorConfig) -> None:
        super().__init__()
        self.config = config
        with warnings.catch_warnings():  # n_classes = 0: an empty head, removed just below
            warnings.simplefilter("ignore", UserWarning)
            self.fusion = ConcatFusion(config.fusion)
        self.fusion.class_head = nn.Identity()  # expressions are not predicted here
        n = len(config.outputs)
        self.aux = nn.ModuleDict({k: nn.Linear(config.fusion.dim, n) for k in config.fusion.keys})

    @torch.no_grad()
    def fit_input_stats(
        self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> None:
        for lay in self.config.fusion.layouts:
            x = inputs.get(lay.key)
            if x is None or lay.kind != NUMERIC:
                continue
            p = None if present is None else present.get(lay.key)
            x = x if p is None else x[p.to(torch.bool)]
            if x.shape[0] > 0:
                self.fusion.encoders[lay.key].fit_stats(torch.nan_to_num(x.float()))

    def _scale(self, raw: torch.Tensor) -> torch.Tensor:
        low, high = self.config.output_range
        return 0.5 * (low + high) + 0.5 * (high - low) * torch.tanh(raw)

    def forward(
        self,
        inputs: dict[str, torch.Tensor | None],
        present: dict[str, torch.Tensor] | None = None,
    ) -> ConcatRegressorOutput:
        f = self.fusion
        present = dict(present or {})
        b = batch_size_of("ConcatRegressor", f.keys, inputs, present)
        ref = f.missing
        feats, aux, masks = [], [], []
        for i, lay in enumerate(f.config.layouts):
            key = lay.key
            x = inputs.get(key)
            p = present.get(key)
            if x is not None:
                lay.check(x)
            if x is None:
                p = torch.zeros(b, dtype=torch.bool, device=ref.device)
            elif p is None:
                p = torch.ones(b, dtype=torch.bool, device=ref.device)
            p = p.to(device=ref.device, dtype=torch.bool).reshape(b)
            m = p.to(ref.dtype).unsqueeze(-1)
            if x is None or not bool(p.any()):
                z = torch.zeros(b, f.config.dim, device=ref.device, dtype=ref.dtype)
            else:
                keep = p.view(b, *([1] * (x.dim() - 1)))
                x = torch.where(keep, torch.nan_to_num(x.to(ref)), 0.0)
                z = f.encoders[key](x) * m
            feats.append(z + (1.0 - m) * f.missing[i])
            aux.append(self._scale(self.aux[key](z)))
            masks.append(p)
        h = f.trunk(torch.cat(feats, dim=-1))
        return ConcatRegressorOutput(
            regression=self._scale(f.affect_head(h)),
            branch_regression=torch.stack(aux, 1),
            present=torch.stack(masks, 1),
            output_range=self.config.output_range,
        )


def concat_regressor_loss(
    output: ConcatRegressorOutput, targets: torch.Tensor, aux_weight: float = 0.3
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The paper's multi-objective: MSE + (1 - Pearson) on the fused head, plus the same on
    every branch's auxiliary head (weighted by ``aux_weight``, only where the input is present).

    MSE is in units of half the rating range (``scale``), as for the other models.
    """
    low, high = output.output_range
    half = 0.5 * (high - low)
    y = targets.to(output.regression)
    finite = torch.isfinite(y)
    safe = torch.where(finite, y, output.regression.detach())
    main = mse_pearson_loss(output.regression, safe, finite, scale=half)
    parts = {"main": main}
    total = main
    if aux_weight > 0:
        terms = []
        for k in range(output.branch_regression.shape[1]):
            w = finite & output.present[:, k : k + 1]
            if int(w.sum()) >= 2:
                terms.append(mse_pearson_loss(output.branch_regression[:, k], safe, w, scale=half))
        if terms:
            aux = torch.stack(terms).mean()
            parts["aux"] = aux
            total = total + aux_weight * aux
    return total, parts
