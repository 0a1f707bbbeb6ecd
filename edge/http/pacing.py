"""A work budget for the HTTP server: at most ``rate`` events a second, in arrival order.

Callers over the budget wait their turn (a short delay, invisible to a polite client); once
the queue is ``max_wait`` seconds long, further callers are turned away (503 + Retry-After)
instead of piling up. The budget bounds the CPU the server takes from inference however many
clients loop as fast as they can. Event-loop thread only (no lock).
"""

from __future__ import annotations

import asyncio
from typing import Optional

from edgeface.http.router import Handler, HttpError, Request


class Pacer:
    """``reserve(now)`` -> seconds to wait before going ahead, or None (over budget)."""

    def __init__(self, rate: float, max_wait: float = 2.0, burst_s: float = 0.5):
        self.interval = 1.0 / rate if rate else 0.0
        self.max_wait = max_wait
        self.burst_s = burst_s  # idle time that may be spent later as a burst
        self._next = 0.0

    def reserve(self, now: float) -> Optional[float]:
        if not self.interval:
            return 0.0
        start = max(self._next, now - self.burst_s)
        wait = start - now
        if wait > self.max_wait:
            return None
        self._next = start + self.interval
        return max(0.0, wait)


def paced(handler: Handler, *pacers: Pacer, busy_status: int = 503) -> Handler:
    """``handler`` behind the budgets of ``pacers``: waits its turn in each, or gets
    ``busy_status`` (503: the server is busy; 429 for a per-client limit) + Retry-After."""

    async def wrapper(request: Request):
        loop = asyncio.get_running_loop()
        for pacer in pacers:
            wait = pacer.reserve(loop.time())
            if wait is None:
                raise HttpError(busy_status, "too many requests: try again shortly",
                                {"Retry-After": "1"})
            if wait > 0:
                await asyncio.sleep(wait)
        return await handler(request)

    return wrapper
