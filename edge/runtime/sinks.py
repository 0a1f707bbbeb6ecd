"""Where results go: JSON lines, an annotated video, the latest result for the HTTP server.

A sink receives one :class:`FrameResult` per processed frame from the processing loop, so
``write`` must be cheap; anything expensive that nobody asked for (JPEG encoding, drawing)
is done lazily by whoever consumes it.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Protocol, TextIO, Union

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.inference.results import FrameResult


class Sink(Protocol):
    def write(self, result: FrameResult) -> None:  # pragma: no cover
        ...

    def flush(self) -> None:  # pragma: no cover
        ...

    def close(self) -> None:  # pragma: no cover
        ...


class JsonLinesSink:
    """One JSON object per frame, to stdout (``-``) or a file, flushed line by line so a
    consumer (or the journal) sees every frame as soon as it is done and a stop never
    leaves half a line. A file is appended to, so a restarted service loses nothing.

    A file that would grow past ``max_bytes`` is rotated between lines: ``out.jsonl`` becomes
    ``out.jsonl.1`` (``.1`` becomes ``.2``, ...), ``keep`` old files are kept, so at most
    ``(keep + 1) * max_bytes`` of disk is used on a device that runs for months. A file
    moved or deleted by someone else (logrotate without ``copytruncate``) is noticed within
    a second and reopened under its name.
    """

    CHECK_MOVED_S = 1.0

    def __init__(self, target: Union[str, os.PathLike, TextIO] = "-", flush_each: bool = True,
                 max_bytes: Optional[int] = None, keep: int = 3):
        self.flush_each = flush_each
        self.max_bytes = max_bytes or None
        self.keep = max(1, keep)
        self.path: Optional[Path] = None
        self.rotations = 0
        if max_bytes is not None and max_bytes < 0:
            raise EdgefaceError(f"invalid JSON lines size limit {max_bytes}")
        if hasattr(target, "write"):
            self._f, self._own, self.name = target, False, getattr(target, "name", "stream")
        elif str(target) == "-":
            self._f, self._own, self.name = sys.stdout, False, "stdout"
        else:
            self.path = Path(target)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EdgefaceError(f"cannot open {self.path} for writing: cannot create "
                                    f"{self.path.parent}: {exc.strerror or exc}") from None
            self._open()
            self._own, self.name = True, str(self.path)
        self.lines = 0

    def _open(self) -> None:
        assert self.path is not None
        try:
            self._f = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise EdgefaceError(f"cannot open {self.path} for writing: "
                                f"{exc.strerror or exc}") from None
        st = os.fstat(self._f.fileno())
        self._size, self._inode = st.st_size, (st.st_dev, st.st_ino)
        self._next_check = time.monotonic() + self.CHECK_MOVED_S

    def write(self, result: FrameResult) -> None:
        line = json.dumps(result.to_record(), separators=(",", ":")) + "\n"
        try:
            if self.path is not None:
                self._before_write(len(line))
            self._f.write(line)
            if self.flush_each:
                self._f.flush()
        except OSError as exc:
            self._fail(exc)
        self.lines += 1

    def _before_write(self, n: int) -> None:
        """Rotate if this line would pass the size limit; reopen if the file was moved."""
        if self.max_bytes and self._size > 0 and self._size + n > self.max_bytes:
            self._rotate()
        elif time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.CHECK_MOVED_S
            try:
                st = os.stat(self.path)
                moved = (st.st_dev, st.st_ino) != self._inode
            except FileNotFoundError:
                moved = True
            if moved:
                self._reopen()
        self._size += n  # characters: bytes for the ASCII json.dumps writes

    def _rotate(self) -> None:
        self._f.flush()
        name = str(self.path)
        for i in range(self.keep - 1, 0, -1):
            if os.path.exists(f"{name}.{i}"):
                os.replace(f"{name}.{i}", f"{name}.{i + 1}")
        os.replace(name, f"{name}.1")  # the open file moves with its name: nothing is lost
        self.rotations += 1
        self._reopen()

    def _reopen(self) -> None:
        old = self._f
        try:
            self._open()
        finally:
            old.close()

    def _fail(self, exc: OSError) -> None:
        if isinstance(exc, BrokenPipeError) and self._f is sys.stdout:
            # The reader went away (e.g. `| head`): silence the interpreter's final flush.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        raise EdgefaceError(f"cannot write JSON lines to {self.name}: "
                            f"{exc.strerror or exc}") from None

    def flush(self) -> None:
        if self._f.closed:  # a reopen after rotation failed; that error was raised then
            return
        try:
            self._f.flush()
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        self.flush()
        if self._own:
            self._f.close()


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

        from edgeface.media.draw import annotate

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

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._raise_error()


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
        self._jpeg: tuple[int, bytes] = (-1, b"")
        self._json: tuple[int, bytes] = (-1, b"")

    def write(self, result: FrameResult) -> None:
        with self._cond:
            self._result = result
            self.seq += 1
            self._cond.notify_all()

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

        from edgeface.media.draw import annotate

        with self._jpeg_lock:
            if self._jpeg[0] != seq:
                image = annotate(result.frame.image, result.detections)
                ok, buf = cv2.imencode(".jpg", image,
                                       [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                self._jpeg = (seq, buf.tobytes() if ok else b"")
            return self._jpeg[1]

    def detections_json(self) -> bytes:
        seq, result = self.latest()
        if result is None:
            return b"null"
        with self._jpeg_lock:
            if self._json[0] != seq:
                self._json = (seq, json.dumps(result.to_record()).encode())
            return self._json[1]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

