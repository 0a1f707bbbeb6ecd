"""The Raspberry Pi camera through picamera2 (libcamera), imported only when used."""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

from edgeface.errors import MissingDependency, SourceError
from edgeface.runtime.options import Option, boolean
from edgeface.runtime.sources.registry import (
    CaptureSettings,
    SourceKind,
    device_number,
    register_source,
)

log = logging.getLogger(__name__)

PICAMERA_HINT = ("on Raspberry Pi OS install it with `sudo apt install python3-picamera2` and "
                 "create the virtual environment with `python3 -m venv --system-site-packages` "
                 "so that it can see the system package (it is not installable with pip)")


class PiCameraReader:
    """The Raspberry Pi camera through picamera2 (libcamera), imported only when used."""

    def __init__(self, index: int = 0, size: Optional[tuple[int, int]] = None,
                 fps: Optional[float] = None):
        self.index = index
        self.size = size or (1280, 720)
        self.fps = fps
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise MissingDependency(f"--picamera needs picamera2, which is not importable "
                                    f"({exc}); {PICAMERA_HINT}") from None
        try:
            cam = Picamera2(self.index)
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            # "RGB888" in libcamera's naming is B, G, R byte order: exactly what OpenCV wants.
            cfg = cam.create_video_configuration(
                main={"size": tuple(self.size), "format": "RGB888"}, controls=controls,
                buffer_count=2)
            cam.configure(cfg)
            cam.start()
        except Exception as exc:
            raise SourceError(f"cannot open Raspberry Pi camera {self.index}: {exc}") from None
        self._cam = cam

    def read(self) -> Optional[np.ndarray]:
        if self._cam is None:
            return None
        try:
            return self._cam.capture_array("main")
        except Exception as exc:
            log.warning("picamera2 capture failed: %s", exc)
            return None

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            except Exception:  # closing a camera that already failed
                pass
            self._cam = None


def _picamera_reader(target: Any, settings: CaptureSettings) -> tuple[PiCameraReader, str]:
    return PiCameraReader(int(target), settings.size, settings.fps), f"picamera {target}"


register_source(SourceKind(
    "picamera", live=True, make_reader=_picamera_reader,
    matches=lambda text: device_number(text, "picamera"),
    selector=Option("picamera", "--picamera", boolean, False, cli="switch",
                    help="Raspberry Pi camera (picamera2)."),
    target_of=lambda value: 0, rank=20))
