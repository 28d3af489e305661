"""MCO-E Net on this CPU: parameters, multiply-accumulates and latency per window.

Configs: ``paper`` (the released sizes), ``lite`` (our real-time variant) and
``lite`` frames-only (the ablation baseline). Figures per config: parameters,
MACs per window (``torch.utils.flop_counter.FlopCounterMode``, MACs = FLOPs / 2;
it counts matrix products, convolutions and attention, not elementwise work
such as the selective scan's recurrence, which is added analytically), and
eval-mode latency per window at batch 1 and batch 8 (median of repeats, after
warm-up). Ratios: lite vs paper (the baseline measured in the same run) and
each config vs the 33 ms budget of one SEE frame period.

    .venv/bin/python bench/bench_mco_e_net.py [--quick]

Writes bench/results/bench_mco_e_net.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import MachineWatch  # noqa: E402
from _results import write_results  # noqa: E402

from models.mco_e_net import MCOENet, MCOENetConfig, parameter_counts  # noqa: E402

BUDGET_S = 1.0 / 30.0  # one SEE frame period: a window must be done before the next frame


def _inputs(cfg: MCOENetConfig, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    h, w = cfg.image_size
    frames = torch.rand(b, cfg.frames, 1, h, w, generator=g)
    events = torch.poisson(torch.full((b, cfg.frames, cfg.event_channels, h, w), 0.3), generator=g)
    return frames, events


def scan_macs(cfg: MCOENetConfig, batch: int) -> int:
    """The recurrence's multiply-adds (per state: decay, input, readout), all four scans."""
    groups = 2 * (1 if cfg.frames_only else 2)
    return 3 * batch * groups * cfg.d_inner * cfg.d_state * cfg.seq_len


def _count(fn) -> float:
    # Grad stays enabled: under no_grad, eval-mode MultiheadAttention takes a fused fast path
    # that FlopCounterMode does not see; the slow path is the same arithmetic, counted.
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 2


def macs(model: MCOENet) -> dict:
    """MACs of one window (batch 1), the scan added, and the range the routing spans.

    The experts differ in cost by up to 30x (a deep expert is ~42 M MACs in ``paper``),
    so a window costs between "base + the k cheapest" and "base + the k dearest" experts;
    ``macs`` is what this model's router chose for the benchmark input.
    """
    cfg = model.config
    frames, events = _inputs(cfg, 1)
    counted = _count(lambda: model(frames, events))
    scan = scan_macs(cfg, 1)
    x = torch.zeros(1, cfg.fusion_dim)
    per_expert = {name: _count(lambda e=e: e(x)) for name, e in model.moe.experts.items()}
    chosen = model(frames, events).routing[0].nonzero().squeeze(1).tolist()
    base = counted + scan - sum(per_expert[f"expert_{i}"] for i in chosen)
    costs = sorted(per_expert.values())
    k = cfg.top_k
    return {
        "counted_macs": counted,
        "scan_macs": scan,
        "macs": counted + scan,
        "chosen_experts": chosen,
        "per_expert_macs": per_expert,
        "window_macs_min": base + sum(costs[:k]),
        "window_macs_max": base + sum(costs[-k:]),
    }


def latency(model: MCOENet, batch: int, repeats: int, warmup: int) -> dict[str, float]:
    frames, events = _inputs(model.config, batch)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t = time.perf_counter()
            model(frames, events)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {
        "batch": batch,
        "median_s": med,
        "min_s": min(times),
        "per_window_s": med / batch,
        "windows_per_s": batch / med,
        "x_budget": med / batch / BUDGET_S,
    }


def bench(cfg: MCOENetConfig, repeats: int, warmup: int) -> dict:
    torch.manual_seed(0)
    t = time.perf_counter()
    model = MCOENet(cfg).eval()
    build_s = time.perf_counter() - t
    counts = parameter_counts(model)
    out: dict = {
        "config": cfg.name + ("-frames-only" if cfg.frames_only else ""),
        "parameters": counts["total"],
        "parameters_per_part": counts,
        "build_s": build_s,
    }
    detail = macs(model)
    out["macs_per_window"] = detail["macs"]
    out["macs_detail_batch1"] = detail
    for b in (1, 8):
        out[f"latency_batch{b}"] = latency(model, b, repeats, warmup)
    print(
        f"{out['config']:>18}: {counts['total'] / 1e6:8.2f} M params, "
        f"{out['macs_per_window'] / 1e9:6.3f} GMAC/window "
        f"({detail['window_macs_min'] / 1e9:.3f}-{detail['window_macs_max'] / 1e9:.3f} by routing), "
        f"batch 1 {out['latency_batch1']['per_window_s'] * 1e3:7.2f} ms/window "
        f"({out['latency_batch1']['x_budget']:.2f} x 33 ms), "
        f"batch 8 {out['latency_batch8']['per_window_s'] * 1e3:7.2f} ms/window"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    machine = MachineWatch()
    repeats, warmup = (5, 2) if args.quick else (30, 5)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    configs = {
        "paper": MCOENetConfig.paper(),
        "lite": MCOENetConfig.lite(),
        "lite_frames_only": MCOENetConfig.lite(frames_only=True),
    }
    results = {}
    for k, c in configs.items():
        results[k] = bench(c, repeats, warmup)
    paper, lite = results["paper"], results["lite"]
    ratios = {
        "lite_vs_paper_parameters": lite["parameters"] / paper["parameters"],
        "lite_vs_paper_macs": lite["macs_per_window"] / paper["macs_per_window"],
        "lite_vs_paper_latency_batch1": lite["latency_batch1"]["per_window_s"]
        / paper["latency_batch1"]["per_window_s"],
        "lite_vs_paper_latency_batch8": lite["latency_batch8"]["per_window_s"]
        / paper["latency_batch8"]["per_window_s"],
        "frames_only_vs_lite_latency_batch1": results["lite_frames_only"]["latency_batch1"][
            "per_window_s"
        ]
        / lite["latency_batch1"]["per_window_s"],
    }
    for k, v in ratios.items():
        print(f"{k:>36}: {v:.3f}")
    for k, r in results.items():
        ok = r["latency_batch1"]["per_window_s"] < BUDGET_S
        print(f"{k:>18} within 33 ms at batch 1: {ok}")
    doc = {
        "machine": {
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "quick": args.quick,
        "budget_s": BUDGET_S,
        "configs": results,
        "ratios": ratios,
    }
    write_results("bench_mco_e_net", doc, machine)


if __name__ == "__main__":
    main()
