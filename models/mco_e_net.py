"""MCO-E Net: event-assisted single-eye expression recognition (arXiv 2505.12007).

Follows the released code (github.com/hrdhrd/MCO-E-Net, REFERENCE 1); every
choice it leaves open, and every place we differ, is in ``models/cards/mco_e_net.md``.

    frames (B, T, 1|3, H, W) in [0, 1]      events (B, T, 2, H, W) per-polarity counts
      -> input normalisation (inside the model, so live and training feed the same thing)
      -> ResNet-18 on the first and the last of the T steps, per modality      (B, 2K) each
      -> view as a sequence of L = 2K / d_model tokens of width d_model
      -> MCO-Mamba: bidirectional selective SSM per modality whose B and C get a
         joint projection of both modalities' x_proj outputs added (MJOS); + residual
      -> MCIB: shared cross-attention both ways, a sigmoid gate, + the mean of the two
      -> flatten -> Linear -> GELU -> Dropout (the fusion projection)
      -> HCE-MoE: focal (conv), attention and deep experts, attention router, top-k
      -> 7 logits in ``core.prediction.EXPRESSIONS`` order, and the routing weights

``MCOENetConfig.paper()`` has the released sizes (about 155 M parameters);
``MCOENetConfig.lite()`` is our real-time variant. ``frames_only=True`` drops
the event branch: wherever the released model meets the two modalities (the
joint B/C projection, the cross-interaction) the frame stream stands in for the
event stream, so the ablation keeps the same architecture minus event inputs.

The whole model trains by autograd, which the released custom backward
(``BC.py``) does not do for the joint B/C projections, D or the backward-scan
dt bias (REFERENCE 1); ``share_backward_dt_bias=True`` restores the released
forward computation of the latter.
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

from core.prediction import EXPRESSIONS
from models.data.see import EVENT_MEAN, EVENT_STD, FRAME_MEAN, FRAME_STD
from models.mco_e_net_config import (
    EXPERT_TYPES,
    MODALITIES,
    MCOENetConfig,
)
from models.resnet import ResNet18
from models.ssm import selective_scan

FORMAT = "affectlab-mco-e-net/1"


# --------------------------------------------------------------------------- inputs
def normalise_frames(frames: torch.Tensor, channels: int) -> torch.Tensor:
    """[0, 1] intensities (or uint8) -> standardised with SEE's frame statistics."""
    if frames.dtype == torch.uint8:
        frames = frames.float() / 255.0
    if frames.shape[2] == 1 and channels == 3:
        frames = frames.expand(-1, -1, 3, -1, -1)  # a grey JPEG read as RGB is this
    return (frames.float() - FRAME_MEAN) / FRAME_STD


def normalise_events(events: torch.Tensor, kind: str, clip: float) -> torch.Tensor:
    """Counts -> log1p(min(c, clip)) / log1p(clip) in [0, 1]; SEE JPEGs -> standardised.

    Counts are heavy-tailed (a fast edge fires bursts, a still eye nothing), so
    a log keeps one flickering pixel from drowning the rest.
    """
    if kind == "counts":
        c = events.float().clamp(0.0, clip)
        return torch.log1p(c) / math.log1p(clip)
    if events.dtype == torch.uint8:
        events = events.float() / 255.0
    return (events.float() - EVENT_MEAN) / EVENT_STD


# --------------------------------------------------------------------------- backbones
class StepBackbones(nn.Module):
    """ResNet-18 features of the first and last step, concatenated: (B, T, C, H, W) -> (B, 2K).

    Released: a separate network per step (``share_time_backbone=False``);
    shared: one network sees both steps as a batch of 2B.
    """

    def __init__(self, in_channels: int, cfg: MCOENetConfig) -> None:
        super().__init__()
        n = 1 if cfg.share_time_backbone else 2
        self.nets = nn.ModuleList(
            ResNet18(in_channels, cfg.backbone_width, cfg.backbone_outputs) for _ in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, last = x[:, 0], x[:, -1]
        if len(self.nets) == 1:
            f = self.nets[0](torch.cat([first, last], 0))
            return torch.cat(f.chunk(2, 0), 1)
        return torch.cat([self.nets[0](first), self.nets[1](last)], 1)


# --------------------------------------------------------------------------- MCO-Mamba
class ScanBranch(nn.Module):
    """One modality in one scan direction: causal depthwise conv, x_proj, dt_proj, A, D."""

    def __init__(self, cfg: MCOENetConfig, dt_bias: bool = True) -> None:
        super().__init__()
        di, n, r = cfg.d_inner, cfg.d_state, cfg.dt_rank
        self.conv1d = nn.Conv1d(di, di, cfg.d_conv, groups=di, padding=cfg.d_conv - 1)
        self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, di, bias=dt_bias)
        self.A_log = nn.Parameter(
            torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(di, 1)
        )
        self.D = nn.Parameter(torch.ones(di))
        self._init_dt(r, dt_bias)

    def _init_dt(self, rank: int, bias: bool, dt_min: float = 1e-3, dt_max: float = 0.1) -> None:
        # mamba_simple's initialisation: dt = softplus(bias) log-uniform in [dt_min, dt_max].
        std = rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        if bias:
            di = self.dt_proj.out_features
            dt = torch.exp(
                torch.rand(di) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
            )
            dt = dt.clamp(min=1e-4)
            with torch.no_grad():
                self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, d_inner, L) -> u = SiLU(conv(x)) (B, d_inner, L), q = x_proj(u) (B, L, R+2N)."""
        u = F.silu(self.conv1d(x)[..., : x.shape[-1]])
        return u, self.x_proj(u.transpose(1, 2))


class MJOSDirection(nn.Module):
    """One scan direction: a branch per modality and the joint B/C projections (MJOS)."""

    def __init__(self, cfg: MCOENetConfig, dt_bias: bool = True) -> None:
        super().__init__()
        q = cfg.dt_rank + 2 * cfg.d_state
        self.branches = nn.ModuleDict({m: ScanBranch(cfg, dt_bias) for m in self._mods(cfg)})
        self.joint_B = nn.Linear(2 * q, cfg.d_state, bias=False)
        self.joint_C = nn.Linear(2 * q, cfg.d_state, bias=False)

    @staticmethod
    def _mods(cfg: MCOENetConfig) -> tuple[str, ...]:
        return MODALITIES[:1] if cfg.frames_only else MODALITIES


@dataclass
class _ScanGroup:
    """Inputs of one (direction, modality) group of the single grouped scan call."""

    u: torch.Tensor
    delta: torch.Tensor
    z: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor
    delta_bias: torch.Tensor


class MCOMamba(nn.Module):
    """Two-stream bidirectional Mamba whose B and C are jointly optimised across modalities.

    For modality m and direction d: ``q_m = x_proj(conv(x_m))`` split into
    (dt | B | C); ``B_m = B(q_m) + J_B^d([q_rgb; q_evt])``, same for C. Both
    directions and both modalities run as one grouped ``selective_scan`` call
    (B/C of shape (batch, groups, N, L)). Output per modality:
    ``out_proj((y_fwd + flip(y_bwd)) / 2)``; the caller adds the residual.
    """

    def __init__(self, cfg: MCOENetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mods = MJOSDirection._mods(cfg)
        self.in_proj = nn.ModuleDict(
            {m: nn.Linear(cfg.d_model, 2 * cfg.d_inner, bias=False) for m in mods}
        )
        self.out_proj = nn.ModuleDict(
            {m: nn.Linear(cfg.d_inner, cfg.d_model, bias=False) for m in mods}
        )
        self.directions = nn.ModuleList(
            [MJOSDirection(cfg), MJOSDirection(cfg, dt_bias=not cfg.share_backward_dt_bias)]
        )

    def _direction(self, k: int, xz: dict[str, torch.Tensor]) -> list[_ScanGroup]:
        cfg = self.cfg
        direction: MJOSDirection = self.directions[k]  # type: ignore[assignment]
        r, n = cfg.dt_rank, cfg.d_state
        projected = {}
        for m, v in xz.items():
            x, z = (v.flip(-1) if k == 1 else v).chunk(2, dim=1)
            u, q = direction.branches[m].project(x)
            projected[m] = (u, q, z)
        q_rgb = projected["rgb"][1]
        q_evt = projected["evt"][1] if "evt" in projected else q_rgb
        joint = torch.cat([q_rgb, q_evt], dim=-1)
        j_b, j_c = direction.joint_B(joint), direction.joint_C(joint)
        groups = []
        for m, (u, q, z) in projected.items():
            branch: ScanBranch = direction.branches[m]  # type: ignore[assignment]
            dt, b, c = q.split([r, n, n], dim=-1)
            fwd_bias = self.directions[0].branches[m].dt_proj.bias  # type: ignore[union-attr]
            bias = branch.dt_proj.bias if branch.dt_proj.bias is not None else fwd_bias
            groups.append(
                _ScanGroup(
                    u=u,
                    delta=F.linear(dt, branch.dt_proj.weight).transpose(1, 2),
                    z=z,
                    A=-torch.exp(branch.A_log.float()),
                    B=(b + j_b).transpose(1, 2),
                    C=(c + j_c).transpose(1, 2),
                    D=branch.D.float(),
                    delta_bias=bias.float(),
                )
            )
        return groups

    def forward(
        self, x_rgb: torch.Tensor, x_evt: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Token sequences (B, L, d_model) per modality -> dict of the same shapes."""
        inputs = {"rgb": x_rgb} if self.cfg.frames_only else {"rgb": x_rgb, "evt": x_evt}
        xz = {m: self.in_proj[m](v).transpose(1, 2) for m, v in inputs.items()}
        groups = self._direction(0, xz) + self._direction(1, xz)
        y = selective_scan(
            torch.cat([g.u for g in groups], 1),
            torch.cat([g.delta for g in groups], 1),
            torch.cat([g.A for g in groups], 0),
            torch.stack([g.B for g in groups], 1),
            torch.stack([g.C for g in groups], 1),
            D=torch.cat([g.D for g in groups], 0),
            z=torch.cat([g.z for g in groups], 1),
            delta_bias=torch.cat([g.delta_bias for g in groups], 0),
            delta_softplus=True,
        )
        ys = y.chunk(len(groups), dim=1)
        n_mod = len(inputs)
        out = {}
        for i, m in enumerate(inputs):
            fused = (ys[i] + ys[n_mod + i].flip(-1)) / 2
            out[m] = self.out_proj[m](fused.transpose(1, 2))
        return out


# --------------------------------------------------------------------------- MCIB
class MCIB(nn.Module):
    """Cross-interaction: one attention both ways, gated by the tokens' agreement.

    ``fused = g * Attn(r, e, e) + (1 - g) * Attn(e, r, r) + (r + e) / 2`` with
    ``g = sigmoid(<r, e>)`` per token. Frames only: e = r.
    """

    def __init__(self, cfg: MCOENetConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.proj_rgb = nn.Linear(d, d)
        self.proj_event = None if cfg.frames_only else nn.Linear(d, d)
        self.attn = nn.MultiheadAttention(d, cfg.mcib_heads, batch_first=True)

    def forward(self, rgb: torch.Tensor, event: torch.Tensor | None) -> torch.Tensor:
        r = self.proj_rgb(rgb)
        if self.proj_event is None:
            return self.attn(r, r, r, need_weights=False)[0] + r
        e = self.proj_event(event)
        event_attn = self.attn(r, e, e, need_weights=False)[0]
        rgb_attn = self.attn(e, r, r, need_weights=False)[0]
        gate = torch.sigmoid((r * e).sum(-1, keepdim=True))
        return gate * event_attn + (1 - gate) * rgb_attn + (r + e) * 0.5


# --------------------------------------------------------------------------- HCE-MoE
def _tokens(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.view(x.shape[0], n, x.shape[1] // n)


class FocalExpert(nn.Module):
    """Conv over the tokens (released: one token, so a kernel-3 conv sees zero padding)."""

    def __init__(self, cfg: MCOENetConfig) -> None:
        super().__init__()
        self.n_tokens = cfg.expert_tokens
        k = cfg.focal_kernel
        self.conv = nn.Conv1d(cfg.token_dim, cfg.focal_hidden, k, padding=k // 2)
        self.out = nn.Conv1d(cfg.focal_hidden, cfg.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = _tokens(x, self.n_tokens).transpose(1, 2)
        return self.out(F.gelu(self.conv(t))).mean(-1)


class AttentionExpert(nn.Module):
    """Self-attention over the tokens, residual, LayerNorm, linear head."""

    def __init__(self, cfg: MCOENetConfig) -> None:
        super().__init__()
        self.n_tokens = cfg.expert_tokens
        self.attn = nn.MultiheadAttention(cfg.token_dim, cfg.attn_heads, batch_first=True)
        self.norm = nn.LayerNorm(cfg.fusion_dim)
        self.fc = nn.Linear(cfg.fusion_dim, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = _tokens(x, self.n_tokens)
        a = self.attn(t, t, t, need_weights=False)[0].reshape(x.shape)
        return self.fc(self.norm(a + x))


class DeepExpert(nn.Module):
    """``x <- W2 drop(W1 x) + alpha x`` repeated, one shared alpha, then a linear head.

    As released there is no nonlinearity between W1 and W2.
    """

    def __init__(self, cfg: MCOENetConfig) -> None:
        super().__init__()
        d, h = cfg.fusion_dim, cfg.fusion_dim * cfg.deep_mult
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(d, h), nn.Dropout(cfg.deep_dropout), nn.Linear(h, d))
            for _ in range(cfg.deep_layers)
        )
        self.final_fc = nn.Linear(d, cfg.n_classes)
        self.res_coef = nn.Parameter(torch.tensor(cfg.deep_alpha))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x) + self.res_coef * x
        return self.final_fc(x)


class Router(nn.Module):
    """Self-attention over the tokens + residual -> LayerNorm -> MLP -> one logit per expert."""

    def __init__(self, cfg: MCOENetConfig) -> None:
        super().__init__()
        self.n_tokens = cfg.expert_tokens
        self.self_attn = nn.MultiheadAttention(cfg.token_dim, cfg.router_heads, batch_first=True)
        self.norm = nn.LayerNorm(cfg.fusion_dim)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.fusion_dim, cfg.router_hidden),
            nn.GELU(),
            nn.Linear(cfg.router_hidden, cfg.n_experts),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = _tokens(x, self.n_tokens)
        a = self.self_attn(t, t, t, need_weights=False)[0].reshape(x.shape)
        return self.mlp(self.norm(x + a))


EXPERTS: dict[str, type[nn.Module]] = {
    "focal": FocalExpert,
    "attention": AttentionExpert,
    "deep": DeepExpert,
}


class HCEMoE(nn.Module):
    """Heterogeneous experts (type = index mod 3), softmax router, top-k, renormalised.

    Only the chosen experts run, each on the samples that chose it.
    Returns the mixed logits, the routing weights (B, E) (renormalised top-k,
    zero elsewhere) and the router's full softmax (B, E).
    """

    def __init__(self, cfg: MCOENetConfig) -> None:
        super().__init__()
        self.top_k = cfg.top_k
        self.n_classes = cfg.n_classes
        self.experts = nn.ModuleDict(
            {f"expert_{i}": EXPERTS[EXPERT_TYPES[i % 3]](cfg) for i in range(cfg.n_experts)}
        )
        self.router = Router(cfg)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        probs = F.softmax(self.router(x), dim=-1)
        top_w, top_i = probs.topk(self.top_k, dim=-1)
        top_w = top_w / (top_w.sum(-1, keepdim=True) + 1e-8)
        routing = torch.zeros_like(probs).scatter(1, top_i, top_w)
        out = x.new_zeros(x.shape[0], self.n_classes)
        for i, expert in enumerate(self.experts.values()):
            rows = (top_i == i).any(dim=1).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            out = out.index_add(0, rows, expert(x[rows]) * routing[rows, i : i + 1])
        return out, routing, probs


# --------------------------------------------------------------------------- the model
@dataclass
class MCOENetOutput:
    """One forward pass: logits in EXPRESSIONS order and what the router chose."""

    logits: torch.Tensor  # (B, n_classes)
    routing: torch.Tensor  # (B, n_experts): top-k weights, renormalised to sum 1, 0 elsewhere
    router_probs: torch.Tensor  # (B, n_experts): the router's full softmax (for analysis)


class MCOENet(nn.Module):
    """frames (B, T, 1|3, H, W), events (B, T, 2, H, W) -> MCOENetOutput."""

    def __init__(self, config: MCOENetConfig) -> None:
        super().__init__()
        cfg = self.config = config
        self.frame_backbones = StepBackbones(cfg.frame_channels, cfg)
        self.event_backbones = None if cfg.frames_only else StepBackbones(cfg.event_channels, cfg)
        self.mco = MCOMamba(cfg)
        self.mcib = MCIB(cfg)
        self.fusion_proj = nn.Sequential(
            nn.Linear(cfg.seq_len * cfg.d_model, cfg.fusion_dim),
            nn.GELU(),
            nn.Dropout(cfg.fusion_dropout),
        )
        self.moe = HCEMoE(cfg)

    @property
    def classes(self) -> tuple[str, ...]:
        return EXPRESSIONS[: self.config.n_classes]

    def _check(self, name: str, x: torch.Tensor, channels: tuple[int, ...]) -> None:
        cfg = self.config
        want = (cfg.frames, cfg.image_size[0], cfg.image_size[1])
        if (
            x.dim() != 5
            or (x.shape[1], x.shape[3], x.shape[4]) != want
            or x.shape[2] not in channels
        ):
            c = "|".join(map(str, channels))
            raise ValueError(
                f"MCO-E Net {cfg.name!r}: {name} must be (B, {want[0]}, {c}, {want[1]}, {want[2]}),"
                f" got {tuple(x.shape)}"
            )

    def forward(self, frames: torch.Tensor, events: torch.Tensor | None = None) -> MCOENetOutput:
        cfg = self.config
        self._check("frames", frames, tuple(sorted({1, cfg.frame_channels})))
        x_f = self.frame_backbones(normalise_frames(frames, cfg.frame_channels))
        b = x_f.shape[0]
        tokens = {"rgb": x_f.view(b, cfg.seq_len, cfg.d_model)}
        if self.event_backbones is not None:
            if events is None:
                raise ValueError(f"MCO-E Net {cfg.name!r} needs events (or frames_only=True)")
            self._check("events", events, (cfg.event_channels,))
            x_e = self.event_backbones(normalise_events(events, cfg.event_input, cfg.event_clip))
            tokens["evt"] = x_e.view(b, cfg.seq_len, cfg.d_model)
        mixed = self.mco(tokens["rgb"], tokens.get("evt"))
        rgb_f = mixed["rgb"] + tokens["rgb"]
        evt_f = mixed["evt"] + tokens["evt"] if "evt" in mixed else None
        fused = self.mcib(rgb_f, evt_f).flatten(1)
        logits, routing, probs = self.moe(self.fusion_proj(fused))
        return MCOENetOutput(logits, routing, probs)


# --------------------------------------------------------------------------- sizes and files
def parameter_counts(model: MCOENet) -> dict[str, int]:
    """Parameters per part (backbones, MCO-Mamba, MCIB, fusion, each expert, router) and total."""
    parts: dict[str, int] = {}
    for name, module in model.named_children():
        if name == "moe":
            assert isinstance(module, HCEMoE)
            for ename, expert in module.experts.items():
                parts[f"moe.{ename}"] = sum(p.numel() for p in expert.parameters())
            parts["moe.router"] = sum(p.numel() for p in module.router.parameters())
        else:
            parts[name] = sum(p.numel() for p in module.parameters())
    parts["total"] = sum(p.numel() for p in model.parameters())
    return parts


def save_mco_e_net(
    model: MCOENet, path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Weights as safetensors, the config JSON in the metadata."""
    meta = {"format": FORMAT, "architecture": "MCOENet", "config": model.config.to_json()}
    meta.update(metadata or {})
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)


def load_mco_e_net(path: str | Path, device: str | torch.device = "cpu") -> MCOENet:
    """Rebuild from a safetensors file (never unpickles); returns the model in eval mode."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT or "config" not in meta:
        raise ValueError(f"{path}: not an MCO-E Net file (format {meta.get('format')!r})")
    model = MCOENet(MCOENetConfig.from_json(meta["config"]))
    model.load_state_dict(load_file(str(path), device=str(device)), strict=True)
    return model.to(device).eval()
