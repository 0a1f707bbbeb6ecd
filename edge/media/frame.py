"""One captured image and where it came from: what sources produce and results carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np


@dataclass
class Frame:
    """One captured image (BGR uint8, HxWx3) and when it was captured."""

    index: int  # position in the source's capture sequence (gaps = dropped frames)
    timestamp: float  # wall clock (time.time()) at capture
    image: np.ndarray
    captured: float = 0.0  # time.monotonic() at capture, for frame-age measurements
    label: Optional[str] = None  # e.g. the file name of an image in a folder source
    # What the source's ``prepare`` hook returned for this image (computed in the capture
    # thread, overlapping inference), and the seconds it took; None without a hook.
    prepared: Any = None
    prepare_s: float = 0.0
