"""A source that captures in its own thread (see the package docstring for live and file
modes), so that decoding and preprocessing overlap inference."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Optional

from edgeface.errors import SourceError
from edgeface.frames import Frame
from edgeface.media.images import DEFAULT_MAX_PIXELS
from edgeface.runtime.capture_priority import BackgroundSwitch
from edgeface.runtime.sources.base import (
    Capture,
    CorruptFrame,
    Prepare,
    Reader,
    SourceStats,
    SourceTimeout,
    as_bgr,
)

log = logging.getLogger(__name__)


class ThreadedSource:
    """Runs a :class:`Reader` in a capture thread; see the module docstring for the modes."""

    def __init__(
        self,
        reader: Reader,
        name: str,
        *,
        live: bool,
        reconnect: bool = False,
        loop: bool = False,
        pace_fps: Optional[float] = None,
        prefetch: int = 2,
        backoff: tuple[float, float] = (0.5, 10.0),
        background_when_ahead: bool = True,
        prepare: Optional[Prepare] = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.reader = reader
        self.name = name
        self.live = live
        self.reconnect = reconnect
        self.loop = loop
        self.pace_fps = pace_fps
        self.prefetch = max(1, prefetch)
        self.backoff = backoff
        self.prepare = prepare
        self.max_pixels = max_pixels
        self.stats = SourceStats()
        self._cond = threading.Condition()
        self._latest: Optional[Frame] = None
        self._queue: deque[Frame] = deque()
        self._ended = False
        self._error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._priority = BackgroundSwitch(background_when_ahead)
        reader.open()  # fails here, synchronously, with a SourceError naming the source
        self._thread = threading.Thread(target=self._capture, name=f"capture {name}",
                                        daemon=True)
        self._thread.start()

    @property
    def fps(self) -> Optional[float]:
        """The nominal frame rate, where the source knows it."""
        if self.pace_fps:
            return self.pace_fps
        fps_of = getattr(self.reader, "fps", None)
        fps = fps_of() if callable(fps_of) else 0.0
        return fps if fps and 0 < fps < 1000 else None

    # -- consumer side -------------------------------------------------------------------
    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self.live:
                    if self._latest is not None:
                        frame, self._latest = self._latest, None
                        return frame
                elif self._queue:
                    frame = self._queue.popleft()
                    self._cond.notify_all()  # room for the producer
                    return frame
                self._priority.set(False)  # the detector waits: no more background decoding
                if self._ended:
                    if self._error is not None:
                        raise SourceError(f"{self.name}: capture failed: {self._error}")
                    return None
                if deadline is None:
                    self._cond.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise SourceTimeout(f"no frame from {self.name} within {timeout} s")
                    self._cond.wait(remaining)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self.reader.close()

    def __enter__(self) -> ThreadedSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- capture thread ------------------------------------------------------------------
    def _capture(self) -> None:
        index = 0
        since_open = 0  # good frames since the last (re)open: a loop over nothing must end
        next_due = time.monotonic()
        self._priority.attach()
        try:
            while not self._stop.is_set():
                with self._cond:
                    if not self.live:  # room first, then decode: see _wait_for_room
                        self._wait_for_room()
                        if self._stop.is_set():
                            break
                    self._priority.set(self._latest is not None if self.live
                                       else bool(self._queue))
                try:
                    raw = self.reader.read()
                    stamp, mono = time.time(), time.monotonic()
                except CorruptFrame as exc:
                    self._count_corrupt(str(exc), exc.frames)
                    index += exc.frames
                    continue
                if raw is None:
                    if self.loop and since_open > 0:
                        self.reader.close()
                        self.reader.open()
                        since_open = 0
                        continue
                    if self.reconnect:
                        self._reopen()
                        since_open = 0
                        continue
                    break
                analysis = None
                if isinstance(raw, Capture):
                    raw, analysis = raw.image, as_bgr(raw.analysis)
                image = as_bgr(raw)
                if image is None or image.shape[0] * image.shape[1] > self.max_pixels:
                    shape = getattr(raw, "shape", None)
                    why = ("is not an image" if image is None else
                           f"is over the pixel budget of {self.max_pixels / 1e6:.0f} Mpx")
                    self._count_corrupt(f"frame {index} {why} (shape {shape}, "
                                        f"dtype {getattr(raw, 'dtype', None)})")
                    index += 1
                    continue
                since_open += 1
                prepared, prepare_s = None, 0.0
                if self.prepare is not None:
                    t0 = time.perf_counter()
                    try:
                        prepared = (self.prepare(image) if analysis is None else
                                    self.prepare(analysis, frame_size=image.shape[1::-1]))
                    except ValueError as exc:
                        self._count_corrupt(f"frame {index}: {exc}")
                        index += 1
                        continue
                    prepare_s = time.perf_counter() - t0
                if self.pace_fps:
                    next_due = max(next_due + 1.0 / self.pace_fps, time.monotonic() - 1.0)
                    if self._stop.wait(max(0.0, next_due - time.monotonic())):
                        break
                    stamp, mono = time.time(), time.monotonic()  # "captured" now, on cue
                label = getattr(self.reader, "current_label", None)
                self._publish(Frame(index, stamp, image, mono, label, prepared, prepare_s))
                index += 1
        except BaseException as exc:  # surfaced to the consumer by read()
            log.error("%s: capture thread failed: %s", self.name, exc)
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _publish(self, frame: Frame) -> None:
        with self._cond:
            self.stats.captured += 1
            if self.live:
                if self._latest is not None:
                    self.stats.dropped += 1
                self._latest = frame
            else:  # the one producer made room before decoding (_capture)
                self._queue.append(frame)
            self._cond.notify_all()

    def _wait_for_room(self) -> None:
        """Until the queue has room (or the source stops); the caller holds ``_cond``.

        Called before decoding, not before queueing: a frame decoded while the queue is
        full would wait, whole, beside it. Frames alive ahead of the loop are then
        ``prefetch``, not one more: a 720p frame and its model input are 4.8 MB
        (benchmarks/runtime_memory.py), and with inference at ~15 ms and a decode at
        ~6 ms the queue never runs dry waiting for the decode."""
        while len(self._queue) >= self.prefetch and not self._stop.is_set():
            self._cond.wait(0.5)

    def _count_corrupt(self, why: str, frames: int = 1) -> None:
        before, n = self.stats.corrupt, self.stats.corrupt + frames
        self.stats.corrupt = n
        # One line per corrupt frame would flood the journal on a broken camera; a damaged
        # run of a file (many frames at once) is one line.
        if before < 10 or n // 1000 > before // 1000:
            log.warning("%s: skipping corrupt frame: %s (%d so far)", self.name, why, n)

    def _reopen(self) -> None:
        self.stats.reconnects += 1
        log.warning("%s: source lost; reopening (reconnect #%d)", self.name,
                    self.stats.reconnects)
        self.reader.close()
        delay, max_delay = self.backoff
        attempt = 0
        while not self._stop.wait(delay):
            attempt += 1
            try:
                self.reader.open()
            except SourceError as exc:
                delay = min(delay * 2, max_delay)
                log.warning("%s: reopen attempt %d failed (%s); next try in %.1f s",
                            self.name, attempt, exc, delay)
                continue
            log.warning("%s: reopened after %d attempt(s)", self.name, attempt)
            return
