"""`affectlab streams`: list the sources this machine can see and how affectlab would use them.

Prints a table (or JSON with ``--json``) of LSL streams on the network,
BrainFlow boards, webcams and DAVIS cameras, each followed by a ``[[sources]]``
snippet for a session config. Finding nothing is an answer, not an error: the
exit status is 0 unless the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

FAMILY_TITLES = {"lsl": "LSL", "brainflow": "BrainFlow", "webcam": "webcam", "davis": "DAVIS"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="affectlab streams",
        description="List LSL streams, BrainFlow boards, webcams and DAVIS cameras, with what "
        "each would be used as and a [[sources]] snippet for a session config.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds to wait for LSL streams to answer (default 2)",
    )
    p.add_argument(
        "--only",
        action="append",
        choices=("lsl", "brainflow", "webcam", "davis"),
        help="probe only this family (repeatable)",
    )
    p.add_argument("--no-config", action="store_true", help="table only, no config snippets")
    return p


def _table(found, width: int) -> str:
    """One row per source (#, SOURCE, DEVICE, USE AS); its details wrap under USE AS."""
    rows = [
        [
            str(i + 1),
            FAMILY_TITLES.get(f.family, f.family) + ("" if f.available else " ?"),
            f.device,
        ]
        for i, f in enumerate(found)
    ]
    header = ["#", "SOURCE", "DEVICE"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    indent = sum(widths) + 2 * 3
    last = max(30, width - indent)
    pad = " " * indent

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + "  "

    out = [line(header) + "USE AS / DETAILS"]
    for row, f in zip(rows, found, strict=True):
        use = textwrap.wrap(f.use_as, last) or [""]
        out.append(line(row) + use[0])
        out.extend(pad + more for more in use[1:])
        out.extend(pad + more for more in textwrap.wrap(f.details, last))
    return "\n".join(out)


def render(discovery, show_config: bool = True, width: int | None = None) -> str:
    """The human-readable listing."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    found = discovery.found
    out = []
    if found:
        out.append(_table(found, width))
        if any(not f.available for f in found):
            out.append("? = a candidate that could not be verified without opening it")
    else:
        out.append("No sources found.")
    if discovery.notes:
        out.append("")
        out.extend(
            textwrap.fill(n, width, initial_indent="note: ", subsequent_indent="      ")
            for n in discovery.notes
        )
    if show_config and found:
        out.append("")
        out.append("Config snippets (paste into a session TOML; `affectlab run --config FILE`):")
        for i, f in enumerate(found):
            out.append("")
            out.append(f"# [{i + 1}] {FAMILY_TITLES.get(f.family, f.family)} {f.device}")
            out.append(f.config)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.timeout <= 0:
        print("affectlab streams: --timeout must be > 0 seconds", file=sys.stderr)
        return 2
    # liblsl reads its config once, at first use: keep its INFO lines off the console
    os.environ.setdefault("LSLAPICFG", str(Path(__file__).parent / "configs" / "lsl_api.cfg"))
    from drivers.discovery import FAMILIES, discover

    families = tuple(dict.fromkeys(args.only)) if args.only else FAMILIES
    result = discover(args.timeout, families)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render(result, show_config=not args.no_config))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
