"""The HTTP server's own accept loop (edgeface.http.acceptor): closing under a connection
flood leaves nothing for the garbage collector to trip on, and at the cap refusals cost no
transport and are paced."""

from __future__ import annotations

import gc
import logging
import socket
import sys
import threading
import time

import pytest
from runtime_fakes import make_result

from edgeface.http import acceptor
from edgeface.http.latest import LatestSink
from edgeface.http.limits import HttpLimits
from edgeface.http.server import StatusServer
from edgeface.runtime.metrics import Metrics


def _flood(port: int, stop: threading.Event, socks: list[socket.socket]) -> None:
    while not stop.is_set():
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=1)
            c.sendall(b"GET /healthz HTTP/1.1\r\n")  # half-sent: held until the close
            socks.append(c)
        except OSError:
            pass


def test_closing_under_a_connection_flood_leaves_no_unraisable_error(monkeypatch, caplog):
    """Before, with asyncio.start_server, 20 such rounds gave 171 errors on Python 3.13
    (TypeError in Server._wakeup from a transport's __del__, AssertionError in
    Server._attach): the traceback `edgeface run` printed at SIGTERM on Pi OS Trixie."""
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(
        f"{u.exc_type.__name__}: {u.exc_value} in {u.object!r}"))
    caplog.set_level(logging.ERROR, logger="asyncio")
    for _ in range(5):
        server = StatusServer(LatestSink(), Metrics(), "127.0.0.1", 0).start()
        stop, socks = threading.Event(), []
        flooders = [threading.Thread(target=_flood, args=(server.port, stop, socks))
                    for _ in range(4)]
        for t in flooders:
            t.start()
        time.sleep(0.2)
        server.close()  # while the flood goes on
        stop.set()
        for t in flooders:
            t.join(5)
        for c in socks:
            c.close()
        gc.collect()
    assert unraisable == []
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def _half_sent(port: int) -> socket.socket:
    c = socket.create_connection(("127.0.0.1", port), timeout=2)
    c.sendall(b"GET /status HTTP/1.1\r\nHost: t\r\n")
    return c


def _healthz(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return int(c.recv(64).split()[1])


@pytest.mark.parametrize("grace", [0.0, acceptor.HEAD_GRACE])
def test_at_the_cap_half_sent_newcomers_are_refused_paced_and_never_evict(monkeypatch, grace):
    monkeypatch.setattr(acceptor, "HEAD_GRACE", grace)
    latest, metrics = LatestSink(), Metrics()
    server = StatusServer(latest, metrics, "127.0.0.1", 0, limits=HttpLimits(
        max_connections=4, overflow_connections=1, header_timeout=30)).start()
    latest.write(make_result(0))
    metrics.observe(0.01, 2)  # a frame went through: /healthz is 200
    held = [_half_sent(server.port) for _ in range(5)]  # the cap and the overflow lane
    try:
        deadline = time.monotonic() + 5
        while metrics.http.open_connections < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0, tried = time.monotonic(), 0
        while time.monotonic() - t0 < 1.0:  # a reconnect loop of half-sent heads
            c = _half_sent(server.port)
            try:
                tried += 1 if c.recv(1024) else 0  # the raw 503, or a reset
            except OSError:
                tried += 1
            c.close()
        elapsed = time.monotonic() - t0
        refused = metrics.http.refused_total
        # a probe whose head arrives whole still gets a slot (evicting the oldest waiting, or
        # in the overflow lane when the accept beat its head by microseconds); the hundreds
        # of half-sent newcomers never evict
        assert _healthz(server.port) == 200
        assert metrics.http.evicted_total <= 1
        assert refused >= 5
        budget = acceptor.REFUSAL_BURST + acceptor.REFUSAL_RATE * (elapsed + 0.2)
        assert refused <= budget, (refused, tried, elapsed)
    finally:
        for c in held:
            c.close()
        server.close()
