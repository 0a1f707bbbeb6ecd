"""The page's recent face events: the last few track events (start, update, end) with a JPEG
crop of each face, in memory, for ``/events`` and ``/events/<n>.jpg``.

:meth:`EventFeed.add` runs in the processing loop, once per frame: for each event it copies
the face region (tens of microseconds, see ``face_events.best_view``) and queues it; one
worker thread encodes the crops. Memory stays bounded: ``size`` events with a crop of at
most 320 px each (~10-20 KB as JPEG), and at most ``queue_size`` crops waiting.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Optional

from edgeface.frames import FrameResult
from edgeface.runtime.sinks.background import Worker
from edgeface.runtime.sinks.face_events import best_view, encode_jpeg, event_message

#: Events kept for the page.
FEED_SIZE = 20


class EventFeed:
    """The newest ``size`` events, numbered from 1 in arrival order."""

    def __init__(self, size: int = FEED_SIZE, device: str = "", queue_size: int = 8):
        self.device = device
        self._lock = threading.Lock()
        self._items: collections.deque[tuple[dict[str, Any], list]] = collections.deque(
            maxlen=size)
        self.seq = 0
        self._worker = Worker("http-events", self._encode, queue_size)

    def add(self, result: FrameResult) -> None:
        """Take a frame's events (processing thread: cheap)."""
        for ev in result.events:
            msg = event_message(ev, self.device, result.frame.image)
            crop = best_view(ev.track)
            with self._lock:
                self.seq += 1
                msg["n"] = self.seq
                jpeg: list = [None]  # filled in by the worker
                self._items.append((msg, jpeg))
            if crop is not None:
                self._worker.put((jpeg, crop))

    def _encode(self, item: tuple[list, Any]) -> None:
        slot, crop = item
        slot[0] = encode_jpeg(crop)  # the deque may have dropped the entry: then no one sees it

    def events(self) -> list[dict[str, Any]]:
        """The events, newest first; ``crop`` is the URL of the face's JPEG when encoded."""
        with self._lock:
            items = list(self._items)
        return [{**msg, "crop": f"/events/{msg['n']}.jpg" if jpeg[0] else None}
                for msg, jpeg in reversed(items)]

    def crop(self, n: int) -> Optional[bytes]:
        with self._lock:
            for msg, jpeg in self._items:
                if msg["n"] == n:
                    return jpeg[0]
        return None

    def close(self) -> None:
        self._worker.close(1.0)
