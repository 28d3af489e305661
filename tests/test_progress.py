"""Progress bars: tqdm on a terminal, plain spaced-out lines in a log."""

from __future__ import annotations

import io
import os
import select
import time

from models.progress import progress_bar


def test_a_log_gets_one_line_per_update_and_no_redraws() -> None:
    log = io.StringIO()
    with progress_bar(total=4, desc="evaluate", unit="pass", stream=log, log_interval=0) as bar:
        for _ in range(4):
            bar.update()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"evaluate: {n}/4 pass" for n in range(5)]
    assert lines[-1].startswith("evaluate: 4/4 pass (100 %), ")  # closing does not repeat it


def test_a_log_is_written_at_most_once_per_interval() -> None:
    log = io.StringIO()
    for _ in progress_bar(range(1000), desc="simulate", unit="subject", stream=log):
        pass
    # the start and the end, nothing between (the default interval is 30 s)
    assert [line.split(" (")[0] for line in log.getvalue().splitlines()] == [
        "simulate: 0/1000 subject",
        "simulate: 1000/1000 subject",
    ]


def test_a_passing_bar_writes_to_a_log_only_while_it_runs_long() -> None:
    """An epoch's bar (leave=False): a short epoch adds nothing, a long one its progress."""
    short, long = io.StringIO(), io.StringIO()
    for _ in progress_bar(range(5), desc="epoch 1/5", stream=short, leave=False):
        pass
    assert short.getvalue() == ""
    for _ in progress_bar(range(5), desc="epoch 2/5", stream=long, leave=False, log_interval=0.05):
        time.sleep(0.03)
    lines = long.getvalue().splitlines()
    assert 1 <= len(lines) <= 5, lines
    assert all(line.startswith("epoch 2/5: ") and "/5 it (" in line for line in lines), lines


def test_without_a_total_the_log_counts() -> None:
    log = io.StringIO()
    for _ in progress_bar(iter(range(3)), desc="cut", stream=log, log_interval=0):
        pass
    assert log.getvalue().splitlines()[-1].startswith("cut: 3 it, ")


def test_disabled_bars_write_nothing() -> None:
    log = io.StringIO()
    with progress_bar(total=3, desc="quiet", stream=log, enabled=False) as bar:
        bar.update(3)
    assert log.getvalue() == ""


def test_a_terminal_keeps_tqdm_redrawing_one_line() -> None:
    main, replica = os.openpty()
    with os.fdopen(replica, "w") as tty:
        assert tty.isatty()
        with progress_bar(total=3, desc="train", stream=tty) as bar:
            for _ in range(3):
                bar.update()
        tty.flush()
        raw = b""
        while select.select([main], [], [], 0.5)[0]:  # a pty hands writes over in pieces
            raw += os.read(main, 65536)
    os.close(main)
    seen = raw.decode()
    assert "\r" in seen and "train: 100%" in seen


def test_a_running_loss_does_not_write_a_line_per_batch() -> None:
    """The training loop sets the loss after every batch; in a log that wrote a line per
    batch, whatever the interval (tqdm's set_postfix redraws at once by default)."""
    log = io.StringIO()
    bar = progress_bar(total=50, desc="epoch 1/1", unit="batch", stream=log, leave=False)
    for _ in range(50):
        bar.update(1)
        bar.set_postfix(loss="0.1234")
    bar.close()
    assert log.getvalue() == ""  # a short epoch adds nothing
