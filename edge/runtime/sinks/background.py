"""A bounded hand-off from the processing loop to one worker thread, for sinks whose work is
slow or may stall (network publishes, JPEG encodes, disk writes).

``put`` takes a lock, appends and returns: microseconds, whatever the worker is doing. A full
queue drops the new item and counts it, so a dead broker or a slow disk costs bounded
memory and never a frame. ``replace`` keeps only the newest item under a key (a count, the
latest snapshot): what is superseded before the worker gets to it is counted per key.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Hashable

log = logging.getLogger(__name__)


class Worker:
    """Runs ``handle(item)`` for queued items (FIFO), then for the newest item of each key.

    Counters (read them from any thread): ``done``, ``dropped`` (queue full or closing),
    ``superseded`` (per key: replaced before being handled), ``errors`` (``handle`` raised;
    logged, the worker goes on); ``pending`` is the backlog.
    """

    def __init__(self, name: str, handle: Callable[[Any], None], maxsize: int):
        if maxsize < 1:
            raise ValueError(f"queue size must be at least 1, got {maxsize}")
        self.name = name
        self.maxsize = maxsize
        self._handle = handle
        self._queue: collections.deque = collections.deque()
        self._latest: dict[Hashable, Any] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self.done = self.dropped = self.errors = 0
        self.superseded: dict[Hashable, int] = {}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._latest)

    def put(self, item: Any) -> bool:
        """Queue ``item``; False (and counted) when the queue is full or closing."""
        with self._cond:
            if self._closing or len(self._queue) >= self.maxsize:
                self.dropped += 1
                return False
            self._queue.append(item)
            self._cond.notify_all()
        return True

    def replace(self, key: Hashable, item: Any) -> None:
        """Keep ``item`` as the newest of ``key``; an older one not yet handled is superseded."""
        with self._cond:
            if self._closing:
                self.dropped += 1
                return
            if key in self._latest:
                self.superseded[key] = self.superseded.get(key, 0) + 1
            self._latest[key] = item
            self._cond.notify_all()

    def _next(self) -> tuple[bool, Any]:
        with self._cond:
            while not (self._queue or self._latest or self._closing):
                self._cond.wait()
            if self._queue:
                item = self._queue.popleft()
            elif self._latest:
                item = self._latest.pop(next(iter(self._latest)))
            else:
                return False, None
            self._busy = True
            return True, item

    def _run(self) -> None:
        while True:
            ok, item = self._next()
            if not ok:
                return
            try:
                self._handle(item)
                self.done += 1
            except Exception:  # one bad item must not end the sink
                self.errors += 1
                log.exception("%s: item failed", self.name)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the backlog to be handled; True if it was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._latest or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Handle the backlog for up to ``timeout`` seconds, drop the rest, stop the thread."""
        self.drain(timeout)
        with self._cond:
            self._closing = True
            left = len(self._queue) + len(self._latest)
            self.dropped += left
            self._queue.clear()
            self._latest.clear()
            self._cond.notify_all()
        if left:
            log.warning("%s: %d item(s) not sent at close", self.name, left)
        # The item in hand (a request bounded by its own timeout) may still be running:
        # the thread is a daemon, so waiting a little is enough.
        self._thread.join(timeout=max(0.1, timeout))
