"""The device's HTTP endpoints (127.0.0.1, ephemeral port) and the Prometheus exposition."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from runtime_fakes import make_result

from edgeface.errors import ConfigError
from edgeface.http.latest import LatestSink
from edgeface.http.limits import HttpLimits
from edgeface.http.server import StatusServer, parse_bind
from edgeface.runtime.metrics import LATENCY_BUCKETS, Metrics


@pytest.fixture
def served():
    latest, metrics = LatestSink(), Metrics()
    metrics.memory_limit = 512 << 20
    server = StatusServer(latest, metrics, "127.0.0.1", 0,
                          limits=HttpLimits(max_streams=1, stream_max_fps=0),
                          stale_after=5).start()
    yield server, latest, metrics
    server.close()


def get(server, path, timeout=5):
    try:
        with urllib.request.urlopen(server.url + path, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def feed(latest, metrics, i, faces=2, latency=0.0115):
    latest.write(make_result(i, n_faces=faces))
    metrics.observe(latency, faces, {"inference": 0.01})
    metrics.set_rss(80 << 20)


def test_endpoints_before_and_after_frames(served):
    server, latest, metrics = served
    assert server.host == "127.0.0.1" and server.port > 0
    code, _, body = get(server, "/healthz")
    assert code == 503 and json.loads(body)["status"] == "starting"
    assert get(server, "/detections")[0] == 503
    assert get(server, "/snapshot.jpg")[0] == 503
    feed(latest, metrics, 0)
    feed(latest, metrics, 1, faces=1, latency=0.2)
    code, _, body = get(server, "/healthz")
    assert code == 200 and json.loads(body)["frames"] == 2
    code, headers, body = get(server, "/detections")
    rec = json.loads(body)
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert rec["frame"] == 1 and len(rec["faces"]) == 1
    code, headers, body = get(server, "/snapshot.jpg")
    assert code == 200 and headers["Content-Type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    assert get(server, "/nope")[0] == 404
    assert b"/stream.mjpg" in get(server, "/")[2]


def test_healthz_reports_a_stalled_pipeline(served):
    server, latest, metrics = served
    feed(latest, metrics, 0)
    metrics.last_frame_time -= 60
    code, _, body = get(server, "/healthz")
    assert code == 503 and json.loads(body)["status"] == "stalled"


def parse_prometheus(text):
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            m = re.fullmatch(r'([a-z_]+)(\{[^}]*\})? (\S+)', line)
            assert m, f"malformed sample line: {line!r}"
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples, types


def test_metrics_prometheus_text(served):
    server, latest, metrics = served
    feed(latest, metrics, 0, faces=2, latency=0.0115)
    feed(latest, metrics, 1, faces=1, latency=0.2)
    feed(latest, metrics, 2, faces=0, latency=5.0)
    metrics.set_source_counters(dropped=7, corrupt=1, reconnects=2)
    code, headers, body = get(server, "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    s, types = parse_prometheus(body.decode())
    assert s["edgeface_frames_total"] == 3 and s["edgeface_faces_total"] == 3
    assert s["edgeface_dropped_frames_total"] == 7 and s["edgeface_corrupt_frames_total"] == 1
    assert s["edgeface_source_reconnects_total"] == 2
    assert s["edgeface_resident_memory_bytes"] == 80 << 20
    assert s["edgeface_memory_limit_bytes"] == 512 << 20
    assert types["edgeface_latency_seconds"] == "histogram"
    assert types["edgeface_frames_total"] == "counter"
    buckets = [s[f'edgeface_latency_seconds_bucket{{le="{b}"}}'] for b in LATENCY_BUCKETS]
    assert buckets == sorted(buckets)  # cumulative
    assert s['edgeface_latency_seconds_bucket{le="0.015"}'] == 1
    assert s['edgeface_latency_seconds_bucket{le="0.2"}'] == 2
    assert s['edgeface_latency_seconds_bucket{le="2.0"}'] == 2
    assert s['edgeface_latency_seconds_bucket{le="+Inf"}'] == 3
    assert s["edgeface_latency_seconds_count"] == 3
    assert s["edgeface_latency_seconds_sum"] == pytest.approx(5.2115)
    assert s['edgeface_stage_seconds_total{stage="inference"}'] == pytest.approx(0.03)


def read_part(f):
    """One multipart part: headers then exactly Content-Length bytes of JPEG."""
    headers = {}
    while True:
        line = f.readline()
        assert line, "stream ended"
        line = line.strip()
        if line.startswith(b"--"):
            continue
        if not line:
            if headers:
                break
            continue
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    return headers, f.read(int(headers["content-length"]))


def test_mjpeg_stream(served):
    server, latest, metrics = served
    feed(latest, metrics, 0)
    with urllib.request.urlopen(server.url + "/stream.mjpg", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        headers, jpg = read_part(r)
        assert headers["content-type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR) is not None
        # One stream slot: a second watcher is turned away instead of costing CPU.
        assert get(server, "/stream.mjpg")[0] == 503
        feed(latest, metrics, 1)  # a new frame is pushed to the watcher
        _, jpg2 = read_part(r)
        assert jpg2 != jpg
    # The slot is released once the client goes away (the server notices on its next write).
    feed(latest, metrics, 2)
    for i in range(3, 50):
        with socket.create_connection((server.host, server.port), timeout=5) as c:
            c.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            status = c.recv(64)
        if b" 200 " in status:
            break
        feed(latest, metrics, i)
    assert b" 200 " in status


def test_close_ends_streams_promptly(served):
    server, latest, metrics = served
    feed(latest, metrics, 0)
    r = urllib.request.urlopen(server.url + "/stream.mjpg", timeout=5)
    read_part(r)
    server.close()
    assert r.read() is not None  # returns (EOF) instead of hanging
    r.close()


@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)), (":9000", ("127.0.0.1", 9000)),
    ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:8080", ("::1", 8080)), (8081, ("127.0.0.1", 8081)),
])
def test_parse_bind(text, expected):
    assert parse_bind(text) == expected


@pytest.mark.parametrize("text", ["http", "localhost:http", "1.2.3.4:70000"])
def test_parse_bind_rejects(text):
    with pytest.raises(ConfigError):
        parse_bind(text)


def test_port_in_use_is_a_clear_error(served):
    server, latest, metrics = served
    from edgeface.errors import EdgefaceError

    with pytest.raises(EdgefaceError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        StatusServer(latest, metrics, "127.0.0.1", server.port)


def test_status_line_and_percentiles():
    m = Metrics()
    assert np.isnan(m.percentiles(50)[0])
    for i in range(100):
        m.observe((i + 1) / 1000, 1, now=i * 0.1)
    p50, p95 = m.percentiles(50, 95)
    assert p50 == pytest.approx(0.0505) and p95 == pytest.approx(0.09505)
    assert m.fps(now=9.9) == pytest.approx(10.0)
    line = m.status_line(now=9.9)
    assert "10.0 fps" in line and "p50 50.5 ms" in line and "p95 95.0 ms" in line
    # An outage: no frame for longer than 2 s (and 3 frame intervals) reads 0 fps.
    assert m.fps(now=9.9 + 2.5) == 0.0 and m.status_line(now=12.5).lstrip().startswith("0.0 fps")


def test_gated_frames_count_but_record_no_latency():
    m = Metrics()
    for i in range(10):
        m.observe(0.02, 1, now=i * 0.1, detected=i % 2 == 0)
    assert m.frames == 10 and m.gated == 5 and m.faces == 5
    assert m.fps(now=0.9) == pytest.approx(10.0)
    assert m.percentiles(50)[0] == pytest.approx(0.02)
    text = m.prometheus()
    assert "edgeface_gated_frames_total 5" in text
    assert "edgeface_latency_seconds_count 5" in text
