"""Webhook output against a real HTTP server on loopback: delivery, the bearer token, retries
on 5xx with backoff, timeouts, no redirects, the bounded queue."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from event_fakes import event, lifecycle, make_track, wait_until, with_events

from edgeface.errors import ConfigError
from edgeface.runtime.config import validate
from edgeface.runtime.sinks.webhook import WebhookSink, check_url, redact_url


class Endpoint:
    """A loopback server answering from a script: each request takes the next status (the
    last one repeats); ``delay`` seconds before answering; ``gate`` holds answers."""

    def __init__(self, statuses=(200,), delay=0.0):
        self.statuses, self.delay = list(statuses), delay
        self.requests: list[tuple[str, dict, bytes]] = []
        self.gate = threading.Event()
        self.gate.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), body))
                outer.gate.wait(10)
                time.sleep(outer.delay)
                status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                self.send_response(status)
                if status in (301, 302, 307):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?key=abc"

    def bodies(self):
        return [json.loads(b) for _, _, b in self.requests]

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    made = []

    def make(*a, **kw):
        made.append(Endpoint(*a, **kw))
        return made[-1]

    yield make
    for e in made:
        e.close()


def sink_for(url, **kw):
    kw.setdefault("backoff", 0.05)
    kw.setdefault("device", "door")
    return WebhookSink(url, **kw)


def test_events_are_posted_as_json_with_the_token(endpoint):
    ep = endpoint()
    sink = sink_for(ep.url, token="t0ken")
    for r in lifecycle(5):
        sink.write(r)
    assert wait_until(lambda: sink.sent == 3)
    sink.close()
    assert [b["type"] for b in ep.bodies()] == ["start", "update", "end"]
    end = ep.bodies()[2]
    assert end["track_id"] == 5 and end["device"] == "door" and len(end["landmarks"]) == 5
    path, headers, _ = ep.requests[0]
    assert path == "/hook?key=abc"
    assert headers["Authorization"] == "Bearer t0ken"
    assert headers["Content-Type"] == "application/json"
    assert sink.describe() == (f"webhook POST http://127.0.0.1:{ep.server.server_address[1]}"
                               "/hook?... (bearer token)")
    assert "t0ken" not in sink.describe() and "abc" not in sink.describe()


def test_a_server_error_is_retried_with_backoff(endpoint):
    ep = endpoint(statuses=(500, 503, 200))
    sink = sink_for(ep.url, retries=3)
    t = time.monotonic()
    sink.write(with_events([event("start", make_track(1))]))
    assert wait_until(lambda: sink.sent == 1)
    took = time.monotonic() - t
    sink.close()
    assert len(ep.requests) == 3 and sink.retried == 2 and sink.failed == 0
    assert took >= 0.05 + 0.1  # waited 0.05 s, then 0.1 s


def test_retries_are_limited_and_client_errors_are_not_retried(endpoint):
    ep = endpoint(statuses=(500,))
    sink = sink_for(ep.url, retries=2)
    sink.write(with_events([event("start", make_track(1))]))
    assert wait_until(lambda: sink.failed == 1)
    assert len(ep.requests) == 3 and sink.dropped == 1 and sink.last_error == "HTTP 500"
    ep.statuses = [404]
    sink.write(with_events([event("end", make_track(1))]))
    assert wait_until(lambda: sink.failed == 2)
    assert len(ep.requests) == 4  # no retry
    sink.close()


def test_a_redirect_is_not_followed(endpoint):
    ep = endpoint(statuses=(302,))
    sink = sink_for(ep.url, token="t0ken")
    sink.write(with_events([event("start", make_track(1))]))
    assert wait_until(lambda: sink.failed == 1)
    sink.close()
    assert len(ep.requests) == 1 and sink.last_error == "HTTP 302"


def test_a_slow_server_times_out_and_is_retried(endpoint):
    ep = endpoint(delay=0.5)
    sink = sink_for(ep.url, timeout=0.2, retries=1)
    t = time.monotonic()
    sink.write(with_events([event("start", make_track(1))]))
    assert wait_until(lambda: sink.failed == 1)
    assert time.monotonic() - t < 1.5 and len(ep.requests) == 2
    assert "timed out" in sink.last_error
    sink.close()


def test_the_queue_is_bounded_and_write_never_waits(endpoint):
    ep = endpoint()
    ep.gate.clear()  # the server holds every answer
    sink = sink_for(ep.url, queue_size=5, timeout=5.0, close_timeout=0.2)
    track = make_track(1)
    sink.write(with_events([event("start", track)]))
    assert wait_until(lambda: len(ep.requests) == 1)  # in flight
    t = time.perf_counter()
    for i in range(20):
        sink.write(with_events([event("update", track)], i))
    assert time.perf_counter() - t < 0.05
    assert sink.stats()["queued"] == 5 and sink.stats()["dropped"] == 15
    t = time.monotonic()
    sink.close()  # bounded, though the request in flight is stuck
    assert time.monotonic() - t < 1.0
    assert sink.dropped == 20  # 15 refused, 5 still queued at close


def test_an_unreachable_endpoint_is_counted_not_raised():
    from mosquitto import free_port

    sink = sink_for(f"http://127.0.0.1:{free_port()}/", retries=1, timeout=0.5)
    sink.write(with_events([event("start", make_track(1))]))
    assert wait_until(lambda: sink.failed == 1)
    assert "refused" in sink.last_error.lower()
    sink.close()


@pytest.mark.parametrize("url, match", [
    ("ftp://host/x", "http:// or https://"), ("http://user:pw@host/", "EDGEFACE_WEBHOOK_TOKEN"),
    ("http://host:99999/", "invalid URL"), ("hooks.example.com", "http:// or https://")])
def test_bad_urls(url, match):
    with pytest.raises(ConfigError, match=match):
        check_url("webhook", url)


def test_settings_and_redaction():
    cfg = validate({"outputs": {"webhook": "https://h.example/x", "webhook_timeout": 2,
                                "webhook_retries": 0, "webhook_queue": 10}})
    assert cfg["outputs"]["webhook_retries"] == 0
    assert redact_url("https://u@h.example:8443/p?token=s") == "https://h.example:8443/p?..."


def test_an_endpoint_trickling_its_answer_meets_a_total_deadline(caplog):
    """Headers one byte every 0.2 s: never a per-read timeout, yet the request ends at the
    deadline, is retried, and the drop is one warning."""
    import logging
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()
    accepted = []

    def trickle(conn):
        with conn:
            conn.recv(65536)
            try:
                for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10000:
                    if stop.wait(0.2):
                        return
                    conn.sendall(bytes([b]))
            except OSError:
                return

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(time.monotonic())
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    sink = sink_for(f"http://127.0.0.1:{srv.getsockname()[1]}/hook", timeout=1.0, retries=1)
    try:
        with caplog.at_level(logging.WARNING, logger="edgeface.runtime.sinks.webhook"):
            t0 = time.monotonic()
            sink.write(with_events([event("start", make_track(1))]))
            assert wait_until(lambda: sink.failed == 1, 8), sink.stats()
            took = time.monotonic() - t0
        assert 2.0 <= took < 4.0, took  # two attempts of 1 s each, plus the backoff
        assert len(accepted) == 2 and sink.retried == 1
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 1 and "no complete answer within 1 s" in warned[0], warned
    finally:
        stop.set()
        srv.close()
        sink.close()
