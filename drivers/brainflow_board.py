"""BrainFlow boards as affectlab streams, before any board is opened: board ids and
names, connection parameters, which rows of which preset become which stream
(``plan_streams``), and the package counter that reveals lost samples. The driver
(``drivers.brainflow``) and discovery (``affectlab streams``) share them.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from brainflow.board_shim import (
    BoardIds,
    BrainFlowInputParams,
    BrainFlowPresets,
)

from core.streams import Modality, StreamSpec

# BrainFlow finds its library through pkg_resources on this setup (when a board is made,
# not at import), and setuptools warns on every session that pkg_resources is deprecated:
# nothing a lab user can act on
warnings.filterwarnings(
    "ignore", message="pkg_resources is deprecated", category=UserWarning, module=r"brainflow\."
)

SOURCE = "drivers.brainflow"


@dataclass(frozen=True)
class SignalKind:
    """How one of BrainFlow's channel lists becomes a stream."""

    descr_key: str
    modality: Modality
    unit: str
    axis_names: tuple[str, ...] = ()


#: Kinds in the default claim order (see the module docstring). Units are those BrainFlow
#: documents for boards that convert; a board that streams raw counts keeps its own.
SIGNAL_KINDS: dict[str, SignalKind] = {
    "eeg": SignalKind("eeg_channels", Modality.EEG, "uV"),
    "ecg": SignalKind("ecg_channels", Modality.ECG, "uV"),
    "emg": SignalKind("emg_channels", Modality.EMG, "uV"),
    "eog": SignalKind("eog_channels", Modality.EOG, "uV"),
    "eda": SignalKind("eda_channels", Modality.EDA, "uS"),
    "ppg": SignalKind("ppg_channels", Modality.PPG, "a.u."),
    "temperature": SignalKind("temperature_channels", Modality.TEMP, "degC"),
    "accel": SignalKind("accel_channels", Modality.IMU, "g", ("x", "y", "z")),
    "gyro": SignalKind("gyro_channels", Modality.IMU, "deg/s", ("x", "y", "z")),
    "magnetometer": SignalKind("magnetometer_channels", Modality.IMU, "a.u.", ("x", "y", "z")),
    "rotation": SignalKind("rotation_channels", Modality.IMU, "a.u."),
}
MARKERS = "markers"
DEFAULT_STREAMS: tuple[str, ...] = (*SIGNAL_KINDS, MARKERS)

PRESETS: tuple[int, ...] = (
    int(BrainFlowPresets.DEFAULT_PRESET),
    int(BrainFlowPresets.AUXILIARY_PRESET),
    int(BrainFlowPresets.ANCILLARY_PRESET),
)
PRESET_TAGS = {0: "", 1: "aux-", 2: "anc-"}
#: Boards that relay another board: their layout is the master board's.
RELAY_BOARDS = (int(BoardIds.PLAYBACK_FILE_BOARD), int(BoardIds.STREAMING_BOARD))
#: Per preset, the input parameter that must be set for a relay board to deliver it.
RELAY_SOURCES = {
    int(BoardIds.PLAYBACK_FILE_BOARD): ("file", "file_aux", "file_anc"),
    int(BoardIds.STREAMING_BOARD): ("ip_address", "ip_address_aux", "ip_address_anc"),
}
BOARD_ALIASES = {
    "synthetic": int(BoardIds.SYNTHETIC_BOARD),
    "playback": int(BoardIds.PLAYBACK_FILE_BOARD),
    "streaming": int(BoardIds.STREAMING_BOARD),
}
PARAM_FIELDS: tuple[str, ...] = tuple(BrainFlowInputParams().__dict__)


# ------------------------------------------------------------------ board names
def board_id(value: int | str) -> int:
    """A BrainFlow board id from an id or a name ("synthetic", "cyton_daisy", "MUSE_S_BOARD")."""
    known = {int(b) for b in BoardIds}
    if isinstance(value, bool):
        raise ValueError(f"expected a board id or name, got {value!r}")
    if isinstance(value, int):
        if value not in known:
            raise ValueError(f"unknown BrainFlow board id {value}")
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return board_id(int(text))
    key = text.lower().replace("-", "_").replace(" ", "_")
    if key in BOARD_ALIASES:
        return BOARD_ALIASES[key]
    names = {b.name.lower(): int(b) for b in BoardIds}
    for candidate in (key, f"{key}_board"):
        if candidate in names:
            return names[candidate]
    choices = sorted({*BOARD_ALIASES, *(n.removesuffix("_board") for n in names)})
    close = difflib.get_close_matches(key, choices, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown BrainFlow board {value!r}{hint}")


def board_name(bid: int) -> str:
    """Short lower-case name of a board id ("synthetic", "cyton_daisy")."""
    for alias, v in BOARD_ALIASES.items():
        if v == bid:
            return alias
    try:
        return BoardIds(bid).name.lower().removesuffix("_board")
    except ValueError:
        return f"board-{bid}"


def input_params(params: Mapping[str, Any]) -> BrainFlowInputParams:
    """``BrainFlowInputParams`` from a mapping of its field names; unknown names raise."""
    p = BrainFlowInputParams()
    for key, value in params.items():
        if key not in PARAM_FIELDS:
            raise ValueError(f"unknown BrainFlow input parameter {key!r}; known: {PARAM_FIELDS}")
        if key == "master_board":
            value = board_id(value)
        setattr(p, key, value)
    return p


def describe_params(p: BrainFlowInputParams) -> str:
    """The parameters that differ from BrainFlow's defaults, for messages."""
    default = BrainFlowInputParams().__dict__
    set_ = {k: v for k, v in p.__dict__.items() if v != default[k]}
    return ", ".join(f"{k}={v!r}" for k, v in set_.items()) or "no parameters"


# ------------------------------------------------------------------ stream layout
@dataclass(frozen=True)
class ChannelGroup:
    """Board rows of one preset that form one published stream."""

    kind: str
    preset: int
    rows: tuple[int, ...]
    spec: StreamSpec


@dataclass(frozen=True)
class PresetLayout:
    """What one preset's table holds: the rows the driver needs besides the data rows."""

    preset: int
    rate: float
    timestamp_row: int
    counter_row: int | None
    marker_row: int | None


def channel_names(kind: str, rows: Sequence[int], descr: Mapping[str, Any]) -> tuple[str, ...]:
    if kind == "eeg" and descr.get("eeg_names"):
        names = str(descr["eeg_names"]).split(",")
        all_rows = list(descr["eeg_channels"])
        if len(names) == len(all_rows):
            return tuple(names[all_rows.index(r)] for r in rows)
    axes = SIGNAL_KINDS[kind].axis_names
    if axes and len(rows) == len(axes):
        return tuple(f"{kind}_{a}" for a in axes)
    return tuple(f"{kind}{i + 1}" for i in range(len(rows)))


def plan_streams(
    descrs: Mapping[int, Mapping[str, Any]],
    streams: Sequence[str] = DEFAULT_STREAMS,
    channels: Mapping[str, Sequence[int]] | None = None,
    prefix: str = "brainflow",
    source: str = SOURCE,
) -> tuple[list[ChannelGroup], list[PresetLayout]]:
    """Apply the duplicate rule: each row once, each kind from the first preset that has it.

    ``descrs`` maps preset -> board description. ``channels`` optionally fixes the
    rows a kind takes (board row numbers, within the rows the board lists for it).
    Returns the stream groups and the layouts of the presets that must be read.
    """
    channels = dict(channels or {})
    for kind in [*streams, *channels]:
        if kind != MARKERS and kind not in SIGNAL_KINDS:
            raise ValueError(f"unknown stream kind {kind!r}; known: {', '.join(DEFAULT_STREAMS)}")
    for kind in channels:
        if kind not in streams:
            raise ValueError(f"channels.{kind}: {kind!r} is not among the streams to publish")
    presets = [p for p in PRESETS if p in descrs]
    claimed: dict[int, set[int]] = {p: set() for p in presets}
    # rows given explicitly are claimed first, so that automatic kinds cannot take them
    for kind, rows in channels.items():
        key = SIGNAL_KINDS[kind].descr_key
        preset = next((p for p in presets if descrs[p].get(key)), None)
        if preset is None:
            raise ValueError(f"channels.{kind}: the board lists no {kind} channels")
        allowed = set(descrs[preset][key])
        bad = [r for r in rows if r not in allowed]
        if bad or not rows:
            raise ValueError(
                f"channels.{kind}: rows {bad or rows} are not {kind} rows of this board "
                f"(it lists {sorted(allowed)})"
            )
        taken = claimed[preset] & set(rows)
        if taken:
            raise ValueError(f"channels.{kind}: rows {sorted(taken)} are given to two kinds")
        claimed[preset] |= set(rows)

    groups: list[ChannelGroup] = []
    for kind in streams:
        if kind == MARKERS:
            continue
        sk = SIGNAL_KINDS[kind]
        for preset in presets:
            descr = descrs[preset]
            listed = list(descr.get(sk.descr_key) or [])
            if not listed:
                continue
            if kind in channels:
                rows = list(channels[kind])
            else:
                rows = [r for r in listed if r not in claimed[preset]]
                claimed[preset] |= set(rows)
            if rows:
                groups.append(
                    ChannelGroup(
                        kind, preset, tuple(rows), _spec(kind, preset, rows, descr, prefix, source)
                    )
                )
            break  # a kind comes from the first preset that lists it, even when its rows are taken

    wanted = {g.preset for g in groups}
    if MARKERS in streams and 0 in descrs and descrs[0].get("marker_channel") is not None:
        wanted.add(0)
    layouts = [
        PresetLayout(
            preset=p,
            rate=float(descrs[p]["sampling_rate"]),
            timestamp_row=int(descrs[p]["timestamp_channel"]),
            counter_row=descrs[p].get("package_num_channel"),
            marker_row=descrs[p].get("marker_channel"),
        )
        for p in presets
        if p in wanted
    ]
    return groups, layouts


def _spec(
    kind: str, preset: int, rows: Sequence[int], descr: Mapping[str, Any], prefix: str, source: str
) -> StreamSpec:
    sk = SIGNAL_KINDS[kind]
    names = channel_names(kind, rows, descr)
    return StreamSpec(
        name=f"{prefix}-{PRESET_TAGS[preset]}{kind}",
        modality=sk.modality,
        nominal_rate=float(descr["sampling_rate"]),
        channel_names=names,
        units=(sk.unit,) * len(names),
        dtype="float32",
        source=source,
        metadata={"board": descr.get("name", ""), "preset": preset, "rows": list(rows)},
    )


def marker_spec(prefix: str, source: str, board: str) -> StreamSpec:
    return StreamSpec(
        name=f"{prefix}-{MARKERS}",
        modality=Modality.MARKERS,
        nominal_rate=0.0,
        channel_names=("marker",),
        dtype="float64",
        source=source,
        metadata={"board": board, "note": "values given to BrainFlowDriver.insert_marker"},
    )


# ------------------------------------------------------------------ sample counting
class PackageCounter:
    """Samples lost, counted from a board's package counter (and its stamps, for long holes).

    Boards count differently (BrainFlow's board sources): the synthetic board and Cyton
    step 0..255 once per sample, Ganglion steps a packet id through 100 values with two
    samples per id, Muse a 16-bit packet counter shared by twelve samples. So three
    things are learned from the stream itself: the step between consecutive values, how
    many samples share a value (the run), and the period at which the counter wraps
    (from the first wrap the stamps show to be clean; until then 256, which holds for
    16-bit counters too). A hole longer than one period looks to the counter like a
    short one; given the board's rate, the stamps size it instead.
    """

    def __init__(self, rate: float = 0.0, learn: int = 16) -> None:
        self.rate = float(rate)
        self.learn = learn
        self.step: int | None = None
        self.run: int | None = None
        self.period: int | None = None  # learned from a clean wrap
        self.lost = 0
        self._last: tuple[int, float] | None = None  # (counter, stamp) of the newest sample
        self._current_run = 0  # samples so far that share the newest sample's counter
        self._run_whole = False  # ... and whether we saw that run begin
        self._steps: list[int] = []
        self._runs: list[int] = []

    def reset(self) -> None:
        """Forget the last counter (after a reconnection the sequence restarts)."""
        self._last = None
        self._current_run = 0
        self._run_whole = False

    def update(self, counters: np.ndarray, stamps: np.ndarray | None = None) -> int:
        """Account for a chunk of counters (and their stamps, seconds); returns the samples
        lost before and inside it."""
        c = np.asarray(counters).astype(np.int64)
        if len(c) == 0:
            return 0
        t = np.full(len(c), np.nan) if stamps is None else np.asarray(stamps, dtype=np.float64)
        prev = self._last
        if prev is not None:
            c = np.concatenate(([prev[0]], c))
            t = np.concatenate(([prev[1]], t))
        self._last = (int(c[-1]), float(t[-1]))
        changes = np.flatnonzero(np.diff(c) != 0)  # sample i -> i + 1 moves the counter
        # runs of samples sharing a value; the first continues the previous chunk's last
        lengths = np.diff(np.concatenate(([0], changes + 1, [len(c)])))
        first_whole = prev is not None and self._run_whole
        if prev is not None:
            lengths[0] += self._current_run - 1
        if self.run is None:
            whole = np.ones(len(lengths), dtype=bool)
            whole[-1] = False  # still running
            whole[0] &= first_whole
            steps = np.diff(c)[changes]
            self._learn(steps[steps > 0].tolist(), lengths[whole].tolist())
        self._current_run = int(lengths[-1])
        self._run_whole = len(changes) > 0 or first_whole
        lost = 0
        if self.run is not None and len(changes):
            # most steps are the plain next value on time: only the others are looked at
            # (and, until the period is known, every wrap: the first clean one tells it)
            d = c[changes + 1] - c[changes]
            dt = t[changes + 1] - t[changes]
            odd = (d % (self.period or 256) != self.step) | ((d < 0) & (self.period is None))
            if self.rate > 0:
                odd |= dt > 2.5 * self.run / self.rate
            for i in changes[odd]:
                lost += self._lost_between(int(c[i]), int(c[i + 1]), float(t[i + 1] - t[i]))
        self.lost += lost
        return lost

    def _learn(self, steps: list[int], runs: list[int]) -> None:
        """The step and the run: the most common of the first ``learn`` seen."""
        self._steps += steps
        self._runs += runs
        if len(self._steps) >= self.learn and len(self._runs) >= max(1, self.learn // 2):
            self.step = _mode(self._steps)
            self.run = _mode(self._runs)
            self._steps.clear()
            self._runs.clear()

    def _lost_between(self, before: int, after: int, dt: float) -> int:
        """Samples lost between a counter value and the next one seen."""
        assert self.step is not None and self.run is not None
        if after < before and self.period is None and after <= self.step:
            # a wrap (back to the counter's bottom: a step back to anywhere else is a glitch)
            # gives the period, if the stamps say nothing was lost across it
            clean = not (self.rate > 0 and math.isfinite(dt)) or dt < 2.5 * self.run / self.rate
            if clean:
                self.period = before - after + self.step
                return 0
        modulus = self.period or 256
        skipped = max(int(round(((after - before) % modulus) / self.step)) - 1, 0)
        if self.rate > 0 and math.isfinite(dt):
            by_time = dt * self.rate / self.run - 1  # values the stamps say were skipped
            values_per_period = modulus / self.step
            wraps = round((by_time - skipped) / values_per_period)
            # the hole was longer than the counter can tell; but a plain next value after a
            # long step is a stall that delivered late (boards stamp on arrival), not a hole
            # of whole wraps (a loss of exactly whole wraps goes uncounted)
            if wraps > 0 and skipped > 0:
                skipped += int(wraps * values_per_period)
            elif wraps < 0:  # the counter jumped further than time went: not a hole
                skipped = max(int(round(by_time)), 0)
        return skipped * self.run


def _mode(values: list[int]) -> int:
    """The most common value (the smallest of equally common ones)."""
    found, counts = np.unique(np.asarray(values), return_counts=True)
    return int(found[np.argmax(counts)])
