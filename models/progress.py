"""Progress bars that stay readable when the output is a log file.

On a terminal tqdm redraws one line with carriage returns. Run under nohup, cron or
a batch system, every redraw lands in the log: a training run's log becomes
megabytes of one endless line. So the long commands (train, evaluate, simulate,
train-demo) take their bars from ``progress_bar``, which keeps tqdm on a terminal
and, elsewhere, writes one plain line when a job's bar starts, at most every
``log_interval`` seconds after that, and when it ends (an epoch's bar only while the
epoch runs longer than that).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between lines in a log
LOG_FORMAT = (
    "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f} %), {elapsed} elapsed, {remaining} left"
)
LOG_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit}, {elapsed} elapsed"


class LogLines:
    """A text stream for tqdm that turns each redraw into a line of its own.

    tqdm writes ``"\\r" + status + padding`` per redraw and a bare newline at the end;
    the carriage returns and the padding go, and so do empty writes and the repeat of
    the last line that closing a finished bar draws.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line and line != self.last:
            self.stream.write(line + "\n")
            self.last = line
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class _LogBar(tqdm):
    """tqdm for a log: a new postfix (the running loss) waits for the next line instead of
    writing one of its own; tqdm's default redraws at once, past ``delay`` and
    ``mininterval``, which gave a line per batch."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = False, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    enabled: bool = True,
    leave: bool = True,
    stream: TextIO | None = None,
    log_interval: float = LOG_INTERVAL,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or updated by hand up to ``total``) on ``stream``.

    ``enabled=False`` gives tqdm's silent bar, so callers never branch.
    In a log, a bar that a terminal would leave standing (``leave=True``: the whole
    job's) writes its first and its last line too; a passing one (an epoch's, which
    the caller sums up in a line of its own) writes only while it runs longer than
    ``log_interval``, so short epochs add nothing to the log.
    """
    out = sys.stderr if stream is None else stream
    if is_terminal(out):
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled,
                    leave=leave, file=out)  # fmt: skip
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    return _LogBar(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        leave=leave,
        delay=0.0 if leave else log_interval,
        file=LogLines(out),
        mininterval=log_interval,
        miniters=1,
        ascii=True,
        bar_format=LOG_FORMAT if total else LOG_FORMAT_NO_TOTAL,
    )
