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
:class:`~edgeface.runtime.http.encoder.FrameEncoder` does for JPEGs): the event loop serves
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


class Request:
    """One parsed request. ``headers`` keys are lower case (repeated headers joined by ", ")."""

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str],
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 body_timeout: float, max_body_bytes: int):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        path, _, self.query = target.partition("?")
        self.path = path
        self.peer = writer.get_extra_info("peername")
        self._reader, self._writer = reader, writer
        self._body_timeout, self._max_body = body_timeout, max_body_bytes
        self.body_read = False

    @property
    def has_body(self) -> bool:
        return "transfer-encoding" in self.headers or self.headers.get(
            "content-length", "0").strip() not in ("", "0")

    async def body(self, max_bytes: Optional[int] = None) -> bytes:
        """The request body, at most ``max_bytes`` (default: the server's limit).

        Content-Length is required (411 without it, or with Transfer-Encoding: bodies are
        never chunked here); 413 past the limit, before anything is read; 408 when the body
        does not arrive within the body timeout.
        """
        limit = self._max_body if max_bytes is None else min(max_bytes, self._max_body)
        if "transfer-encoding" in self.headers:
            raise HttpError(411, "chunked request bodies are not accepted: send Content-Length")
        raw = self.headers.get("content-length")
        if raw is None:
            raise HttpError(411, "Content-Length is required")
        raw = raw.strip()
        if not (raw.isascii() and raw.isdigit()):
            raise HttpError(400, "invalid Content-Length")
        n = int(raw)
        if n > limit:
            raise HttpError(413, f"request body over {limit} bytes", limit=limit)
        if self.headers.get("expect", "").lower() == "100-continue":
            self._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            data = await asyncio.wait_for(self._reader.readexactly(n), self._body_timeout)
        except asyncio.TimeoutError:
            raise HttpError(408, "request body not received in time",
                            {"Connection": "close"}) from None
        except asyncio.IncompleteReadError:
            raise HttpError(400, "request body shorter than Content-Length",
                            {"Connection": "close"}) from None
        self.body_read = True
        return data


Handler = Callable[[Request], Awaitable[Union[Response, StreamResponse]]]


class Router:
    """(method, path) -> handler. Paths are exact; GET implies HEAD."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler]] = {}

    def add(self, methods: Union[str, tuple[str, ...]], path: str, handler: Handler) -> None:
        for method in (methods,) if isinstance(methods, str) else methods:
            by_method = self._routes.setdefault(path, {})
            by_method[method.upper()] = handler
            if method.upper() == "GET":
                by_method.setdefault("HEAD", handler)

    def route(self, method: str, path: str) -> Handler:
        """The handler, or raise 404 / 405 (with ``Allow``)."""
        by_method = self._routes.get(path)
        if by_method is None:
            raise HttpError(404, "not found", path=path)
        handler = by_method.get(method)
        if handler is None:
            allow = ", ".join(sorted(by_method))
            raise HttpError(405, f"method {method} not allowed", {"Allow": allow}, allow=allow)
        return handler
