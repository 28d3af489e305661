"""The one error type of the recording side: its message is meant for a person."""

from __future__ import annotations


class RecordingError(RuntimeError):
    """A session could not be recorded (unwritable path, folder not empty, disk full, ...).

    The message names the file or folder and what is wrong; callers show it as is.
    """
