"""An annotated video file: boxes, scores and landmarks drawn on every processed frame."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.frames import FrameResult
from edgeface.runtime.options import Option, string
from edgeface.runtime.sinks.base import SinkContext, SinkKind
from edgeface.runtime.sinks.registry import register_sink


def fourcc_for(path: Union[str, os.PathLike]) -> str:
    """A codec the pip OpenCV wheels can write for this container (.avi: MJPG, else mp4v)."""
    return "MJPG" if str(path).lower().endswith(".avi") else "mp4v"


class VideoSink:
    """Annotated frames written to a video file (opened on the first frame, at its size).

    Drawing and encoding (~8 ms per 720p mp4v frame on a 2-core x86) run in the sink's own
    thread, overlapping inference of the next frame, instead of adding to every frame's
    time in the processing loop. Every frame is kept: when the encoder falls behind by
    ``queue_size`` frames, ``write`` waits for it. An encoder failure is raised by the next
    ``write``, ``flush`` or ``close``.
    """

    def __init__(self, path: Union[str, os.PathLike], fps: Optional[float] = None,
                 fourcc: Optional[str] = None, queue_size: int = 2):
        self.path = Path(path)
        self.fps = fps or 15.0
        self.fourcc = fourcc or fourcc_for(self.path)
        self._writer = None
        self._size: Optional[tuple[int, int]] = None
        self.frames = 0
        self._queue: queue.Queue[Optional[FrameResult]] = queue.Queue(max(1, queue_size))
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self._reported = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgefaceError(f"cannot create {self.path.parent}: {exc.strerror}") from None

    def write(self, result: FrameResult) -> None:
        if result.only_events:
            return
        self._raise_error()
        if self._writer is None:
            self._open(result.frame.image)  # here, so a bad path or codec fails at once
            self._thread = threading.Thread(target=self._encode_loop, daemon=True,
                                            name=f"video {self.path.name}")
            self._thread.start()
        self._queue.put(result)

    def _open(self, image: np.ndarray) -> None:
        import cv2

        h, w = image.shape[:2]
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc),
                                 self.fps, (w, h))
        if not writer.isOpened():
            raise EdgefaceError(f"cannot write video {self.path} with codec {self.fourcc} "
                                "(use a .avi or .mp4 path)")
        self._writer, self._size = writer, (w, h)

    def _encode_loop(self) -> None:
        import cv2

        from edgeface.inference.draw import annotate

        while True:
            result = self._queue.get()
            try:
                if result is None:
                    return
                if self._error is not None:
                    continue  # drain, so that write() never blocks on a dead encoder
                image = annotate(result.frame.image, result.detections)  # a copy: shared
                if (image.shape[1], image.shape[0]) != self._size:
                    image = cv2.resize(image, self._size)  # the camera came back resized
                self._writer.write(image)
                self.frames += 1
            except Exception as exc:
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise_error(self) -> None:
        # Raised once; the sink stays failed and drops later frames rather than block.
        if self._error is not None and not self._reported:
            self._reported = True
            raise EdgefaceError(f"cannot write video {self.path}: {self._error}")

    def flush(self) -> None:
        """Wait until every frame written so far is encoded (the file is complete only
        after :meth:`close`)."""
        if self._thread is not None:
            self._queue.join()
        self._raise_error()

    def describe(self) -> str:
        return f"video {self.path}"

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._raise_error()


def _build(values: Mapping[str, Any], context: SinkContext) -> VideoSink:
    return VideoSink(values["video"], fps=context.source_fps)


register_sink(SinkKind("video", (
    Option("video", "--video", string, metavar="PATH", path=True,
           help="Write annotated frames to this video (.mp4 or .avi)."),
), _build))
