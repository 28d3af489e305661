"""End to end: the virtual participant through rings, aligner, worker and sinks.

One in-process session (with a real pylsl inlet on the predictions outlet) and
one run of the real `affectlab` command line, each a few seconds long.
"""

from __future__ import annotations

import contextlib
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
from app.session import Session, SessionFailed
from drivers.session_inputs import SESSION_INPUT_STREAMS

ROOT = Path(__file__).resolve().parents[1]


DEMO_MODELS = [m.name for m in load_config(shipped_config("demo")).models]


def demo_config(tmp_path: Path, lsl_name: str, **sim) -> object:
    """The demo's models and source, a predictions log and LSL outlets named ``lsl_name``."""
    cfg = parse_config(
        {
            "session": {"name": "e2e", "health_period": 1.0},
            "sources": [{"kind": "simulated", "name": "vp", "seed": 3, **sim}],
            "models": [{"name": m, "device": "auto"} for m in DEMO_MODELS],
            "sinks": [
                {"kind": "predictions", "path": str(tmp_path / "preds.jsonl")},
                {"kind": "lsl", "name": lsl_name},
            ],
        }
    )
    return cfg


def pull(inlet: pylsl.StreamInlet, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    got: list[list[float]] = []
    ts: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples, stamps = inlet.pull_chunk(timeout=0.2)
        got += samples
        ts += stamps
    return np.asarray(got), np.asarray(ts)


def test_session_end_to_end_with_an_lsl_inlet(tmp_path):
    """The demo's two models: one outlet each (the second named after its model)."""
    name = f"affectlab-e2e-{time.monotonic_ns()}"
    session = Session(demo_config(tmp_path, name))
    assert [r.name for r in session.runners] == DEMO_MODELS
    outlet_names = [name] + [f"{name}-{r.name}" for r in session.runners[1:]]
    session.start()
    try:
        inlets = []
        for outlet in outlet_names:
            found = pylsl.resolve_byprop("name", outlet, timeout=5.0)
            assert found and found[0].type() == "Emotion", outlet
            inlet = pylsl.StreamInlet(found[0])
            inlet.open_stream(timeout=5.0)
            inlet.pull_chunk(timeout=0.0)
            inlets.append(inlet)
        time.sleep(6.0)  # both outlets buffer what arrives meanwhile
        received = [pull(inlet, 0.5) for inlet in inlets]
    finally:
        session.stop()
    stats = session.stats().to_dict()

    for runner, (values, ts) in zip(session.runners, received, strict=True):
        hop = runner.inputs.hop_s
        # predictions arrive at the hop rate, stamped on hop boundaries of the one clock
        assert len(ts) >= int(5.0 / hop) - 2, runner.name
        assert np.all(np.diff(ts) > 0)
        np.testing.assert_allclose(np.round(ts / hop) * hop, ts, atol=1e-6)
        channels = list(runner.outputs)
        assert values.shape[1] == len(channels)
        affect = [i for i, c in enumerate(channels) if not c.startswith("p_")]
        probs = [i for i, c in enumerate(channels) if c.startswith("p_")]
        assert np.all((values[:, affect] >= 1) & (values[:, affect] <= 9))
        if probs:  # a window cut before the first eye frame has no expression: NaN on LSL
            seen = ~np.isnan(values[:, probs]).all(axis=1)
            assert seen.sum() >= len(seen) - 2
            np.testing.assert_allclose(values[seen][:, probs].sum(axis=1), 1.0, atol=1e-4)
    assert "valence" in session.runners[0].outputs
    assert "p_happiness" in session.runners[1].outputs

    # the log holds every prediction each worker made, in order
    rows = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    for runner in session.runners:
        model = stats["models"][runner.name]
        mine = [r for r in rows if r["model"] == runner.name]
        assert len(mine) == model["inferred"] > 0
        assert [r["window"] for r in mine] == sorted(r["window"] for r in mine)
        assert model["windows"] == model["inferred"] + model["skipped"] + model["errors"]
        assert model["errors"] == 0
        assert {"cut", "inputs", "model", "total"} <= set(model["latency_s"])

    # nothing was lost between the drivers and the rings
    for stream, entry in stats["streams"].items():
        # markers and self-reports come only when someone gives one
        assert entry["received"] > 0 or stream in SESSION_INPUT_STREAMS, stream
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
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with preds.open() as f:
        rows = list(csv.DictReader(f))
    assert {"valence", "arousal", "p_happiness", "label", "t_end", "latency_model"} <= set(rows[0])
    stats = json.loads(stats_path.read_text())
    assert set(stats["streams"]) >= {
        "sim-eeg",
        "sim-ecg",
        "sim-eda",
        "sim-davis-frames",
        "sim-davis-events",
    }
    for stream, entry in stats["streams"].items():
        assert entry["received"] > 0 or stream in SESSION_INPUT_STREAMS, stream
        assert entry["lost"] == 0, stream
    assert list(stats["models"]) == DEMO_MODELS
    for name, model in stats["models"].items():
        mine = [r for r in rows if r["model"] == name]
        assert len(mine) >= 6, name
        t_end = np.array([float(r["t_end"]) for r in mine])
        steps = np.diff(t_end)
        assert np.all(steps > 0)
        hop = float(np.min(steps))
        np.testing.assert_allclose(steps / hop, np.round(steps / hop), atol=1e-6)
        assert model["inferred"] == len(mine)
        assert {"windows", "inferred", "skipped", "latency_s"} <= set(model)
        assert model["latency_s"]["model"]["p50"] > 0
    # which stream fed each model input
    assert stats["models"]["hi-moe-sim"]["inputs"]["eeg"] == "sim-eeg"
    assert set(stats["models"]["mco-e-net-lite-sim"]["inputs"].values()) == {
        "sim-davis-frames",
        "sim-davis-events",
    }
    # each model fills its own columns and leaves the other's empty
    affect_rows = [r for r in rows if r["model"] == "hi-moe-sim"]
    expression_rows = [r for r in rows if r["model"] == "mco-e-net-lite-sim"]
    assert all(r["valence"] and not r["p_happiness"] for r in affect_rows)
    assert not any(r["valence"] for r in expression_rows)
    # only a window cut before the first eye frame may lack an expression
    assert all(r["p_happiness"] and r["label"] for r in expression_rows[2:])
    assert "windows" in proc.stderr


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    text = shipped_config("demo").read_text().replace('lighting = "normal"', 'lighting = "dusk"')
    bad.write_text(text)
    proc = run_cli("run", "--config", str(bad), "--headless", "--duration", "1", timeout=60)
    assert proc.returncode == 2
    assert "sources[0].lighting" in proc.stderr and "dusk" in proc.stderr
    assert f"config error: {bad}: sources[0].lighting" in proc.stderr  # which file, too


def test_shipped_demo_config_loads():
    cfg = load_config(shipped_config("demo"))
    assert [s.kind for s in cfg.sources] == ["simulated"]
    assert [m.name for m in cfg.models] == ["hi-moe-sim", "mco-e-net-lite-sim"]


@pytest.mark.parametrize("option", ["eeg_rate = 512", "seed = -1", "camera = 1", "colour = 1"])
def test_simulated_source_options_are_checked(option):
    from app.config import ConfigError
    from app.sources import build_sources

    key, value = option.split(" = ")
    cfg = parse_config({"sources": [{"kind": "simulated", key: int(value)}]})
    with pytest.raises(ConfigError, match=f"sources\\[0\\].{key}"):
        build_sources(cfg.sources)


def _session_threads() -> set[str]:
    import threading

    return {t.name for t in threading.enumerate()} - {"MainThread"}


def test_a_source_that_cannot_start_leaves_nothing_running_or_half_written(tmp_path):
    """A missing device stops the session with its message; what had started is stopped, and
    the recording and the predictions log leave nothing behind: an empty log and a
    header-only recording used to make the same command, run again, refuse to start."""
    from drivers.base import DriverError

    before = _session_threads()
    cfg = parse_config(
        {
            "session": {"name": "absent-board"},
            "sources": [
                {"kind": "simulated", "name": "vp", "seed": 3},
                {"kind": "brainflow", "board": "playback", "file": str(tmp_path / "no.csv"),
                 "master_board": "synthetic"},
            ],
            "models": [{"name": "hi-moe-sim"}],
            "sinks": [{"kind": "predictions", "path": str(tmp_path / "p.parquet")}],
        }
    )  # fmt: skip
    session = Session(cfg)
    session.start_recording(tmp_path / "rec")
    with pytest.raises(DriverError, match="playback file not found"):
        session.run_for(5.0)
    assert _session_threads() <= before  # nothing of the session still running
    assert session.recording is None
    assert list((tmp_path / "rec").iterdir()) == []  # left as it was: empty
    assert not (tmp_path / "p.parquet").exists()
    again = Session(cfg)
    again.start_recording(tmp_path / "rec")  # the rerun is not refused
    again.stop()
    session.stop()  # again: nothing to do, no error
    with pytest.raises(RuntimeError, match="build a new Session"):
        session.start()  # its sinks are closed: it would run and publish nothing


def test_an_engine_failure_is_reported_and_everything_is_still_closed(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    cfg = demo_config(tmp_path, f"engine-fail-{os.getpid()}")
    cfg.sinks[0].options["path"] = str(tmp_path / "p.parquet")
    session = Session(cfg)
    calls = []
    latest_hop = session.aligner._latest_hop

    def failing_hop(model, now):  # a fault in the engine's own loop, after a few windows
        calls.append(now)
        if len(calls) > 12:
            raise ValueError("simulated scheduling failure")
        return latest_hop(model, now)

    monkeypatch.setattr(session.aligner, "_latest_hop", failing_hop)
    before = _session_threads()
    with pytest.raises(SessionFailed, match="engine failed: simulated scheduling failure"):
        session.run_for(20.0)
    assert _session_threads() <= before
    rows = pq.read_table(tmp_path / "p.parquet").num_rows  # the footer was written
    stats = session.stats().to_dict()
    assert rows == sum(m["inferred"] for m in stats["models"].values()) > 0


def test_an_engine_failure_in_the_command_is_one_line_and_the_statistics(
    tmp_path, monkeypatch, capsys
):
    from app.cli import main
    from core.scheduler import Aligner

    latest_hop = Aligner._latest_hop
    calls = []

    def failing_hop(self, model, now):
        calls.append(now)
        if len(calls) > 12:
            raise ValueError("simulated scheduling failure")
        return latest_hop(self, model, now)

    monkeypatch.setattr(Aligner, "_latest_hop", failing_hop)
    stats = tmp_path / "stats.json"
    code = main(["demo", "--headless", "--duration", "30", "--quiet", "--no-lsl",
                 "--stats", str(stats)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "affectlab: engine failed: simulated scheduling failure" in err.splitlines()
    doc = json.loads(stats.read_text())
    assert sum(m["windows"] for m in doc["models"].values()) > 0


def test_an_interrupt_while_the_session_starts_still_stops_it(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM can land while ``start`` waits for its engine: the session must
    stop as from any other moment (it was left running, the recording never closed)."""
    cfg = demo_config(tmp_path, f"start-int-{os.getpid()}")
    session = Session(cfg)
    session.start_recording(tmp_path / "rec")

    def interrupted(_timeout=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(session._ready, "wait", interrupted)
    before = _session_threads()
    with pytest.raises(KeyboardInterrupt):
        session.run_for(5.0)
    assert _session_threads() <= before
    assert session.recording is None
    manifest = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert manifest["stop_lsl"] is not None


def test_an_interrupt_while_the_recording_opens_its_files_leaves_the_folder_empty(
    tmp_path, monkeypatch
):
    """Ctrl-C or SIGTERM can land while ``--record`` opens its files: a half-opened file
    left behind would make the same command refuse the folder (it is not empty)."""
    from recordings import recorder

    real_init = recorder.XdfWriter.__init__

    def interrupted(self, *args, **kwargs):
        real_init(self, *args, **kwargs)  # the file is open now
        raise KeyboardInterrupt  # what the signal handler raises

    monkeypatch.setattr(recorder.XdfWriter, "__init__", interrupted)
    cfg = parse_config({"sources": [{"kind": "simulated", "name": "vp", "seed": 1}]})
    session = Session(cfg)
    with pytest.raises(KeyboardInterrupt):
        session.start_recording(tmp_path / "rec")
    session.abandon()
    assert list((tmp_path / "rec").iterdir()) == []


def test_a_signal_before_the_session_runs_leaves_nothing_to_block_the_rerun(tmp_path):
    """SIGTERM as the session is being set up (its log and recording files just opened)
    killed the process on the spot, leaving an empty log and a half recording folder that
    the same command then refused. Now it ends as a signal always does: exit 143, and
    either nothing left behind or, had it started running, a clean stop."""
    import signal as signal_module

    preds, stats, rec = tmp_path / "p.csv", tmp_path / "stats.json", tmp_path / "rec"
    command = [sys.executable, "-m", "app.cli", "demo", "--headless", "--duration", "60",
               "--quiet", "--no-lsl", "--predictions", str(preds), "--stats", str(stats),
               "--record", str(rec)]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "affectlab: session 'demo'" in line:  # built: the log is open
                break
        proc.send_signal(signal_module.SIGTERM)
        err = proc.stderr.read()
        assert proc.wait(60) == 143, err
    finally:
        proc.kill()
    assert "Traceback" not in err, err
    if (rec / "manifest.json").exists():  # it had started: a whole, closed recording
        assert json.loads((rec / "manifest.json").read_text())["stop_lsl"] is not None
    else:
        assert not preds.exists() and not stats.exists()
        assert not rec.exists() or not any(rec.iterdir())


@pytest.mark.parametrize(
    ("signals", "code"),
    [
        (("SIGTERM",), 143),  # kill, timeout, systemd, a batch scheduler
        (("SIGINT", "SIGINT", "SIGINT"), 130),  # an impatient Ctrl-C while it stops
    ],
)
def test_a_signalled_session_still_ends_cleanly(tmp_path, signals, code):
    """SIGTERM used to kill the session on the spot (no statistics, the recording not
    finalised); a second Ctrl-C landing in the stop left the recording unfinished or
    aborted the process. Either way everything is written and closed now."""
    import signal as signal_module

    stats, rec = tmp_path / "stats.json", tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "demo", "--headless", "--duration", "120", "--quiet",
         "--no-lsl", "--stats", str(stats), "--record", str(rec)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in proc.stderr:
            if "recording to" in line:
                break
        time.sleep(4.0)  # a few windows
        for i, name in enumerate(signals):
            if i:
                time.sleep(0.25)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(getattr(signal_module, name))
        err = proc.stderr.read()
        assert proc.wait(60) == code, err
    finally:
        proc.kill()
    assert "Traceback" not in err and "terminate called" not in err, err
    doc = json.loads(stats.read_text())
    for name, model in doc["models"].items():
        assert model["windows"] == model["inferred"] + model["skipped"] + model["errors"], name
        assert model["inferred"] > 0, name
    manifest = json.loads((rec / "manifest.json").read_text())
    assert manifest["stop_lsl"] is not None and manifest["error"] is None
    assert "recorded" in err


def test_sigterm_closes_the_dashboard_as_ctrl_c_does(tmp_path):
    import signal as signal_module

    stats = tmp_path / "stats.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "demo", "--duration", "120", "--no-lsl",
         "--stats", str(stats)],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # torch, the models, the window, and predictions of both models in a health line
        for line in proc.stderr:
            if line.startswith("[health]") and line.count("so far") == 2:
                break
        proc.send_signal(signal_module.SIGTERM)
        time.sleep(0.4)  # an impatient Ctrl-C while it closes: ignored, the code stays 143
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal_module.SIGINT)
        err = proc.stderr.read()
        assert proc.wait(60) == 143, err
    finally:
        proc.kill()
    assert "Traceback" not in err, err
    assert all(m["inferred"] > 0 for m in json.loads(stats.read_text())["models"].values())
