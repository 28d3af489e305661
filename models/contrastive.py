"""Cross-modal NT-Xent: the alignment loss of Hi-MoE (eq. 1 and 7 of the paper).

Two modalities' embeddings of the same windows form the positive pairs; every
other window of the batch, in either modality, is a negative. Rows are l2
normalised, similarities divided by a temperature, self-similarity masked out,
and the cross-entropy towards the positive averaged over all 2N rows, so the
loss is symmetric in the two modalities.

Missing modalities are normal in Hi-MoE, so a window where either modality is
absent is dropped from the pair entirely: it is neither a positive nor a
negative, because its embedding is a placeholder (zeros) that carries nothing
about the window.
"""

from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F


def _zero_with_graph(*tensors: torch.Tensor) -> torch.Tensor:
    """A 0 that still hangs off the inputs, so ``backward()`` works when nothing is valid."""
    return sum((t.sum() * 0.0 for t in tensors), torch.zeros((), device=tensors[0].device))


def nt_xent(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    temperature: float = 0.1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """NT-Xent between two views ``(N, d)`` whose row ``i`` describes the same window.

    ``mask`` (N,) bool keeps only windows where both views exist. With no valid
    window the result is 0 (still differentiable); with one valid window it is
    exactly 0 too, since the positive is the only candidate left.
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(
            f"nt_xent needs two (N, d) tensors of one shape, got {z_a.shape}, {z_b.shape}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    full_a, full_b = z_a, z_b
    if mask is not None:
        if mask.shape != z_a.shape[:1]:
            raise ValueError(f"mask must be ({z_a.shape[0]},), got {tuple(mask.shape)}")
        keep = mask.to(torch.bool).nonzero().squeeze(-1)
        z_a, z_b = z_a.index_select(0, keep), z_b.index_select(0, keep)
    n = z_a.shape[0]
    if n == 0:
        return _zero_with_graph(full_a, full_b)
    z = F.normalize(torch.cat([z_a, z_b], dim=0).float(), dim=-1)
    sim = (z @ z.T) / temperature
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    idx = torch.arange(n, device=z.device)
    positives = torch.cat([idx + n, idx])
    return F.cross_entropy(sim, positives)


def cross_modal_nt_xent(
    embeddings: dict[str, torch.Tensor],
    present: dict[str, torch.Tensor],
    temperature: float = 0.1,
) -> torch.Tensor:
    """NT-Xent averaged over every pair of modalities.

    ``embeddings[name]`` is (N, d); ``present[name]`` (N,) bool (a name absent
    from ``present`` counts as present everywhere). Pairs with fewer than two
    windows where both modalities exist carry no contrastive signal (their loss
    is identically 0) and are left out of the average rather than diluting it.
    """
    names = sorted(embeddings)
    if not names:
        raise ValueError("cross_modal_nt_xent needs at least one embedding")
    losses: list[torch.Tensor] = []
    for a, b in combinations(names, 2):
        za, zb = embeddings[a], embeddings[b]
        n = za.shape[0]
        pa = present.get(a, torch.ones(n, dtype=torch.bool, device=za.device)).to(torch.bool)
        pb = present.get(b, torch.ones(n, dtype=torch.bool, device=zb.device)).to(torch.bool)
        both = pa & pb
        if int(both.sum()) < 2:
            continue
        losses.append(nt_xent(za, zb, temperature, both))
    if not losses:
        return _zero_with_graph(*embeddings.values())
    return torch.stack(losses).mean()
