"""Every trainable model config: parameters, multiply-accumulates and CPU latency per window.

Rows: MCO-E Net ``paper``, ``lite`` and lite frames-only (SEE clips: 4 frames
and 4 event slices of 100 x 100); Hi-MoE presets (DEAP, DEAP + face, DREAMER,
simulated, simulated + face); late fusion, concatenation fusion and their
validation-weighted ensemble for DEAP and DREAMER, exactly as ``affectlab
train`` builds them (``models.zoo``).

- parameters: ``sum(p.numel())``;
- MACs per window: ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2
  (matmuls, convolutions, attention; not element-wise work), plus, for
  MCO-E Net, the selective scan's recurrence, which it does not see
  (``bench_mco_e_net.macs``);
- latency per window: eval mode, inference mode, median of repeats after
  warm-up, at batch 1 and batch 8 (per window = batch time / 8).

Ratios against a baseline measured in the same run: each signal model against
the concatenation baseline of its data set (the cheapest learned fusion of the
same inputs), each MCO-E Net config against the lite frames-only ablation and
against SEE's 33 ms frame period.

    .venv/bin/python bench/bench_models.py [--quick] [--threads N]

Writes bench/results/bench_models.json. Timings are only meaningful on a quiet
machine; the run reports how much CPU other processes took meanwhile.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _measure import MachineWatch  # noqa: E402
from _results import write_results  # noqa: E402
from bench_hi_moe import PRESETS as HI_MOE_PRESETS  # noqa: E402
from bench_hi_moe import latency_ms  # noqa: E402
from bench_hi_moe import macs as counted_macs  # noqa: E402
from bench_mco_e_net import BUDGET_S  # noqa: E402
from bench_mco_e_net import _inputs as see_inputs  # noqa: E402
from bench_mco_e_net import macs as mco_macs  # noqa: E402

from models.baselines import FusionConfig, InputLayout  # noqa: E402
from models.concat_regressor import ConcatRegressor, ConcatRegressorConfig  # noqa: E402
from models.ensemble import Ensemble  # noqa: E402
from models.hi_moe import HiMoE, HiMoEConfig  # noqa: E402
from models.late_fusion import LateFusion, LateFusionConfig  # noqa: E402
from models.mco_e_net import MCOENet, MCOENetConfig  # noqa: E402


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def signal_inputs(cfg: HiMoEConfig, b: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {m.name: torch.randn(b, *m.input_shape, generator=g) for m in cfg.modalities}


def baselines_for(cfg: HiMoEConfig) -> dict[str, nn.Module]:
    """Late fusion, concatenation fusion and their ensemble on the preset's signal inputs."""
    lays = tuple(
        InputLayout(m.name, "frames" if m.kind == "frames" else "numeric", m.input_shape)
        for m in cfg.modalities
    )
    late = LateFusion(LateFusionConfig(lays, outputs=cfg.outputs, output_range=cfg.output_range))
    fusion = FusionConfig(lays, n_affect=len(cfg.outputs), n_classes=0)
    concat = ConcatRegressor(ConcatRegressorConfig(fusion, cfg.outputs, cfg.output_range))
    return {
        "late-fusion": late,
        "concat-fusion": concat,
        "ensemble (late + concat)": Ensemble([late, concat], [0.5, 0.5]),
    }


def measure(call: Callable[[int], Any], repeats: int) -> dict[str, float]:
    """Latency per window at batch 1 and 8 for ``call(batch)`` (inputs prepared outside)."""
    with torch.inference_mode():
        b1 = latency_ms(lambda: call(1), repeats)
        b8 = latency_ms(lambda: call(8), max(3, repeats // 2)) / 8
    return {"ms_per_window_b1": b1, "ms_per_window_b8": b8}


def bench_signal(group: str, cfg: HiMoEConfig, repeats: int) -> dict[str, dict[str, Any]]:
    torch.manual_seed(0)
    rows: dict[str, nn.Module] = {"hi-moe": HiMoE(cfg), **baselines_for(cfg)}
    x = {1: signal_inputs(cfg, 1), 8: signal_inputs(cfg, 8)}
    out: dict[str, dict[str, Any]] = {}
    for name, model in rows.items():
        model.eval()
        r: dict[str, Any] = {"group": group, "params": params(model)}
        with torch.inference_mode():
            r["macs_per_window"] = counted_macs(lambda m=model: m(x[1], None))
        r.update(measure(lambda b, m=model: m(x[b], None), repeats))
        out[f"{name} [{group}]"] = r
    base = out[f"concat-fusion [{group}]"]
    for r in out.values():
        r["x_concat_latency_b1"] = r["ms_per_window_b1"] / base["ms_per_window_b1"]
        r["x_concat_macs"] = r["macs_per_window"] / base["macs_per_window"]
    return out


def bench_see(repeats: int, skip_paper: bool) -> dict[str, dict[str, Any]]:
    configs = {"mco-e-net lite frames-only": MCOENetConfig.lite(frames_only=True),
               "mco-e-net lite": MCOENetConfig.lite()}  # fmt: skip
    if not skip_paper:
        configs["mco-e-net paper"] = MCOENetConfig.paper()
    out: dict[str, dict[str, Any]] = {}
    for name, cfg in configs.items():
        torch.manual_seed(0)
        model = MCOENet(cfg).eval()
        x = {1: see_inputs(cfg, 1), 8: see_inputs(cfg, 8)}
        r: dict[str, Any] = {"group": "see", "params": params(model)}
        r["macs_per_window"] = mco_macs(model)["macs"]  # counted + the scan's recurrence
        r.update(measure(lambda b, m=model, x=x: m(*x[b]), max(5, repeats // 4)))
        r["x_33ms_b1"] = r["ms_per_window_b1"] / (1e3 * BUDGET_S)
        out[f"{name} [see]"] = r
    base = out["mco-e-net lite frames-only [see]"]
    for r in out.values():
        r["x_frames_only_latency_b1"] = r["ms_per_window_b1"] / base["ms_per_window_b1"]
        r["x_frames_only_macs"] = r["macs_per_window"] / base["macs_per_window"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--skip-paper", action="store_true", help="leave out MCO-E Net paper (155 M)")
    args = ap.parse_args()
    machine = MachineWatch()
    torch.set_num_threads(args.threads)
    repeats = 10 if args.quick else 60
    rows: dict[str, dict[str, Any]] = {}
    rows.update(bench_see(repeats, args.skip_paper))
    for group, make in HI_MOE_PRESETS.items():
        rows.update(bench_signal(group, make(), repeats))

    head = (f"{'model [data]':<42} {'params':>11} {'MMAC/win':>9} {'ms/win b1':>10} "
            f"{'ms/win b8':>10} {'x base lat':>10} {'x base MAC':>10}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        lat = r.get("x_concat_latency_b1", r.get("x_frames_only_latency_b1"))
        mac = r.get("x_concat_macs", r.get("x_frames_only_macs"))
        print(
            f"{name:<42} {r['params']:>11,} {r['macs_per_window'] / 1e6:>9.2f} "
            f"{r['ms_per_window_b1']:>10.3f} {r['ms_per_window_b8']:>10.3f} {lat:>10.2f} {mac:>10.2f}"
        )
    print(
        "\nbaselines: signal rows vs concat-fusion of the same data; see rows vs lite frames-only"
    )
    for name, r in rows.items():
        if "x_33ms_b1" in r:
            print(f"{name}: batch 1 = {r['x_33ms_b1']:.2f} x the 33 ms SEE frame period")
    doc = {
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "repeats": repeats,
        "macs": "FlopCounterMode FLOPs / 2 (+ selective-scan recurrence for MCO-E Net)",
        "rows": rows,
    }
    write_results("bench_models", doc, machine)


if __name__ == "__main__":
    main()
