"""The device's HTTP server under hostile clients (real sockets over loopback, small limits):
HEAD, caps, deadlines, stalled viewers, shared encodes, shutdown, bounded request bodies."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
from runtime_fakes import make_result

from edgeface.http.latest import LatestSink
from edgeface.http.limits import HttpLimits
from edgeface.http.protocol import http_date
from edgeface.http.router import HttpError, Response
from edgeface.http.server import StatusServer
from edgeface.runtime.metrics import Metrics


@pytest.fixture
def make_server():
    servers = []

    def make(**kw):
        latest, metrics = LatestSink(), Metrics()
        kw.setdefault("stream_max_fps", 0)
        kw.setdefault("jpeg_max_fps", 0)
        server = StatusServer(latest, metrics, "127.0.0.1", 0, limits=HttpLimits(**kw)).start()
        servers.append(server)
        return server, latest, metrics

    yield make
    for s in servers:
        s.close()


def feed(latest, metrics, i, image=None):
    latest.write(make_result(i, image=image))
    metrics.observe(0.01, 2)


def connect(server, timeout=5.0):
    return socket.create_connection((server.host, server.port), timeout=timeout)


def read_response(sock, head_only=False):
    """(status, headers, body) of one response; the body by Content-Length."""
    f = sock.makefile("rb")
    status_line = f.readline()
    if not status_line:
        raise ConnectionError("closed before a response")
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    n = 0 if head_only else int(headers.get("content-length", 0))
    body = f.read(n) if n else b""
    f.close()
    return int(status_line.split()[1]), headers, body


def request(server, method, path, extra=b"", head_only=False, timeout=5.0):
    with connect(server, timeout) as c:
        c.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n".encode()
                  + extra + b"\r\n")
        return read_response(c, head_only or method == "HEAD")


ENDPOINTS = ["/", "/metrics", "/healthz", "/detections", "/snapshot.jpg"]


def test_head_has_the_headers_of_get_and_no_body(make_server):
    server, latest, metrics = make_server()
    feed(latest, metrics, 0)
    with connect(server) as c:  # one kept-alive connection: a body would corrupt the next
        for path in ENDPOINTS:
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            code, get_headers, body = read_response(c)
            c.sendall(f"HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            head_code, head_headers, _ = read_response(c, head_only=True)
            assert (head_code, head_headers["content-type"]) == (code, get_headers["content-type"])
            if path not in ("/metrics", "/healthz"):  # those two change between requests
                assert head_headers["content-length"] == str(len(body)), path
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(c)[0] == 200  # in sync: no HEAD left a body behind
    with connect(server) as c:
        c.sendall(b"HEAD /stream.mjpg HTTP/1.1\r\nHost: t\r\n\r\n")
        code, headers, _ = read_response(c, head_only=True)
        assert code == 200 and headers["content-type"].startswith("multipart/x-mixed-replace")
        c.settimeout(2)
        assert c.recv(1024) == b""  # no frame follows: the connection just closes
    assert metrics.http.stream_clients == 0


def test_wrong_method_405_with_allow_and_json_errors(make_server):
    server, _, _ = make_server()
    code, headers, body = request(server, "POST", "/healthz", b"Content-Length: 0\r\n")
    assert code == 405 and headers["allow"] == "GET, HEAD"
    assert json.loads(body) == {"error": "method POST not allowed", "status": 405,
                                "allow": "GET, HEAD"}
    code, headers, body = request(server, "GET", "/nope")
    assert code == 404 and headers["content-type"] == "application/json"
    assert json.loads(body)["status"] == 404
    code, _, body = request(server, "GET", "/snapshot.jpg")
    assert code == 503 and json.loads(body)["error"] == "no frame yet"


def test_bad_and_oversized_request_heads(make_server):
    server, _, _ = make_server(max_header_bytes=1024)
    code, _, body = request(server, "GET", "/healthz", b"X-Big: " + b"a" * 2000 + b"\r\n")
    assert code == 431
    with connect(server) as c:
        c.sendall(b"GARBAGE\r\n\r\n")
        assert read_response(c)[0] == 400
    with connect(server) as c:
        c.sendall(b"GET / HTTP/2.0\r\n\r\n")
        assert read_response(c)[0] == 505


def wait_open(metrics, n, timeout=3.0):
    deadline = time.monotonic() + timeout
    while metrics.http.open_connections != n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert metrics.http.open_connections == n


def test_at_the_cap_the_longest_waiting_connection_makes_room(make_server):
    """Idle and half-sent connections hold the cap: a newcomer takes the place of the one
    that has waited longest, so clients and monitors are served (issue 23, class 6)."""
    server, latest, metrics = make_server(max_connections=4)
    feed(latest, metrics, 0)
    held = []
    try:
        for i in range(4):
            held.append(connect(server))
            if i % 2:
                held[-1].sendall(b"GET /snapshot.jpg HTTP/1.1\r\nHost: t\r\n")  # half-sent
            wait_open(metrics, i + 1)
        assert request(server, "GET", "/snapshot.jpg")[0] == 200  # the 1st made room
        held.append(connect(server))  # a newcomer that stays, in the freed slot
        wait_open(metrics, 4)
        assert request(server, "GET", "/metrics")[0] == 200  # the 2nd, half-sent, made room
        for i, c in enumerate(held):
            c.settimeout(3 if i < 2 else 0.3)
            try:
                got = c.recv(1024)
            except socket.timeout:
                got = None
            except ConnectionResetError:
                got = b""
            assert (got == b"") == (i < 2), (i, got)  # the oldest two, no answer
        assert metrics.http.evicted_total == 2 and metrics.http.refused_total == 0
        text = request(server, "GET", "/metrics")[2].decode()
        assert "\nedgeface_http_connections_evicted_total 2\n" in text
    finally:
        for c in held:
            c.close()


def test_past_the_cap_of_busy_connections_503_quickly_and_healthz_still_answers(make_server):
    server, latest, metrics = make_server(max_connections=4, max_streams=4, header_timeout=0.5)
    feed(latest, metrics, 0)
    viewers = [connect(server) for _ in range(4)]
    try:
        for v in viewers:  # busy: each is a stream, not waiting for a request
            assert open_stream(v)[0] == 200
        wait_open(metrics, 4)
        t0 = time.monotonic()
        code, headers, body = request(server, "GET", "/snapshot.jpg")
        assert code == 503 and headers["retry-after"] == "1" and time.monotonic() - t0 < 1
        assert json.loads(body)["error"] == "too many connections"
        code, _, body = request(server, "GET", "/healthz")  # answered even at the cap
        assert code == 200 and json.loads(body)["status"] == "ok"
        assert metrics.http.refused_total == 2 and metrics.http.evicted_total == 0
    finally:
        for v in viewers:
            v.close()
    wait_open(metrics, 0)
    assert request(server, "GET", "/snapshot.jpg")[0] == 200
    text = request(server, "GET", "/metrics")[2].decode()  # the counters are exposed
    assert "\nedgeface_http_connections_refused_total 2\n" in text
    assert "# TYPE edgeface_http_connections gauge" in text


def test_healthz_is_answered_while_half_sent_heads_fill_every_slot(make_server):
    """The issue's 530 clients at a smaller scale: 100 half-sent heads for a cap of 64 and an
    overflow lane of 16, each sent again as soon as the server closes it (before: the
    overflow lane was refilled within milliseconds of each 1 s timeout, and most probes got
    503 "too many connections"). The extra 20 are refused (raw 503) after a grace for their
    head, never given a slot by eviction."""
    import select

    server, latest, metrics = make_server(max_connections=64, header_timeout=5.0)
    feed(latest, metrics, 0)
    stop = threading.Event()
    socks: list[socket.socket] = []

    def half_sent() -> socket.socket:
        c = connect(server, 2.0)
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n")
        return c

    def attack():
        socks.extend(half_sent() for _ in range(100))
        while not stop.is_set():
            for c in select.select(socks, [], [], 0.05)[0]:  # answered or closed: again
                socks.remove(c)
                c.close()
                socks.append(half_sent())

    attacker = threading.Thread(target=attack, daemon=True)
    attacker.start()
    try:
        wait_open(metrics, 64)
        time.sleep(1.5)  # past the overflow lane's timeout: its 16 are refilled
        codes = [request(server, "GET", "/healthz", timeout=2)[0] for _ in range(20)]
        assert codes == [200] * 20, codes
        # only a newcomer whose head has arrived (a probe) evicts: the reconnecting
        # half-sent heads are refused instead of churning one another out (issue 23: 2,400
        # evictions a second took half a core)
        assert metrics.http.evicted_total <= 20 and metrics.http.refused_total > 0
        # the attackers keep the cap full; a replacement may be in flight at any instant
        # (63 was read once under emulation), so wait for the slot to be retaken
        wait_open(metrics, 64)
    finally:
        stop.set()
        attacker.join(5)
        for c in socks:
            c.close()


def test_healthz_answers_quickly_with_200_idle_sockets_and_two_threads(make_server):
    before = threading.active_count()
    server, latest, metrics = make_server()
    assert threading.active_count() - before == 2  # the event loop and the JPEG worker
    feed(latest, metrics, 0)
    idle = [connect(server) for _ in range(200)]
    try:
        for c in idle[:100]:  # half of them half-send a request (slowloris)
            c.sendall(b"GET /snapshot.jpg HTTP/1.1\r\nHost: t\r\n")
        deadline = time.monotonic() + 3
        while metrics.http.open_connections < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert metrics.http.open_connections == 200
        latencies = []
        for _ in range(10):
            t0 = time.monotonic()
            assert request(server, "GET", "/healthz")[0] == 200
            latencies.append(time.monotonic() - t0)
        assert max(latencies) < 0.5, latencies
        assert threading.active_count() - before == 2  # no thread per connection
    finally:
        for c in idle:
            c.close()


def test_half_sent_request_is_answered_408_and_closed_after_the_header_timeout(make_server):
    server, _, metrics = make_server(header_timeout=0.3, idle_timeout=0.6)
    with connect(server) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # never the blank line
        t0 = time.monotonic()
        assert read_response(c)[0] == 408
        assert 0.2 < time.monotonic() - t0 < 2
        assert c.recv(1024) == b""
    with connect(server) as c:  # an idle kept-alive connection is closed after idle_timeout
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(c)
        t0 = time.monotonic()
        assert c.recv(1024) == b""
        assert 0.4 < time.monotonic() - t0 < 2
    assert metrics.http.timeouts_total == 2


def open_stream(sock):
    """Request the stream: (status, file positioned at the first part)."""
    sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: t\r\n\r\n")
    f = sock.makefile("rb")
    status = int(f.readline().split()[1])
    while f.readline() not in (b"\r\n", b""):
        pass
    return status, f


def test_a_stalled_viewer_is_dropped_and_a_new_viewer_gets_the_stream(make_server):
    server, latest, metrics = make_server(max_streams=1, write_timeout=0.5)
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)  # ~300 KB JPEG
    feed(latest, metrics, 0, noise)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
    stalled.connect((server.host, server.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: t\r\n\r\n")
    try:
        deadline = time.monotonic() + 4
        got = None
        i = 1
        while time.monotonic() < deadline and got != 200:
            for _ in range(5):
                feed(latest, metrics, i, noise)
                i += 1
                time.sleep(0.02)
            with connect(server) as viewer:
                got, f = open_stream(viewer)
                if got == 200:
                    feed(latest, metrics, i, noise)
                    assert f.readline() == b"--edgefaceframe\r\n"
                f.close()
        assert got == 200, "a new viewer never got the stream"
        assert metrics.http.slow_dropped_total >= 1
    finally:
        stalled.close()


def test_twenty_concurrent_snapshots_cost_one_encode_per_frame(make_server):
    server, latest, metrics = make_server()
    bodies = []
    def client(barrier, got):
        barrier.wait()
        got.append(request(server, "GET", "/snapshot.jpg"))

    for frame in range(3):
        feed(latest, metrics, frame)
        barrier, got = threading.Barrier(20), []
        threads = [threading.Thread(target=client, args=(barrier, got)) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert [g[0] for g in got] == [200] * 20
        assert len({g[2] for g in got}) == 1  # every client got the same bytes
        bodies.append(got[0][2])
        assert latest.encodes == metrics.http.jpeg_encodes_total == frame + 1
    assert len(set(bodies)) == 3


def test_jpeg_rate_cap_serves_a_recent_encode(make_server):
    server, latest, metrics = make_server(jpeg_max_fps=2)
    for i in range(10):
        feed(latest, metrics, i)
        assert request(server, "GET", "/snapshot.jpg")[0] == 200
    assert latest.encodes == 1  # ten frames inside 0.5 s: one encode serves them all


def test_request_budget_queues_then_refuses_and_never_delays_healthz(make_server):
    server, latest, metrics = make_server(snapshot_max_rate=20, max_queue_wait=0.3)
    feed(latest, metrics, 0)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        request(server, "GET", "/snapshot.jpg")[:2])) for _ in range(40)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    code, _, _ = request(server, "GET", "/healthz")
    assert code == 200 and time.monotonic() - t0 < 0.3  # not queued behind the snapshots
    for t in threads:
        t.join(5)
    codes = [r[0] for r in results]
    # 0.5 s of idle credit (10) plus a 0.3 s queue (6) are served; the rest are told to retry
    assert 12 <= codes.count(200) <= 20 and codes.count(503) == 40 - codes.count(200)
    assert all(h["retry-after"] == "1" for c, h in results if c == 503)
    assert time.monotonic() - t0 < 2


def test_close_with_busy_clients_is_prompt_and_joins_its_threads(make_server):
    server, latest, metrics = make_server(max_streams=4)
    feed(latest, metrics, 0)
    stop = threading.Event()
    errors = []

    def snapshots():
        while not stop.is_set():
            try:
                request(server, "GET", "/snapshot.jpg", timeout=2)
            except OSError:
                pass
            except Exception as exc:  # a malformed response
                errors.append(exc)

    def frames():
        i = 1
        while not stop.is_set():
            feed(latest, metrics, i)
            i += 1
            time.sleep(0.005)

    workers = [threading.Thread(target=snapshots) for _ in range(8)]
    workers.append(threading.Thread(target=frames))
    viewers = [connect(server) for _ in range(3)]
    for v in viewers:
        v.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: t\r\n\r\n")
    idle = [connect(server) for _ in range(20)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.5)
        assert metrics.http.stream_clients == 3
        t0 = time.monotonic()
        server.close()
        assert time.monotonic() - t0 < 2
        names = {t.name for t in threading.enumerate()}
        assert not names & {"http", "http-jpeg"}
        for v in viewers[:2]:  # viewers that read get a clean end of stream
            v.settimeout(3)
            while v.recv(1 << 16):
                pass
        with pytest.raises(OSError):
            connect(server, timeout=1)
    finally:
        stop.set()
        for w in workers:
            w.join(5)
        for s in viewers + idle:
            s.close()
    assert not errors, errors[:3]


def test_handlers_read_bounded_request_bodies(make_server):
    """The API later endpoints (POST /detect) build on: Content-Length required, chunked
    refused, 413 before reading, 408 when the body stalls, HttpError as JSON."""
    server, _, _ = make_server(body_timeout=0.3, max_body_bytes=1000)

    async def echo(req):
        data = await req.body(max_bytes=100)
        if data == b"teapot":
            raise HttpError(418, "short and stout")
        return Response(200, data, "application/octet-stream")

    server.router.add("POST", "/echo", echo)
    post = b"POST /echo HTTP/1.1\r\nHost: t\r\n"
    with connect(server) as c:  # kept alive after a body that was read
        for _ in range(2):
            c.sendall(post + b"Content-Length: 5\r\n\r\nhello")
            code, _, body = read_response(c)
            assert (code, body) == (200, b"hello")
    for req, status in ((post + b"\r\n", 411),
                        (post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411),
                        (post + b"Content-Length: 101\r\n\r\n", 413),
                        (post + b"Content-Length: x\r\n\r\n", 400),
                        (post + b"Content-Length: 6\r\n\r\nteapot", 418),
                        (post + b"Content-Length: 10\r\n\r\nhal", 408)):
        with connect(server) as c:
            c.sendall(req)
            code, _, body = read_response(c)
            assert code == status, (req, code, body)
            assert json.loads(body)["status"] == status


@pytest.mark.parametrize("sec", [0, 784111777, 951782400, 1e9 + 12345, 1764253011, 4102444799])
def test_date_header_is_imf_fixdate_as_the_stdlib_writes_it(sec):
    import email.utils

    assert http_date(sec) == email.utils.formatdate(int(sec), usegmt=True)
