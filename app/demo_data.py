"""Training windows for the demo models: simulated sessions cut by the real aligner.

Train/serve parity is the point of how the data is made: every session is
rendered offline by the same sensors and camera the live drivers use
(``render_session``), written into the same rings with stamps on a session
clock, and cut by the same ``Aligner`` that serves live windows. A model sees
exactly the arrays the inference worker will hand it. Labels are the
participant's truth at each window's end.

Sessions vary what the live demo may vary: the four lighting conditions, the
camera at the DAVIS346 resolution or half of it, EEG at 128 or 256 Hz. Cut
windows are cached under ``runs/`` as ``.npz`` in a folder per ``CACHE_VERSION``,
keyed by the session plan and the ``ModelInputs``, so reruns skip rendering; a model whose inputs are a
subset of a cached model's (same hop grid, same specs per input) reads that
cache instead of rendering again.

Every demo trainer (``app.train_demo*``) uses this module; none copies it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from core.clock import VirtualClock
from core.prediction import AFFECT_DIMENSIONS
from core.ring import ring_for
from core.scheduler import Aligner, StreamSource
from core.streams import Modality
from core.window import EventInput, ModelInputs, Window
from models.progress import progress_bar

TRAINED_ON = "simulated data (affectlab virtual participant)"
INTENDED_USE = "demo of the pipeline on simulated data only; not for real participants"
#: Part of every cache key: raise it when rendering changes what a plan gives.
#: 2: DVS events from the unclipped, unquantised irradiance (not the 8-bit frame).
CACHE_VERSION = 2
HALF_DAVIS = (130, 173)
LIGHTINGS = ("normal", "overexposure", "low_light", "hdr")
PHYSIOLOGY = ("eeg", "ecg", "eda", "ppg", "resp", "temp")
VISION = ("frames", "events")
DEFAULT_CACHE = Path("runs") / "train_demo_cache"

#: the stream ``render_session`` must produce for each modality a model asks for
RENDERED_STREAM: dict[Modality, str] = {
    Modality.EEG: "eeg",
    Modality.ECG: "ecg",
    Modality.EDA: "eda",
    Modality.PPG: "ppg",
    Modality.RESP: "resp",
    Modality.TEMP: "temp",
    Modality.FRAMES: "frames",
    Modality.EVENTS: "events",
}


def say(*parts: Any) -> None:
    """Progress lines go out at once, also when stdout is a file or a pipe."""
    print(*parts, flush=True)


# --------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class SessionPlan:
    """One simulated participant's session and how it is seen."""

    seed: int
    minutes: float
    lighting: str
    frame_size: tuple[int, int]
    eeg_rate: float
    lighting_severity: float = 1.0  # > 1: harsher than the SEE condition (stress tests)

    @staticmethod
    def for_seed(seed: int, minutes: float) -> SessionPlan:
        """Lighting cycles every 4 seeds, resolution every 3, EEG rate every 8: all mixes occur."""
        from drivers.simulated.eye_camera import DAVIS346_SIZE

        return SessionPlan(
            seed=seed,
            minutes=float(minutes),
            lighting=LIGHTINGS[seed % 4],
            frame_size=DAVIS346_SIZE if seed % 3 == 0 else HALF_DAVIS,
            eeg_rate=256.0 if (seed // 4) % 2 else 128.0,
        )

    def harsher_between(self, low: float, high: float) -> SessionPlan:
        """This plan with a lighting severity drawn from [low, high] by its seed (normal light,
        which has no exposure error to scale, stays as it is; low = high = 1 gives the plan)."""
        if self.lighting == "normal":
            return self
        from drivers.simulated.noise import rng_for

        u = float(rng_for(self.seed, "plan.lighting_severity").random())
        return self.under(self.lighting, round(low + (high - low) * u, 2))

    def under(self, lighting: str, severity: float = 1.0) -> SessionPlan:
        """The same participant and camera under another lighting (``Lighting.harsher``)."""
        return replace(self, lighting=lighting, lighting_severity=float(severity))


@dataclass(frozen=True)
class Splits:
    """Participants by role: train, validation (chooses epochs), test (scored once)."""

    train: list[int]
    validation: list[int]
    test: list[int]

    @staticmethod
    def from_args(first_seed: int, seeds: int, val_seeds: int, test_seeds: int) -> Splits:
        """Seeds first..first+seeds-1; the last ``val_seeds`` validate; 0..test_seeds-1 test."""
        all_seeds = list(range(first_seed, first_seed + seeds))
        return Splits(all_seeds[:-val_seeds], all_seeds[-val_seeds:], list(range(test_seeds)))

    def to_dict(self) -> dict[str, list[int]]:
        return {
            "train_seeds": self.train,
            "validation_seeds": self.validation,
            "test_seeds": self.test,
        }


# --------------------------------------------------------------------------- windows
@dataclass
class WindowSet:
    """Stacked windows: inputs as the aligner cut them (zeros where missing) and labels."""

    keys: tuple[str, ...]
    x: dict[str, np.ndarray]  # key -> (N, *shape); events kept as uint16 counts
    present: np.ndarray  # (N, n_inputs) bool
    affect: np.ndarray  # (N, 4) float32, 1-9
    expression: np.ndarray  # (N,) int64
    seed: np.ndarray  # (N,) int64
    t_end: np.ndarray  # (N,) float64
    lighting: np.ndarray | None = None  # (N,) str, when the plans are known

    def __len__(self) -> int:
        return len(self.expression)

    def subset(self, idx: np.ndarray) -> WindowSet:
        return WindowSet(
            self.keys,
            {k: v[idx] for k, v in self.x.items()},
            self.present[idx],
            self.affect[idx],
            self.expression[idx],
            self.seed[idx],
            self.t_end[idx],
            None if self.lighting is None else self.lighting[idx],
        )

    def select(self, keys: Sequence[str]) -> WindowSet:
        """Only these inputs (a model that reads fewer inputs than the cache holds)."""
        cols = [self.keys.index(k) for k in keys]
        return WindowSet(
            tuple(keys),
            {k: self.x[k] for k in keys},
            self.present[:, cols],
            self.affect,
            self.expression,
            self.seed,
            self.t_end,
            self.lighting,
        )

    def of_seeds(self, seeds: Sequence[int]) -> WindowSet:
        return self.subset(np.flatnonzero(np.isin(self.seed, list(seeds))))

    @staticmethod
    def concat(parts: Sequence[WindowSet]) -> WindowSet:
        keys = parts[0].keys
        lighting = (
            None
            if any(p.lighting is None for p in parts)
            else np.concatenate([p.lighting for p in parts])  # type: ignore[misc]
        )
        return WindowSet(
            keys,
            {k: np.concatenate([p.x[k] for p in parts]) for k in keys},
            np.concatenate([p.present for p in parts]),
            np.concatenate([p.affect for p in parts]),
            np.concatenate([p.expression for p in parts]),
            np.concatenate([p.seed for p in parts]),
            np.concatenate([p.t_end for p in parts]),
            lighting,
        )

    def save(self, path: Path) -> None:
        arrays = {f"x_{k}": v for k, v in self.x.items()}
        np.savez(
            path,
            keys=np.array(self.keys),
            present=self.present,
            affect=self.affect,
            expression=self.expression,
            seed=self.seed,
            t_end=self.t_end,
            **arrays,
        )

    @staticmethod
    def load(path: Path, keys: Sequence[str] | None = None) -> WindowSet:
        """Read a cached session; with ``keys`` only those inputs are read from disk."""
        with np.load(path, allow_pickle=False) as f:
            stored = tuple(str(k) for k in f["keys"])
            want = stored if keys is None else tuple(keys)
            cols = [stored.index(k) for k in want]
            return WindowSet(
                want,
                {k: f[f"x_{k}"] for k in want},
                f["present"][:, cols],
                f["affect"],
                f["expression"],
                f["seed"],
                f["t_end"],
            )


def stack_windows(
    windows: Sequence[Window], inputs: ModelInputs, shapes: dict[str, tuple[int, ...]]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Windows -> per-key arrays and the presence mask, by the runner's rule (STALE is data)."""
    from models.runtime import present_for_model

    keys = tuple(inputs.inputs)
    counts = {k for k, spec in inputs.inputs.items() if isinstance(spec, EventInput)}
    n = len(windows)
    x = {k: np.zeros((n, *shapes[k]), dtype=np.uint16 if k in counts else np.float32) for k in keys}
    present = np.zeros((n, len(keys)), dtype=bool)
    for i, w in enumerate(windows):
        for j, k in enumerate(keys):
            item = w.inputs[k]
            if present_for_model(item.presence, item.data):
                data = item.data
                if k in counts:  # counts: exact in uint16
                    data = np.clip(np.rint(data), 0, np.iinfo(np.uint16).max)
                x[k][i] = data
                present[i, j] = True
    return x, present


def rendered_streams(inputs: ModelInputs) -> tuple[str, ...]:
    """The streams a session must render for these inputs (events need frames rendered,
    which ``render_session`` does by itself)."""
    from drivers.simulated.offline import ALL_STREAMS

    wanted = {RENDERED_STREAM[spec.modality] for spec in inputs.inputs.values()}
    return tuple(s for s in ALL_STREAMS if s in wanted)


def session_windows(
    plan: SessionPlan, inputs: ModelInputs, t0: float | None = None, stride: int = 1
) -> WindowSet:
    """Render one session, fill rings on a session clock, cut a window at every ``stride``-th hop.

    Only the streams the inputs need are rendered; each stream is rendered by
    its own seeded sensor, so leaving others out changes nothing in it.
    """
    from drivers.simulated.offline import render_session
    from models.runtime import layouts_for

    duration = plan.minutes * 60.0
    hop = inputs.hop_s
    if t0 is None:  # vary the phase of the hop grid against the sample grid
        t0 = 1000.0 + (plan.seed * 0.137) % hop
    session = render_session(
        plan.seed,
        duration,
        lighting=plan.lighting,
        lighting_severity=plan.lighting_severity,
        eeg_rate=plan.eeg_rate,
        frame_size=plan.frame_size,
        streams=rendered_streams(inputs),
    )
    sources: dict[str, StreamSource] = {}
    for stream in session.streams.values():
        ring = ring_for(stream.spec, capacity=len(stream.ts) + 16)
        ring.write(stream.data, stream.ts + t0)
        sources[stream.spec.name] = StreamSource(stream.spec, ring)
    participant = session.participant
    session.streams.clear()  # the rings hold the data now
    aligner = Aligner([inputs], sources, VirtualClock(t0))

    longest = max(spec.window_s for spec in inputs.inputs.values())
    first = math.ceil((t0 + longest) / hop)
    last = math.floor((t0 + duration) / hop + 1e-9)
    t_ends = np.arange(first, last + 1, max(1, int(stride))) * hop
    windows = [aligner.cut(inputs.model, float(t)) for t in t_ends]
    shapes = {lay.key: lay.shape for lay in layouts_for(inputs, {"eeg": 32})}
    x, present = stack_windows(windows, inputs, shapes)
    truth = participant.states(t_ends - t0)
    affect = np.stack([truth[k] for k in AFFECT_DIMENSIONS], axis=1).astype(np.float32)
    return WindowSet(
        tuple(inputs.inputs),
        x,
        present,
        affect,
        truth["expression_index"].astype(np.int64),
        np.full(len(t_ends), plan.seed, dtype=np.int64),
        t_ends - t0,
    )


# --------------------------------------------------------------------------- the cache
def _cache_key(plan: SessionPlan, inputs: ModelInputs, stride: int = 1) -> str:
    from models.runtime import inputs_to_json

    described = asdict(plan)
    if plan.lighting_severity == 1.0:  # keys from before severities existed stay valid
        del described["lighting_severity"]
    parts: list[Any] = [CACHE_VERSION, described, inputs_to_json(inputs)]
    if stride != 1:  # keys of every-hop caches stay what they always were
        parts.append({"stride": stride})
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def version_dir(cache_dir: Path) -> Path:
    """This simulator version's folder. Older versions' folders are never read again, so
    ``prune_cache`` can free them without knowing which plans made them."""
    return cache_dir / f"v{CACHE_VERSION}"


def cache_path(cache_dir: Path, plan: SessionPlan, inputs: ModelInputs, stride: int = 1) -> Path:
    name = f"seed{plan.seed}_{plan.minutes:g}min_{_cache_key(plan, inputs, stride)}.npz"
    return version_dir(cache_dir) / name


def is_cached(path: Path) -> bool:
    """Whether ``path`` holds cut windows. A file of the same name loose in the cache folder
    (the layout before version folders) is moved in: its name's key includes the
    version, so it is current."""
    if path.is_file():
        return True
    loose = path.parent.parent / path.name
    if not loose.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    loose.rename(path)
    return True


@dataclass(frozen=True)
class PrunedCache:
    """What ``prune_cache`` removed."""

    removed: tuple[Path, ...]
    freed_bytes: int


def _bytes_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def prune_cache(cache_dir: Path) -> PrunedCache:
    """Delete the cached windows this version never reads: older versions' folders, files
    of interrupted renders, and loose files from before version folders (those still
    current are rendered again when needed; run the trainers first to keep them).

    Only names the cache itself writes are touched, so a mistyped ``cache_dir`` cannot
    lose anything else.
    """
    current = version_dir(cache_dir)
    other_version = re.compile(r"v\d+")
    loose_file = re.compile(r"seed\d+_.+\.npz")
    stale: list[Path] = []
    for entry in sorted(cache_dir.iterdir()) if cache_dir.is_dir() else []:
        old_version = entry.is_dir() and entry != current and other_version.fullmatch(entry.name)
        loose = entry.is_file() and loose_file.fullmatch(entry.name)
        if old_version or loose:
            stale.append(entry)
    if current.is_dir():
        stale += sorted(current.glob("*.partial.npz"))
    freed = sum(_bytes_on_disk(p) for p in stale)
    for entry in stale:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return PrunedCache(tuple(stale), freed)


def serves(cached: ModelInputs, wanted: ModelInputs) -> bool:
    """Whether windows cut for ``cached`` hold exactly what ``wanted`` would cut.

    Same hop grid and timing rules, and every wanted input cut the same way
    under the same key (the model's name does not matter).
    """
    return (
        cached.hop_s == wanted.hop_s
        and cached.allowed_lateness_s == wanted.allowed_lateness_s
        and cached.stale_after_s == wanted.stale_after_s
        and cached.min_coverage == wanted.min_coverage
        and all(cached.inputs.get(k) == spec for k, spec in wanted.inputs.items())
    )


def _build_one(plan: SessionPlan, inputs_json: str, path: str, stride: int) -> str:
    """Worker-process entry: render, cut and cache one session."""
    from models.runtime import inputs_from_json

    session_windows(plan, inputs_from_json(inputs_json), stride=stride).save(Path(path))
    return path


def _tmp(path: Path) -> Path:
    """Where a cache file is written before it is complete (np.savez wants the .npz suffix)."""
    return path.with_name(path.stem + ".partial.npz")


def build_dataset(
    plans: Sequence[SessionPlan],
    inputs: ModelInputs,
    cache_dir: Path,
    workers: int = 2,
    progress: bool = True,
    stride: int = 1,
    reuse: Sequence[ModelInputs] = (),
) -> WindowSet:
    """Every planned session's windows, from the cache or rendered (in ``workers`` processes).

    ``reuse``: inputs of other models whose cached windows may serve these
    (``serves``): their caches are read, only the wanted inputs, before
    anything is rendered. Windows carry their session's lighting.
    """
    from models.runtime import inputs_to_json

    version_dir(cache_dir).mkdir(parents=True, exist_ok=True)
    own = {p: cache_path(cache_dir, p, inputs, stride) for p in plans}
    found: dict[SessionPlan, Path] = {}
    for p in plans:
        for other in (inputs, *[r for r in reuse if serves(r, inputs)]):
            path = cache_path(cache_dir, p, other, stride)
            if is_cached(path):
                found[p] = path
                break
    todo = [p for p in dict.fromkeys(plans) if p not in found]
    if todo:
        bar = progress_bar(
            total=len(todo), desc="render+cut sessions", unit="session", enabled=progress
        )
        text = inputs_to_json(inputs)
        if workers > 1 and len(todo) > 1:
            ctx = get_context("spawn")  # no fork after torch has started threads
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx) as pool:
                futures = {
                    p: pool.submit(_build_one, p, text, str(_tmp(own[p])), stride) for p in todo
                }
                for p, fut in futures.items():
                    Path(fut.result()).rename(own[p])
                    bar.update()
        else:
            for p in todo:
                _build_one(p, text, str(_tmp(own[p])), stride)
                _tmp(own[p]).rename(own[p])
                bar.update()
        bar.close()
        found.update({p: own[p] for p in todo})
    parts = []
    keys = tuple(inputs.inputs)
    for p in plans:
        part = WindowSet.load(found[p], keys)
        part.lighting = np.full(len(part), p.lighting)
        parts.append(part)
    return WindowSet.concat(parts)
