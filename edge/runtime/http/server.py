"""The device's HTTP server (stdlib asyncio, no dependency beyond Python).

``/`` a page showing the stream, ``/stream.mjpg`` annotated frames as MJPEG, ``/snapshot.jpg``
the latest annotated frame, ``/detections`` the latest result as JSON, ``/healthz`` 200 while
frames are flowing (503 before the first frame or when stalled), ``/metrics`` Prometheus text.
It binds 127.0.0.1 unless told otherwise: put a reverse proxy in front to expose it.

One event-loop thread serves every connection (:mod:`.protocol`: deadlines, caps, HEAD) and
one worker thread encodes JPEGs (:mod:`.encoder`), shared by snapshots and the MJPEG viewers
(:mod:`.mjpeg`): the server uses two threads and bounded memory whatever the clients do.
Why asyncio rather than a hardened ``ThreadingHTTPServer``: benchmarks/results/http_servers.md.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import socket
import threading
import time
from typing import Optional

from edgeface.errors import ConfigError, EdgefaceError
from edgeface.runtime.http import limits as L
from edgeface.runtime.http.encoder import FrameEncoder
from edgeface.runtime.http.latest import LatestSink
from edgeface.runtime.http.mjpeg import CONTENT_TYPE, MjpegBroadcaster
from edgeface.runtime.http.osthread import name_os_thread
from edgeface.runtime.http.pacing import Pacer, paced
from edgeface.runtime.http.protocol import HttpConnections
from edgeface.runtime.http.router import (
    HttpError,
    Request,
    Response,
    Router,
    StreamResponse,
    json_error,
    json_response,
)
from edgeface.runtime.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_NO_STORE = {"Cache-Control": "no-store"}
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


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise EdgefaceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(L.BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise EdgefaceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class StatusServer:
    """Serves a :class:`LatestSink` and :class:`Metrics` from a background thread.

    Every limit is a keyword argument; the defaults, and the numbers behind them, are in
    :mod:`edgeface.runtime.http.limits`. ``stream_max_fps`` / ``jpeg_max_fps`` 0: no cap.
    ``stale_after``: seconds without a frame before ``/healthz`` says 503 "stalled".
    """

    def __init__(self, latest: LatestSink, metrics: Metrics, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, *, max_connections: int = L.MAX_CONNECTIONS,
                 max_streams: int = L.MAX_STREAMS, stream_max_fps: float = L.STREAM_MAX_FPS,
                 jpeg_max_fps: float = L.JPEG_MAX_FPS,
                 request_max_rate: float = L.REQUEST_MAX_RATE,
                 snapshot_max_rate: float = L.SNAPSHOT_MAX_RATE,
                 max_queue_wait: float = L.MAX_QUEUE_WAIT,
                 header_timeout: float = L.HEADER_TIMEOUT,
                 idle_timeout: float = L.IDLE_TIMEOUT, write_timeout: float = L.WRITE_TIMEOUT,
                 body_timeout: float = L.BODY_TIMEOUT,
                 max_header_bytes: int = L.MAX_HEADER_BYTES,
                 max_body_bytes: int = L.MAX_BODY_BYTES, stale_after: float = 10.0):
        self.latest = latest
        self.metrics = metrics
        self.stale_after = stale_after
        self.limits = L.HttpLimits(
            max_connections=max_connections, max_streams=max_streams,
            stream_max_fps=stream_max_fps, jpeg_max_fps=jpeg_max_fps,
            request_max_rate=request_max_rate, snapshot_max_rate=snapshot_max_rate,
            max_queue_wait=max_queue_wait,
            header_timeout=header_timeout, idle_timeout=idle_timeout,
            write_timeout=write_timeout, body_timeout=body_timeout,
            max_header_bytes=max_header_bytes, max_body_bytes=max_body_bytes,
            overflow_timeout=min(L.OVERFLOW_TIMEOUT, header_timeout))
        counters = metrics.http
        self.encoder = FrameEncoder(latest, counters, jpeg_max_fps)
        self.mjpeg = MjpegBroadcaster(self.encoder, self.limits, counters)
        wait = self.limits.max_queue_wait
        requests = Pacer(request_max_rate, wait)
        snapshots = Pacer(snapshot_max_rate, wait)
        self.router = Router()
        self.router.add("GET", "/healthz", self._healthz)  # never queued: monitors rely on it
        for path, handler, pacers in (
                ("/", self._index, (requests,)), ("/metrics", self._metrics, (requests,)),
                ("/detections", self._detections, (requests,)),
                ("/snapshot.jpg", self._snapshot, (requests, snapshots)),
                ("/stream.mjpg", self._stream, (requests,)),
                ("/stream", self._stream, (requests,))):
            self.router.add("GET", path, paced(handler, *pacers))
        self.connections = HttpConnections(self.router, self.limits, counters)
        self._sock: Optional[socket.socket] = _listen(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        latest.add_listener(self.mjpeg.frame_written)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> StatusServer:
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            self.close()
            raise EdgefaceError(f"the HTTP server on {self.url} did not start")
        atexit.register(self.close)  # never leave an encode running into interpreter exit
        return self

    def _run(self) -> None:
        name_os_thread("http")
        loop = self._loop = asyncio.new_event_loop()
        try:
            self.encoder.start(loop)
            self.mjpeg.start(loop)
            self._server = loop.run_until_complete(asyncio.start_server(
                self.connections, sock=self._sock, limit=self.limits.max_header_bytes,
                backlog=L.BACKLOG))
            self._sock = None  # the asyncio server owns (and closes) it now
        except Exception:
            log.exception("the HTTP server failed to start")
        finally:
            self._ready.set()
        try:
            if self._server is not None:
                loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections
        self.mjpeg.close()
        await self.connections.close(self.limits.shutdown_grace)

    def close(self) -> None:
        """Stop listening, end every connection (within ~``SHUTDOWN_GRACE`` s, then cut),
        stop the JPEG worker and the loop, and join both threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self.latest.close()  # wake anyone blocked in wait_newer
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(
                    self.limits.shutdown_grace * 2 + 2)
            except Exception as exc:  # a timeout here must not keep the device from exiting
                log.warning("HTTP server shutdown: %r", exc)
            self.encoder.close()  # after the connections: no waiter is left
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        else:
            self.encoder.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- endpoints -----------------------------------------------------------------------
    def health(self) -> tuple[int, dict]:
        age = time.monotonic() - self.metrics.last_frame_time
        body = {"frames": self.metrics.frames, "uptime_s": round(self.metrics.uptime(), 1)}
        if self.metrics.frames == 0:
            return 503, {"status": "starting", **body}
        body["last_frame_age_s"] = round(age, 3)
        if age > self.stale_after:
            return 503, {"status": "stalled", **body}
        return 200, {"status": "ok", **body}

    async def _index(self, req: Request) -> Response:
        return Response(200, _INDEX, "text/html; charset=utf-8")

    async def _metrics(self, req: Request) -> Response:
        return Response(200, self.metrics.prometheus().encode(),
                        "text/plain; version=0.0.4; charset=utf-8", dict(_NO_STORE))

    async def _healthz(self, req: Request) -> Response:
        code, body = self.health()
        return json_response(code, body, _NO_STORE)

    async def _detections(self, req: Request) -> Response:
        body = self.latest.detections_json()
        if body == b"null":
            return json_error(503, "no frame yet", {"Retry-After": "1"})
        return Response(200, body, "application/json", dict(_NO_STORE))

    async def _snapshot(self, req: Request) -> Response:
        got = await self.encoder.jpeg()
        if got is None:
            return json_error(503, "no frame yet", {"Retry-After": "1"})
        return Response(200, got[1], "image/jpeg", dict(_NO_STORE))

    async def _stream(self, req: Request) -> StreamResponse:
        if self.mjpeg.full():
            raise HttpError(503, "too many stream clients", {"Retry-After": "5"},
                            limit=self.limits.max_streams)
        return StreamResponse(200, CONTENT_TYPE, self.mjpeg.serve, dict(_NO_STORE))
