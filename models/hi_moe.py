"""Hi-MoE: a hierarchical mixture of experts for continuous emotion under missing modalities.

Follows ``papers/hi-moe_paper.txt`` (Zhu et al.), equations 1-8; every choice
the paper leaves open is ours and is listed in ``models/cards/hi_moe.md``.

    raw window per modality (B, C, T)  or frame stack (B, F, H, W)
      -> modality-specific encoder (no shared parameters)   Z_m: (B, S, d), S sub-windows
      -> modality expert bank: K experts per modality, soft gate softmax(W x + b)   (eq. 2-3)
         a missing modality enters as x = 0, so its gate is softmax(b), its default weights
      -> attention fusion over modalities, missing ones masked out                  (eq. 4)
      -> emotion expert bank: L experts, attention or differential-attention router (eq. 5-6)
      -> mean over the S sub-windows -> one regression head (and one binary head) per dimension
    training: L_emo (masked MSE [+ BCE]) + lambda * cross-modal NT-Xent on Z_m  (eq. 7-8)
              [+ mu * each present modality's own prediction from its expert-bank output (ours, off by default)]

Missing data never reaches the network: a missing modality's raw input is
replaced by zeros before its encoder and its encoder output is replaced by the
zero vector of eq. 2, both with ``torch.where``, so whatever values (NaN
included) sit in a missing slot cannot change any output or gradient.

Nothing here mixes samples of a batch (no batch norm), so a sample's outputs
do not depend on what else is in the batch; only NT-Xent does, by design.
The loss and the missing-modality sampling live in ``models.hi_moe_loss`` and
are re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from models.hi_moe_config import FRAMES, HiMoEConfig, ModalitySpec
from models.hi_moe_encoders import FrameEncoder, SignalEncoder
from models.hi_moe_loss import binarise, hi_moe_loss, sample_missing

FORMAT = "affectlab-hi-moe/1"
__all__ = [
    "FORMAT",
    "HiMoE",
    "HiMoEConfig",
    "HiMoEOutput",
    "ModalitySpec",
    "binarise",
    "hi_moe_loss",
    "load_hi_moe",
    "sample_missing",
    "save_hi_moe",
]


# --------------------------------------------------------------------------- expert banks
def _uniform(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


class ModalityExpertBank(nn.Module):
    """K two-layer experts per modality and the soft gate of eq. 2-3, all modalities at once.

    Weights are stacked (M, K, ...) and applied with einsum; expert k of
    modality m never sees another modality's features.
    """

    def __init__(self, m: int, k: int, d: int, hidden: int) -> None:
        super().__init__()
        self.gate_w = _uniform((m, d, k), d)
        self.gate_b = _uniform((m, k), d)
        self.w1, self.b1 = _uniform((m, k, d, hidden), d), _uniform((m, k, hidden), d)
        self.w2, self.b2 = _uniform((m, k, hidden, d), hidden), _uniform((m, k, d), hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, S, M, d) -> z (B, S, M, d), alpha (B, S, M, K)."""
        alpha = torch.softmax(torch.einsum("bsmd,mdk->bsmk", x, self.gate_w) + self.gate_b, dim=-1)
        h = F.gelu(torch.einsum("bsmd,mkdh->bsmkh", x, self.w1) + self.b1)
        y = torch.einsum("bsmkh,mkhd->bsmkd", h, self.w2) + self.b2
        return torch.einsum("bsmk,bsmkd->bsmd", alpha, y), alpha


class AttentionFusion(nn.Module):
    """Eq. 4: attention over the modality tokens of each sub-window, in one of two forms.

    The query is a learned vector plus a projection of the mean of the present
    modalities, so the weighting depends on what is available. Missing
    modalities are masked out; when a sample has none, it attends over all the
    modalities' default embeddings (eq. 2 with x = 0), a learned prior.

    ``pool`` (the default): multi-head attention pooling, a weighted average of
    the tokens' values per head. ``concat``: the tokens are scaled by their
    attention weight (times the number attended, so equal weights leave them as
    they are) and laid side by side, then projected; a missing modality's slot
    is zero. Pooling mixes modalities in one d-dim space, so a strong modality
    can crowd out a weaker one; concatenation keeps each in its own slot, as
    concatenation fusion does, with attention still deciding how much each counts.
    """

    def __init__(
        self, m: int, d: int, heads: int, dropout: float, mask_missing: bool, concat: bool = False
    ) -> None:
        super().__init__()
        self.heads, self.mask_missing, self.concat = heads, mask_missing, concat
        self.embed = nn.Parameter(torch.randn(m, d) * 0.02)
        self.norm = nn.LayerNorm(d)
        self.query = nn.Parameter(torch.randn(heads, d // heads) * 0.02)
        self.q = nn.Linear(d, d)
        if concat:
            self.k = nn.Linear(d, d)
            self.proj = nn.Linear(m * d, d)
        else:
            self.kv = nn.Linear(d, 2 * d)
            self.proj = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)
        self.out_norm = nn.LayerNorm(d)

    def forward(self, z: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, S, M, d), present (B, M) bool -> fused (B, S, d), attention (B, S, M)."""
        b, s, m, d = z.shape
        h = self.heads
        mask = present if self.mask_missing else torch.ones_like(present)
        mask = mask | ~mask.any(dim=1, keepdim=True)  # nothing present: fall back to the priors
        u = self.norm(z) + self.embed
        w = mask.to(u.dtype)[:, None, :, None]
        ctx = (u * w).sum(2) / w.sum(2)  # (B, S, d)
        q = self.query + self.q(ctx).view(b, s, h, d // h)
        if self.concat:
            k = self.k(u).view(b, s, m, h, d // h)
        else:
            k, v = self.kv(u).view(b, s, m, 2, h, d // h).unbind(3)
        scores = torch.einsum("bshe,bsmhe->bshm", q, k) / math.sqrt(d // h)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        if self.concat:
            weight = attn.mean(2) * w.sum(2)  # (B, S, M); masked slots are exactly 0
            out = (u * weight.unsqueeze(-1)).reshape(b, s, m * d)
        else:
            out = torch.einsum("bshm,bsmhe->bshe", attn, v).reshape(b, s, d)
        return self.out_norm(ctx + self.drop(self.proj(out))), attn.mean(2)


class EmotionExpertBank(nn.Module):
    """L emotion experts and the router of eq. 5-6.

    ``attention``: beta = softmax_l(phi(z, F_l(z))), phi a scaled dot product
    between a query from z and a key from each expert's output, averaged over
    heads. ``diff-attention`` (Diff Transformer): two such maps per head,
    beta = (A1 - lambda A2) / (1 - lambda), lambda learned with the Diff
    Transformer's re-parameterisation squashed into (0, lambda_max); dividing by
    1 - lambda keeps the weights summing to 1 (they may go negative: that is how
    common-mode "noise" between experts is cancelled).
    """

    def __init__(self, cfg: HiMoEConfig) -> None:
        super().__init__()
        d, hid, n = cfg.d_model, cfg.expert_hidden, cfg.n_emotion_experts
        self.diff = cfg.router == "diff-attention"
        self.heads, self.dim = cfg.heads, cfg.router_dim
        maps = 2 if self.diff else 1
        self.w1, self.b1 = _uniform((n, d, hid), d), _uniform((n, hid), d)
        self.w2, self.b2 = _uniform((n, hid, d), hid), _uniform((n, d), hid)
        self.q = nn.Linear(d, maps * self.heads * self.dim)
        self.k = nn.Linear(d, maps * self.heads * self.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(d)
        if self.diff:
            self.lambda_max = cfg.diff_lambda_max
            r = cfg.diff_lambda_init / cfg.diff_lambda_max
            self.lambda_offset = math.log(r / (1.0 - r))
            self.lambda_q1 = nn.Parameter(torch.randn(self.dim) * 0.1)
            self.lambda_k1 = nn.Parameter(torch.randn(self.dim) * 0.1)
            self.lambda_q2 = nn.Parameter(torch.randn(self.dim) * 0.1)
            self.lambda_k2 = nn.Parameter(torch.randn(self.dim) * 0.1)

    def diff_lambda(self) -> torch.Tensor:
        raw = torch.exp((self.lambda_q1 * self.lambda_k1).sum()) - torch.exp(
            (self.lambda_q2 * self.lambda_k2).sum()
        )
        return self.lambda_max * torch.sigmoid(raw + self.lambda_offset)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, S, d) -> e (B, S, d), beta (B, S, L)."""
        b, s, _ = z.shape
        hid = F.gelu(torch.einsum("bsd,ldh->bslh", z, self.w1) + self.b1)
        f = torch.einsum("bslh,lhd->bsld", hid, self.w2) + self.b2  # F_l(z_t)
        maps = 2 if self.diff else 1
        q = self.q(z).view(b, s, maps, self.heads, self.dim)
        k = self.k(f).view(b, s, f.shape[2], maps, self.heads, self.dim)
        scores = torch.einsum("bsahr,bslahr->bsahl", q, k) / math.sqrt(self.dim)
        a = torch.softmax(scores, dim=-1)  # (B, S, maps, heads, L)
        if self.diff:
            lam = self.diff_lambda()
            beta = ((a[:, :, 0] - lam * a[:, :, 1]) / (1.0 - lam)).mean(2)
        else:
            beta = a[:, :, 0].mean(2)
        e = torch.einsum("bsl,bsld->bsd", beta, f)
        return self.norm(z + self.drop(e)), beta


# --------------------------------------------------------------------------- the model
@dataclass
class HiMoEOutput:
    """What one forward pass gives; weights are averaged over the sub-windows."""

    regression: torch.Tensor  # (B, D) within output_range
    binary_logits: torch.Tensor | None  # (B, D): high (> midpoint) vs low
    embeddings: dict[str, torch.Tensor]  # name -> (B, d'): per-modality features for NT-Xent
    present: dict[str, torch.Tensor]  # name -> (B,) bool, as the model saw it
    gate_weights: torch.Tensor  # (B, M, K): modality expert gates, eq. 2
    router_weights: torch.Tensor  # (B, L): emotion expert weights, eq. 5
    modality_attention: torch.Tensor  # (B, M): fusion weights, eq. 4 (0 where missing)
    modality_regression: torch.Tensor | None = None  # (B, M, D): each modality alone (aux heads)
    output_names: tuple[str, ...] = ()
    modality_names: tuple[str, ...] = ()
    output_range: tuple[float, float] = (1.0, 9.0)


class HiMoE(nn.Module):
    """Encoders -> modality expert bank -> attention fusion -> emotion expert bank -> heads."""

    def __init__(self, config: HiMoEConfig) -> None:
        super().__init__()
        self.config = config
        cfg, d = config, config.d_model
        self.encoders = nn.ModuleDict(
            {
                m.name: (FrameEncoder(m, cfg) if m.kind == FRAMES else SignalEncoder(m, cfg))
                for m in cfg.modalities
            }
        )
        self.projections = (
            nn.ModuleDict({m.name: nn.Linear(d, cfg.proj_dim) for m in cfg.modalities})
            if cfg.proj_dim > 0
            else None
        )
        m = len(cfg.modalities)
        self.modality_bank = ModalityExpertBank(m, cfg.n_modality_experts, d, cfg.expert_hidden)
        self.fusion = AttentionFusion(
            m,
            d,
            cfg.heads,
            cfg.dropout,
            cfg.mask_missing_in_fusion,
            cfg.fusion == "attention-concat",
        )
        self.emotion_bank = EmotionExpertBank(cfg)
        self.regression_heads = nn.ModuleList(
            nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(d, 1))
            for _ in cfg.outputs
        )
        self.binary_heads = (
            nn.ModuleList(nn.Linear(d, 1) for _ in cfg.outputs) if cfg.binary_heads else None
        )
        # Auxiliary heads (not in the paper): each modality's expert-bank output must predict
        # the ratings by itself, so every modality keeps a usable representation when the
        # others drop out; used by the loss only, the fused heads give the answer.
        self.modality_heads = (
            nn.ModuleDict({m.name: nn.Linear(d, len(cfg.outputs)) for m in cfg.modalities})
            if cfg.modality_aux_weight > 0
            else None
        )

    @torch.no_grad()
    def fit_input_stats(
        self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Fit each encoder's input standardisation on training windows where it is present."""
        for name, x in inputs.items():
            if name not in self.encoders:
                continue
            p = None if present is None else present.get(name)
            x = x if p is None else x[p.to(torch.bool)]
            if x.shape[0] > 0:
                self.encoders[name].fit_stats(torch.nan_to_num(x.float()))

    def _batch_size(
        self, inputs: dict[str, torch.Tensor | None], present: dict[str, torch.Tensor]
    ) -> int:
        for t in (*present.values(), *inputs.values()):
            if t is not None:
                return int(t.shape[0])
        raise ValueError(
            "HiMoE.forward needs at least one input or presence mask to know the batch"
        )

    def forward(
        self,
        inputs: dict[str, torch.Tensor | None],
        present: dict[str, torch.Tensor] | None = None,
    ) -> HiMoEOutput:
        """``inputs[name]`` (B, C, T) or frames (B, F, H, W); ``present[name]`` (B,) bool.

        A modality absent from ``inputs`` (or None) is missing for the whole
        batch; one given without a ``present`` entry is present everywhere.
        """
        cfg = self.config
        present = dict(present or {})
        unknown = set(inputs) - set(self.encoders)
        if unknown:
            raise ValueError(
                f"unknown modalities {sorted(unknown)}; this model has {list(cfg.names)}"
            )
        b = self._batch_size(inputs, present)
        dev = self.modality_bank.w1.device
        dtype = self.modality_bank.w1.dtype
        feats, masks, embeds = [], {}, {}
        for spec in cfg.modalities:
            x = inputs.get(spec.name)
            p = present.get(spec.name)
            if x is None:
                p = torch.zeros(b, dtype=torch.bool, device=dev)
            elif p is None:
                p = torch.ones(b, dtype=torch.bool, device=dev)
            p = p.to(device=dev, dtype=torch.bool).reshape(b)
            if x is not None and tuple(x.shape[1:]) != spec.input_shape:
                raise ValueError(
                    f"modality {spec.name!r}: expected (B, {', '.join(map(str, spec.input_shape))}),"
                    f" got {tuple(x.shape)}"
                )
            if x is None or not bool(p.any()):
                z = torch.zeros(b, cfg.n_steps, cfg.d_model, device=dev, dtype=dtype)
            else:
                keep = p.view(b, *([1] * (x.dim() - 1)))
                x = torch.where(keep, torch.nan_to_num(x.to(device=dev, dtype=dtype)), 0.0)
                z = torch.where(p[:, None, None], self.encoders[spec.name](x), 0.0)
            feats.append(z)
            masks[spec.name] = p
            pooled = z.mean(1)
            if self.projections is not None:
                pooled = torch.where(p[:, None], self.projections[spec.name](pooled), 0.0)
            embeds[spec.name] = pooled
        x = torch.stack(feats, dim=2)  # (B, S, M, d): missing modalities are exactly 0 (eq. 2)
        pmat = torch.stack([masks[n] for n in cfg.names], dim=1)  # (B, M)
        z, alpha = self.modality_bank(x)
        fused, attn = self.fusion(z, pmat)
        per_modality = None
        if self.modality_heads is not None:
            zm = z.mean(1)  # (B, M, d)
            per_modality = torch.stack(
                [self.modality_heads[n](zm[:, i]) for i, n in enumerate(cfg.names)], dim=1
            )
        e, beta = self.emotion_bank(fused)
        pooled = e.mean(1)
        low, high = cfg.output_range
        raw = torch.cat([head(pooled) for head in self.regression_heads], dim=-1)
        regression = low + (high - low) * torch.sigmoid(raw)
        if per_modality is not None:
            per_modality = low + (high - low) * torch.sigmoid(per_modality)
        logits = (
            torch.cat([head(pooled) for head in self.binary_heads], dim=-1)
            if self.binary_heads is not None
            else None
        )
        return HiMoEOutput(
            regression=regression,
            binary_logits=logits,
            embeddings=embeds,
            present=masks,
            gate_weights=alpha.mean(1),
            router_weights=beta.mean(1),
            modality_attention=attn.mean(1),
            modality_regression=per_modality,
            output_names=cfg.outputs,
            modality_names=cfg.names,
            output_range=cfg.output_range,
        )

    def loss(
        self,
        output: HiMoEOutput,
        targets: torch.Tensor,
        label_mask: torch.Tensor | None = None,
        binary_targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``hi_moe_loss`` with this model's lambda and temperature."""
        return hi_moe_loss(
            output,
            targets,
            label_mask,
            binary_targets,
            lambda_ntxent=self.config.lambda_ntxent,
            temperature=self.config.temperature,
            modality_aux_weight=self.config.modality_aux_weight,
            pearson_weight=self.config.pearson_weight,
        )


# --------------------------------------------------------------------------- files
def save_hi_moe(
    model: HiMoE,
    path: str | Path,
    config_path: str | Path | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Weights as safetensors with the config JSON in the metadata (and beside it if asked)."""
    meta = {"format": FORMAT, "architecture": "HiMoE", "config": model.config.to_json()}
    meta.update(metadata or {})
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)
    if config_path is not None:
        Path(config_path).write_text(model.config.to_json())


def load_hi_moe(
    path: str | Path, config_path: str | Path | None = None, device: str | torch.device = "cpu"
) -> HiMoE:
    """Rebuild a model from safetensors (never unpickles); config from JSON or the metadata."""
    if config_path is not None:
        config = HiMoEConfig.from_json(Path(config_path).read_text())
    else:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "config" not in meta:
            raise ValueError(f"{path}: no Hi-MoE config in the metadata; pass config_path")
        config = HiMoEConfig.from_json(meta["config"])
    model = HiMoE(config)
    model.load_state_dict(load_file(str(path), device=str(device)), strict=True)
    return model.to(device).eval()
