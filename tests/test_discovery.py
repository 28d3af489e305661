"""`affectlab streams` and drivers.discovery against the real libraries: an LSL outlet in this
process, the BrainFlow synthetic board, OpenCV and dv-processing probes (no hardware here)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pylsl
import pytest

from app.streams import main
from drivers import brainflow, lsl_config
from drivers.discovery import FAMILIES, discover

ROOT = Path(__file__).resolve().parents[1]


def _snippet_options(config: str) -> dict:
    table = tomllib.loads(config)["sources"][0]
    return {k: v for k, v in table.items() if k != "kind"}


def test_an_lsl_outlet_is_listed_with_its_header_and_a_working_snippet():
    name = f"disc-{uuid.uuid4().hex[:10]}"
    info = pylsl.StreamInfo(name, "ECG", 3, 256.0, "float32", f"sid-{name}")
    info.set_channel_labels(["I", "II", "III"])
    info.set_channel_units("mV")
    outlet = pylsl.StreamOutlet(info)
    result = discover(timeout=1.0, families=("lsl",))
    mine = [f for f in result.found if f.device == name]
    assert len(mine) == 1, [f.device for f in result.found]
    found = mine[0]
    assert found.family == "lsl" and found.available
    assert found.info["type"] == "ECG"
    assert found.info["channel_count"] == 3
    assert found.info["channel_names"] == ["I", "II", "III"]
    assert found.streams == [
        {
            "name": name,
            "modality": "ECG",
            "channels": 3,
            "nominal_rate": 256.0,
            "channel_names": ["I", "II", "III"],
            "units": ["mV", "mV", "mV"],
        }
    ]
    assert "ECG" in found.use_as and "256 Hz" in found.details
    # the snippet is a valid [[sources]] table that the LSL driver accepts as it stands
    options = _snippet_options(found.config)
    assert options["lsl_name"] == name and options["source_id"] == f"sid-{name}"
    (driver,) = lsl_config.from_config({**options, "resolve_timeout": 5})
    assert driver.specs[0].channel_names == ("I", "II", "III")
    del outlet


def test_brainflow_synthetic_and_playback_are_always_listed():
    result = discover(timeout=0.5, families=("brainflow",))
    by_device = {f.device: f for f in result.found}
    synthetic = by_device["synthetic"]
    assert synthetic.available
    modalities = {s["modality"] for s in synthetic.streams}
    assert {"EEG", "EDA", "PPG"} <= modalities
    assert "EEG 16 ch" in synthetic.use_as
    (driver,) = brainflow.from_config(_snippet_options(synthetic.config))
    assert driver.board_id == -1
    assert "playback" in by_device
    assert "file" in _snippet_options(by_device["playback"].config)


def test_camera_probes_answer_without_hardware():
    result = discover(timeout=0.5, families=("webcam", "davis"))
    assert all(f.family in ("webcam", "davis") for f in result.found)
    if not any(f.family == "davis" for f in result.found):
        assert any(n.startswith("davis:") for n in result.notes)
    assert not any("could not probe" in n for n in result.notes), result.notes


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown source families"):
        discover(families=("lsl", "radar"))
    assert FAMILIES == ("lsl", "brainflow", "webcam", "davis")


def test_streams_command_json_exits_0_and_parses():
    proc = subprocess.run(
        [sys.executable, "-m", "app.streams", "--json", "--timeout", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["timeout"] == 1.0
    assert any(f["family"] == "brainflow" and f["device"] == "synthetic" for f in data["found"])
    assert isinstance(data["notes"], list)


def test_streams_command_table(capsys):
    assert main(["--timeout", "0.3", "--only", "brainflow"]) == 0
    out = capsys.readouterr().out
    assert "SOURCE" in out and "synthetic" in out
    assert 'kind = "brainflow"' in out
    assert main(["--timeout", "0"]) == 2
