"""Request rate limits for the image API: a token bucket per client address and one for all
clients together. Over either, the request is refused at once (429) with the seconds until
a token is back, for ``Retry-After``; nothing waits. Event-loop thread only (no lock).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; a request takes one."""

    def __init__(self, rate: float, burst: float, now: float):
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0: one is)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class RateLimiter:
    """Per-client and global buckets. ``check(client, now)`` takes a token from both and
    returns None, or returns the seconds to wait (nothing taken) when either is empty.

    At most ``max_clients`` client buckets are kept: past it the least recently seen one is
    forgotten, which only ever gives that client a full bucket again (what an idle client
    has anyway), so memory is bounded whatever the number of addresses.
    """

    def __init__(self, client_rate: float, client_burst: float, global_rate: float,
                 global_burst: float, max_clients: int = 1024, now: float = 0.0):
        self.client_rate, self.client_burst = client_rate, client_burst
        self.max_clients = max_clients
        self.global_bucket = TokenBucket(global_rate, global_burst, now)
        self._clients: OrderedDict[str, TokenBucket] = OrderedDict()
        self.limited_client = self.limited_global = 0

    def check(self, client: str, now: float) -> Optional[float]:
        bucket = self._clients.get(client)
        if bucket is None:
            bucket = TokenBucket(self.client_rate, self.client_burst, now)
            self._clients[client] = bucket
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        wait = bucket.wait(now)
        if wait:
            self.limited_client += 1
            return wait
        wait = self.global_bucket.wait(now)
        if wait:
            self.limited_global += 1
            return wait
        bucket.take()
        self.global_bucket.take()
        return None

    @property
    def clients(self) -> int:
        return len(self._clients)
