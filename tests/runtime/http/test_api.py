"""POST /detect over real HTTP on loopback (issue 15): batches, formats checked by content,
declared sizes checked before decoding, body limits, malformed input, the token, rate
limits, the bounded queue; the server in-process with the tiny synthetic model."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
from runtime_fakes import tiny_onnx

from edgeface.frames import Detections, Timing
from edgeface.http.auth import COOKIE, TokenAuth
from edgeface.http.feed import EventFeed
from edgeface.http.latest import LatestSink
from edgeface.http.server import StatusServer
from edgeface.inference.detector import Detector
from edgeface.runtime.metrics import Metrics

TOKEN = "t0k3n-for-the-tests-0123456789"


def image(ext: str, size=(160, 120), square=True) -> bytes:
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    if square:
        img[20:60, 30:70] = 255
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def multipart(files: list[tuple[str, bytes]], boundary: str = "b0uNd4ry-xyz") -> tuple[str, bytes]:
    body = b""
    for name, data in files:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
                 f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                 ).encode() + data + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", body + f"--{boundary}--\r\n".encode()


def request(server, method, path, body=None, headers=None, conn=None):
    """(status, headers, parsed JSON or bytes); ``conn`` to reuse a connection."""
    c = conn or http.client.HTTPConnection(server.host, server.port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    if r.getheader("Content-Type", "").startswith("application/json"):
        data = json.loads(data)
    return r.status, r.headers, data


def post(server, body, content_type="image/jpeg", **headers):
    return request(server, "POST", "/detect", body, {"Content-Type": content_type, **headers})


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("api") / "tiny.onnx")


def test_batch_of_three_formats_gives_one_record_each_in_order(serve, model):
    server = serve()
    files = [("a.jpg", image(".jpg")), ("b.png", image(".png", (200, 100))),
             ("c.bmp", image(".bmp", (64, 64), square=False))]
    status, _, body = post(server, *reversed(multipart(files)))
    assert status == 200, body
    records = body["results"]
    assert [r["image"] for r in records] == ["a.jpg", "b.png", "c.bmp"]
    assert [(r["width"], r["height"]) for r in records] == [(160, 120), (200, 100), (64, 64)]
    assert [r["frame"] for r in records] == [0, 1, 2]
    assert set(records[0]) == {"ts", "frame", "width", "height", "latency_ms", "faces", "image"}
    # The same detector on the decoded file gives the same faces (the record's schema is
    # FrameResult.to_record; equality with `edgeface detect` itself: test_api_cli.py).
    detector = Detector.open(model, threads=1)
    dets, _ = detector.detect_timed(cv2.imdecode(np.frombuffer(files[0][1], np.uint8), 1))
    assert records[0]["faces"] == dets.to_list() and records[0]["faces"]
    assert records[2]["faces"] == []  # black: no bright square, no "face"


def test_raw_body_is_one_image_named_body_whatever_its_content_type(serve):
    server = serve()
    for ctype in ("image/png", "application/octet-stream", "text/plain"):
        status, _, body = post(server, image(".png"), ctype)
        assert status == 200 and [r["image"] for r in body["results"]] == ["body"]


def test_nine_images_is_400_and_eight_are_fine(serve):
    server = serve()
    jpg = image(".jpg", (32, 32))
    status, _, body = post(server, *reversed(multipart([(f"{i}.jpg", jpg) for i in range(9)])))
    assert status == 400 and "more than 8 parts" in body["detail"]
    assert set(body) >= {"error", "detail", "status"}
    status, _, body = post(server, *reversed(multipart([(f"{i}.jpg", jpg) for i in range(8)])))
    assert status == 200 and len(body["results"]) == 8


@pytest.mark.parametrize("data, what", [
    (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04", "not a JPEG"),
    (None, "WEBP is not accepted"),
    (b"hello, I am text", "not a JPEG"),
])
def test_wrong_format_is_415_whatever_the_content_type_says(serve, data, what):
    server = serve()
    if data is None:
        data = image(".webp")
    for ctype in ("image/jpeg", "application/octet-stream"):
        status, _, body = post(server, data, ctype)
        assert status == 415 and what in body["detail"], body
    status, _, body = post(server, *reversed(multipart([("ok.jpg", image(".jpg")),
                                                        ("x.gif", data)])))
    assert status == 415 and "x.gif" in body["detail"]


def test_oversized_body_is_413_before_it_is_read(serve):
    server = serve()
    c = http.client.HTTPConnection(server.host, server.port, timeout=5)
    c.putrequest("POST", "/detect")
    c.putheader("Content-Type", "image/jpeg")
    c.putheader("Content-Length", str((8 << 20) + 1))
    c.endheaders()  # and not one byte of the body: the answer must come anyway
    r = c.getresponse()
    body = json.loads(r.read())
    assert r.status == 413 and body["error"].startswith("request body over")
    c.close()


def test_pixel_bomb_is_refused_from_its_header_without_decoding(serve):
    server = serve()
    bomb = png_header_only(20000, 20000)  # 45 bytes declaring 400 Mpx (1.2 GB decoded)
    assert len(bomb) < 64
    t0 = time.perf_counter()
    status, _, body = post(server, bomb, "image/png")
    assert status == 413 and "20000x20000" in body["detail"], body
    assert time.perf_counter() - t0 < 2
    assert server.api.worker.done == 0 and server.api.images == 0  # never queued


def test_truncated_image_and_bad_multipart_are_400(serve):
    server = serve()
    jpg = image(".jpg")
    status, _, body = post(server, jpg[: len(jpg) // 2])
    assert status == 400 and body["error"] == "bad image"
    ctype, mp = multipart([("a.jpg", jpg)])
    for bad_type, bad in ((ctype, mp[:-20]),  # no closing delimiter
                          ("multipart/form-data", mp),  # no boundary
                          (ctype.replace("b0uNd4ry", "other"), mp)):
        status, _, body = post(server, bad, bad_type)
        assert status == 400 and body["error"] == "bad multipart body", (bad_type, body)
    assert post(server, b"", "image/jpeg")[0] == 400


def test_no_content_length_is_411(serve):
    server = serve()
    for head in (b"Transfer-Encoding: chunked\r\n", b""):  # chunked, or no length at all
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(b"POST /detect HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
                      + head + b"\r\n")
            r = http.client.HTTPResponse(s)
            r.begin()
            assert r.status == 411 and "detail" in json.loads(r.read())


def test_token_required_when_set(serve):
    server = serve(token=TOKEN)
    jpg = image(".jpg")
    status, headers, body = post(server, jpg)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"] == "unauthorized" and TOKEN not in json.dumps(body)
    assert post(server, jpg, Authorization="Bearer " + TOKEN[:-1] + "x")[0] == 401
    assert post(server, jpg, Authorization="Basic " + TOKEN)[0] == 401
    status, _, body = post(server, jpg, Authorization="Bearer " + TOKEN)
    assert status == 200 and body["results"]
    assert request(server, "GET", "/healthz")[0] == 200  # monitors need no token
    for path in ("/status", "/metrics", "/openapi.json"):
        assert request(server, "GET", path)[0] == 401, path
        assert request(server, "GET", path, headers={"Authorization": f"Bearer {TOKEN}"}
                       )[0] == 200, path


def test_page_token_sets_a_cookie_that_lets_the_page_in(serve):
    server = serve(token=TOKEN)
    status, _, page = request(server, "GET", "/")
    assert status == 401 and b"Token required" in page
    assert request(server, "GET", "/?token=wrong-token-wrong-token")[0] == 401
    status, headers, _ = request(server, "GET", f"/?token={TOKEN}")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    value = cookie.split(";")[0]
    assert value.startswith(COOKIE + "=")
    status, headers, page = request(server, "GET", "/", headers={"Cookie": value})
    assert status == 200 and b"/stream.mjpg" in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, _, body = request(server, "GET", "/status", headers={"Cookie": "a=b; " + value})
    assert status == 200 and body["camera"] is False
    assert post(server, image(".jpg"), Cookie=value)[0] == 200
    assert request(server, "GET", "/status", headers={"Cookie": value + "x"})[0] == 401


def test_a_server_beyond_loopback_refuses_to_start_without_a_token(model):
    from edgeface.errors import ConfigError

    with pytest.raises(ConfigError, match="EDGEFACE_API_TOKEN"):
        StatusServer(LatestSink(), Metrics(), "0.0.0.0", 0, auth=TokenAuth(None))
    with pytest.raises(ConfigError, match="at least 16"):
        TokenAuth("short")
    server = StatusServer(LatestSink(), Metrics(), "0.0.0.0", 0, auth=TokenAuth(TOKEN)).start()
    server.close()


def test_rate_limit_is_429_with_retry_after_and_the_connection_lives_on(serve):
    server = serve(client_rate=0.5, client_burst=2)
    jpg = image(".jpg")
    c = http.client.HTTPConnection(server.host, server.port, timeout=5)
    codes = [request(server, "POST", "/detect", jpg, {"Content-Type": "image/jpeg"},
                     conn=c)[0] for _ in range(2)]
    status, headers, body = request(server, "POST", "/detect", jpg,
                                    {"Content-Type": "image/jpeg"}, conn=c)
    assert codes == [200, 200] and status == 429, body
    assert int(headers["Retry-After"]) >= 1 and body["error"] == "too many requests"
    # The refused body was read off the wire: the same connection carries the next request.
    assert request(server, "GET", "/healthz", conn=c)[0] == 200
    c.close()


def test_global_rate_limit_covers_all_clients(serve):
    server = serve(client_rate=100, client_burst=100, global_rate=0.5, global_burst=1)
    jpg = image(".jpg")
    assert post(server, jpg)[0] == 200
    assert post(server, jpg)[0] == 429
    assert server.api.limiter.limited_global == 1


class BlockingDetector:
    """A FaceDetector whose inference waits for ``release``."""

    input_size = (64, 64)

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()

    def prepare(self, image, frame_size=None):
        return image

    def detect_prepared(self, prepared, preprocess_s=0.0):
        self.entered.set()
        self.release.wait(10)
        empty = np.zeros((0, 4), np.float32)
        return Detections(empty, np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)), \
            Timing(0.0, 0.0, 0.0)


def test_queue_full_is_503_and_a_waiting_request_gives_up_in_bounded_time(serve):
    detector = BlockingDetector()
    server = serve(detector=detector, queue_requests=2, queue_timeout=0.5)
    jpg = image(".jpg")
    first: list = []
    runner = threading.Thread(target=lambda: first.append(post(server, jpg)))
    runner.start()
    assert detector.entered.wait(5)  # the worker is busy with the first request
    t0 = time.monotonic()
    status, _, body = post(server, jpg)  # admitted, but never started: gives up
    assert status == 503 and "not started within" in body["detail"]
    assert 0.4 < time.monotonic() - t0 < 3
    results: list = []
    waiting = threading.Thread(target=lambda: results.append(post(server, jpg)))
    waiting.start()
    time.sleep(0.2)  # admitted and queued: the queue (2) is full now
    status, headers, body = post(server, jpg)
    assert status == 503 and body["error"] == "busy" and int(headers["Retry-After"]) >= 1
    detector.release.set()
    runner.join(10)
    waiting.join(10)
    assert first[0][0] == 200
    assert server.api.worker.refused_full == 1 and server.api.worker.timed_out >= 1


def test_status_and_metrics_count_the_api(serve):
    server = serve()
    post(server, image(".jpg"))
    post(server, b"text", "text/plain")
    _, _, status = request(server, "GET", "/status")
    assert status["api"]["done"] == 1 and status["api"]["responses_415"] == 1
    assert status["rss_mb"] > 0 and "soc_c" in status
    _, _, text = request(server, "GET", "/metrics")
    assert b"edgeface_api_done_total 1" in text and b"edgeface_api_queued 0" in text


def test_camera_paths_exist_only_with_a_camera(serve, model):
    assert request(serve(), "GET", "/stream.mjpg")[0] == 404
    from runtime_fakes import make_result

    from edgeface.frames import Track, TrackEvent

    feed = EventFeed(size=3)
    server = serve(camera=True, feed=feed)
    result = make_result(0)
    box = np.array([10, 20, 50, 70], np.float32)
    track = Track(7, box, 0.9, np.zeros((5, 2), np.float32), 1.0, 1.0, best_image=
                  result.frame.image, best_box=box)
    for i in range(5):
        result.events = [TrackEvent("start" if i == 0 else "update", track, 1.0 + i)]
        feed.add(result)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(e["crop"] for e in feed.events()):
        time.sleep(0.02)
    status, _, events = request(server, "GET", "/events")
    assert status == 200 and [e["n"] for e in events] == [5, 4, 3]  # newest first, 3 kept
    assert events[0]["track_id"] == 7 and events[-1]["type"] == "update"
    status, headers, jpg = request(server, "GET", events[0]["crop"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(jpg, np.uint8), 1) is not None
    assert request(server, "GET", "/events/1.jpg")[0] == 404  # dropped from the feed
    assert request(server, "GET", "/events/x.jpg")[0] == 404
    feed.close()
