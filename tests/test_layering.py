"""DESIGN.md's import rules, read from the source: every ``import`` statement, also the
ones inside functions, of the five code folders.

- Import direction is one way: app -> recordings, drivers, models, core;
  recordings -> drivers, core; drivers -> core; models -> core; core -> nothing of ours.
- torch (and mamba-ssm, safetensors) only under models/; Qt only under app/gui/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("app", "core", "drivers", "models", "recordings")
MAY_IMPORT: dict[str, set[str]] = {
    "app": {"app", "recordings", "drivers", "models", "core"},
    "recordings": {"recordings", "drivers", "core"},
    "drivers": {"drivers", "core"},
    "models": {"models", "core"},
    "core": {"core"},
}
TORCH = {"torch", "mamba_ssm", "safetensors"}
QT = {"PySide6", "pyqtgraph"}


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """(top-level package, line) of every absolute import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


def sources(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))


@pytest.mark.parametrize("room", ROOMS)
def test_imports_follow_the_design(room: str) -> None:
    files = sources(room)
    assert files, f"no sources under {room}/"
    broken = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for top, line in imports(path):
            if top in ROOMS and top not in MAY_IMPORT[room]:
                broken.append(f"{rel}:{line} imports {top} (upwards)")
            if top in TORCH and room != "models":
                broken.append(f"{rel}:{line} imports {top} (torch lives under models/)")
            if top in QT and not rel.startswith("app/gui/"):
                broken.append(f"{rel}:{line} imports {top} (Qt lives under app/gui/)")
    assert not broken, "\n".join(broken)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The demo trainers once imported torch inside their functions: that counts."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    import torch.nn\n    from models.zoo import recipe_of\n")
    assert list(imports(src)) == [("torch", 2), ("models", 3)]
