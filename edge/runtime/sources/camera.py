"""USB/V4L2 cameras (``--camera N``, ``/dev/videoN``) through OpenCV's V4L2 backend.

Most UVC webcams offer two formats: uncompressed YUYV, which a USB 2 link carries at
720p only at 7.5-10 fps, and MJPG, which reaches 30 fps at 720p and 1080p. OpenCV asks for
whatever the driver lists first (usually YUYV), so the camera is asked for MJPG unless
``--camera-format`` says otherwise. A camera that does not offer the format silently gets
another one from the driver; the format it actually delivers is read back and logged.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

from edgeface.errors import ConfigError
from edgeface.runtime.options import Option, number
from edgeface.runtime.sources.capture import CvCaptureReader
from edgeface.runtime.sources.registry import CaptureSettings, SourceKind, register_source

log = logging.getLogger(__name__)

#: Asked for when --camera-format is "auto": compressed frames, full frame rate on USB 2.
PREFERRED_FORMAT = "MJPG"


def fourcc_text(value: float) -> str:
    """OpenCV's CAP_PROP_FOURCC value -> ``"MJPG"`` (empty when the driver gives none)."""
    code = int(value)
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\0 ")


def camera_format(key: str, value: Any) -> str:
    """``auto`` or a four-character code (MJPG, YUYV, H264...)."""
    text = str(value).strip()
    if text.lower() == "auto":
        return "auto"
    if len(text) != 4 or not text.isascii() or not text.isprintable():
        raise ConfigError(f"{key}: expected auto or a four-character code such as MJPG or "
                          f"YUYV, got {text[:20]!r}")
    return text.upper()


class V4L2CameraReader(CvCaptureReader):
    """A V4L2 camera asked for a pixel format before its size and frame rate."""

    def __init__(self, *args: Any, fmt: str = "auto", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.requested = PREFERRED_FORMAT if fmt == "auto" else fmt
        self.explicit = fmt != "auto"
        self.format = ""  # what the camera delivers, read back after opening

    def open(self) -> None:
        import cv2

        opening = self._cap is None
        # FOURCC first: on V4L2, changing the format resets the size and rate set before it.
        self.props = {cv2.CAP_PROP_FOURCC: cv2.VideoWriter_fourcc(*self.requested),
                      **{k: v for k, v in self.props.items() if k != cv2.CAP_PROP_FOURCC}}
        super().open()
        if not opening:
            return
        self.format = fourcc_text(self._cap.get(cv2.CAP_PROP_FOURCC))
        w, h = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), \
            int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        if self.format != self.requested:
            level = logging.WARNING if self.explicit else logging.INFO
            log.log(level, "%s: asked for %s, the camera delivers %s (%dx%d at %.0f fps)",
                    self.describe, self.requested, self.format or "an unknown format", w, h,
                    fps)
        else:
            log.info("%s: %s %dx%d at %.0f fps", self.describe, self.format, w, h, fps)


def _camera_reader(target: Any, settings: CaptureSettings) -> tuple[CvCaptureReader, str]:
    import cv2

    props = {cv2.CAP_PROP_BUFFERSIZE: 1}
    if settings.size:
        props[cv2.CAP_PROP_FRAME_WIDTH], props[cv2.CAP_PROP_FRAME_HEIGHT] = settings.size
    if settings.fps:
        props[cv2.CAP_PROP_FPS] = settings.fps
    dev = f"/dev/video{target}" if isinstance(target, int) else str(target)
    hint = (f"{dev} does not exist (list cameras with `edgeface doctor` or "
            "`v4l2-ctl --list-devices`)"
            if not os.path.exists(dev) else
            f"{dev} exists but could not be opened (in use by another process, or no "
            "permission: add the user to the 'video' group)")
    api = cv2.CAP_V4L2 if os.name == "posix" and os.path.exists("/dev") else cv2.CAP_ANY
    fmt = settings.options.get("camera_format") or "auto"
    return V4L2CameraReader(target, api, f"camera {dev}", props=props, hint=hint,
                            max_pixels=settings.max_pixels, fmt=fmt), f"camera {dev}"


def _is_camera(text: str) -> Optional[Any]:
    if text.isdigit():
        return int(text)
    return text if text.startswith("/dev/video") else None


register_source(SourceKind(
    "camera", live=True, make_reader=_camera_reader, matches=_is_camera,
    selector=Option("camera", "--camera", number(0, 4095, integer=True), metavar="N",
                    help="USB/V4L2 camera /dev/videoN."),
    options=(Option("camera_format", "--camera-format", camera_format, "auto",
                    metavar="auto|MJPG|YUYV|...",
                    help="Pixel format asked of a USB camera: auto asks for MJPG (30 fps at "
                         "720p on USB 2, where YUYV gives 7.5-10)."),),
    rank=10))
