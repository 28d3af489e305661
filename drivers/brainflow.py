"""BrainFlow boards (synthetic, playback, Cyton, Muse, ...) as one stream per signal kind.

BrainFlow hands back a float64 table per preset: one row per board channel,
with the signal kinds (EEG, ECG, EDA, PPG, ...) given as row lists by
``BoardShim.get_board_descr``. This driver polls that table, cuts it into one
stream per kind, maps the Unix timestamp row onto the one clock with a
``UnixClockMapper`` (re-measured while running), counts lost samples from the
package counter (whose step, samples per value and wrap it learns per board; the
stamps size holes longer than one wrap) and publishes the marker row as a marker
stream.

Which rows become which stream (the duplicate rule). Many boards list the
same rows under several kinds: on the synthetic board and on Cyton the ECG,
EMG and EOG lists are the EEG rows, because the same amplifier channels can
carry any of them. A row is published once, by the first kind in the
``streams`` order that claims it (default order: EEG, ECG, EMG, EOG, EDA, PPG,
temperature, accel, gyro, magnetometer, rotation). A kind left without rows is
not published. To give rows to a later kind, list it first or say which rows
each kind takes with ``channels`` (e.g. Cyton: EEG rows 1-7, ECG row 8).
Boards with several presets (Muse: EEG in the default preset, IMU in the
auxiliary one, PPG in the ancillary one) are read preset by preset; a kind is
taken from the first preset (default, auxiliary, ancillary) that has it, so
the synthetic board's auxiliary preset, which repeats its default kinds, is
not read at all.

Presets: ``get_board_presets`` is asked before ``get_board_descr`` because
asking for a preset the board lacks raises and breaks the next
``start_stream`` (REFERENCE 9).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from brainflow.board_shim import (
    BoardIds,
    BoardShim,
    BrainFlowError,
    BrainFlowInputParams,
    BrainFlowPresets,
)

from core.clock import UnixClockMapper, lsl_now
from drivers.base import Driver, DriverError, OptionError, distinct_choices, number_option
from drivers.brainflow_board import (
    DEFAULT_STREAMS,
    MARKERS,
    PARAM_FIELDS,
    PRESETS,
    RELAY_BOARDS,
    RELAY_SOURCES,
    SOURCE,
    PackageCounter,
    PresetLayout,
    board_id,
    board_name,
    describe_params,
    input_params,
    marker_spec,
    plan_streams,
)


# ------------------------------------------------------------------ the driver
class BrainFlowDriver(Driver):
    """Any BrainFlow board; the synthetic board by default.

    ``params`` are ``BrainFlowInputParams`` fields (serial_port, mac_address,
    ip_address, ip_port, other_info, serial_number, file, master_board,
    timeout, ...). The board is opened by ``open()`` (called by ``start()``);
    a board that cannot be opened raises ``DriverError`` naming the board and
    the parameters. ``insert_marker`` puts a marker into the board's own stream;
    it comes back in the marker stream with the sample it was attached to.

    A board that stops delivering for ``stall_timeout`` seconds is marked
    disconnected; with ``reconnect`` the session is then re-opened every
    ``reconnect_interval`` seconds until data flows again (a marked gap).
    """

    def __init__(
        self,
        board: int | str = "synthetic",
        params: Mapping[str, Any] | None = None,
        *,
        name: str = "brainflow",
        streams: Sequence[str] = DEFAULT_STREAMS,
        channels: Mapping[str, Sequence[int]] | None = None,
        poll_interval: float = 0.02,
        config_commands: Sequence[str] = (),
        loop: bool = False,
        buffer_seconds: float = 60.0,
        stall_timeout: float = 2.0,
        reconnect: bool | None = None,
        reconnect_interval: float = 3.0,
        ring_seconds: float | None = None,
        clock: UnixClockMapper | None = None,
    ) -> None:
        self.board_id = board_id(board)
        self.params = input_params(params or {})
        self.poll_interval = float(poll_interval)
        self.config_commands = list(config_commands)
        if loop:
            if self.board_id != int(BoardIds.PLAYBACK_FILE_BOARD):
                raise ValueError("loop applies to the playback board only")
            self.config_commands.insert(0, "loopback_true")
        self.buffer_seconds = float(buffer_seconds)
        self.stall_timeout = float(stall_timeout)
        # replaying a finished file again is rarely wanted; live boards are worth retrying
        self.reconnect = (self.board_id not in RELAY_BOARDS) if reconnect is None else reconnect
        self.reconnect_interval = float(reconnect_interval)
        self.clock = clock or UnixClockMapper()

        self.layout_board = self._layout_board()
        self.label = f"BrainFlow board {board_name(self.board_id)!r} (id {self.board_id})"
        descrs = self._descriptions()
        source = f"{SOURCE}:{board_name(self.board_id)}"
        self.groups, self.layouts = plan_streams(descrs, streams, channels, name, source)
        specs = [g.spec for g in self.groups]
        self.marker_stream: str | None = None
        if MARKERS in streams and any(
            lay.preset == 0 and lay.marker_row is not None for lay in self.layouts
        ):
            self.marker_stream = f"{name}-{MARKERS}"
            specs.append(marker_spec(name, source, str(descrs[0].get("name", ""))))
        if not specs:
            raise DriverError(
                f"{self.label} has none of the streams asked for ({', '.join(streams)})"
            )
        super().__init__(name, specs, ring_seconds)
        self.counters = {lay.preset: PackageCounter(lay.rate) for lay in self.layouts}
        self._shim: BoardShim | None = None

    # ------------------------------------------------------------ board layout
    def _layout_board(self) -> int:
        """The board whose rows we read: relay boards carry their master board's layout."""
        if self.board_id not in RELAY_BOARDS:
            return self.board_id
        master = int(self.params.master_board)
        if master in (int(BoardIds.NO_BOARD), *RELAY_BOARDS):
            raise DriverError(
                f"BrainFlow board {board_name(self.board_id)!r} replays another board: "
                f"set master_board (e.g. 'synthetic', 'cyton')"
            )
        return int(master)

    def _descriptions(self) -> dict[int, dict[str, Any]]:
        available = set(BoardShim.get_board_presets(self.layout_board))
        if self.board_id in RELAY_SOURCES:
            fields = RELAY_SOURCES[self.board_id]
            available &= {
                p for p, f in zip(PRESETS, fields, strict=True) if getattr(self.params, f)
            }
            if not available:
                raise DriverError(
                    f"{board_name(self.board_id)} board: set {fields[0]} (and {fields[1]} / "
                    f"{fields[2]} for the other presets)"
                )
        return {
            p: BoardShim.get_board_descr(self.layout_board, p) for p in PRESETS if p in available
        }

    @property
    def description(self) -> str:
        return f"{self.label} with {describe_params(self.params)}"

    # ------------------------------------------------------------ lifecycle
    def open(self) -> None:
        """Prepare the session and start streaming; raises DriverError when the board is absent."""
        if self._shim is not None:
            return
        if self.board_id == int(BoardIds.PLAYBACK_FILE_BOARD):
            for f in RELAY_SOURCES[self.board_id]:
                path = getattr(self.params, f)
                if path and not Path(path).is_file():
                    raise DriverError(f"{self.label}: playback file not found: {path} ({f})")
        shim = BoardShim(self.board_id, self.params)
        try:
            shim.prepare_session()
            for command in self.config_commands:
                shim.config_board(command)
            rate = max(lay.rate for lay in self.layouts)
            shim.start_stream(max(1024, int(self.buffer_seconds * rate)))
        except BrainFlowError as exc:
            _release(shim)
            raise DriverError(f"cannot open {self.description}: {exc}") from exc
        self._shim = shim
        offset = -self.clock.offset
        for t in self._trackers.values():
            t.health.clock_offset = offset
            t.health.message = ""

    def start(self) -> None:
        self.open()
        super().start()

    def _close(self) -> None:
        shim, self._shim = self._shim, None
        if shim is not None:
            _release(shim)

    def insert_marker(self, value: float) -> None:
        """Put a marker into the board's stream (default preset); 0 means 'no marker' to BrainFlow."""
        if self.marker_stream is None:
            raise DriverError(f"{self.label}: no marker stream (add 'markers' to the streams)")
        if not value or not math.isfinite(value):
            raise ValueError(f"marker values must be finite and non-zero, got {value!r}")
        shim = self._shim
        if shim is None:
            raise DriverError(f"{self.label} is not streaming")
        shim.insert_marker(float(value), int(BrainFlowPresets.DEFAULT_PRESET))

    # ------------------------------------------------------------ data path
    def _run(self) -> None:
        last_data = lsl_now()
        last_attempt = last_data
        stalled = False
        while not self.stopping:
            got = self._poll()
            now = lsl_now()
            if got:
                last_data = now
                if stalled:
                    stalled = False
                    for t in self._trackers.values():
                        t.health.message = ""
            elif now - last_data > self.stall_timeout:
                if not stalled:
                    stalled = True
                    last_attempt = now
                    self._mark_disconnected(f"no data from the board for {now - last_data:.1f} s")
                elif self.reconnect and now - last_attempt > self.reconnect_interval:
                    last_attempt = now
                    self._restart()
            if self.wait(self.poll_interval):
                break

    def _poll(self) -> bool:
        shim = self._shim
        if shim is None:
            return False
        got = False
        for lay in self.layouts:
            n = shim.get_board_data_count(lay.preset)
            if n <= 0:
                continue
            data = shim.get_board_data(n, lay.preset)
            self._publish(lay, data, lsl_now())
            got = True
        return got

    def _publish(self, lay: PresetLayout, data: np.ndarray, arrival: float) -> None:
        offset = self.clock.offset  # Unix minus LSL, re-measured now and then
        ts = data[lay.timestamp_row] - offset
        lost = 0
        if lay.counter_row is not None:
            lost = self.counters[lay.preset].update(data[lay.counter_row], ts)
        for g in self.groups:
            if g.preset != lay.preset:
                continue
            self.push(g.spec.name, data[list(g.rows)].T.astype(np.float32), ts, arrival)
            h = self._trackers[g.spec.name].health
            h.lost += lost
            h.clock_offset = -offset
        if self.marker_stream is not None and lay.preset == 0 and lay.marker_row is not None:
            row = data[lay.marker_row]
            hit = np.flatnonzero(row)
            if len(hit):
                self.push(self.marker_stream, row[hit, None], ts[hit], arrival)
            self._trackers[self.marker_stream].health.clock_offset = -offset

    def _mark_disconnected(self, message: str) -> None:
        for t in self._trackers.values():
            t.on_disconnect(message)

    def _restart(self) -> None:
        """Re-open the session after a stall; failures are reported in health and retried."""
        self._close()
        try:
            self.open()
        except DriverError as exc:
            for t in self._trackers.values():
                t.health.message = f"reconnecting: {exc}"
            return
        for c in self.counters.values():
            c.reset()
        for t in self._trackers.values():
            t.health.message = "reconnected; waiting for data"


def _release(shim: BoardShim) -> None:
    """Stop and release, ignoring what was never started."""
    try:
        if shim.is_prepared():
            with contextlib.suppress(BrainFlowError):
                shim.stop_stream()
            shim.release_session()
    except BrainFlowError:
        pass


# ------------------------------------------------------------------ config
OPTIONS = {
    "name",
    "board",
    "streams",
    "channels",
    "poll_interval",
    "config",
    "loop",
    "buffer_seconds",
    "stall_timeout",
    "reconnect",
    "reconnect_interval",
    "ring_seconds",
    *PARAM_FIELDS,
}
_STR_PARAMS = {f for f, v in BrainFlowInputParams().__dict__.items() if isinstance(v, str)}
_INT_PARAMS = {f for f, v in BrainFlowInputParams().__dict__.items() if isinstance(v, int)} - {
    "master_board"
}


def from_config(options: Mapping[str, Any]) -> list[Driver]:
    """One BrainFlowDriver from a ``[[sources]]`` table of kind "brainflow".

    Options: ``board`` (id or name, default "synthetic"), the BrainFlowInputParams
    fields (serial_port, mac_address, ip_address, ip_port, ip_protocol,
    other_info, serial_number, file, master_board, timeout, ... ), ``streams``
    (kinds to publish, in claim order), ``channels`` (table kind -> board rows),
    ``poll_interval`` (s), ``config`` (list of config_board commands), ``loop``
    (playback), ``buffer_seconds``, ``stall_timeout``, ``reconnect``,
    ``reconnect_interval``, ``ring_seconds`` and ``name`` (stream name prefix).
    """
    o = dict(options)
    unknown = sorted(set(o) - OPTIONS)
    if unknown:
        raise OptionError(
            unknown[0],
            f"unknown option of a brainflow source; allowed: {', '.join(sorted(OPTIONS))}",
        )
    try:
        bid = board_id(o.get("board", "synthetic"))
    except ValueError as exc:
        raise OptionError("board", str(exc)) from exc
    params: dict[str, Any] = {}
    for key in _STR_PARAMS & set(o):
        if not isinstance(o[key], str):
            raise OptionError(key, f"expected a string, got {o[key]!r}")
        params[key] = o[key]
    for key in _INT_PARAMS & set(o):
        if isinstance(o[key], bool) or not isinstance(o[key], int) or o[key] < 0:
            raise OptionError(key, f"expected a non-negative integer, got {o[key]!r}")
        params[key] = o[key]
    if "master_board" in o:
        try:
            params["master_board"] = board_id(o["master_board"])
        except ValueError as exc:
            raise OptionError("master_board", str(exc)) from exc
    elif bid in RELAY_BOARDS:
        params["master_board"] = int(BoardIds.SYNTHETIC_BOARD)

    streams = distinct_choices(o.get("streams", list(DEFAULT_STREAMS)), "streams", DEFAULT_STREAMS)
    channels = o.get("channels", {})
    if not isinstance(channels, dict) or any(
        not isinstance(v, list)
        or not all(isinstance(r, int) and not isinstance(r, bool) for r in v)
        for v in channels.values()
    ):
        raise OptionError("channels", f"expected a table of kind = [board rows], got {channels!r}")
    commands = o.get("config", [])
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise OptionError("config", f"expected a list of config_board strings, got {commands!r}")
    for flag in ("loop", "reconnect"):
        if flag in o and not isinstance(o[flag], bool):
            raise OptionError(flag, f"expected true or false, got {o[flag]!r}")
    if o.get("loop") and bid != int(BoardIds.PLAYBACK_FILE_BOARD):
        raise OptionError("loop", "applies to the playback board only")
    name = o.get("name", "brainflow")
    if not isinstance(name, str) or not name:
        raise OptionError("name", f"expected a non-empty string, got {name!r}")
    numbers = {
        "poll_interval": (0.001, 1.0, 0.02),
        "buffer_seconds": (1.0, 3600.0, 60.0),
        "stall_timeout": (0.1, 600.0, 2.0),
        "reconnect_interval": (0.1, 600.0, 3.0),
    }
    values: dict[str, float] = {}
    for key, (lo, hi, default) in numbers.items():
        v = o.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise OptionError(key, f"expected a number from {lo:g} to {hi:g}, got {v!r}")
        values[key] = float(v)
    ring_seconds = number_option(o, "ring_seconds", None, 1, 86400)
    try:
        driver = BrainFlowDriver(
            bid,
            params,
            name=name,
            streams=streams,
            channels=channels,
            config_commands=commands,
            loop=bool(o.get("loop", False)),
            reconnect=o.get("reconnect"),
            ring_seconds=ring_seconds,
            **values,
        )
    except ValueError as exc:  # the layout rules (channels, streams) speak about options
        key = "channels" if "channels" in str(exc) else "streams"
        raise OptionError(key, str(exc)) from exc
    return [driver]
