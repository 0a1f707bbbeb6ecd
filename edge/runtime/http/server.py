"""A small HTTP server for a running device (stdlib only).

``/`` a page showing the stream, ``/stream.mjpg`` annotated frames as MJPEG, ``/snapshot.jpg``
the latest annotated frame, ``/detections`` the latest result as JSON, ``/healthz`` 200 while
frames are flowing (503 before the first frame or when stalled), ``/metrics`` Prometheus text.
It binds 127.0.0.1 unless told otherwise: put a reverse proxy in front to expose it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from edgeface.errors import ConfigError, EdgefaceError
from edgeface.runtime.http.latest import LatestSink
from edgeface.runtime.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_BOUNDARY = "edgefaceframe"
_INDEX = b"""<!doctype html><html><head><title>edgeface</title></head>
<body style="margin:0;background:#111;color:#ddd;font-family:sans-serif">
<img src="/stream.mjpg" style="max-width:100%"><p style="padding:0 1em">
<a href="/detections">detections</a> | <a href="/metrics">metrics</a> |
<a href="/healthz">healthz</a></p></body></html>"""


def parse_bind(text: str | int) -> tuple[str, int]:
    """``8080``, ``:8080``, ``0.0.0.0:8080`` or ``[::1]:8080`` -> (host, port)."""
    s = str(text).strip()
    host, _, port = s.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(f"invalid HTTP address {s!r}: expected [HOST:]PORT") from None
    if not 0 <= p <= 65535:
        raise ConfigError(f"invalid HTTP port {p}")
    return host, p


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):  # a client went away: routine
            log.debug("http client %s: %s", client_address[0], exc)
        else:
            log.warning("http request from %s failed: %r", client_address[0], exc)


class StatusServer:
    """Serves a :class:`LatestSink` and :class:`Metrics` from a background thread."""

    def __init__(self, latest: LatestSink, metrics: Metrics, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, *, max_streams: int = 4,
                 stream_max_fps: float = 15.0, stale_after: float = 10.0):
        self.latest = latest
        self.metrics = metrics
        self.stream_interval = 1.0 / stream_max_fps if stream_max_fps else 0.0
        self.stale_after = stale_after
        self.stream_slots = threading.BoundedSemaphore(max_streams)
        self.stopping = threading.Event()
        handler = type("Handler", (_Handler,), {"app": self})
        try:
            self.httpd = _Server((host, port), handler)
        except OSError as exc:
            raise EdgefaceError(f"cannot listen on {host}:{port}: "
                                f"{exc.strerror or exc}") from None
        self.host, self.port = self.httpd.server_address[:2]
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> StatusServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.2}, name="http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        self.latest.close()  # wake streaming clients so they return
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()

    def health(self) -> tuple[int, dict]:
        age = time.monotonic() - self.metrics.last_frame_time
        body = {"frames": self.metrics.frames, "uptime_s": round(self.metrics.uptime(), 1)}
        if self.metrics.frames == 0:
            return 503, {"status": "starting", **body}
        body["last_frame_age_s"] = round(age, 3)
        if age > self.stale_after:
            return 503, {"status": "stalled", **body}
        return 200, {"status": "ok", **body}


class _Handler(BaseHTTPRequestHandler):
    app: StatusServer
    server_version = "edgeface"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:  # keep the journal for the runtime
        log.debug("http %s " + fmt, self.client_address[0], *args)

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        app = self.app
        try:
            if path == "/":
                self._send(200, _INDEX, "text/html; charset=utf-8")
            elif path == "/metrics":
                self._send(200, app.metrics.prometheus().encode(),
                           "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz":
                code, body = app.health()
                self._send(code, json.dumps(body).encode(), "application/json")
            elif path == "/detections":
                body = app.latest.detections_json()
                self._send(200 if body != b"null" else 503, body, "application/json")
            elif path == "/snapshot.jpg":
                seq, result = app.latest.latest()
                if result is None:
                    self._send(503, b"no frame yet\n", "text/plain")
                else:
                    self._send(200, app.latest.jpeg(seq, result), "image/jpeg")
            elif path in ("/stream.mjpg", "/stream"):
                self._stream()
            else:
                self._send(404, b"not found\n", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _stream(self) -> None:
        app = self.app
        if not app.stream_slots.acquire(blocking=False):
            self._send(503, b"too many stream clients\n", "text/plain")
            return
        try:
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            seq = app.latest.seq - 1  # send the current frame right away
            next_time = 0.0
            while not app.stopping.is_set():
                new_seq, result = app.latest.wait_newer(seq, 1.0)
                if app.latest.closed:
                    break
                if result is None or new_seq == seq:
                    continue
                wait = next_time - time.monotonic()
                if wait > 0 and app.stopping.wait(wait):
                    break
                new_seq, result = app.latest.latest()  # the newest after the pause
                jpg = app.latest.jpeg(new_seq, result)
                self.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                self.wfile.flush()
                seq = new_seq
                next_time = time.monotonic() + app.stream_interval
        finally:
            app.stream_slots.release()
