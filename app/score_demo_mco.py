"""Score mco-e-net-lite-sim weights on the test participants under harsher lighting.

    affectlab score-demo mco-e-net-lite-sim runs/train_demo/mco_e_net_lite_frames_only_sim.safetensors \\
        --severity 1 1.5 2

The demo model is trained under the simulator's four lightings (SEE's
conditions). This asks how it holds up when the light is worse than anything
it saw: each test participant (the same ones ``train-demo`` scores) is
rendered again with the lighting's exposure error ``severity`` times as many
stops (``Lighting.harsher``: at 2, low light lets in 0.12^2 of the light and
overexposure gains 1.7^2). A DVS answers to log-intensity changes, so more
gain leaves its events nearly as they were while the APS frame clips; in the
dark both lose (the frame sinks into shot noise, the DVS's lin-log floor dims
its contrast). Comparing a frames + events model with its frames-only variant
here is the event camera's argument, measured. Windows are cached like
train-demo's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.arguments import positive_float, positive_int, threads
from app.demo_data import DEFAULT_CACHE, LIGHTINGS, SessionPlan, WindowSet, build_dataset, say
from app.outputs import unwritable

HARSH = ("overexposure", "low_light", "hdr")  # normal light has no exposure error to scale


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="affectlab score-demo",
        description="Accuracy of mco-e-net-lite-sim weights (shipped name or .safetensors "
        "files) on the simulated test participants under lighting harsher than trained.",
    )
    p.add_argument("weights", nargs="+", help="mco-e-net-lite-sim or .safetensors files")
    p.add_argument(
        "--severity",
        type=float,
        nargs="+",
        default=[1.0, 1.5, 2.0],
        help="exposure error in multiples of the trained conditions' (1 = as trained)",
    )
    p.add_argument("--test-seeds", type=positive_int, default=4, help="participants 0 .. N-1")
    p.add_argument("--test-minutes", type=positive_float, default=2.0, help="minutes per session")
    p.add_argument("--stride", type=positive_int, default=4, help="a window every N hops")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--workers", type=int, default=2, help="processes rendering sessions")
    p.add_argument("--threads", type=threads, default=1, help="torch threads")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    p.add_argument("--no-progress", action="store_true")
    return p


def plans_for(severity: float, test_seeds: int, minutes: float) -> list[SessionPlan]:
    """Every test participant under each lighting at ``severity`` (normal light only at 1)."""
    lightings = LIGHTINGS if severity == 1.0 else HARSH
    return [
        SessionPlan.for_seed(s, minutes).under(light, severity)
        for s in range(test_seeds)
        for light in lightings
    ]


def load_lite(name_or_path: str):
    """The model and whether it reads events; refuses weights whose windows differ from
    mco-e-net-lite-sim's (another family, other inputs, another hop)."""
    from app.demo_data import serves
    from models.registry import mco_e_net_lite_sim_inputs
    from models.runtime import load_model, resolve

    path = resolve(name_or_path)
    model, inputs, meta = load_model(path)
    if meta["family"] != "mco-e-net" or not serves(mco_e_net_lite_sim_inputs(), inputs):
        raise ValueError(
            f"{path} ({meta['family']} {inputs.model!r}) does not read mco-e-net-lite-sim's "
            "windows: score-demo scores that model and its frames-only variant"
        )
    return path, model, "events" not in inputs.inputs


def scores(model, data: WindowSet, frames_only: bool) -> dict[str, dict[str, Any]]:
    """Per-lighting figures by what the model was given; a model that reads events is also
    scored with them missing, which tells what its robustness owes to them."""
    from models.demo.mco import predict
    from models.demo.windows import per_lighting

    def by_lighting(probs) -> dict[str, Any]:
        return per_lighting(data, probs.argmax(1), LIGHTINGS)

    if frames_only:
        return {"frames only": by_lighting(predict(model, data, True))}
    return {
        "frames + events": by_lighting(predict(model, data, False)),
        "events missing": by_lighting(predict(model, data, False, True)),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: accuracy per lighting, a row per weights file, inputs and severity."""
    lines = [
        "| weights | inputs | severity | " + " | ".join(LIGHTINGS) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in LIGHTINGS) + " |",
    ]
    for r in rows:
        cells = [
            f"{r['figures'][c]['accuracy']:.3f}" if c in r["figures"] else "" for c in LIGHTINGS
        ]
        lines.append(
            f"| {Path(r['weights']).name} | {r['inputs']} | {r['severity']:g} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else sys.argv[1:])
    if any(not s > 0 for s in args.severity):
        print("affectlab score-demo: severities must be > 0", file=sys.stderr)
        return 2
    for flag, path in (("--json", args.json), ("--cache-dir", args.cache_dir / "probe.npz")):
        if path is not None and (why := unwritable(path)):
            print(f"affectlab score-demo: {flag} {path}: {why}", file=sys.stderr)
            return 2
    from app.train_demo import set_threads
    from app.train_demo_mco import summary
    from models.checkpoint import json_default
    from models.registry import mco_e_net_lite_sim_inputs
    from models.runtime import ModelLoadError

    set_threads(args.threads)
    try:
        models = [load_lite(w) for w in args.weights]
    except (ModelLoadError, ValueError, FileNotFoundError) as exc:
        print(f"affectlab score-demo: {exc}", file=sys.stderr)
        return 2
    full = mco_e_net_lite_sim_inputs()  # frames-only models read the same windows' frames
    rows: list[dict[str, Any]] = []
    for severity in args.severity:
        plans = plans_for(severity, args.test_seeds, args.test_minutes)
        say(f"severity {severity:g}: {len(plans)} sessions x {args.test_minutes:g} min")
        data = build_dataset(
            plans, full, args.cache_dir, args.workers, not args.no_progress, args.stride
        )
        for path, model, frames_only in models:
            for given, figures in scores(model, data, frames_only).items():
                rows.append(
                    {
                        "weights": str(path),
                        "inputs": given,
                        "severity": severity,
                        "figures": figures,
                    }
                )
                say(f"  {path.name} ({given}): {summary(figures)}")
    print(table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2, default=json_default) + "\n")
        say(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
