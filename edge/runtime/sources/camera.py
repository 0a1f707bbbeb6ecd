"""USB/V4L2 cameras (``--camera N``, ``/dev/videoN``) through OpenCV's V4L2 backend."""

from __future__ import annotations

import os
from typing import Any, Optional

from edgeface.runtime.options import Option, number
from edgeface.runtime.sources.capture import CvCaptureReader
from edgeface.runtime.sources.registry import CaptureSettings, SourceKind, register_source


def _camera_reader(target: Any, settings: CaptureSettings) -> tuple[CvCaptureReader, str]:
    import cv2

    props = {cv2.CAP_PROP_BUFFERSIZE: 1}
    if settings.size:
        props[cv2.CAP_PROP_FRAME_WIDTH], props[cv2.CAP_PROP_FRAME_HEIGHT] = settings.size
    if settings.fps:
        props[cv2.CAP_PROP_FPS] = settings.fps
    dev = f"/dev/video{target}" if isinstance(target, int) else str(target)
    hint = (f"{dev} does not exist (list cameras with `v4l2-ctl --list-devices`)"
            if not os.path.exists(dev) else
            f"{dev} exists but could not be opened (in use by another process, or no "
            "permission: add the user to the 'video' group)")
    api = cv2.CAP_V4L2 if os.name == "posix" and os.path.exists("/dev") else cv2.CAP_ANY
    return CvCaptureReader(target, api, f"camera {dev}", props=props, hint=hint,
                           max_pixels=settings.max_pixels), \
        f"camera {dev}"


def _is_camera(text: str) -> Optional[Any]:
    if text.isdigit():
        return int(text)
    return text if text.startswith("/dev/video") else None


register_source(SourceKind(
    "camera", live=True, make_reader=_camera_reader, matches=_is_camera,
    selector=Option("camera", "--camera", number(0, 4095, integer=True), metavar="N",
                    help="USB/V4L2 camera /dev/videoN."), rank=10))
