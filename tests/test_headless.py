"""End to end: the virtual participant through rings, aligner, worker and sinks.

One in-process session (with a real pylsl inlet on the predictions outlet) and
one run of the real `affectlab` command line, each a few seconds long.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest

from app.config import load_config, parse_config, shipped_config
from app.session import Session

ROOT = Path(__file__).resolve().parents[1]


def demo_config(tmp_path: Path, lsl_name: str, **sim) -> object:
    cfg = parse_config(
        {
            "session": {"name": "e2e", "health_period": 1.0},
            "sources": [{"kind": "simulated", "name": "vp", "seed": 3, **sim}],
            "models": [{"name": "concat-fusion-sim", "device": "auto"}],
            "sinks": [
                {"kind": "predictions", "path": str(tmp_path / "preds.jsonl")},
                {"kind": "lsl", "name": lsl_name},
            ],
        }
    )
    return cfg


def test_session_end_to_end_with_an_lsl_inlet(tmp_path):
    name = f"affectlab-e2e-{time.monotonic_ns()}"
    session = Session(demo_config(tmp_path, name))
    runner = session.runners[0]
    hop = runner.inputs.hop_s
    session.start()
    try:
        found = pylsl.resolve_byprop("name", name, timeout=5.0)
        assert found and found[0].type() == "Emotion"
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(timeout=5.0)
        samples, stamps = inlet.pull_chunk(timeout=0.0)
        got: list[list[float]] = []
        ts: list[float] = []
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            samples, stamps = inlet.pull_chunk(timeout=0.2)
            got += samples
            ts += stamps
    finally:
        session.stop()
    stats = session.stats().to_dict()

    # predictions arrive at the hop rate, stamped on hop boundaries of the one clock
    assert len(got) >= int(5.0 / hop) - 2
    steps = np.diff(ts)
    assert np.all(steps > 0)
    np.testing.assert_allclose(np.round(np.asarray(ts) / hop) * hop, ts, atol=1e-6)
    values = np.asarray(got)
    channels = list(runner.outputs)
    v = values[:, channels.index("valence")]
    assert np.all((v >= 1) & (v <= 9))
    p = values[:, [i for i, c in enumerate(channels) if c.startswith("p_")]]
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)

    # the log holds every prediction the worker made, in order
    rows = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    model = stats["models"][runner.name]
    assert len(rows) == model["inferred"] > 0
    assert [r["window"] for r in rows] == sorted(r["window"] for r in rows)
    assert model["windows"] == model["inferred"] + model["skipped"] + model["errors"]
    assert model["errors"] == 0
    assert {"cut", "inputs", "model", "total"} <= set(model["latency_s"])

    # nothing was lost between the drivers and the rings
    for stream, entry in stats["streams"].items():
        assert entry["received"] > 0, stream
        assert entry["lost"] == 0, stream
        assert entry["received"] == entry["ring_written"], stream


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_command_logs_predictions_and_stats(tmp_path):
    preds, stats_path = tmp_path / "p.csv", tmp_path / "stats.json"
    proc = run_cli(
        "demo", "--headless", "--duration", "6", "--predictions", str(preds),
        "--stats", str(stats_path), "--no-lsl", "--quiet", "--seed", "5",
    )
    assert proc.returncode == 0, proc.stderr
    with preds.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 6
    assert {"valence", "arousal", "p_happiness", "label", "t_end", "latency_model"} <= set(rows[0])
    t_end = np.array([float(r["t_end"]) for r in rows])
    steps = np.diff(t_end)
    assert np.all(steps > 0)
    hop = float(np.min(steps))
    np.testing.assert_allclose(steps / hop, np.round(steps / hop), atol=1e-6)

    stats = json.loads(stats_path.read_text())
    assert set(stats["streams"]) >= {"sim-eeg", "sim-ecg", "sim-eda", "sim-davis-frames", "sim-davis-events"}
    for entry in stats["streams"].values():
        assert entry["received"] > 0 and entry["lost"] == 0
    (model,) = stats["models"].values()
    assert model["inferred"] == len(rows)
    assert {"windows", "inferred", "skipped", "latency_s"} <= set(model)
    assert model["latency_s"]["model"]["p50"] > 0
    assert "windows" in proc.stderr


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    text = shipped_config("demo").read_text().replace("lighting = \"normal\"", "lighting = \"dusk\"")
    bad.write_text(text)
    proc = run_cli("run", "--config", str(bad), "--headless", "--duration", "1", timeout=60)
    assert proc.returncode == 2
    assert "sources[0].lighting" in proc.stderr and "dusk" in proc.stderr


def test_shipped_demo_config_loads():
    cfg = load_config(shipped_config("demo"))
    assert [s.kind for s in cfg.sources] == ["simulated"]
    assert cfg.models[0].name == "concat-fusion-sim"


@pytest.mark.parametrize("option", ["eeg_rate = 512", "seed = -1", "camera = 1", "colour = 1"])
def test_simulated_source_options_are_checked(option):
    from app.config import ConfigError
    from app.sources import build_sources

    key, value = option.split(" = ")
    cfg = parse_config({"sources": [{"kind": "simulated", key: int(value)}]})
    with pytest.raises(ConfigError, match=f"sources\\[0\\].{key}"):
        build_sources(cfg.sources)
