"""How a session command ends on a signal: SIGTERM as Ctrl-C does, and nothing cuts the ending short.

``timeout``, ``kill``, systemd and batch schedulers end a process with SIGTERM, which
kills Python on the spot: no statistics, the recording not finalised, no summary. And
an impatient second Ctrl-C used to land inside ``Session.stop()``: the recording was
left unfinished (its last items lost) or the process aborted while the recorder thread
was closing its files. So a session command runs inside ``ending_signals()`` (Ctrl-C or
SIGTERM ends the block) and stops, and writes what it writes at the end, inside
``uninterruptible()``.

Signal handlers belong to the main thread; elsewhere (a session run by a test or a
GUI thread) both are no-ops.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Ending:
    """Which signal ended the session (None: it ended by itself)."""

    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM)."""
        return 0 if self.signum is None else 128 + self.signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _holding(doing: str) -> Callable[[int, Any], None]:
    """A handler that ignores the signal; the first one says why nothing happens."""
    told = False

    def hold_on(_signum: int, _frame: Any) -> None:
        nonlocal told
        if not told:
            told = True
            # os.write, not print: a handler may run while print holds stderr's lock
            os.write(2, f"affectlab: still stopping ({doing}); please wait\n".encode())

    return hold_on


def _install(handler: Any) -> dict[int, Any]:
    """``handler`` for Ctrl-C and SIGTERM; the handlers it replaced."""
    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore(previous: dict[int, Any]) -> None:
    for s, handler in previous.items():
        signal.signal(s, handler)


@contextmanager
def ending_signals() -> Iterator[Ending]:
    """Within: Ctrl-C and SIGTERM both end the block (as KeyboardInterrupt, which stops
    here); the ``Ending`` says which ended it. After one, the process is on its way out:
    later ones are noted and ignored for good, so nothing cuts the ending short."""
    ending = Ending()
    previous: dict[int, Any] = {}
    if _in_main_thread():

        def interrupt(signum: int, _frame: Any) -> None:
            ending.signum = signum
            previous.clear()  # the process is ending: the originals do not come back
            _install(_holding("closing files"))
            raise KeyboardInterrupt

        previous = _install(interrupt)
    try:
        yield ending
    except KeyboardInterrupt:
        if ending.signum is None:  # raised some other way (a test, an embedding caller)
            ending.signum = signal.SIGINT
    finally:
        if previous:
            _restore(previous)
        elif ending.signum is not None:
            ignore_from_now()


def ignore_from_now() -> None:
    """The process is on its way out after a signal: Ctrl-C and SIGTERM are ignored outright,
    not by a Python handler (the interpreter puts the default, die, back for those when it
    shuts down, and a late signal would kill it there with another exit code)."""
    if _in_main_thread():
        _install(signal.SIG_IGN)


@contextmanager
def uninterruptible(doing: str = "closing files") -> Iterator[None]:
    """Within: Ctrl-C and SIGTERM do not interrupt; the first one says why nothing happens."""
    if not _in_main_thread():
        yield
        return
    previous = _install(_holding(doing))
    try:
        yield
    finally:
        _restore(previous)
