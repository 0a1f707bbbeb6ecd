"""The source interface: what the processing loop reads frames from, and the blocking
readers (devices, files, streams) that sources run in their capture thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

import numpy as np

from edgeface.frames import Frame

#: The preprocessing step a source runs on each image in its capture thread (the
#: detector's ``prepare(image, frame_size=None)``), so that it overlaps inference of the
#: previous frame. ``frame_size`` is given when the image is a scaled copy of the frame.
Prepare = Callable[..., Any]


@dataclass
class SourceStats:
    """What a source has seen so far. Updated by its capture thread; read by anyone."""

    captured: int = 0  # frames delivered by the device/file/stream
    dropped: int = 0  # live frames replaced by a newer one before they were read
    corrupt: int = 0  # frames that could not be decoded (or were refused), skipped
    reconnects: int = 0  # times the device or stream was reopened


@dataclass
class Capture:
    """What a reader may return instead of one image: the frame (``image``, kept for
    outputs) and a smaller copy of the same instant for the detector (``analysis``, e.g.
    picamera2's ISP-scaled lores stream)."""

    image: np.ndarray
    analysis: Optional[np.ndarray] = None


class SourceTimeout(TimeoutError):
    """No frame arrived within the ``read`` timeout; the source is still alive."""


class FrameSource(Protocol):
    """What the runtime needs from a source of frames."""

    name: str
    live: bool
    stats: SourceStats

    @property
    def fps(self) -> Optional[float]:  # pragma: no cover - protocol
        """The nominal frame rate, where the source knows it."""
        ...

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:  # pragma: no cover
        """The next frame (live: the newest), or None when the source has ended.

        Raises :class:`SourceTimeout` if ``timeout`` seconds pass without a frame.
        """
        ...

    def close(self) -> None:  # pragma: no cover
        ...


class CorruptFrame(Exception):
    """Frames that could not be decoded (one, or a damaged region of ``frames``); the source
    skips and counts them."""

    def __init__(self, message: str, frames: int = 1):
        super().__init__(message)
        self.frames = max(1, frames)


class Reader(Protocol):
    """Blocking access to a device, file or stream, used from the capture thread only.

    ``read`` returns an image (or a :class:`Capture`), None at the end of the stream or when
    the device failed, or raises :class:`CorruptFrame` for undecodable frames. A reader may have a
    ``current_label`` (the file a frame came from) and an ``fps()``.
    """

    def open(self) -> None:  # pragma: no cover - raise SourceError when it cannot
        ...

    def read(self) -> Optional[np.ndarray]:  # pragma: no cover
        ...

    def close(self) -> None:  # pragma: no cover
        ...


def as_bgr(image: object) -> Optional[np.ndarray]:
    """Normalise a captured image to BGR uint8 HxWx3; None if it is not a usable image."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        return None
    import cv2

    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return None
