"""Track events waiting for a broker that is away or slow: bounded, the newest kept, and
never a track left open.

Past the bound, what goes first is what a reader misses least: the oldest ``update`` (a
later one, or the end, says more); then the oldest track that started and ended while
waiting (its start and end together, so neither is left alone); then the oldest start of a
track still alive, whose later events are then dropped too (the reader never hears of it,
rather than hearing it start and never end). An ``end`` whose ``start`` already went out is
never dropped: that would leave the track open for good. Those are at most one per track
alive when the broker went away (the tracker keeps at most 256), so the backlog may pass
its bound by that much.

Every operation is O(1) amortized: ``add`` runs in the processing loop.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Optional


class EventBacklog:
    """FIFO of ``(track id, event type, payload)``; ``pop`` gives the oldest payload."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"backlog limit must be at least 1, got {limit}")
        self.limit = limit
        self.dropped = 0
        self._lock = threading.Lock()
        self._seq = 0
        # seq -> event, in seq order. OrderedDict: a dict's first key after many pops from
        # the front is found by scanning the deleted slots, O(n) each.
        self._items: collections.OrderedDict[int, tuple[int, str, Any]] = \
            collections.OrderedDict()
        self._updates: collections.deque[int] = collections.deque()  # seqs, maybe stale
        self._pairs: collections.deque[tuple[int, int]] = collections.deque()  # start, end
        # track -> seq of its start, waiting while the track is alive
        self._open: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._silenced: set[int] = set()  # tracks whose start was dropped: drop the rest

    def __len__(self) -> int:
        return len(self._items)

    def add(self, track: int, kind: str, payload: Any) -> None:
        with self._lock:
            if track in self._silenced:
                self.dropped += 1
                if kind == "end":
                    self._silenced.discard(track)
                return
            seq = self._seq
            self._seq += 1
            self._items[seq] = (track, kind, payload)
            if kind == "update":
                self._updates.append(seq)
            elif kind == "start":
                self._open[track] = seq
            elif kind == "end" and track in self._open:
                self._pairs.append((self._open.pop(track), seq))
            while len(self._items) > self.limit and self._drop_one():
                pass
            self._compact()

    def _drop_one(self) -> bool:
        items = self._items
        while self._updates:
            if items.pop(self._updates.popleft(), None) is not None:
                self.dropped += 1
                return True
        while self._pairs:
            start, end = self._pairs.popleft()
            if start in items and end in items:
                del items[start], items[end]
                self.dropped += 2
                return True
        if self._open:
            track = next(iter(self._open))
            del items[self._open.pop(track)]
            self._silenced.add(track)
            self.dropped += 1
            return True
        return False  # only ends of tracks whose start went out: kept

    def _compact(self) -> None:
        """Drop stale entries (sent or dropped) once they could outnumber the live ones."""
        bound = 2 * self.limit + 512
        if len(self._updates) > bound:
            self._updates = collections.deque(s for s in self._updates if s in self._items)
        if len(self._pairs) > bound:
            self._pairs = collections.deque(p for p in self._pairs
                                            if p[0] in self._items and p[1] in self._items)

    def pop(self) -> Optional[Any]:
        """The oldest waiting payload (None when empty); it counts as sent."""
        with self._lock:
            if not self._items:
                return None
            seq, (track, kind, payload) = self._items.popitem(last=False)
            if kind == "start" and self._open.get(track) == seq:
                del self._open[track]
            while self._updates and self._updates[0] not in self._items:
                self._updates.popleft()
            while self._pairs and self._pairs[0][0] not in self._items:
                self._pairs.popleft()
            return payload

    def clear(self) -> int:
        """Forget what waits (at close); how many."""
        with self._lock:
            left = len(self._items)
            self.dropped += left
            self._items.clear()
            self._updates.clear()
            self._pairs.clear()
            self._open.clear()
            return left
