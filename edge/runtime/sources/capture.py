"""OpenCV's VideoCapture as a reader: V4L2 cameras, video files, network streams and
GStreamer pipelines all go through it."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from edgeface.errors import SourceError
from edgeface.media.images import DEFAULT_MAX_PIXELS, ImageReadError, check_pixels


class CvCaptureReader:
    """cv2.VideoCapture: V4L2 cameras, video files, network streams, GStreamer pipelines."""

    def __init__(self, target: Union[str, int], api: int, describe: str,
                 params: tuple[int, ...] = (), props: Optional[dict[int, float]] = None,
                 hint: str = "", params_optional: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.target = target
        self.max_pixels = max_pixels
        self.api = api
        self.describe = describe
        self.params = list(params)
        self.props = props or {}
        self.hint = hint
        self.params_optional = params_optional
        self._cap = None

    def open(self) -> None:
        import cv2

        if self._cap is not None:  # already open (validated when the source was created)
            return
        # The (target, api, params) form needs OpenCV 4.5.2+; without params, the old form.
        cap = (cv2.VideoCapture(self.target, self.api, self.params) if self.params
               else cv2.VideoCapture(self.target, self.api))
        if not cap.isOpened() and self.params and self.params_optional:
            # A backend that does not know a parameter refuses to open: try without.
            cap.release()
            cap = cv2.VideoCapture(self.target, self.api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.describe}" + (f": {self.hint}"
                                                               if self.hint else ""))
        for prop, value in self.props.items():
            cap.set(prop, value)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        try:
            check_pixels(w, h, self.max_pixels, self.describe)
        except ImageReadError as exc:
            cap.release()
            raise SourceError(str(exc)) from None
        self._cap = cap

    def read(self) -> Optional[np.ndarray]:
        if self._cap is None:
            return None
        ok, image = self._cap.read()
        return image if ok else None

    def fps(self) -> float:
        import cv2

        return float(self._cap.get(cv2.CAP_PROP_FPS)) if self._cap is not None else 0.0

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
