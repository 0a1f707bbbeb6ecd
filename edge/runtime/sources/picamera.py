"""The Raspberry Pi camera through picamera2 (libcamera), imported only when used.

picamera2's idiom for analysing video: two streams of the same frame, a full-size ``main``
one (here for snapshots, the annotated video and the HTTP stream) and a small ``lores`` one
that the ISP scales in hardware. The lores stream is asked for at the model's input size,
so the CPU neither resizes a 720p frame per detection nor touches its pixels twice. On a
Pi 4 (VC4 ISP) lores must be YUV420; it is converted to BGR here (2/3 of the bytes of an
RGB lores stream), which also works on a Pi 5.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

from edgeface.errors import MissingDependency, SourceError
from edgeface.runtime.options import Option, boolean
from edgeface.runtime.sources.base import Capture
from edgeface.runtime.sources.registry import (
    CaptureSettings,
    SourceKind,
    device_number,
    register_source,
)

log = logging.getLogger(__name__)

DEFAULT_MAIN_SIZE = (1280, 720)

PICAMERA_HINT = ("on Raspberry Pi OS install it with `sudo apt install python3-picamera2` and "
                 "create the virtual environment with `python3 -m venv --system-site-packages` "
                 "so that it can see the system package (its libcamera bindings come only "
                 "from apt)")


def lores_size(analysis: tuple[int, int], main: tuple[int, int]) -> tuple[int, int]:
    """The lores stream's size: the analysis (model input) size, even, within main."""
    w = min(analysis[0], main[0]) // 2 * 2
    h = min(analysis[1], main[1]) // 2 * 2
    return max(2, w), max(2, h)


def yuv420_to_bgr(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """picamera2's YUV420 (I420: Y, then U, then V planes) lores array -> BGR (h, w, 3).

    The array is (h * 3/2, stride) with stride >= w (row padding): converted whole as an
    I420 image ``stride`` wide, then cropped (cropping first would shift the chroma planes).
    """
    import cv2

    w, h = size
    if array.ndim != 2 or array.shape[0] != h * 3 // 2 or array.shape[1] < w:
        raise ValueError(f"not a {w}x{h} YUV420 frame: shape {array.shape}")
    return np.ascontiguousarray(cv2.cvtColor(array, cv2.COLOR_YUV2BGR_I420)[:, :w])


class PiCameraReader:
    """Frames from picamera2: ``main`` (BGR, full size) plus ``lores`` at the model size."""

    def __init__(self, index: int = 0, size: Optional[tuple[int, int]] = None,
                 fps: Optional[float] = None, analysis_size: Optional[tuple[int, int]] = None):
        self.index = index
        self.size = tuple(size or DEFAULT_MAIN_SIZE)
        self.fps = fps
        self.lores = lores_size(analysis_size, self.size) if analysis_size else None
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise MissingDependency(f"--picamera needs picamera2, which is not importable "
                                    f"({exc}); {PICAMERA_HINT}") from None
        cam = None
        try:
            cam = Picamera2(self.index)
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            # "RGB888" in libcamera's naming is B, G, R byte order: exactly what OpenCV wants.
            streams: dict[str, Any] = {"main": {"size": self.size, "format": "RGB888"}}
            if self.lores:
                streams["lores"] = {"size": self.lores, "format": "YUV420"}
            cfg = cam.create_video_configuration(**streams, controls=controls,
                                                 buffer_count=2)
            cam.configure(cfg)
            cam.start()
        except Exception as exc:
            if cam is not None:
                _close_quietly(cam)
            raise SourceError(f"cannot open Raspberry Pi camera {self.index}: {exc}") from None
        self._cam = cam

    def read(self) -> Optional[Capture | np.ndarray]:
        if self._cam is None:
            return None
        try:
            if not self.lores:
                return self._cam.capture_array("main")
            (main, lores), _ = self._cam.capture_arrays(["main", "lores"])  # one frame
        except Exception as exc:
            log.warning("picamera2 capture failed: %s", exc)
            return None
        return Capture(main, yuv420_to_bgr(lores, self.lores))

    def close(self) -> None:
        if self._cam is not None:
            _close_quietly(self._cam)
            self._cam = None


def _close_quietly(cam: Any) -> None:
    try:
        cam.stop()
        cam.close()
    except Exception:  # closing a camera that already failed
        pass


def _picamera_reader(target: Any, settings: CaptureSettings) -> tuple[PiCameraReader, str]:
    return (PiCameraReader(int(target), settings.size, settings.fps, settings.analysis_size),
            f"picamera {target}")


register_source(SourceKind(
    "picamera", live=True, make_reader=_picamera_reader,
    matches=lambda text: device_number(text, "picamera"),
    selector=Option("picamera", "--picamera", boolean, False, cli="switch",
                    help="Raspberry Pi camera (picamera2)."),
    target_of=lambda value: 0, rank=20))
