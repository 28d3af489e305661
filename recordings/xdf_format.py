"""The constants of the XDF container (https://github.com/sccn/xdf/wiki/Specifications)
that the writer and the readers share, and the readers' error."""

from __future__ import annotations

import numpy as np

MAGIC = b"XDF:"
TAG_FILE_HEADER = 1
TAG_STREAM_HEADER = 2
TAG_SAMPLES = 3
TAG_CLOCK_OFFSET = 4
TAG_BOUNDARY = 5
TAG_STREAM_FOOTER = 6
#: the fixed 16-byte UUID of a Boundary chunk, for readers that resync after damage
BOUNDARY_UUID = bytes(
    [0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F, 0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4]
)


class XdfError(ValueError):
    """The file cannot be read as XDF at all; the message names it and says why."""


def record_dtype(item: np.dtype, channels: int) -> np.dtype:
    """One numeric sample as stored with its stamp: the stamp's size byte (8), the
    8-byte stamp, then the values."""
    return np.dtype([("n", "u1"), ("t", "<f8"), ("v", item, (channels,))])
