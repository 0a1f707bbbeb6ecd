"""The HTTP server's second hostile round (issue 23), real sockets on loopback: lying
Content-Length values and floods of refused requests."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from edgeface.http.auth import TokenAuth
from edgeface.http.latest import LatestSink
from edgeface.http.limits import HttpLimits
from edgeface.http.server import StatusServer
from edgeface.runtime.metrics import Metrics

TOKEN = "t0k3n-for-the-tests-0123456789"


@pytest.fixture
def make_server():
    servers = []

    def make(token=None, **kw):
        server = StatusServer(LatestSink(), Metrics(), "127.0.0.1", 0, auth=TokenAuth(token),
                              limits=HttpLimits(**kw)).start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()


def exchange(server, raw: bytes, timeout=5.0) -> int | None:
    """The status answered to ``raw``, or None when the server closed without an answer."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as c:
        c.sendall(raw)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            return None
    return int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("length", ["9" * 5000, "0" * 30 + "1", "1" * 19, " 12x", "-1"])
def test_an_absurd_content_length_is_400_without_a_traceback(make_server, caplog, token,
                                                           length):
    server = make_server(token)
    with caplog.at_level(logging.DEBUG):
        for method, path in (("POST", "/detect"), ("GET", "/metrics"), ("GET", "/healthz")):
            raw = (f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n"
                   ).encode()
            assert exchange(server, raw) == 400, (method, path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    ok = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert ok in (200, 503)  # answered: 503 is "starting", no frame yet


def _flood(server, raw: bytes, clients: int, seconds: float) -> tuple[int, int]:
    """(answered, closed unanswered) from ``clients`` threads sending ``raw`` in a loop."""
    answered, dropped, lock = [0], [0], threading.Lock()
    end = time.monotonic() + seconds

    def loop():
        while time.monotonic() < end:
            try:
                status = exchange(server, raw, timeout=10)
            except OSError:
                status = None
            with lock:
                if status is None:
                    dropped[0] += 1
                else:
                    answered[0] += 1

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answered[0], dropped[0]


@pytest.mark.parametrize("raw", [
    b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n",  # no token: 401
    b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    b"GARBAGE\r\n\r\n",  # 400 from the parser
])
def test_refused_requests_are_paced_and_healthz_still_answers(make_server, raw):
    rate = 50.0
    server = make_server(TOKEN, refusal_max_rate=rate, max_queue_wait=0.1)
    seconds = 2.0
    probes: list[int | None] = []
    prober = threading.Thread(target=lambda: [
        (probes.append(exchange(server, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")),
         time.sleep(0.2)) for _ in range(8)])
    prober.start()
    t0 = time.monotonic()
    answered, dropped = _flood(server, raw, clients=16, seconds=seconds)
    elapsed = time.monotonic() - t0
    prober.join(10)
    # The budget: rate x time, plus the 0.5 s burst and the 0.1 s queue.
    assert answered <= rate * (elapsed + 1.0) + 5, (answered, dropped, elapsed)
    assert answered >= rate * 0.5 * seconds, (answered, dropped)
    assert dropped > 0  # past the queue: closed unanswered, at no cost
    assert probes and all(p in (200, 503) for p in probes), probes  # answered, never refused
    print(f"refusals answered {answered / elapsed:.0f}/s (budget {rate:g}/s), "
          f"{dropped / elapsed:.0f}/s closed unanswered")
