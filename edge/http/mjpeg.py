"""MJPEG viewers (``multipart/x-mixed-replace``), fed by one pump for all of them.

The pump wakes on a new frame (at most ``stream_max_fps`` times a second), gets one JPEG from
the :class:`~edgeface.http.encoder.FrameEncoder` and hands the same bytes to every
viewer's socket without waiting on any: a viewer whose queue is still over the high-water
mark skips the frame, and one that has taken nothing for ``write_timeout`` seconds is
dropped. So N viewers cost one encode per frame and at most about one queued frame each,
and a stalled viewer never delays another (or ``/healthz``).
"""

from __future__ import annotations

import asyncio
from typing import Optional

from edgeface.http.encoder import FrameEncoder
from edgeface.http.limits import HttpLimits
from edgeface.http.protocol import ClientStream
from edgeface.runtime.metrics import HttpCounters

BOUNDARY = "edgefaceframe"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"


class _Viewer:
    def __init__(self, stream: ClientStream, done: asyncio.Future):
        self.stream = stream
        self.done = done
        self.backlog_since = 0.0  # loop time since which it has been skipping frames


class MjpegBroadcaster:
    """Registers viewers and runs the pump while there is at least one."""

    def __init__(self, encoder: FrameEncoder, limits: HttpLimits, counters: HttpCounters):
        self.encoder, self.limits, self.counters = encoder, limits, counters
        self.interval = 1.0 / limits.stream_max_fps if limits.stream_max_fps else 0.0
        self._viewers: list[_Viewer] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._frame: Optional[asyncio.Event] = None
        self._pump: Optional[asyncio.Task] = None
        self._last: Optional[tuple[int, bytes]] = None  # seq, whole multipart part
        self.closing = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._frame = asyncio.Event()

    def full(self) -> bool:
        return len(self._viewers) >= self.limits.max_streams

    def frame_written(self) -> None:
        """A new frame exists (called from the processing thread, once per frame)."""
        loop, event = self._loop, self._frame
        if self._viewers and loop is not None and event is not None and not event.is_set():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop is closed
                pass

    async def serve(self, stream: ClientStream) -> None:
        """The body of one viewer's response: returns when it leaves or is dropped."""
        assert self._loop is not None and self._frame is not None
        if self.closing:
            return
        viewer = _Viewer(stream, self._loop.create_future())
        self._viewers.append(viewer)
        self.counters.stream_clients = len(self._viewers)
        gone = asyncio.ensure_future(stream.client_gone())
        try:
            if self._last is not None:
                self._offer(viewer, self._last[1], self._loop.time())  # the current frame now
            self._frame.set()  # and a fresh one as soon as the rate allows
            if self._pump is None or self._pump.done():
                self._pump = asyncio.ensure_future(self._run())
            await asyncio.wait([gone, viewer.done], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            self._viewers.remove(viewer)
            self.counters.stream_clients = len(self._viewers)

    async def _run(self) -> None:
        assert self._loop is not None and self._frame is not None
        loop, frame = self._loop, self._frame
        next_time = 0.0
        while self._viewers and not self.closing:
            try:
                await asyncio.wait_for(frame.wait(), 1.0)
            except asyncio.TimeoutError:
                self._check_stalled(loop.time())
                continue
            delay = next_time - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            frame.clear()
            got = await self.encoder.jpeg(fresh=True)
            now = loop.time()
            if got is not None and (self._last is None or got[0] != self._last[0]):
                seq, jpg = got
                part = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpg)}\r\n\r\n").encode() + jpg + b"\r\n"
                self._last = (seq, part)
                for viewer in list(self._viewers):
                    self._offer(viewer, part, now)
                next_time = now + self.interval
            self._check_stalled(now)
        self._last = None  # nobody watches: do not keep a frame alive

    def _offer(self, viewer: _Viewer, part: bytes, now: float) -> None:
        transport = viewer.stream.transport
        if transport.is_closing():
            self._drop(viewer, slow=False)
        elif transport.get_write_buffer_size() > self.limits.write_buffer_high:
            if not viewer.backlog_since:
                viewer.backlog_since = now  # behind: skip frames until it catches up
        else:
            viewer.backlog_since = 0.0
            transport.write(part)

    def _check_stalled(self, now: float) -> None:
        for viewer in list(self._viewers):
            if viewer.backlog_since and now - viewer.backlog_since > self.limits.write_timeout:
                self._drop(viewer, slow=True)

    def _drop(self, viewer: _Viewer, slow: bool) -> None:
        if slow:
            self.counters.slow_dropped_total += 1
        viewer.stream.transport.abort()
        if not viewer.done.done():
            viewer.done.set_result(None)

    def close(self) -> None:
        self.closing = True
        for viewer in list(self._viewers):
            if not viewer.done.done():
                viewer.done.set_result(None)
        if self._pump is not None:
            self._pump.cancel()
