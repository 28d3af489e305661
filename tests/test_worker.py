"""The inference worker: latest wins, skip counts, latency stamps, errors isolated."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.clock import VirtualClock
from core.prediction import LATENCIES, ModelOutput, Prediction
from core.streams import Modality
from core.window import InputData, ModelInputs, NumericInput, Presence, Window
from core.worker import RECENT_LATENCIES, InferenceWorker, WorkerStats
from models.errors import ModelLoadError
from models.runtime import pick_device

INPUTS = ModelInputs("mean", {"x": NumericInput(Modality.EEG, 1.0, 10.0)}, hop_s=0.5)


class MeanRunner:
    """A real (if tiny) model: valence is the window's mean. ``gate`` lets a test hold it."""

    name = "mean"
    inputs = INPUTS
    device = "cpu"
    outputs = ("valence",)

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.seen: list[int] = []

    def prepare(self, window: Window) -> tuple[int, np.ndarray]:
        if window.inputs["x"].data is None:
            raise ValueError("no data")
        return window.index, window.inputs["x"].data

    def infer(self, prepared: tuple[int, np.ndarray]) -> ModelOutput:
        index, x = prepared
        self.entered.set()
        self.gate.wait(10)
        self.seen.append(index)
        return ModelOutput(affect={"valence": float(x.mean())})


def window(i: int, value: float | None = None) -> Window:
    v = float(i) if value is None else value
    data = np.full((1, 10), v, np.float32)
    return Window(
        "mean", i, t_end=float(i), inputs={"x": InputData("x", Presence.PRESENT, data, 0.0)}
    )


def test_every_window_is_inferred_when_the_model_keeps_up():
    out: list[Prediction] = []
    clock = VirtualClock(100.0)
    worker = InferenceWorker(MeanRunner(), out.append, clock)
    worker.start()
    for i in range(20):
        worker.submit(window(i))
        assert worker.wait_idle(5)
    worker.stop()
    assert [p.window_index for p in out] == list(range(20))
    assert [p.affect["valence"] for p in out] == [float(i) for i in range(20)]
    assert worker.stats.windows == 20 and worker.stats.inferred == 20 and worker.stats.skipped == 0
    p = out[5]
    assert p.published_at == 100.0 and p.latency["total"] == pytest.approx(95.0)
    assert p.mask == {"x": "present"}
    for stage in ("queue", "inputs", "model"):
        assert p.latency[stage] >= 0.0
    assert "cut" not in p.latency  # hand-made windows carry no aligner stamps


def test_latest_wins_when_the_model_falls_behind():
    out: list[Prediction] = []
    runner = MeanRunner()
    runner.gate.clear()
    worker = InferenceWorker(runner, out.append, VirtualClock())
    worker.start()
    worker.submit(window(0))
    assert runner.entered.wait(5)  # the model is busy with window 0
    for i in range(1, 6):
        worker.submit(window(i))  # 1..4 are each replaced by the next one
    runner.gate.set()
    assert worker.wait_idle(5)
    worker.stop()
    assert runner.seen == [0, 5]
    assert [p.window_index for p in out] == [0, 5]
    assert worker.stats.windows == 6
    assert worker.stats.skipped == 4
    assert worker.stats.inferred == 2


def test_stop_finishes_the_waiting_window():
    out: list[Prediction] = []
    runner = MeanRunner()
    runner.gate.clear()
    worker = InferenceWorker(runner, out.append, VirtualClock())
    worker.start()
    worker.submit(window(0))
    assert runner.entered.wait(5)
    worker.submit(window(1))
    threading.Timer(0.05, runner.gate.set).start()
    worker.stop()
    assert [p.window_index for p in out] == [0, 1]


def test_a_failing_window_is_counted_and_the_worker_goes_on():
    out: list[Prediction] = []
    worker = InferenceWorker(MeanRunner(), out.append, VirtualClock())
    worker.start()
    bad = window(1)
    bad.inputs["x"] = InputData("x", Presence.MISSING, None, float("inf"))
    for w in (window(0), bad, window(2)):
        worker.submit(w)
        worker.wait_idle(5)
    worker.stop()
    assert [p.window_index for p in out] == [0, 2]
    assert worker.stats.errors == 1 and "no data" in worker.stats.last_error


def test_latency_percentiles():
    stats = WorkerStats()
    for v in range(1, 101):
        stats.latencies["model"].append(v / 1000)
    pct = stats.latency_percentiles()
    assert set(pct) == {"model"}
    assert pct["model"]["p50"] == pytest.approx(0.0505)
    assert pct["model"]["p99"] == pytest.approx(0.09901)
    assert pct["model"]["max"] == pytest.approx(0.1) and pct["model"]["n"] == 100
    assert set(stats.latencies) == set(LATENCIES)


def test_latency_max_and_mean_cover_the_whole_session():
    """The percentiles look at the newest windows only (bounded memory); a slow spell in the
    first hour used to vanish from max and mean too once it left that history."""
    stats = WorkerStats()
    stats.latencies["model"].append(2.0)  # the slow spell
    for _ in range(RECENT_LATENCIES + 99):
        stats.latencies["model"].append(0.01)
    pct = stats.latency_percentiles()["model"]
    assert pct["max"] == 2.0 and pct["p99"] == pytest.approx(0.01)
    assert pct["mean"] == pytest.approx(
        (2.0 + 0.01 * (RECENT_LATENCIES + 99)) / (RECENT_LATENCIES + 100)
    )
    assert pct["n"] == RECENT_LATENCIES + 100 and pct["n_recent"] == RECENT_LATENCIES


def test_pick_device():
    import torch

    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA"):
            pick_device("cuda")
