"""Damaged copies of a DEAP data set, for the tests of what train and evaluate say of them."""

from __future__ import annotations

from pathlib import Path


def damaged_deap_sets(root: Path, deap: Path) -> list[tuple[str, Path]]:
    """(``deap:`` data reference, the file its error must name) for a copy of ``deap`` whose
    first subject file is junk, and one whose first subject file is cut short."""
    good = (deap / "data_preprocessed_python" / "s01.dat").read_bytes()
    cases = []
    for name, text in (("junk", b"junk\n"), ("cut", good[:3000])):
        folder = root / name / "data_preprocessed_python"
        folder.mkdir(parents=True)
        (folder / "s01.dat").write_bytes(text)
        (folder / "s02.dat").write_bytes(good)
        cases.append((f"deap:{root / name}", folder / "s01.dat"))
    return cases
