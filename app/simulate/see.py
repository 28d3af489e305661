"""SEE data sets from virtual participants: frames and event frames of one eye rendered by the
virtual DAVIS346 under each lighting, as SEE's folder layout with ``emotion.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from app.simulate.common import Progress, subject_seed
from core.prediction import EXPRESSIONS
from drivers.simulated.events import EventEmulator
from drivers.simulated.eye_camera import DAVIS346_SIZE, VirtualEyeCamera
from drivers.simulated.noise import rng_for
from drivers.simulated.participant import VirtualParticipant
from models.data import see as see_format

SEE_MIN_FRAMES, SEE_MAX_FRAMES = 18, 131
SEE_FOLDER = {e: ("neutraL" if e == "neutral" else e) for e in EXPRESSIONS}


def event_frame(events: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One 8-bit event frame: 128 + 64 x (ON - OFF) count per pixel, clipped."""
    h, w = shape
    pix = events["y"].astype(np.int64) * w + events["x"].astype(np.int64)
    sign = np.where(events["polarity"] > 0, 1.0, -1.0)
    net = np.bincount(pix, weights=sign, minlength=h * w).reshape(h, w)
    return np.clip(128.0 + 64.0 * net, 0, 255).astype(np.uint8)


def _see_plan(p: VirtualParticipant, takes: int, fps: float) -> list[tuple[int, int, str, str]]:
    """``(first frame, n frames, lighting, emotion)`` for every sequence of one subject.

    Episodes are used in time order; each fills a (lighting, emotion) slot that
    still needs a take, the lighting with most missing first.
    """
    need = {(light, e): takes for light in see_format.LIGHTINGS for e in EXPRESSIONS}
    plan: list[tuple[int, int, str, str]] = []
    horizon = 60.0
    used = 0
    while any(need.values()):
        cols = p.episodes(horizon)
        for i in range(max(1, used), len(cols["t"]) - 1):
            used = i + 1
            k0 = math.ceil(cols["t"][i] * fps)
            n = min(int(cols["dwell"][i] * fps), SEE_MAX_FRAMES)
            if n < SEE_MIN_FRAMES:
                continue
            expr = p.states((k0 + np.arange(n)) / fps)["expression_index"]
            emotion = EXPRESSIONS[int(np.bincount(expr, minlength=len(EXPRESSIONS)).argmax())]
            open_slots = [light for light in see_format.LIGHTINGS if need[(light, emotion)] > 0]
            if not open_slots:
                continue
            light = max(open_slots, key=lambda x: need[(x, emotion)])
            need[(light, emotion)] -= 1
            plan.append((k0, n, light, emotion))
            if not any(need.values()):
                break
        horizon *= 2.0
    return plan


def write_see(
    out: str | Path,
    subjects: int = 3,
    seed: int = 0,
    takes: int = 1,
    sequence_seconds: float = 2.0,
    frame_size: tuple[int, int] = DAVIS346_SIZE,
    fps: float = 30.0,
    quality: int = 90,
    progress: Progress | None = None,
) -> Path:
    """``out/frame``, ``out/event`` and ``out/emotion.json``; returns the annotation path."""
    from PIL import Image

    if sequence_seconds * fps < SEE_MIN_FRAMES:
        raise ValueError(
            f"sequences of {sequence_seconds} s at {fps} fps are shorter than SEE's "
            f"{SEE_MIN_FRAMES} frames"
        )
    root = Path(out)
    database: dict[str, dict] = {}
    seq_no = 0
    for s in range(1, subjects + 1):
        sseed = subject_seed(seed, s)
        p = VirtualParticipant(sseed, mean_dwell_s=sequence_seconds)
        person = rng_for(sseed, "simulate.see.person")
        sex = str(person.choice(["man", "woman"]))
        age = int(person.integers(19, 29))
        degree = str(person.choice(["undergraduate", "Master", "Doctor"]))
        cams = {
            light: VirtualEyeCamera(p, size=frame_size, fps=fps, lighting=light)
            for light in see_format.LIGHTINGS
        }
        take_of: dict[str, int] = {}
        for k0, n, light, emotion in _see_plan(p, takes, fps):
            seq_no += 1
            take = take_of.get(emotion, 0)
            take_of[emotion] = take + 1
            name = see_format.SequenceName(
                seq_no, s, sex, age, degree, light, emotion, n, take
            ).format()
            cam = cams[light]
            # One frame before the sequence primes the emulator, as a running DAVIS would be.
            frames, irradiance = cam.render_pair(k0 - 1, n + 1)
            emu = EventEmulator(cam.size, seed=sseed)
            emu.emulate(irradiance[0], (k0 - 1) / fps)
            fdir = root / "frame" / SEE_FOLDER[emotion] / name
            edir = root / "event" / SEE_FOLDER[emotion] / name
            fdir.mkdir(parents=True, exist_ok=True)
            edir.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                events, _ = emu.emulate(irradiance[j + 1], (k0 + j) / fps)
                Image.fromarray(frames[j + 1], "L").save(fdir / f"{j:05d}.jpg", quality=quality)
                Image.fromarray(event_frame(events, cam.size), "L").save(
                    edir / f"{j:05d}.jpg", quality=quality
                )
            database[name] = {
                "subset": "testing" if seq_no % 3 == 0 else "training",
                "annotations": {"label": emotion, "segment": [0, n]},
            }
            if progress:
                progress(1)
    path = root / see_format.ANNOTATION
    path.write_text(
        json.dumps({"labels": list(EXPRESSIONS), "database": database}, indent=1), encoding="utf-8"
    )
    return path
