"""A validation-weighted ensemble of independently trained models (late fusion of models).

As in ``papers/compound-expression-ensemble_summary.txt``: several models of
different architectures are trained separately, each with its own recipe and
early stopping; at inference their predictions are averaged with weights that
grow with each model's validation score, so the better models count more.
Nothing is trained jointly and no member is changed.

Weights: ``w_i = max(s_i, 0) / sum_j max(s_j, 0)`` for validation scores ``s_i``
(mean CCC over the dimensions for regression, accuracy for classes); a member
that does no better than a constant predictor (score <= 0) gets no weight; if
no member scores above 0 the weights are equal. The paper does not give its
exact formula, only "weighted average based on validation performance, better
models receive higher weights"; proportional-to-score is the simplest reading.

Members take ``(inputs, present)`` and return an object with ``regression``
(B, D) and optionally ``binary_logits`` (B, D) (Hi-MoE, late fusion, the
concatenation regressor): regressions are averaged, high/low probabilities
are averaged and returned as logits. Any member that accepts missing
modalities keeps doing so inside the ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


def validation_weights(scores: Sequence[float]) -> list[float]:
    """Weights proportional to the positive part of each validation score, summing to 1."""
    if not scores:
        raise ValueError("an ensemble needs at least one member score")
    pos = [max(float(s), 0.0) if s == s else 0.0 for s in scores]  # NaN counts as 0
    total = sum(pos)
    if total <= 0.0:
        return [1.0 / len(pos)] * len(pos)
    return [p / total for p in pos]


@dataclass
class EnsembleOutput:
    regression: torch.Tensor  # (B, D)
    binary_logits: torch.Tensor | None  # (B, D)
    member_regression: torch.Tensor  # (B, K, D)
    weights: torch.Tensor  # (K,)
    output_range: tuple[float, float] = (1.0, 9.0)


class Ensemble(nn.Module):
    """Weighted average of members' predictions; members are frozen by construction (eval only)."""

    def __init__(
        self,
        members: Sequence[nn.Module],
        weights: Sequence[float],
        names: Sequence[str] | None = None,
        output_range: tuple[float, float] = (1.0, 9.0),
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if len(weights) != len(members):
            raise ValueError(f"{len(members)} members but {len(weights)} weights")
        w = torch.tensor([float(x) for x in weights], dtype=torch.float32)
        if bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError(f"ensemble weights must be >= 0 and not all 0, got {list(weights)}")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", w / w.sum())
        self.names = (
            tuple(names) if names is not None else tuple(f"m{i}" for i in range(len(members)))
        )
        self.output_range = (float(output_range[0]), float(output_range[1]))

    def forward(
        self,
        inputs: dict[str, torch.Tensor | None],
        present: dict[str, torch.Tensor] | None = None,
    ) -> EnsembleOutput:
        outs = [m(inputs, present) for m in self.members]
        regs = torch.stack([o.regression for o in outs], 1)  # (B, K, D)
        w = self.weights.to(regs)
        regression = torch.einsum("bkd,k->bd", regs, w)
        logits = [getattr(o, "binary_logits", None) for o in outs]
        binary = None
        if any(lg is not None for lg in logits):
            # members without high/low heads vote by their regression against the midpoint
            mid = 0.5 * (self.output_range[0] + self.output_range[1])
            probs = torch.stack(
                [
                    torch.sigmoid(lg) if lg is not None else (o.regression > mid).to(regs)
                    for lg, o in zip(logits, outs, strict=True)
                ],
                1,
            )
            prob = torch.einsum("bkd,k->bd", probs, w).clamp(1e-6, 1 - 1e-6)
            binary = torch.logit(prob)
        return EnsembleOutput(regression, binary, regs, w, self.output_range)
