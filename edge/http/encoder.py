"""JPEG of the newest frame for every HTTP client, made in one dedicated worker thread.

Requests on the event loop await the same encode: N clients asking at once cost one encode,
never one per client, and never one for a frame already encoded. A minimum interval between
encodes (``max_fps``) bounds the CPU the HTTP side can take from inference, however many
clients ask. The worker thread is joined by :meth:`FrameEncoder.close`, so no OpenCV call
is ever in flight while the interpreter shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Optional

from edgeface.http.latest import LatestSink
from edgeface.http.osthread import name_os_thread
from edgeface.runtime.metrics import HttpCounters

log = logging.getLogger(__name__)


class FrameEncoder:
    """``await encoder.jpeg()`` -> ``(seq, jpeg bytes)`` of the newest frame (or None)."""

    def __init__(self, latest: LatestSink, counters: HttpCounters, max_fps: float = 0.0):
        self.latest = latest
        self.counters = counters
        self.min_interval = 1.0 / max_fps if max_fps else 0.0
        self._memo: Optional[tuple[int, bytes, float]] = None  # seq, JPEG, monotonic time
        self._pending: Optional[asyncio.Future] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._cond = threading.Condition()
        self._wanted = False
        self._stop = False
        self._thread: Optional[threading.Thread] = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._work, name="http-jpeg", daemon=True)
        self._thread.start()

    async def jpeg(self, fresh: bool = False) -> Optional[tuple[int, bytes]]:
        """The newest frame's JPEG. Without ``fresh``, a JPEG less than ``1 / max_fps`` old
        is good enough for a snapshot even if a newer frame exists. Event-loop thread only."""
        seq, result = self.latest.latest()
        if result is None:
            return None
        memo = self._memo
        if memo is not None and (memo[0] == seq or (
                not fresh and time.monotonic() - memo[2] < self.min_interval)):
            return memo[0], memo[1]
        if self._pending is None:
            assert self._loop is not None, "FrameEncoder.start() first"
            self._pending = self._loop.create_future()
            with self._cond:
                self._wanted = True
                self._cond.notify()
        return await asyncio.shield(self._pending)

    def _work(self) -> None:
        name_os_thread("http-jpeg")
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wanted or self._stop)
                if self._stop:
                    return
                self._wanted = False
            seq, result = self.latest.latest()  # the newest when the work starts
            jpg, error = b"", None
            before = self.latest.encodes
            try:
                if result is not None:
                    jpg = self.latest.jpeg(seq, result)
            except Exception as exc:  # reported to every waiter, the thread lives on
                error = exc
            del result
            self.counters.jpeg_encodes_total += self.latest.encodes - before
            try:
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._done, seq, jpg, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return

    def _done(self, seq: int, jpg: bytes, error: Optional[BaseException]) -> None:
        fut, self._pending = self._pending, None
        if error is None and jpg:
            self._memo = (seq, jpg, time.monotonic())
        if fut is None or fut.done():
            return
        if error is not None:
            log.warning("JPEG encode failed: %r", error)
            fut.set_exception(error)
            fut.exception()  # a waiter that went away must not leave it "never retrieved"
        else:
            fut.set_result((seq, jpg) if jpg else None)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (after the encode in progress, if any) and wait for it."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self._pending = None
