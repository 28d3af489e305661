"""Whether a file a command will write at its end can be written, asked before the work.

A predictions log in Parquet opens its file at the first flush, statistics are written
when the session ends: a folder that refuses them used to cost the whole session (every
prediction lost, exit code 0) or end it with a traceback. Commands ask ``unwritable``
first, next to their other checks, and refuse with one line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def unwritable(path: str | Path) -> str | None:
    """Why ``path`` cannot be written as a new file (None when it can).

    Folders that do not exist yet are fine when the nearest one that does can take them;
    the check writes (and removes) a scratch file there, which answers for permissions,
    read-only mounts and full quotas alike, as a permission lookup would not for root.
    """
    path = Path(path)
    if path.is_dir():
        return f"{str(path)!r} is a folder"
    folder = path.parent
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        return f"{str(folder)!r} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"cannot write in {str(folder)!r}: {exc.strerror or exc}"
    return None
