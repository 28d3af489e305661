"""Mamba blocks on ``models.ssm.selective_scan``: causal, bidirectional, and a residual layer.

``Mamba`` follows ``mamba_ssm/modules/mamba_simple.py`` (Gu & Dao 2023): the same
sub-modules under the same names (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``,
``A_log``, ``D``, ``out_proj``) and the same initialisation, so a mamba_ssm ``Mamba``
state dict loads as is. What it leaves out: the fused ``mamba_inner_fn`` path and the
token-by-token ``step`` decoding cache; on CUDA with mamba-ssm installed the scan itself
still runs the fused kernel.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from models.ssm import selective_scan


def _no_weight_decay(p: nn.Parameter) -> nn.Parameter:
    """Mark a parameter the way mamba_ssm does, for ``param_groups`` and for its trainers."""
    p._no_weight_decay = True  # type: ignore[attr-defined]
    return p


def param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Optimizer groups that honour ``_no_weight_decay`` (A_log and D keep their values)."""
    decay, keep = [], []
    for p in module.parameters():
        if p.requires_grad:
            (keep if getattr(p, "_no_weight_decay", False) else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]


class Mamba(nn.Module):
    """Selective state-space block, causal along L: (batch, L, d_model) -> same shape.

    in_proj to x and gate z (2 * d_inner), depthwise causal conv1d + SiLU on x, x_proj to
    (dt | B | C), dt_proj to a per-channel step, selective scan with softplus(dt + bias),
    D skip and SiLU(z) gate, out_proj. Initialisation as published: dt_proj weight
    uniform (or constant) at dt_rank^-0.5 * dt_scale; dt_proj bias = softplus^-1 of dt
    drawn log-uniform in [dt_min, dt_max] and floored at dt_init_floor; A_log =
    log(1..d_state) per channel (S4D-real); D = 1. A_log and D are float32 and
    excluded from weight decay.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | Literal["auto"] = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: Literal["random", "constant"] = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dt_init not in ("random", "constant"):
            raise ValueError(f"Mamba: dt_init must be 'random' or 'constant', got {dt_init!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"Mamba: need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        factory = {"device": device, "dtype": dtype}
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        di = self.d_inner

        self.in_proj = nn.Linear(d_model, 2 * di, bias=bias, **factory)
        self.conv1d = nn.Conv1d(
            di, di, d_conv, groups=di, padding=d_conv - 1, bias=conv_bias, **factory
        )
        self.x_proj = nn.Linear(di, self.dt_rank + 2 * d_state, bias=False, **factory)
        self.dt_proj = nn.Linear(self.dt_rank, di, bias=True, **factory)
        self.out_proj = nn.Linear(di, d_model, bias=bias, **factory)

        # dt: keep the variance of dt_proj's output at init, and start each channel's step
        # log-uniform in [dt_min, dt_max] after the softplus the scan applies.
        std = self.dt_rank**-0.5 * dt_scale
        with torch.no_grad():
            if dt_init == "constant":
                nn.init.constant_(self.dt_proj.weight, std)
            else:
                nn.init.uniform_(self.dt_proj.weight, -std, std)
            lo, hi = math.log(dt_min), math.log(dt_max)
            dt = torch.exp(torch.rand(di, device=device) * (hi - lo) + lo).clamp(min=dt_init_floor)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.dt_proj.bias._no_reinit = True  # type: ignore[attr-defined]

        a = torch.arange(1, d_state + 1, dtype=torch.float32, device=device).repeat(di, 1)
        self.A_log = _no_weight_decay(nn.Parameter(torch.log(a)))
        self.D = _no_weight_decay(nn.Parameter(torch.ones(di, device=device)))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, L, d_model) -> (batch, L, d_model); output t depends on inputs <= t only."""
        length = hidden.shape[1]
        xz = self.in_proj(hidden).transpose(1, 2)  # (batch, 2 * d_inner, L)
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :length])
        dt, B, C = self.x_proj(x.transpose(1, 2)).split(
            [self.dt_rank, self.d_state, self.d_state], dim=-1
        )
        y = selective_scan(
            x,
            F.linear(dt, self.dt_proj.weight).transpose(1, 2),  # bias goes in as delta_bias
            -torch.exp(self.A_log.float()),
            B.transpose(1, 2),
            C.transpose(1, 2),
            self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )
        return self.out_proj(y.transpose(1, 2))


class BiMamba(nn.Module):
    """Bidirectional Mamba: one block reads the sequence forwards, a second reads it reversed.

    The backward block's output is flipped back into place, then the two are combined:
    ``combine="sum"`` adds them (no parameters; what Vision Mamba's bidirectional blocks
    do, and MCO-E Net's averaging up to a factor), ``combine="linear"`` concatenates them
    and maps 2 * d_model -> d_model with a learned linear layer. The directions share
    nothing. Not causal: every output sees the whole sequence.
    """

    def __init__(
        self, d_model: int, combine: Literal["sum", "linear"] = "sum", **mamba_kwargs: object
    ) -> None:
        super().__init__()
        if combine not in ("sum", "linear"):
            raise ValueError(f"BiMamba: combine must be 'sum' or 'linear', got {combine!r}")
        self.combine = combine
        self.forward_block = Mamba(d_model, **mamba_kwargs)  # type: ignore[arg-type]
        self.backward_block = Mamba(d_model, **mamba_kwargs)  # type: ignore[arg-type]
        self.merge = nn.Linear(2 * d_model, d_model) if combine == "linear" else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, L, d_model) -> (batch, L, d_model)."""
        fwd = self.forward_block(hidden)
        bwd = self.backward_block(hidden.flip(1)).flip(1)
        if self.merge is None:
            return fwd + bwd
        return self.merge(torch.cat([fwd, bwd], dim=-1))


class MambaLayer(nn.Module):
    """Pre-norm residual layer: ``x + mixer(norm(x))`` with RMSNorm or LayerNorm.

    The mixer is a ``Mamba`` (causal) or, with ``bidirectional=True``, a ``BiMamba``.
    Stack these for a sequence encoder; the residual stream stays in the input's scale.
    """

    def __init__(
        self,
        d_model: int,
        norm: Literal["rms", "layer"] = "rms",
        bidirectional: bool = False,
        norm_eps: float = 1e-5,
        **mixer_kwargs: object,
    ) -> None:
        super().__init__()
        if norm == "rms":
            self.norm: nn.Module = nn.RMSNorm(d_model, eps=norm_eps)
        elif norm == "layer":
            self.norm = nn.LayerNorm(d_model, eps=norm_eps)
        else:
            raise ValueError(f"MambaLayer: norm must be 'rms' or 'layer', got {norm!r}")
        mixer = BiMamba if bidirectional else Mamba
        self.mixer = mixer(d_model, **mixer_kwargs)  # type: ignore[arg-type]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, L, d_model) -> (batch, L, d_model)."""
        return hidden + self.mixer(self.norm(hidden))
