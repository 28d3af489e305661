"""Hi-MoE's training side: the loss of eq. 8 and the paper's missing-modality sampling.

Kept apart from the architecture (``models.hi_moe``) because training, the
evaluation sweep and the demo trainer use them without building a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from models.contrastive import cross_modal_nt_xent
from models.losses import pearson_loss

if TYPE_CHECKING:
    from models.hi_moe import HiMoEOutput


# --------------------------------------------------------------------------- loss (eq. 8)
def binarise(targets: torch.Tensor, output_range: tuple[float, float]) -> torch.Tensor:
    """High (1) / low (0) at the scale's midpoint: 5 on DEAP's 1-9, 3 on DREAMER's 1-5."""
    return (targets > 0.5 * (output_range[0] + output_range[1])).to(targets.dtype)


def hi_moe_loss(
    output: HiMoEOutput,
    targets: torch.Tensor,
    label_mask: torch.Tensor | None = None,
    binary_targets: torch.Tensor | None = None,
    lambda_ntxent: float = 0.1,
    temperature: float = 0.1,
    modality_aux_weight: float = 0.0,
    pearson_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 8: ``L_emo + lambda * L_NT-Xent``, with L_emo = MSE (+ BCE for the binary heads).

    MSE is taken in units of half the label range ((y - y_hat) / 4 on 1-9), so
    one lambda means the same on DEAP and DREAMER. ``label_mask`` (B, D) bool
    drops unlabeled entries (their targets may be NaN); non-finite targets are
    dropped too. Binary targets default to ``binarise(targets)``.
    With ``modality_aux_weight`` mu > 0 and per-modality predictions in the output,
    ``mu * aux`` is added, aux the same MSE over each present modality's own
    prediction (part ``aux``). With ``pearson_weight`` > 0, L_emo also gets
    ``pearson_weight * (1 - r)``, r per dimension over the batch's labelled entries
    (part ``pearson``): the concat-fusion baseline's recipe, for a like-for-like comparison.
    Returns the total and its parts (``mse``, ``bce``, ``emo``, ``ntxent``[, ``pearson``, ``aux``]).
    """
    pred = output.regression
    targets = targets.to(pred)
    if targets.shape != pred.shape:
        raise ValueError(f"targets {tuple(targets.shape)} do not match outputs {tuple(pred.shape)}")
    finite = torch.isfinite(targets)
    mask = finite if label_mask is None else label_mask.to(torch.bool) & finite
    w = mask.to(pred.dtype)
    count = w.sum().clamp_min(1.0)
    low, high = output.output_range
    half = 0.5 * (high - low)
    safe = torch.where(mask, targets, pred.detach())
    mse = (w * ((pred - safe) / half) ** 2).sum() / count
    parts: dict[str, torch.Tensor] = {"mse": mse}
    emo = mse
    if pearson_weight > 0:
        corr = pearson_loss(pred, safe, mask)
        parts["pearson"] = corr
        emo = emo + pearson_weight * corr
    if output.binary_logits is not None:
        bt = (
            binarise(safe, output.output_range)
            if binary_targets is None
            else binary_targets.to(pred)
        )
        bmask = mask & torch.isfinite(bt)
        bt = torch.where(bmask, bt, 0.0)
        bce = F.binary_cross_entropy_with_logits(output.binary_logits, bt, reduction="none")
        bce = (bmask.to(pred.dtype) * bce).sum() / bmask.to(pred.dtype).sum().clamp_min(1.0)
        parts["bce"] = bce
        emo = emo + bce
    ntx = cross_modal_nt_xent(output.embeddings, output.present, temperature)
    parts["emo"], parts["ntxent"] = emo, ntx
    total = emo + lambda_ntxent * ntx
    per_modality = output.modality_regression
    if modality_aux_weight > 0 and per_modality is not None:
        present = torch.stack([output.present[n] for n in output.modality_names], dim=1)  # (B, M)
        wm = w[:, None, :] * present[:, :, None].to(pred.dtype)  # (B, M, D)
        err = ((per_modality - safe[:, None, :]) / half) ** 2
        aux = (wm * err).sum() / wm.sum().clamp_min(1.0)
        parts["aux"] = aux
        total = total + modality_aux_weight * aux
    return total, parts


# --------------------------------------------------------------------------- missing modalities
def sample_missing(
    present: dict[str, torch.Tensor],
    rate: float,
    generator: torch.Generator | None = None,
    keep_one: bool = True,
) -> dict[str, torch.Tensor]:
    """Drop each (sample, modality) independently with probability ``rate`` (the paper's r).

    Only modalities already present can be dropped. With ``keep_one`` a sample
    that would lose every modality keeps one, chosen at random among those it had.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"missing rate must lie in [0, 1], got {rate}")
    names = list(present)
    orig = torch.stack([present[n].to(torch.bool).cpu() for n in names], dim=1)  # (B, M)
    drop = torch.rand(orig.shape, generator=generator) < rate
    new = orig & ~drop
    if keep_one:
        empty = ~new.any(1) & orig.any(1)
        if bool(empty.any()):
            scores = torch.rand(orig.shape, generator=generator).masked_fill(~orig, -1.0)
            pick = F.one_hot(scores.argmax(1), len(names)).to(torch.bool)
            new = new | (pick & empty[:, None])
    return {n: new[:, i].to(present[n].device) for i, n in enumerate(names)}
