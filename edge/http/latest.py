"""The newest processed frame, shared by every HTTP client: stored by reference on each
frame, encoded (JPEG, JSON) at most once per frame and only when someone asks. Only the
newest result is ever held, so its memory is one frame however many clients there are."""

from __future__ import annotations

import json
import threading
from typing import Callable, Optional

from edgeface.frames import FrameResult


class LatestSink:
    """Keeps the newest result for the HTTP server. ``write`` only stores a reference; JPEG
    encoding happens in :meth:`jpeg`, i.e. only when a client is watching, once per frame
    however many clients there are."""

    def __init__(self, jpeg_quality: int = 80):
        self.jpeg_quality = jpeg_quality
        self._cond = threading.Condition()
        self._result: Optional[FrameResult] = None
        self.seq = 0
        self.closed = False
        self._jpeg_lock = threading.Lock()
        self._json_lock = threading.Lock()  # a JSON request never waits for a JPEG encode
        self._jpeg: tuple[int, bytes] = (-1, b"")
        self._json: tuple[int, bytes] = (-1, b"")
        self.encodes = 0  # JPEG encodes done (each frame at most once)
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (in the writer's thread; it must be quick) after each write."""
        self._listeners.append(callback)

    def write(self, result: FrameResult) -> None:
        with self._cond:
            self._result = result
            self.seq += 1
            self._cond.notify_all()
        for callback in self._listeners:
            callback()

    def latest(self) -> tuple[int, Optional[FrameResult]]:
        with self._cond:
            return self.seq, self._result

    def wait_newer(self, seq: int, timeout: float) -> tuple[int, Optional[FrameResult]]:
        """Block until a result newer than ``seq`` arrives (or timeout / close)."""
        with self._cond:
            self._cond.wait_for(lambda: self.seq > seq or self.closed, timeout)
            return self.seq, self._result

    def jpeg(self, seq: int, result: FrameResult) -> bytes:
        """The annotated frame as JPEG, encoded at most once per result."""
        import cv2

        from edgeface.inference.draw import annotate

        with self._jpeg_lock:
            if self._jpeg[0] != seq:
                image = annotate(result.frame.image, result.detections)
                ok, buf = cv2.imencode(".jpg", image,
                                       [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                self._jpeg = (seq, buf.tobytes() if ok else b"")
                self.encodes += 1
            return self._jpeg[1]

    def detections_json(self) -> bytes:
        seq, result = self.latest()
        if result is None:
            return b"null"
        with self._json_lock:
            if self._json[0] != seq:
                self._json = (seq, json.dumps(result.to_record()).encode())
            return self._json[1]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
