"""Disk checks for a recording: a usable folder at start, room to close the files while it runs.

dv-processing's writer thread aborts the whole process on a failed write
(measured with 2.0.4), so the recorder stops itself, as a disk error, while
there is still room: less than ``reserve`` left on the disk, or a file that
close to the process's file-size limit.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from recordings.errors import RecordingError

#: refuse to start with less free space than this (bytes)
MIN_FREE_BYTES = 128 * 1024 * 1024
#: stop recording when less than this is left on the disk, or when a file comes this close
#: to the process's file-size limit: dv-processing's writer thread aborts the whole process
#: on a failed write (measured with 2.0.4), so the recorder must stop before the disk does
RESERVE_BYTES = 64 * 1024 * 1024


def check_folder(folder: Path) -> Path:
    """Create ``folder`` (with parents) or accept an empty one; anything else is a RecordingError."""
    folder = Path(folder).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise RecordingError(f"cannot record into {folder}: it is a file, not a folder")
        if any(folder.iterdir()):
            raise RecordingError(
                f"cannot record into {folder}: the folder is not empty (a session is never "
                f"written over another); choose a new folder"
            )
    else:
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise RecordingError(
                f"cannot create the session folder {folder}: {exc.strerror or exc}"
            ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RecordingError(f"cannot record into {folder}: permission denied")
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise RecordingError(
            f"cannot record into {folder}: only {free / 1e6:.0f} MB free on its disk "
            f"(at least {MIN_FREE_BYTES / 1e6:.0f} MB needed)"
        )
    return folder


def file_size_limit() -> int | None:
    """The soft RLIMIT_FSIZE in bytes, or None when there is none (or no such limit here)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def check_room(folder: Path, sizes: dict[Path, int], queued: int, reserve: int) -> None:
    """Raise ENOSPC or EFBIG (``OSError``) when the disk under ``folder``, less the ``queued``
    bytes not written yet, or one of the files (``sizes``) comes within ``reserve`` bytes."""
    free = shutil.disk_usage(folder).free - queued
    if free < reserve:
        raise OSError(
            errno.ENOSPC,
            f"the disk is nearly full ({free / 1e6:.0f} MB free; "
            f"{reserve / 1e6:.0f} MB are kept to close the files)",
            str(folder),
        )
    limit = file_size_limit()
    if limit is None:
        return
    for path, size in sizes.items():
        if size + reserve > limit:
            raise OSError(
                errno.EFBIG,
                f"the file is {size / 1e6:.1f} MB, close to this process's file size limit "
                f"({limit / 1e6:.1f} MB)",
                str(path),
            )
