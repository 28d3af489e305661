"""Hi-MoE's size, multiply-accumulates and CPU latency per window, for every preset.

Figures per preset (DEAP, DEAP + face, DREAMER, simulated, simulated + face):
parameters; MACs per window (torch.utils.flop_counter.FlopCounterMode, MACs =
FLOPs / 2: matmuls, convolutions and attention, not element-wise ops); CPU
latency per window at batch 1 and batch 8 (median over repeats, inference
mode); and one training step (forward + backward) per window at batch 32.

Baselines measured in the same run, on the same inputs:
- ``concat-mlp``: each modality's window flattened, one linear layer per
  modality to d_model, concatenated, a two-layer MLP to the outputs: the least
  a learned multimodal regressor of these inputs costs.
- ``hi-moe eeg-only``: the same Hi-MoE with every modality but EEG missing for
  the whole batch (what a session with only the EEG cap connected costs: the
  encoders of absent modalities are skipped).

    .venv/bin/python bench/bench_hi_moe.py [--quick] [--threads N]

Writes bench/results/bench_hi_moe.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import MachineWatch  # noqa: E402
from _results import write_results  # noqa: E402

from models.hi_moe import HiMoE, HiMoEConfig  # noqa: E402

PRESETS: dict[str, Callable[[], HiMoEConfig]] = {
    "deap": HiMoEConfig.deap,
    "deap+face": lambda: HiMoEConfig.deap(with_face=True),
    "dreamer": HiMoEConfig.dreamer,
    "simulated": HiMoEConfig.simulated,
    "simulated+face": lambda: HiMoEConfig.simulated(with_face=True),
}


class ConcatMLP(nn.Module):
    """Flatten each window, project, concatenate, two-layer MLP: the cheap baseline."""

    def __init__(self, cfg: HiMoEConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.proj = nn.ModuleDict(
            {m.name: nn.Linear(math.prod(m.input_shape), d) for m in cfg.modalities}
        )
        self.head = nn.Sequential(
            nn.Linear(d * len(cfg.modalities), 2 * d), nn.GELU(), nn.Linear(2 * d, len(cfg.outputs))
        )

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = [torch.relu(self.proj[k](x.flatten(1))) for k, x in inputs.items()]
        return self.head(torch.cat(feats, dim=-1))


def make_inputs(cfg: HiMoEConfig, b: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {m.name: torch.randn(b, *m.input_shape, generator=g) for m in cfg.modalities}


def macs(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() // 2


def latency_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of one call, after warm-up."""
    for _ in range(max(3, repeats // 10)):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return 1e3 * times[len(times) // 2]


def train_step_ms(model: nn.Module, step: Callable[[], torch.Tensor], repeats: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def once() -> None:
        loss = step()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ms = latency_ms(once, repeats)
    model.eval()
    return ms


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def bench_preset(cfg: HiMoEConfig, repeats: int, train_repeats: int) -> dict:
    torch.manual_seed(0)
    hi = HiMoE(cfg).eval()
    mlp = ConcatMLP(cfg).eval()
    out: dict = {"modalities": list(cfg.names)}
    first = cfg.names[0]
    rows = {
        "hi-moe": (hi, lambda x: hi(x)),
        "hi-moe eeg-only": (hi, lambda x: hi({first: x[first]})),
        "concat-mlp": (mlp, lambda x: mlp(x)),
    }
    x1, x8 = make_inputs(cfg, 1), make_inputs(cfg, 8)
    for row, (model, call) in rows.items():
        with torch.inference_mode():
            r = {
                "params": params(model),
                "macs_per_window": macs(lambda call=call: call(x1)),
                "ms_per_window_b1": latency_ms(lambda call=call: call(x1), repeats),
                "ms_per_window_b8": latency_ms(lambda call=call: call(x8), repeats) / 8,
            }
        out[row] = r
    # one training step per window at batch 32 (what a CPU training run costs)
    x32 = make_inputs(cfg, 32)
    targets = torch.rand(32, len(cfg.outputs)) * 8 + 1
    out["hi-moe"]["train_ms_per_window_b32"] = (
        train_step_ms(hi, lambda: hi.loss(hi(x32), targets)[0], train_repeats) / 32
    )
    out["concat-mlp"]["train_ms_per_window_b32"] = (
        train_step_ms(mlp, lambda: ((mlp(x32) - targets) ** 2).mean(), train_repeats) / 32
    )
    base, full = out["concat-mlp"], out["hi-moe"]
    out["ratios"] = {
        "hi-moe / concat-mlp latency b1": full["ms_per_window_b1"] / base["ms_per_window_b1"],
        "hi-moe / concat-mlp latency b8": full["ms_per_window_b8"] / base["ms_per_window_b8"],
        "hi-moe / concat-mlp MACs": full["macs_per_window"] / base["macs_per_window"],
        "eeg-only / all-present latency b1": out["hi-moe eeg-only"]["ms_per_window_b1"]
        / full["ms_per_window_b1"],
        "hi-moe / concat-mlp train step": full["train_ms_per_window_b32"]
        / base["train_ms_per_window_b32"],
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args()
    machine = MachineWatch()
    torch.set_num_threads(args.threads)
    repeats, train_repeats = (20, 5) if args.quick else (100, 20)

    results: dict = {
        "machine": {"torch": torch.__version__, "threads": torch.get_num_threads()},
        "repeats": repeats,
        "presets": {},
    }
    for name, make in PRESETS.items():
        results["presets"][name] = bench_preset(make(), repeats, train_repeats)

    head = (
        f"{'preset':<15} {'model':<16} {'params':>9} {'MMAC/win':>9} "
        f"{'ms/win b1':>10} {'ms/win b8':>10} {'train ms/win':>13}"
    )
    print(head)
    print("-" * len(head))
    for name, r in results["presets"].items():
        for row in ("hi-moe", "hi-moe eeg-only", "concat-mlp"):
            f = r[row]
            train = f.get("train_ms_per_window_b32")
            print(
                f"{name:<15} {row:<16} {f['params']:>9,} {f['macs_per_window'] / 1e6:>9.2f} "
                f"{f['ms_per_window_b1']:>10.3f} {f['ms_per_window_b8']:>10.3f} "
                f"{'' if train is None else f'{train:.3f}':>13}"
            )
    print()
    for name, r in results["presets"].items():
        ratios = ", ".join(f"{k}: {v:.2f}x" for k, v in r["ratios"].items())
        print(f"{name}: {ratios}")

    print()
    write_results("bench_hi_moe", results, machine)


if __name__ == "__main__":
    main()
