"""Where the benchmarks write their figures.

``bench/results/<name>.json`` by default (git-ignored), or the folder named by
``AFFECTLAB_BENCH_RESULTS``: the opt-in check that every benchmark still runs
(``./dev test -m bench``) points it elsewhere so that its quick runs do not replace
the figures of a full one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from _measure import MachineWatch, describe_machine

DEFAULT = Path(__file__).resolve().parent / "results"


def write_results(name: str, doc: dict[str, Any], machine: MachineWatch) -> Path:
    """Write ``doc`` as ``<folder>/<name>.json``, say where, and return the path.

    ``doc["machine"]`` gets the machine's description, its speed at both ends of the run
    and the CPU other processes took (beside what the benchmark put there itself, such
    as library versions), and a line on them is printed: every benchmark's figures say
    what they were measured on and whether that held still.
    """
    doc = {**doc, "machine": {**machine.finish(), **doc.get("machine", {})}}
    print(describe_machine(doc["machine"]))
    folder = Path(os.environ.get("AFFECTLAB_BENCH_RESULTS") or DEFAULT)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    print(f"wrote {path}")
    return path
