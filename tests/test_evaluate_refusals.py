"""evaluate: what it refuses or warns about, each in one line, on tiny simulated runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.evaluate import main as evaluate
from app.simulate import main as simulate
from app.train import main as train


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny DEAP and SEE sets, a 1-epoch SEE run and one fold of a 2-fold DEAP run."""
    root = tmp_path_factory.mktemp("eval_refusals")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    assert simulate(["deap", "--out", str(root / "deap"), "--subjects", "3", "--trials", "4",
                     "--trial-seconds", "10", "--quiet"]) == 0  # fmt: skip
    assert simulate(["see", "--out", str(root / "see"), "--subjects", "2", "--trials", "1",
                     "--trial-seconds", "0.6", "--frame-size", "100x100", "--quiet"]) == 0  # fmt: skip
    common = ["--epochs", "1", "--quiet", "--threads", "1"]
    assert train(["mco-e-net-lite", "--data", f"see:{root / 'see'}", "--batch-size", "16",
                  "--out", str(root / "see_run"), *common]) == 0  # fmt: skip
    assert train(["late-fusion", "--data", f"deap:{root / 'deap'}", "--folds", "2", "--fold", "0",
                  "--out", str(root / "half"), *common]) == 0  # fmt: skip
    torch.set_num_threads(before)
    return {"deap": root / "deap", "see": root / "see", "see_run": root / "see_run",
            "half": root / "half"}  # fmt: skip


def test_see_data_given_a_file_is_one_line(runs, tmp_path, capsys):
    file = runs["see"] / "emotion.json"
    rc = evaluate([str(runs["see_run"]), "--data", f"see:{file}", "--out", str(tmp_path / "e"),
                   "--quiet"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith(f"affectlab evaluate: error: {file}: is a file; SEE wants its folder")
    assert len(err.strip().splitlines()) == 1
