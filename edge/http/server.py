"""The device's HTTP server (stdlib asyncio, no dependency beyond Python).

``/`` the page (:mod:`.page`), ``/stream.mjpg`` annotated frames as MJPEG, ``/snapshot.jpg``
the latest annotated frame, ``/detections`` the latest result as JSON, ``/events`` recent
face events and ``/events/<n>.jpg`` their crops (:mod:`.feed`), ``/status`` FPS, memory and
temperature as JSON, ``/healthz`` 200 while frames are flowing (503 before the first frame
or when stalled), ``/metrics`` Prometheus text, ``POST /detect`` the image API (:mod:`.api`)
and ``/openapi.json`` its description. Without a camera (``edgeface serve``) only the API,
the page, ``/status``, ``/healthz``, ``/metrics`` and ``/openapi.json`` exist.
It binds 127.0.0.1 unless told otherwise; beyond loopback it needs a token (:mod:`.auth`).

One event-loop thread serves every connection (:mod:`.protocol`: deadlines, caps, HEAD) and
one worker thread encodes JPEGs (:mod:`.encoder`), shared by snapshots and the MJPEG viewers
(:mod:`.mjpeg`): the server uses two threads and bounded memory whatever the clients do.
Why asyncio rather than a hardened ``ThreadingHTTPServer``: benchmarks/results/http_servers.md.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import socket
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Optional

from edgeface.errors import ConfigError, EdgefaceError
from edgeface.http import limits as L
from edgeface.http.acceptor import Acceptor
from edgeface.http.auth import TokenAuth, check_bind
from edgeface.http.encoder import FrameEncoder
from edgeface.http.latest import LatestSink
from edgeface.http.mjpeg import CONTENT_TYPE, MjpegBroadcaster
from edgeface.http.openapi import spec
from edgeface.http.osthread import name_os_thread
from edgeface.http.pacing import Pacer, paced
from edgeface.http.page import LOGIN, PAGE
from edgeface.http.protocol import HttpConnections
from edgeface.http.router import (
    HttpError,
    Request,
    Response,
    Router,
    StreamResponse,
    json_error,
    json_response,
)
from edgeface.runtime.memory import peak_rss_bytes, rss_bytes
from edgeface.runtime.metrics import Metrics

if TYPE_CHECKING:
    from edgeface.http.api import DetectApi
    from edgeface.http.feed import EventFeed

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_NO_STORE = {"Cache-Control": "no-store"}
#: The page loads nothing from elsewhere, and the browser is told to enforce that.
_PAGE_HEADERS = {"Cache-Control": "no-store", "Content-Security-Policy":
                 "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                 "img-src 'self' blob:; frame-ancestors 'none'",
                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


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


def _finish_loop(loop: asyncio.AbstractEventLoop) -> None:
    """End what is left on the loop (a task cut by the shutdown's timeout, a transport's
    last callbacks), then close it: nothing is left for the garbage collector to finalise at
    interpreter exit, where it printed tracebacks on Python 3.13."""
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
        for _ in range(2):  # connection_lost() callbacks are scheduled with call_soon
            loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


class StatusServer:
    """Serves a :class:`LatestSink` and :class:`Metrics` from a background thread.

    ``limits``: an :class:`~edgeface.http.limits.HttpLimits` (its defaults, and the numbers
    behind them, are in :mod:`edgeface.http.limits`); ``stream_max_fps`` / ``jpeg_max_fps``
    0: no cap.
    ``stale_after``: seconds without a frame before ``/healthz`` says 503 "stalled".
    ``api``: serve ``POST /detect``; ``feed``: ``/events``; ``camera`` False: no camera
    (``edgeface serve``: no stream, snapshot, detections or events; ``/healthz`` is 200
    while the API's worker lives). ``auth``: the token (default: ``EDGEFACE_API_TOKEN``);
    without one, binding beyond loopback raises :class:`ConfigError`.
    """

    def __init__(self, latest: LatestSink, metrics: Metrics, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, *, limits: Optional[L.HttpLimits] = None,
                 stale_after: float = 10.0, api: Optional[DetectApi] = None,
                 feed: Optional[EventFeed] = None, auth: Optional[TokenAuth] = None,
                 camera: bool = True):
        self.auth = auth if auth is not None else TokenAuth.from_env()
        check_bind(host, self.auth)
        self.latest = latest
        self.metrics = metrics
        self.stale_after = stale_after
        self.api, self.feed, self.camera = api, feed, camera
        limits = limits if limits is not None else L.HttpLimits()
        # A connection over the cap is held no longer than a client may take for its headers.
        self.limits = limits = replace(
            limits, overflow_timeout=min(limits.overflow_timeout, limits.header_timeout))
        counters = metrics.http
        self.encoder = FrameEncoder(latest, counters, limits.jpeg_max_fps)
        self.mjpeg = MjpegBroadcaster(self.encoder, self.limits, counters)
        self._openapi = json.dumps(spec(camera), indent=1).encode()
        self._soc: tuple[float, Optional[float]] = (-1e9, None)
        self.router = self._routes(limits.request_max_rate, limits.snapshot_max_rate)
        if api is not None:
            metrics.add_stats("api", api.stats, api.STATS_GAUGES)
        self.connections = HttpConnections(self.router, self.limits, counters)
        self._sock: Optional[socket.socket] = _listen(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        latest.add_listener(self.mjpeg.frame_written)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._acceptor: Optional[Acceptor] = None
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
        if not self._ready.wait(10) or self._acceptor is None:
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
            acceptor = Acceptor(self._sock, self.connections, self.limits.max_header_bytes)
            acceptor.start(loop)
            self._acceptor, self._sock = acceptor, None  # it owns (and closes) the socket
        except Exception:
            log.exception("the HTTP server failed to start")
        finally:
            self._ready.set()
        try:
            if self._acceptor is not None:
                loop.run_forever()
        finally:
            _finish_loop(loop)

    async def _shutdown(self) -> None:
        if self._acceptor is not None:
            await self._acceptor.close()  # no new connections
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

    def _routes(self, request_max_rate: float, snapshot_max_rate: float) -> Router:
        wait = self.limits.max_queue_wait
        requests = Pacer(request_max_rate, wait)
        snapshots = Pacer(snapshot_max_rate, wait)
        guard = self.auth.guard
        router = Router()
        router.add("GET", "/healthz", self._healthz)  # never queued nor guarded: monitors
        router.add("GET", "/", paced(self.auth.page(self._index, LOGIN), requests))
        routes = [("/metrics", self._metrics, (requests,)),
                  ("/status", self._status, (requests,)),
                  ("/openapi.json", self._openapi_json, (requests,))]
        if self.camera:
            routes += [("/detections", self._detections, (requests,)),
                       ("/snapshot.jpg", self._snapshot, (requests, snapshots)),
                       ("/stream.mjpg", self._stream, (requests,)),
                       ("/stream", self._stream, (requests,))]
            if self.feed is not None:
                routes.append(("/events", self._events, (requests,)))
                router.add_prefix("GET", "/events/", guard(paced(self._crop, requests)))
        for path, handler, pacers in routes:
            router.add("GET", path, guard(paced(handler, *pacers)))
        if self.api is not None:  # its own rate limits answer 429 at once, never queue
            router.add("POST", "/detect", guard(paced(self.api.detect, requests)))
        return router

    # -- endpoints -----------------------------------------------------------------------
    def health(self) -> tuple[int, dict]:
        age = time.monotonic() - self.metrics.last_frame_time
        body = {"frames": self.metrics.frames, "uptime_s": round(self.metrics.uptime(), 1)}
        if not self.camera:
            worker = self.api.worker if self.api is not None else None
            alive = worker is not None and worker.alive
            return (200 if alive else 503), {"status": "ok" if alive else "stopped", **body}
        if self.metrics.frames == 0:
            return 503, {"status": "starting", **body}
        body["last_frame_age_s"] = round(age, 3)
        if age > self.stale_after:
            return 503, {"status": "stalled", **body}
        return 200, {"status": "ok", **body}

    async def _index(self, req: Request) -> Response:
        return Response(200, PAGE, "text/html; charset=utf-8", dict(_PAGE_HEADERS))

    async def _openapi_json(self, req: Request) -> Response:
        return Response(200, self._openapi, "application/json")

    def status(self) -> dict:
        """What the page shows: FPS, frames, memory, the SoC's temperature, the API."""
        m, now = self.metrics, time.monotonic()
        if now - self._soc[0] > 5.0:  # sysfs reads: cheap, but not per request
            from edgeface.system import thermal

            self._soc = (now, thermal.read(command=False).soc_c)
        return {"camera": self.camera, "fps": round(m.fps(), 2), "frames": m.frames,
                "gated_frames": m.gated, "faces": m.last_faces,
                "rss_mb": round(rss_bytes() / 2**20, 1),
                "peak_rss_mb": round(peak_rss_bytes() / 2**20, 1),
                "soc_c": self._soc[1], "uptime_s": round(m.uptime(), 1),
                "api": self.api.stats() if self.api is not None else None}

    async def _status(self, req: Request) -> Response:
        return json_response(200, self.status(), _NO_STORE)

    async def _events(self, req: Request) -> Response:
        assert self.feed is not None
        return json_response(200, self.feed.events(), _NO_STORE)

    async def _crop(self, req: Request) -> Response:
        assert self.feed is not None
        name = req.path[len("/events/"):]
        n = name[:-4] if name.endswith(".jpg") else ""
        jpeg = self.feed.crop(int(n)) if n.isascii() and n.isdigit() and len(n) < 12 else None
        if jpeg is None:
            raise HttpError(404, "not found", detail="no such event, or no crop for it",
                            path=req.path)
        return Response(200, jpeg, "image/jpeg", {"Cache-Control": "max-age=3600"})

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
