"""Slow uploads to POST /detect (issue 23, class 4), real sockets on loopback: a body that
is still arriving holds no place in the API's queue, a body slower than the minimum rate is
cut with 408 after the grace, and the bytes of bodies arriving at once are bounded."""

from __future__ import annotations

import functools
import http.client
import json
import socket
import time

import cv2
import numpy as np
import pytest
from runtime_fakes import tiny_onnx


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("uploads") / "tiny.onnx")


@pytest.fixture
def serve(serve):
    """The shared factory (tests/conftest.py) with a short grace and a 8 KB/s minimum rate:
    the cut comes in a second, not the server's default five."""
    return functools.partial(serve, body_grace=1.0, body_min_rate=8 * 1024)


def jpeg() -> bytes:
    img = np.zeros((120, 160, 3), np.uint8)
    img[20:60, 30:70] = 255
    return cv2.imencode(".jpg", img)[1].tobytes()


def post(server, body: bytes) -> int:
    c = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        c.request("POST", "/detect", body, {"Content-Type": "image/jpeg"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def start_upload(server, length: int, first: bytes) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=10)
    s.sendall(b"POST /detect HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
              b"Content-Length: %d\r\n\r\n" % length + first)
    return s


def answer(s: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += s.recv(65536)
    return int(head.split()[1]), json.loads(body)


def test_slow_uploads_hold_no_place_and_are_cut_after_the_grace(serve):
    server = serve(queue_requests=2, body_grace=1.0)
    slow = [start_upload(server, 100_000, b"\xff") for _ in range(5)]  # 1 byte, then stall
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        assert [post(server, jpeg()) for _ in range(3)] == [200] * 3  # before: 503 busy
        assert time.monotonic() - t0 < 1.0  # the slow ones were still arriving
        for s in slow:
            status, body = answer(s)
            assert status == 408 and "1 of 100000 bytes" in body["detail"], body
        assert time.monotonic() - t0 < 3.0  # the grace (1 s), not the body timeout (30 s)
    finally:
        for s in slow:
            s.close()
    stats = server.api.stats()
    assert stats["responses_408"] == 5 and stats["uploading_bytes"] == 0


def test_a_slow_but_steady_upload_is_served(serve):
    server = serve(body_grace=0.5, body_min_rate=8 * 1024)
    data = jpeg() + b"\0" * (30_000 - len(jpeg()))  # JPEG decoders ignore trailing bytes
    s = start_upload(server, len(data), b"")
    try:
        for i in range(0, len(data), 3000):  # 30 KB/s in 3 KB steps, for 1 s
            s.sendall(data[i:i + 3000])
            time.sleep(0.1)
        assert answer(s)[0] == 200
    finally:
        s.close()


def test_bodies_arriving_at_once_are_bounded_in_bytes(serve):
    server = serve(upload_bytes=100_000, body_grace=10.0)
    first = start_upload(server, 90_000, b"\xff" * 60_000)  # 60 KB in, then it waits
    second = start_upload(server, 90_000, b"\xff" * 60_000)
    try:
        status, body = answer(second)  # past 100 KB held: refused, its connection closed
        assert status == 503 and "arriving at once" in body["detail"]
        assert second.recv(1) == b""
        assert server.api.uploads.used == 60_000  # the first's bytes, the second's given back
        first.sendall(b"\xff" * 30_000)
        assert answer(first)[0] == 415  # whole: admitted, then judged (not an image)
        assert server.api.uploads.used == 0
    finally:
        first.close()
        second.close()
