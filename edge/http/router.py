"""What a handler sees and returns: :class:`Request` (with a bounded body read), a
:class:`Response` or a :class:`StreamResponse`, :func:`json_error`, and the :class:`Router`
from (method, path) to handler (404 for an unknown path, 405 with ``Allow`` for a method the
path does not take; every GET route also answers HEAD, without a body).

A handler is ``async def handler(request) -> Response | StreamResponse``; it may raise
:class:`HttpError` for any 4xx/5xx, which becomes the one JSON error shape. A later endpoint
is a route plus wrappers, e.g. an upload::

    async def detect(req):
        if req.headers.get("authorization") != f"Bearer {token}":
            raise HttpError(401, "bearer token required", {"WWW-Authenticate": "Bearer"})
        body = await req.body(max_bytes=8 << 20)        # 411 / 413 / 408 handled here
        if not req.headers.get("content-type", "").startswith(("image/", "multipart/")):
            raise HttpError(415, "send image/* or multipart/form-data")
        faces = await worker.submit(body)                # CPU work never on the loop thread
        return json_response(200, faces)

    router.add("POST", "/detect", paced(detect, Pacer(5.0), busy_status=429))

Decoding and inference must run in a worker thread that the handler awaits (as
:class:`~edgeface.http.encoder.FrameEncoder` does for JPEGs): the event loop serves
every client, so anything slow on it delays them all.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Union

JSON = "application/json"


class HttpError(Exception):
    """An error response: ``status`` with a JSON body ``{"error": message, ...}``."""

    def __init__(self, status: int, message: str, headers: Optional[dict[str, str]] = None,
                 **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> Response:
        return json_error(self.status, self.message, self.headers, **self.extra)


@dataclass
class Response:
    """A complete response; the connection adds Content-Length (and drops the body for HEAD)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResponse:
    """A response whose body is written by ``write(stream)`` until it returns; the connection
    is closed after it (no Content-Length). For HEAD, only the head is sent."""

    status: int
    content_type: str
    write: Callable[[Any], Awaitable[None]]
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, obj: Any, headers: Optional[dict[str, str]] = None) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode(), JSON,
                    dict(headers or {}))


def json_error(status: int, message: str, headers: Optional[dict[str, str]] = None,
               **extra: Any) -> Response:
    """The one shape of every error: ``{"error": message, "status": status, **extra}``."""
    return json_response(status, {"error": message, "status": status, **extra}, headers)


class ByteBudget:
    """Bytes that many requests share (bodies being received): ``take`` or refuse."""

    def __init__(self, limit: int):
        self.limit, self.used, self.refused = limit, 0, 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            self.refused += 1
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


class Request:
    """One parsed request. ``headers`` keys are lower case (repeated headers joined by ", ").
    ``body_rate``: (bytes/s, grace s), the least a body must average after the grace."""

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str],
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 body_timeout: float, max_body_bytes: int,
                 body_rate: tuple[float, float] = (0.0, 0.0)):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        path, _, self.query = target.partition("?")
        self.path = path
        self.peer = writer.get_extra_info("peername")
        self._reader, self._writer = reader, writer
        self._body_timeout, self._max_body = body_timeout, max_body_bytes
        self._min_rate, self._grace = body_rate
        self.body_read = False

    @property
    def has_body(self) -> bool:
        return "transfer-encoding" in self.headers or self.headers.get(
            "content-length", "0").strip() not in ("", "0")

    def content_length(self, max_bytes: Optional[int] = None) -> int:
        """The body's declared size, checked before anything is read: 411 without
        Content-Length (or with Transfer-Encoding: bodies are never chunked here), 400 when
        it is not a number, 413 past ``max_bytes`` (default and ceiling: the server's limit)."""
        limit = self._max_body if max_bytes is None else min(max_bytes, self._max_body)
        if "transfer-encoding" in self.headers:
            raise HttpError(411, "chunked request bodies are not accepted: send Content-Length",
                            detail="Transfer-Encoding is not supported")
        raw = self.headers.get("content-length")
        if raw is None:
            raise HttpError(411, "Content-Length is required",
                            detail="send the body with a Content-Length header")
        n = parse_length(raw)
        if n is None:
            raise HttpError(400, "invalid Content-Length", detail="expected a decimal number")
        if n > limit:
            raise HttpError(413, f"request body over {limit} bytes", limit=limit,
                            detail=f"Content-Length {n} is over the limit of {limit} bytes")
        return n

    async def body(self, max_bytes: Optional[int] = None,
                   budget: Optional[ByteBudget] = None) -> bytes:
        """The request body, at most ``max_bytes`` (default: the server's limit).

        The checks of :meth:`content_length` come first (411 / 400 / 413, before anything is
        read); 408 when the body does not arrive within the body timeout, or averages less
        than the minimum rate after the grace; 503 when its bytes would pass ``budget``
        (taken while it is read, given back once it is whole).
        """
        n = self.content_length(max_bytes)
        if self.headers.get("expect", "").lower() == "100-continue":
            self._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunks: list[bytes] = []
        got = 0
        try:
            while got < n:
                until = start + self._body_timeout
                if self._min_rate > 0:
                    until = min(until, start + self._grace + got / self._min_rate)
                left = until - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError
                data = await asyncio.wait_for(self._reader.read(min(n - got, 1 << 16)), left)
                if not data:
                    raise HttpError(400, "request body shorter than Content-Length",
                                    {"Connection": "close"},
                                    detail="the client closed the connection")
                if budget is not None and not budget.take(len(data)):
                    raise HttpError(503, "busy", {"Retry-After": "1", "Connection": "close"},
                                    detail="too many request bodies arriving at once")
                chunks.append(data)
                got += len(data)
        except asyncio.TimeoutError:
            raise HttpError(408, "request body not received in time", {"Connection": "close"},
                            detail=f"{got} of {n} bytes in {loop.time() - start:.1f} s (at "
                                   f"most {self._body_timeout:g} s, at least "
                                   f"{self._min_rate / 1024:g} KB/s after "
                                   f"{self._grace:g} s)") from None
        finally:
            if budget is not None:
                budget.give(sum(map(len, chunks)))
        self.body_read = True
        return b"".join(chunks)

    async def discard_body(self, max_bytes: int, chunk: int = 64 << 10) -> bool:
        """Read and drop a body of at most ``max_bytes`` (in ``chunk`` s, so it costs no
        memory) after a refusal that came before it was read: the connection can then carry
        the next request, and a client still sending reads the answer instead of a reset.
        False (the connection will close) when the body is larger, chunked, awaited behind
        ``Expect: 100-continue`` (the client sends nothing until it hears back) or late."""
        left = parse_length(self.headers.get("content-length", ""))
        if (self.body_read or "transfer-encoding" in self.headers or left is None
                or left > max_bytes
                or self.headers.get("expect", "").lower() == "100-continue"):
            return False
        try:
            while left:
                data = await asyncio.wait_for(self._reader.read(min(left, chunk)),
                                              self._body_timeout)
                if not data:
                    return False
                left -= len(data)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            return False
        self.body_read = True
        return True


Handler = Callable[[Request], Awaitable[Union[Response, StreamResponse]]]

#: Digits a Content-Length may have: 18 is an exabyte, past any body limit; a 5,000-digit
#: one passed Python's 4,300-digit int() limit as a ValueError, a 500 and a traceback.
_MAX_LENGTH_DIGITS = 18


def parse_length(raw: str) -> Optional[int]:
    """A Content-Length value as a number, or None when it is not 1-18 decimal digits."""
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > _MAX_LENGTH_DIGITS:
        return None
    return int(raw)


class Router:
    """(method, path) -> handler. Paths are exact, or a prefix added with
    :meth:`add_prefix` (``/events/`` for ``/events/<n>.jpg``); GET implies HEAD."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler]] = {}
        self._prefixes: list[tuple[str, dict[str, Handler]]] = []

    def add(self, methods: Union[str, tuple[str, ...]], path: str, handler: Handler) -> None:
        self._add(self._routes.setdefault(path, {}), methods, handler)

    def add_prefix(self, methods: Union[str, tuple[str, ...]], prefix: str,
                   handler: Handler) -> None:
        """``handler`` for every path under ``prefix`` (an exact route wins)."""
        by_method: dict[str, Handler] = {}
        self._prefixes.append((prefix, by_method))
        self._add(by_method, methods, handler)

    @staticmethod
    def _add(by_method: dict[str, Handler], methods: Union[str, tuple[str, ...]],
             handler: Handler) -> None:
        for method in (methods,) if isinstance(methods, str) else methods:
            by_method[method.upper()] = handler
            if method.upper() == "GET":
                by_method.setdefault("HEAD", handler)

    def paths(self) -> list[str]:
        """Every exact path and prefix (``prefix*``), for the OpenAPI test."""
        return [*self._routes, *(f"{prefix}*" for prefix, _ in self._prefixes)]

    def route(self, method: str, path: str) -> Handler:
        """The handler, or raise 404 / 405 (with ``Allow``)."""
        by_method = self._routes.get(path)
        if by_method is None:
            by_method = next((h for prefix, h in self._prefixes if path.startswith(prefix)),
                             None)
        if by_method is None:
            raise HttpError(404, "not found", path=path)
        handler = by_method.get(method)
        if handler is None:
            allow = ", ".join(sorted(by_method))
            raise HttpError(405, f"method {method} not allowed", {"Allow": allow}, allow=allow)
        return handler
