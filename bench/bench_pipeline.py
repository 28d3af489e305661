"""End-to-end latency of the headless pipeline on the simulated participant.

Runs a real session (simulated physiology and eye camera -> rings -> aligner
-> workers -> bus -> predictions log) for a while and prints, for every model
of the session, the latency percentiles its worker measured. Baselines
measured in the same run, per model: the model alone on windows cut from the
same rings (what inference would cost with no engine around it), and the hop
(the budget every window must fit in).

    python bench/bench_pipeline.py [--seconds 30] [--quick] [--model NAME ...]

Models default to the demo config's (``app/configs/demo.toml``), all served at
once as in ``affectlab demo``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _measure import MachineWatch, cpu_seconds
from _results import write_results

from app.config import load_config, parse_config, shipped_config
from app.session import Session


def demo_session_config(name: str, seed: int, models: list[str], predictions: Path):
    """The simulated participant feeding ``models``, predictions logged to ``predictions``."""
    return parse_config(
        {
            "session": {"name": name},
            "sources": [{"kind": "simulated", "seed": seed}],
            "models": [{"name": m} for m in models],
            "sinks": [{"kind": "predictions", "path": str(predictions)}],
        }
    )


def isolated_model_time(session: Session, runner, repeats: int = 30) -> dict[str, float]:
    """The model alone: prepare + infer on the newest window, nothing else running."""
    now = session.clock.now()
    hop = runner.inputs.hop_s
    t_end = (np.floor((now - runner.inputs.allowed_lateness_s) / hop)) * hop
    window = session.aligner.cut(runner.name, float(t_end))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner.infer(runner.prepare(window))
        times.append(time.perf_counter() - t0)
    return {"p50": float(np.median(times)), "p90": float(np.percentile(times, 90))}


def report(name: str, model: dict, hop: float, lateness: float, iso: dict[str, float]) -> None:
    lat = model["latency_s"]
    print(f"\n{name} on {model['device']}, hop {hop * 1000:.0f} ms")
    print(
        f"windows {model['windows']}  inferred {model['inferred']}  skipped {model['skipped']}"
        f"  errors {model['errors']}  late hops {model['aligner']['late_hops']}"
    )
    print(f"{'stage':<8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for stage in ("cut", "queue", "inputs", "model", "publish", "total"):
        if stage in lat:
            s = lat[stage]
            print(
                f"{stage:<8} {s['p50'] * 1e3:8.2f} {s['p90'] * 1e3:8.2f} "
                f"{s['p99'] * 1e3:8.2f} {s['max'] * 1e3:8.2f}"
            )
    if not lat:
        print("no windows inferred")
        return
    compute = sum(lat[s]["p50"] for s in ("cut", "inputs", "model", "publish") if s in lat)
    print(f"baseline, model alone (prepare + infer): p50 {iso['p50'] * 1e3:.2f} ms")
    print(f"ratio engine work per window / model alone: {compute / iso['p50']:.2f}x")
    print(f"ratio engine work per window / hop budget:  {compute / hop:.3f}")
    total = lat["total"]["p50"]
    print(
        f"total p50 {total * 1e3:.1f} ms, of which allowed lateness "
        f"{lateness * 1e3:.0f} ms (by design)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--quick", action="store_true", help="10 s run")
    ap.add_argument(
        "--model", action="append", default=None, help="model to serve (repeat for several)"
    )
    args = ap.parse_args()
    machine = MachineWatch()
    seconds = 10.0 if args.quick else args.seconds
    models = args.model or [m.name for m in load_config(shipped_config("demo")).models]

    with tempfile.TemporaryDirectory() as tmp:
        session = Session(demo_session_config("bench", 1, models, Path(tmp) / "p.csv"))
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        session.run_for(seconds)
        cpu = (cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
        stats = session.stats().to_dict()
        baselines = {r.name: isolated_model_time(session, r) for r in session.runners}

    print(
        f"pipeline: {len(models)} model(s) served together, {seconds:.0f} s, "
        f"{session.inference_threads} torch thread(s)"
    )
    print(f"process CPU: {cpu * 100:.0f}% of one core (sources, engine, models together)")
    for runner in session.runners:
        inputs = runner.inputs
        report(
            runner.name,
            stats["models"][runner.name],
            inputs.hop_s,
            inputs.allowed_lateness_s,
            baselines[runner.name],
        )
    write_results(
        "bench_pipeline",
        {
            "seconds": seconds,
            "models": models,
            "cpu_fraction": cpu,
            "baseline": baselines,
            "stats": stats,
        },
        machine,
    )


if __name__ == "__main__":
    main()
