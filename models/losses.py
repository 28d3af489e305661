"""Training losses: correlation losses for continuous affect, smoothed cross-entropy for classes.

The concatenation-fusion paper (ABAW EMI) trains with several objectives at
once: MSE keeps predictions on the right scale, a Pearson term aligns them with
the metric the challenge reports. ``mse_pearson_loss`` is that pair;
``ccc_loss`` is the alternative when CCC itself is the target metric.

All regression losses take ``(batch, dims)`` tensors (or ``(batch,)``) and an
optional ``(batch, dims)`` weight mask, so a batch with some labels absent still
trains on the rest. Correlations are computed per dimension over the batch and
averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _as2d(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(-1) if x.dim() == 1 else x


def _moments(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None
) -> tuple[torch.Tensor, ...]:
    """Weighted means, variances and covariance per dimension (population moments)."""
    pred, target = _as2d(pred).float(), _as2d(target).float()
    w = torch.ones_like(pred) if weight is None else _as2d(weight).float().expand_as(pred)
    n = w.sum(0).clamp_min(1e-8)
    mp = (w * pred).sum(0) / n
    mt = (w * target).sum(0) / n
    dp, dt = pred - mp, target - mt
    vp = (w * dp * dp).sum(0) / n
    vt = (w * dt * dt).sum(0) / n
    cov = (w * dp * dt).sum(0) / n
    return mp, mt, vp, vt, cov


def pearson_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6
) -> torch.Tensor:
    """``1 - r`` averaged over dimensions; 0 when perfectly correlated, 2 when anti-correlated."""
    _, _, vp, vt, cov = _moments(pred, target, weight)
    r = cov / torch.sqrt((vp + eps) * (vt + eps))
    return (1.0 - r).mean()


def ccc_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6
) -> torch.Tensor:
    """``1 - CCC`` averaged over dimensions."""
    mp, mt, vp, vt, cov = _moments(pred, target, weight)
    c = 2.0 * cov / (vp + vt + (mp - mt) ** 2 + eps)
    return (1.0 - c).mean()


def masked_mse(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    pred, target = _as2d(pred).float(), _as2d(target).float()
    w = torch.ones_like(pred) if weight is None else _as2d(weight).float().expand_as(pred)
    return (w * (pred - target) ** 2).sum() / w.sum().clamp_min(1e-8)


def mse_pearson_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    pearson_weight: float = 1.0,
    scale: float = 1.0,
) -> torch.Tensor:
    """The paper's multi-objective: ``MSE / scale^2 + pearson_weight * (1 - r)``.

    ``scale`` puts the MSE on a footing comparable with the correlation term
    (e.g. 4.0 for the 1-9 SAM scale, whose half-range is 4).
    """
    mse = masked_mse(pred, target, weight) / (scale * scale)
    return mse + pearson_weight * pearson_loss(pred, target, weight)


def smoothed_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    smoothing: float = 0.1,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy against ``(1 - smoothing)`` on the true class, the rest spread evenly.

    ``weight`` (batch,) lets samples without a label (weight 0) sit in the batch.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError("smoothing must lie in [0, 1)")
    logp = F.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(-1, target.long().unsqueeze(-1)).squeeze(-1)
    uniform = -logp.mean(-1)
    per_sample = (1.0 - smoothing) * nll + smoothing * uniform
    if weight is None:
        return per_sample.mean()
    w = weight.float()
    return (w * per_sample).sum() / w.sum().clamp_min(1e-8)
