"""CPU share of the BrainFlow and webcam drivers at the demo's load.

Each scenario runs for a fixed wall time and reports process CPU time (user +
system, every thread: BrainFlow's native reader and OpenCV's decoder included)
divided by wall time, i.e. the fraction of one core it keeps busy. Baselines
measured in the same run:

- idle: the process sleeping (the floor of the measurement);
- brainflow-bare: the synthetic board read by a bare ``get_board_data`` loop at the
  driver's poll interval (what BrainFlow itself costs);
- video-bare: the same video decoded by a bare ``VideoCapture.read`` loop paced
  at its frame rate (what OpenCV's decoding costs).

The demo load: the synthetic board (250 Hz, 32 rows, 6 streams + markers) and a
640 x 480 MJPG video of a drawn face at 30 fps played as the webcam, with the eye
region (Haar every 5 frames) and a 100 x 100 eye crop.

    .venv/bin/python bench/bench_drivers_cpu.py [--seconds 8] [--quick]

Writes bench/results/bench_drivers_cpu.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _measure import MachineWatch, cpu_seconds  # noqa: E402
from _results import write_results  # noqa: E402
from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams  # noqa: E402

from drivers.brainflow import BrainFlowDriver  # noqa: E402
from drivers.eye_region import EyeDetector, EyeRegionOptions  # noqa: E402
from drivers.webcam import WebcamDriver  # noqa: E402
from tests.test_eye_region import draw_face  # noqa: E402  (a drawn face the cascades detect)

FPS = 30.0


def measure(seconds: float, setup: Callable[[], Callable[[], None]], body=None) -> dict:
    """CPU share over ``seconds`` of wall time after ``setup`` started the load.

    ``setup`` returns a teardown; ``body`` (optional) runs the load in this thread.
    """
    teardown = setup()
    time.sleep(0.5)  # let threads and buffers settle
    c0, t0 = cpu_seconds(), time.perf_counter()
    if body is None:
        time.sleep(seconds)
    else:
        body(t0 + seconds)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    teardown()
    return {"cpu_s": cpu, "wall_s": wall, "cpu_share": cpu / wall}


def write_face_video(path: Path, seconds: float) -> Path:
    n = int(seconds * FPS)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (640, 480), True)
    for i in range(n):
        x = 320 + round(40 * np.sin(2 * np.pi * i / n))
        img, _ = draw_face((640, 480), (x, 240), 2.0, noise=4.0, seed=i)
        writer.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


# ------------------------------------------------------------------ scenarios
def idle() -> Callable[[], None]:
    return lambda: None


def brainflow_bare(poll: float = 0.02):
    def body(until: float) -> None:
        board = BoardShim(int(BoardIds.SYNTHETIC_BOARD), BrainFlowInputParams())
        board.prepare_session()
        board.start_stream()
        try:
            while time.perf_counter() < until:
                board.get_board_data()
                time.sleep(poll)
        finally:
            board.stop_stream()
            board.release_session()

    return body


def brainflow_driver(stats: dict):
    def setup() -> Callable[[], None]:
        d = BrainFlowDriver()
        d.start()

        def teardown() -> None:
            h = d.health()["brainflow-eeg"]
            stats.update(received=h.received, lost=h.lost, rate=round(h.effective_rate, 1))
            d.stop()

        return teardown

    return setup


def video_bare(path: Path):
    def body(until: float) -> None:
        cap = cv2.VideoCapture(str(path))
        t0, k = time.perf_counter(), 0
        while time.perf_counter() < until:
            delay = t0 + k / FPS - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ok, frame = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            k += 1
        cap.release()

    return body


def webcam_driver(path: Path, stats: dict, **kwargs):
    def setup() -> Callable[[], None]:
        d = WebcamDriver(file=path, loop=True, **kwargs)
        d.start()

        def teardown() -> None:
            h = d.health()["webcam-frames"]
            stats.update(received=h.received, lost=h.lost, rate=round(h.effective_rate, 1))
            if d.eye_tracker is not None:
                stats["detections"] = d.eye_tracker.detections
            d.stop()

        return teardown

    return setup


def detection_ms(path: Path, repeats: int) -> dict:
    """Per-pass cost of face+eye detection and of the face cascade alone on 640 x 480 frames."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    for _ in range(repeats):
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    cap.release()
    det = EyeDetector(EyeRegionOptions())
    det.detect(frames[0])  # warm-up
    t = time.perf_counter()
    found = [det.detect(f) for f in frames]
    full = (time.perf_counter() - t) / len(frames)
    # the tracker's usual pass: the face looked for near where it was on the previous frame
    t = time.perf_counter()
    for prev, f in zip(found, frames[1:], strict=False):
        det.detect(f, prev.region if prev else None, prev.face if prev else None)
    near = (time.perf_counter() - t) / (len(frames) - 1)
    small = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in frames]
    t = time.perf_counter()
    for s in small:
        det.face_cascade.detectMultiScale(s, 1.1, 4, minSize=(48, 48))
    face = (time.perf_counter() - t) / len(small)
    return {
        "detect_ms": full * 1e3,
        "detect_near_ms": near * 1e3,
        "face_only_ms": face * 1e3,
        "found": sum(d is not None for d in found),
        "frames": len(frames),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="wall time per scenario")
    ap.add_argument("--quick", action="store_true", help="3 s per scenario")
    args = ap.parse_args(argv)
    machine = MachineWatch()
    seconds = 3.0 if args.quick else args.seconds
    BoardShim.disable_board_logger()

    results: dict = {
        "machine": {"opencv": cv2.__version__},
        "seconds": seconds,
    }
    with tempfile.TemporaryDirectory() as tmp:
        video = write_face_video(Path(tmp) / "face.avi", 10.0)
        s: dict[str, dict] = {k: {} for k in ("bf", "cam", "eye", "eye1")}
        runs = {
            "idle": (idle, None),
            "brainflow-bare": (idle, brainflow_bare()),
            "brainflow-driver": (brainflow_driver(s["bf"]), None),
            "video-bare": (idle, video_bare(video)),
            "webcam-driver": (webcam_driver(video, s["cam"]), None),
            "webcam-driver+eye": (webcam_driver(video, s["eye"], eye_region=True), None),
            "webcam-driver+eye-every-frame": (
                webcam_driver(
                    video, s["eye1"], eye_region=True, eye_options=EyeRegionOptions(detect_every=1)
                ),
                None,
            ),
        }
        shares: dict[str, dict] = {}
        for name, (setup, body) in runs.items():
            shares[name] = measure(seconds, setup, body)
            print(f"{name:32s} {100 * shares[name]['cpu_share']:6.1f} % of a core", flush=True)
        for key, name in (
            ("bf", "brainflow-driver"),
            ("cam", "webcam-driver"),
            ("eye", "webcam-driver+eye"),
            ("eye1", "webcam-driver+eye-every-frame"),
        ):
            shares[name]["stream"] = s[key]
        detect = detection_ms(video, 60)

    def ratio(a: str, b: str) -> float:
        return shares[a]["cpu_share"] / max(shares[b]["cpu_share"], 1e-9)

    demo = shares["brainflow-driver"]["cpu_share"] + shares["webcam-driver+eye"]["cpu_share"]
    results.update(
        scenarios=shares,
        detection=detect,
        ratios={
            "brainflow-driver / brainflow-bare": ratio("brainflow-driver", "brainflow-bare"),
            "webcam-driver / video-bare": ratio("webcam-driver", "video-bare"),
            "webcam-driver+eye / video-bare": ratio("webcam-driver+eye", "video-bare"),
            "webcam-driver+eye-every-frame / video-bare": ratio(
                "webcam-driver+eye-every-frame", "video-bare"
            ),
        },
        demo_load_cpu_share=demo,
    )
    print()
    for k, v in results["ratios"].items():
        print(f"{k:46s} {v:5.2f}x")
    print(
        f"eye detection per pass: full search {detect['detect_ms']:.1f} ms "
        f"(its face cascade {detect['face_only_ms']:.1f} ms), near the last face "
        f"{detect['detect_near_ms']:.1f} ms; found {detect['found']}/{detect['frames']}"
    )
    for key, name in (("bf", "brainflow"), ("cam", "webcam"), ("eye", "webcam+eye")):
        print(f"{name:12s} streams: {s[key]}")
    print(f"demo load (board + webcam with eye region): {100 * demo:.1f} % of one core")
    write_results("bench_drivers_cpu", results, machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
