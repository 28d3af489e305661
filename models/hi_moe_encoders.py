"""Hi-MoE's modality-specific encoders: a window -> ``n_steps`` temporally aligned tokens.

The paper puts its encoders in an appendix we do not have; these are ours
(``models/cards/hi_moe.md``, "Encoders"). Every encoder emits the same number
of sub-window tokens, so token t of every modality covers the same span of time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.hi_moe_config import HiMoEConfig, ModalitySpec


def _sliding_tokens(h: torch.Tensor, n: int) -> torch.Tensor:
    """(B, W, L) -> (B, n, 2W): mean and log-energy over n sub-windows with 50 % overlap.

    The window is cut into n + 1 equal bins; sub-window i spans bins i and i + 1,
    the paper's sliding window at hop = half a sub-window. Log-energy keeps band
    power (what EEG affect features are made of), the mean keeps slow trends.
    """
    mean = F.adaptive_avg_pool1d(h, n + 1)
    power = F.adaptive_avg_pool1d(h * h, n + 1)
    mean = 0.5 * (mean[..., :-1] + mean[..., 1:])
    power = 0.5 * (power[..., :-1] + power[..., 1:])
    return torch.cat([mean, torch.log(power + 1e-4)], dim=1).transpose(1, 2)


def _normalise_signal(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, T) -> (shape, stats): centred per channel and scaled by the channel-pooled std.

    One scale for all channels keeps their relative power (frontal asymmetry);
    the per-channel mean and log-std go out as ``stats`` so tonic levels (EDA,
    temperature) are not lost.
    """
    mu = x.mean(dim=-1, keepdim=True)
    centred = x - mu
    var = centred.pow(2).mean(dim=-1)
    pooled = var.mean(dim=-1, keepdim=True).sqrt().unsqueeze(-1)
    shape = (centred / (pooled + 1e-6)).clamp(-8.0, 8.0)
    stats = torch.cat([mu.squeeze(-1), 0.5 * torch.log(var + 1e-8)], dim=-1)
    return shape, stats


class Block(nn.Module):
    """A pre-norm transformer layer over the sub-window tokens."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(
            nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d, d)
        )
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            self.qkv(self.norm1(x))
            .view(b, t, 3, self.heads, d // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ff(self.norm2(x)))


class SignalEncoder(nn.Module):
    """Temporal conv stack -> sliding sub-window tokens -> transformer over the tokens.

    The number of stride-2 stages grows with the window length (none for a
    2 Hz temperature trace, four for 512 EEG samples) so every modality lands
    on the same ``n_steps`` tokens, temporally aligned as the paper requires.
    """

    def __init__(self, spec: ModalitySpec, cfg: HiMoEConfig) -> None:
        super().__init__()
        w, d = cfg.conv_width, cfg.d_model
        stages = max(0, min(4, int(math.log2(max(1, spec.samples // (2 * cfg.n_steps))))))
        layers: list[nn.Module] = [nn.Conv1d(spec.channels, w, 7, padding=3), nn.GELU()]
        for _ in range(stages):
            layers += [nn.Conv1d(w, w, 5, stride=2, padding=2), nn.GELU()]
        self.convs = nn.Sequential(*layers)
        self.token = nn.Linear(2 * w, d)
        self.stats = nn.Linear(2 * spec.channels, d)
        self.pos = nn.Parameter(torch.randn(cfg.n_steps, d) * 0.02)
        self.blocks = nn.Sequential(
            *(Block(d, cfg.heads, cfg.dropout) for _ in range(cfg.encoder_layers))
        )
        self.norm = nn.LayerNorm(d)
        self.n_steps = cfg.n_steps
        # standardisation of the per-channel stats, fitted on training windows (fit_stats)
        self.register_buffer("stat_mean", torch.zeros(2 * spec.channels))
        self.register_buffer("stat_std", torch.ones(2 * spec.channels))

    @torch.no_grad()
    def fit_stats(self, x: torch.Tensor) -> None:
        _, stats = _normalise_signal(x.float())
        self.stat_mean.copy_(stats.mean(0))
        self.stat_std.copy_(stats.std(0, unbiased=False).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, stats = _normalise_signal(x)
        tokens = _sliding_tokens(self.convs(shape), self.n_steps)  # (B, S, 2w)
        z = ((stats - self.stat_mean) / self.stat_std).clamp(-6.0, 6.0)
        h = F.gelu(self.token(tokens)) + self.stats(z).unsqueeze(1) + self.pos
        return self.norm(self.blocks(h))


class FrameEncoder(nn.Module):
    """A small conv net per frame (shared over the frames), then tokens over the frame axis."""

    widths = (8, 16, 32)

    def __init__(self, spec: ModalitySpec, cfg: HiMoEConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for out in self.widths:
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.GELU()]
            c = out
        self.convs = nn.Sequential(*layers)
        self.token = nn.Linear(2 * c, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(cfg.n_steps, cfg.d_model) * 0.02)
        self.blocks = nn.Sequential(
            *(Block(cfg.d_model, cfg.heads, cfg.dropout) for _ in range(cfg.encoder_layers))
        )
        self.norm = nn.LayerNorm(cfg.d_model)
        self.n_steps = cfg.n_steps

    @torch.no_grad()
    def fit_stats(self, x: torch.Tensor) -> None:
        """Frames are standardised per window; nothing to fit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f, hh, ww = x.shape
        mu = x.mean(dim=(1, 2, 3), keepdim=True)
        sd = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
        x = (x - mu) / (sd + 0.02)  # lighting-robust
        maps = self.convs(x.reshape(b * f, 1, hh, ww)).flatten(2)  # (B F, c, hw)
        per_frame = torch.cat([maps.mean(-1), maps.pow(2).mean(-1)], dim=-1).view(b, f, -1)
        c = per_frame.shape[-1] // 2
        # the frame axis plays the time axis: mean of means, log of mean energies
        mean = F.adaptive_avg_pool1d(per_frame[..., :c].transpose(1, 2), self.n_steps + 1)
        power = F.adaptive_avg_pool1d(per_frame[..., c:].transpose(1, 2), self.n_steps + 1)
        mean = 0.5 * (mean[..., :-1] + mean[..., 1:])
        power = 0.5 * (power[..., :-1] + power[..., 1:])
        tokens = torch.cat([mean, torch.log(power + 1e-4)], dim=1).transpose(1, 2)
        return self.norm(self.blocks(F.gelu(self.token(tokens)) + self.pos))
