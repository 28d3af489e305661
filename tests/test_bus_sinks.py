"""Bus fan-out and the sinks: files parse back, a real pylsl inlet receives the outlet."""

from __future__ import annotations

import csv
import io
import json
import math
import time

import numpy as np
import pyarrow.parquet as pq
import pylsl
import pytest

from core.bus import Bus
from core.health import StreamHealth
from core.prediction import AFFECT_DIMENSIONS, EXPRESSIONS, Prediction, prediction_columns
from core.sinks.console import ConsoleHealth
from core.sinks.lsl_outlet import LslPredictionOutlet
from core.sinks.prediction_log import PredictionLog, PredictionLogError

OUTPUTS = list(AFFECT_DIMENSIONS) + [f"p_{e}" for e in EXPRESSIONS]
COLUMNS = prediction_columns(OUTPUTS, ["eeg", "frames"])


def prediction(i: int, model: str = "m") -> Prediction:
    rng = np.random.default_rng(i)
    probs = rng.dirichlet(np.ones(len(EXPRESSIONS)))
    return Prediction(
        model=model,
        window_index=i,
        t_end=1000.0 + 0.5 * i,
        affect={k: float(rng.uniform(1, 9)) for k in AFFECT_DIMENSIONS},
        expression={e: float(p) for e, p in zip(EXPRESSIONS, probs, strict=True)},
        mask={"eeg": "present", "frames": "missing" if i % 2 else "stale"},
        latency={"cut": 0.001, "queue": 0.0, "inputs": 0.002, "model": 0.01, "total": 0.2},
        published_at=1000.2 + 0.5 * i,
    )


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_prediction_log_round_trip(tmp_path, suffix):
    path = tmp_path / f"preds{suffix}"
    log = PredictionLog(path, columns=COLUMNS, row_group=4)
    preds = [prediction(i) for i in range(10)]
    for p in preds:
        log.on_prediction(p)
    log.close()
    if suffix == ".csv":
        with path.open() as f:
            rows = list(csv.DictReader(f))
    elif suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    else:
        table = pq.read_table(path)
        assert table.num_rows == 10 and table.column_names == COLUMNS
        rows = table.to_pylist()
    assert len(rows) == 10
    for row, p in zip(rows, preds, strict=True):
        assert list(row) == COLUMNS
        assert int(row["window"]) == p.window_index
        assert float(row["valence"]) == pytest.approx(p.affect["valence"], rel=1e-12)
        assert float(row["p_happiness"]) == pytest.approx(p.expression["happiness"], rel=1e-12)
        assert row["label"] == p.label
        assert row["mask_frames"] == p.mask["frames"]
        assert float(row["latency_model"]) == pytest.approx(0.01)


def test_a_log_without_predictions_is_an_empty_table_with_its_columns(tmp_path):
    """A session that ran too briefly to predict leaves a readable table, not a 0-byte CSV."""
    for suffix in (".csv", ".parquet"):
        log = PredictionLog(tmp_path / f"p{suffix}", columns=COLUMNS)
        log.close()
        if suffix == ".csv":
            with open(log.path, newline="") as f:
                reader = csv.DictReader(f)
                assert reader.fieldnames == COLUMNS and list(reader) == []
        else:
            table = pq.read_table(log.path)
            assert table.column_names == COLUMNS and table.num_rows == 0


def test_csv_rows_are_on_disk_before_close(tmp_path):
    """A crash after a prediction must not lose it: CSV and JSON lines flush every row."""
    for suffix in (".csv", ".jsonl"):
        path = tmp_path / f"live{suffix}"
        log = PredictionLog(path, columns=COLUMNS)
        log.on_prediction(prediction(0))
        log.on_prediction(prediction(1))
        text = path.read_text()
        assert text.count("\n") == (3 if suffix == ".csv" else 2)
        log.close()


def test_prediction_log_refuses_to_overwrite_and_unknown_extensions(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("precious")
    with pytest.raises(PredictionLogError, match="already exists"):
        PredictionLog(path)
    assert path.read_text() == "precious"
    with pytest.raises(PredictionLogError, match="unknown extension '.xlsx'"):
        PredictionLog(tmp_path / "p.xlsx")


def test_missing_values_are_empty_or_null(tmp_path):
    p = prediction(0)
    p.affect = {"valence": math.nan}
    p.expression = {}
    log = PredictionLog(tmp_path / "p.jsonl", columns=COLUMNS)
    log.on_prediction(p)
    log.close()
    row = json.loads((tmp_path / "p.jsonl").read_text())
    assert row["valence"] is None and row["arousal"] is None and row["label"] is None


def test_lsl_outlet_reaches_a_real_inlet():
    name = f"affectlab-test-{time.monotonic_ns()}"
    outlet = LslPredictionOutlet("m", OUTPUTS, hop_s=0.5, name=name)
    found = pylsl.resolve_byprop("name", name, timeout=5.0)
    assert found, "the outlet was not found on loopback"
    info = found[0]
    assert info.type() == "Emotion" and info.channel_count() == len(OUTPUTS)
    inlet = pylsl.StreamInlet(info)
    full = inlet.info(timeout=5.0)
    # irregular: a skipped window is a hole, which a nominal rate would have tools smooth over
    assert full.nominal_srate() == pylsl.IRREGULAR_RATE
    assert float(full.desc().child_value("hop_s")) == 0.5
    ch = full.desc().child("channels").child("channel")
    labels = []
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    assert labels == OUTPUTS
    inlet.open_stream(timeout=5.0)
    time.sleep(0.2)
    sent = [prediction(i) for i in range(5)]
    for p in sent:
        outlet.on_prediction(p)
    outlet.on_prediction(prediction(99, model="other"))  # not this outlet's model
    got, stamps = [], []
    deadline = time.monotonic() + 5.0
    while len(got) < 5 and time.monotonic() < deadline:
        sample, ts = inlet.pull_sample(timeout=0.5)
        if sample is not None:
            got.append(sample)
            stamps.append(ts)
    outlet.close()
    assert len(got) == 5
    assert stamps == pytest.approx([p.t_end for p in sent])
    for sample, p in zip(got, sent, strict=True):
        assert sample[0] == pytest.approx(p.affect["valence"], rel=1e-6)
        assert sample[OUTPUTS.index("p_fear")] == pytest.approx(p.expression["fear"], rel=1e-5)
    assert outlet.pushed == 5


class Recorder:
    def __init__(self):
        self.predictions: list[Prediction] = []
        self.health: list[float] = []
        self.closed = 0

    def on_prediction(self, p):
        self.predictions.append(p)

    def on_health(self, health, now):
        self.health.append(now)

    def close(self):
        self.closed += 1


class Broken(Recorder):
    def on_prediction(self, p):
        raise OSError("disk full")


def test_bus_fans_out_and_isolates_a_broken_sink():
    bus = Bus()
    good, bad = Recorder(), Broken()
    bus.add(bad)
    bus.add(good)
    for i in range(7):
        bus.publish(prediction(i))
    bus.publish_health({}, 5.0)
    assert len(good.predictions) == 7 and good.health == [5.0]
    assert bus.sink_errors == Bus.max_failures
    assert bad not in bus.sinks  # detached after max_failures in a row
    bus.close()
    bus.close()
    assert good.closed == 1 and bad.closed == 1  # detached, but still closed once
    bus.publish(prediction(8))  # after close: dropped, not raised
    assert len(good.predictions) == 7


class StalledDiskLog(PredictionLog):
    """A real Parquet log whose disk refuses the rows from the third to the seventh."""

    calls = 0

    def on_prediction(self, p):
        self.calls += 1
        if 3 <= self.calls <= 7:
            raise OSError(28, "No space left on device")
        super().on_prediction(p)


def test_a_detached_parquet_log_still_gets_its_footer(tmp_path):
    path = tmp_path / "p.parquet"
    log = StalledDiskLog(path, COLUMNS, row_group=2)
    bus = Bus()
    bus.add(log)
    for i in range(10):
        bus.publish(prediction(i))
    assert log not in bus.sinks and log.calls == 7  # detached after five failures
    bus.close()
    table = pq.read_table(path)  # the footer was written: the first row group is readable
    assert table.column("window").to_pylist() == [0, 1]


def test_console_health_line():
    out = io.StringIO()
    sink = ConsoleHealth(period_s=0.0, stream=out)
    sink.on_prediction(prediction(3))
    h = StreamHealth(
        "sim-eeg",
        connected=True,
        received=100,
        effective_rate=128.0,
        latency=0.012,
        last_sample_time=10.0,
    )
    sink.on_health({"sim-eeg": h, "lost": StreamHealth("lost", message="waiting for stream")}, 10.1)
    line = out.getvalue()
    assert line.startswith("[health] sim-eeg: 128/s lag 12ms")
    assert "lost: waiting for stream" in line
    assert "m #3" in line and "(1 so far)" in line
