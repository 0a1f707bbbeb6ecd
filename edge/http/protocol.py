"""HTTP/1.1 over asyncio streams, hardened for a small device: every connection has a
deadline for its request head, its keep-alive idle time and each write; connections are
capped (at the cap a new one whose request head has arrived takes the place of the one
that has waited longest for its head, idle or half-sent; with none waiting: 503, but
``/healthz`` is still answered; :mod:`.acceptor` refuses the rest); request heads are bounded
(431); HEAD never gets a body; a client that stops reading is dropped, never waited on;
refusals (4xx but 429) are paced like requests, so a client looping on them costs little.

One event-loop thread runs every connection, so an idle or slow client costs a file
descriptor and a few KB, never a thread. Handlers come from a
:class:`~edgeface.http.router.Router`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlsplit

from edgeface.http.limits import HttpLimits
from edgeface.http.pacing import Pacer
from edgeface.http.router import (
    HttpError,
    Request,
    Response,
    StreamResponse,
    json_error,
    parse_length,
)
from edgeface.runtime.metrics import HttpCounters

if TYPE_CHECKING:
    from edgeface.http.router import Router

log = logging.getLogger(__name__)

_END = b"\r\n\r\n"
_SMALL = 16 * 1024  # bodies up to this go out in the same write as the head
_OVERLOADED_BODY = b'{"error":"too many connections","status":503}'
OVERLOADED = (b"HTTP/1.1 503 Service Unavailable\r\nServer: edgeface\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\nRetry-After: 1\r\n"
              b"Connection: close\r\n\r\n%s" % (len(_OVERLOADED_BODY), _OVERLOADED_BODY))


class _Close(Exception):
    """End this connection now (the client is gone, stalled or sent garbage)."""


class ClientStream:
    """What a :class:`StreamResponse` writer gets: the connection's streams, its limits and
    a coroutine that returns when the client goes away."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 limits: HttpLimits, counters: HttpCounters):
        self.reader, self.writer, self.limits, self.counters = reader, writer, limits, counters
        self.transport = writer.transport

    async def client_gone(self) -> None:
        """Return when the client closes its end (anything it sends meanwhile is dropped)."""
        try:
            while await self.reader.read(4096):
                pass
        except (ConnectionError, OSError):
            pass


class HttpConnections:
    """The client-connected callback of an asyncio server, and the registry of open
    connections that :meth:`close` ends."""

    def __init__(self, router: Router, limits: HttpLimits, counters: HttpCounters,
                 always_answer: tuple[str, ...] = ("/healthz",)):
        self.router, self.limits, self.counters = router, limits, counters
        self.always_answer = always_answer
        self._conns: dict[asyncio.Task, asyncio.StreamWriter] = {}
        # Slots taken, per lane (False: under the cap; True: the overflow lane, /healthz)
        self._lanes = {False: 0, True: 0}
        # Connections waiting for a request head (new or kept alive), oldest first, per lane:
        # past the cap the oldest gives its slot to the newcomer. Without this 530 half-sent
        # heads kept the cap and the overflow lane full: 52 of 54 health probes got 503.
        self._waiting: dict[bool, collections.OrderedDict[asyncio.Task, asyncio.StreamWriter]] \
            = {False: collections.OrderedDict(), True: collections.OrderedDict()}
        self._evicted: set[asyncio.Task] = set()
        self.refusals = Pacer(limits.refusal_max_rate, limits.max_queue_wait)
        self.closing = False
        self._date = (0, "")

    # -- connections -------------------------------------------------------------------
    def at_cap(self, arriving: int = 0) -> bool:
        """Whether every connection slot is taken, counting ``arriving`` connections accepted
        but not yet here (a newcomer would need to evict one)."""
        return self._lanes[False] + arriving >= self.limits.max_connections

    def would_refuse(self, head_ready: bool) -> bool:
        """Whether a new connection would get only the 503 (:meth:`_admit`, evicting no one)."""
        return self.closing or self._admit(head_ready, evict=False) is None

    def _admit(self, may_evict: bool, evict: bool) -> Optional[bool]:
        """The lane a newcomer gets (False: under the cap; True: the overflow lane, for
        /healthz), or None: the 503. A full lane takes it only when ``may_evict`` and one of
        its connections waits for a request head (only a newcomer whose request head has
        arrived evicts: a reconnecting half-sent one must not churn the others out); with
        ``evict`` that one is closed now."""
        for lane, cap in ((False, self.limits.max_connections),
                          (True, self.limits.overflow_connections)):
            if lane and self.closing:
                return None
            if self._lanes[lane] < cap:
                return lane
            if may_evict and self._waiting[lane]:
                if evict:
                    self._evict_oldest(lane)
                return lane
        return None

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       may_evict: bool = True) -> None:
        """Serve one connection. ``may_evict`` False (its request head had not arrived when
        it was accepted at the cap): it takes a free slot or none."""
        task = asyncio.current_task()
        assert task is not None
        c = self.counters
        c.connections_total += 1
        overflow = self._admit(may_evict, evict=True)
        if overflow is not False:
            c.refused_total += 1
            if overflow is None:
                writer.write(OVERLOADED)
                writer.close()
                return
        self._lanes[overflow] += 1
        self._conns[task] = writer
        c.open_connections = self._lanes[False]
        writer.transport.set_write_buffer_limits(high=self.limits.write_buffer_high)
        try:
            await self._serve(reader, writer, overflow)
        except (_Close, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # close(): end quietly
            pass
        except Exception:  # a bug must cost one connection, never the server
            log.exception("http connection failed")
        finally:
            await self._finish(writer)
            del self._conns[task]
            if task in self._evicted:  # its slot went to another already
                self._evicted.discard(task)
            else:
                self._lanes[overflow] -= 1
            c.open_connections = self._lanes[False]

    def _evict_oldest(self, lane: bool) -> None:
        """Close the connection of ``lane`` that has waited longest for a request head (there
        is one) and free its slot now."""
        task, writer = self._waiting[lane].popitem(last=False)
        writer.transport.abort()  # its read ends at once; its task frees nothing more
        self._evicted.add(task)
        self._lanes[lane] -= 1
        self.counters.evicted_total += 1

    async def _finish(self, writer: asyncio.StreamWriter) -> None:
        """Close gracefully once what is queued reached the client; abort a stalled one."""
        transport = writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() and not self.closing:
            transport.set_write_buffer_limits(high=0)  # drain() now waits for an empty buffer
            try:
                await asyncio.wait_for(writer.drain(), self.limits.write_timeout)
            except asyncio.TimeoutError:
                self.counters.slow_dropped_total += 1
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    async def close(self, grace: float) -> None:
        """End every connection: finish what is queued within ``grace`` s, then cut."""
        self.closing = True
        writers = list(self._conns.values())
        for task, writer in list(self._conns.items()):
            writer.transport.close()  # stop reading; FIN once the queued bytes are sent
            task.cancel()
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=grace)
        waits = [asyncio.ensure_future(w.wait_closed()) for w in writers]
        if waits:
            await asyncio.wait(waits, timeout=grace)
        for w, fut in zip(writers, waits):
            if not fut.done():
                w.transport.abort()
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # retrieved: a reset client is not an error here

    # -- one connection ------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     overflow: bool) -> None:
        limits = self.limits
        first = True
        while not self.closing:
            head = await self._read_head(reader, writer, first, overflow)
            if head is None:
                return
            first = False
            try:
                req = self._parse(head, reader, writer)
            except HttpError as exc:
                if await self._refusal_turn():
                    await self._send(None, exc.response(), writer, keep_alive=False)
                return
            if req is None:  # stray blank lines between requests
                continue
            self.counters.requests_total += 1
            if overflow and not (req.method in ("GET", "HEAD")
                                 and req.path in self.always_answer):
                response = json_error(503, "too many connections", {"Retry-After": "1"})
            else:
                response = await self._dispatch(req)
            if (isinstance(response, Response) and 400 <= response.status < 500
                    and response.status != 429 and not await self._refusal_turn()):
                return
            keep = (not overflow and _wants_keep_alive(req) and not isinstance(
                response, StreamResponse) and not (req.has_body and not req.body_read)
                and response.headers.get("Connection", "").lower() != "close")
            if isinstance(response, StreamResponse):
                await self._send_head(req, response.status, response.content_type,
                                      response.headers, None, writer, keep_alive=False)
                if req.method != "HEAD":
                    await response.write(ClientStream(reader, writer, limits, self.counters))
                return
            await self._send(req, response, writer, keep)
            if not keep:
                return

    async def _refusal_turn(self) -> bool:
        """Wait this refusal's turn in the refusal budget (``refusal_max_rate``); False when
        the queue is full: the connection then closes without an answer, but only after as
        long as the queue is, or a client looping on refusals gets ~2,700 cheap closes a
        second instead of ~1,900 answers (measured on loopback)."""
        wait = self.refusals.reserve(asyncio.get_running_loop().time())
        await asyncio.sleep(self.limits.max_queue_wait if wait is None else wait)
        return wait is not None

    async def _read_head(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         first: bool, overflow: bool) -> Optional[bytes]:
        """The request head, or None when the connection should just close (EOF, idle)."""
        limits = self.limits
        header_timeout = limits.overflow_timeout if overflow else limits.header_timeout
        task = asyncio.current_task()
        waiting = self._waiting[overflow]
        waiting[task] = writer  # type: ignore[index]
        try:
            start = b""
            if not first:  # keep-alive: idle until the next request starts, then its deadline
                start = await asyncio.wait_for(reader.readexactly(1), limits.idle_timeout)
            return start + await asyncio.wait_for(reader.readuntil(_END), header_timeout)
        except asyncio.IncompleteReadError:
            return None  # the client closed (maybe mid-head): nothing to answer
        except asyncio.LimitOverrunError:
            await self._send(None, json_error(431, "request head too large",
                                              limit=limits.max_header_bytes),
                             writer, keep_alive=False)
            return None
        except asyncio.TimeoutError:
            self.counters.timeouts_total += 1
            if reader._buffer:  # a half-sent head gets a 408; an idle socket is just closed
                waiting.pop(task, None)  # type: ignore[call-overload]
                await self._send(None, json_error(408, "request head not received in time"),
                                 writer, keep_alive=False)
            return None
        finally:
            waiting.pop(task, None)  # type: ignore[call-overload]

    def _parse(self, head: bytes, reader: asyncio.StreamReader,
               writer: asyncio.StreamWriter) -> Optional[Request]:
        lines = head.lstrip(b"\r\n")[:-4].split(b"\r\n")
        if lines == [b""]:
            return None
        if len(lines) - 1 > self.limits.max_headers:
            raise HttpError(431, "too many header lines", limit=self.limits.max_headers)
        parts = lines[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            raise HttpError(400, "malformed request line")
        method, target, version = parts
        if not version.startswith("HTTP/1.") or version not in ("HTTP/1.0", "HTTP/1.1"):
            raise HttpError(505 if version.startswith("HTTP/") else 400,
                            f"unsupported protocol {version!r}")
        if not (method.isascii() and method.isalpha() and method.isupper()):
            raise HttpError(400, "malformed method")
        if target.startswith(("http://", "https://")):  # absolute form (proxies)
            split = urlsplit(target)
            target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        if not target.startswith("/"):
            raise HttpError(400, "malformed request target")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or line[:1] in b" \t":
                raise HttpError(400, "malformed header line")  # incl. obsolete line folding
            key, val = name.decode("latin-1").lower(), value.strip().decode("latin-1")
            if key in headers:
                if key == "content-length" and headers[key] != val:
                    raise HttpError(400, "conflicting Content-Length")
                if key != "content-length":
                    headers[key] += ", " + val
            else:
                headers[key] = val
        if "transfer-encoding" in headers and "content-length" in headers:
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if "content-length" in headers and parse_length(headers["content-length"]) is None:
            raise HttpError(400, "invalid Content-Length")
        return Request(method, target, version, headers, reader, writer,
                       self.limits.body_timeout, self.limits.max_body_bytes,
                       (self.limits.body_min_rate, self.limits.body_grace))

    async def _dispatch(self, req: Request) -> Response | StreamResponse:
        try:
            return await self.router.route(req.method, req.path)(req)
        except HttpError as exc:
            return exc.response()
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("http %s %s failed", req.method, req.path)
            return json_error(500, "internal error")

    # -- writing -------------------------------------------------------------------------
    async def _send(self, req: Optional[Request], response: Response,
                    writer: asyncio.StreamWriter, keep_alive: bool) -> None:
        body = response.body
        head_only = req is not None and req.method == "HEAD"
        await self._send_head(req, response.status, response.content_type, response.headers,
                              len(body), writer, keep_alive,
                              b"" if head_only or len(body) > _SMALL else body)
        if not head_only and len(body) > _SMALL:
            writer.write(body)
        await drain(writer, self.limits.write_timeout, self.counters)

    async def _send_head(self, req: Optional[Request], status: int, content_type: str,
                         headers: dict[str, str], length: Optional[int],
                         writer: asyncio.StreamWriter, keep_alive: bool,
                         body: bytes = b"") -> None:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        lines = [f"HTTP/1.1 {status} {phrase}", "Server: edgeface", f"Date: {self._now()}",
                 f"Content-Type: {content_type}"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        lines.extend(f"{k}: {v}" for k, v in headers.items() if k.lower() != "connection")
        if not keep_alive:
            lines.append("Connection: close")
        elif req is not None and req.version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if length is None:  # a stream: get its head out before the first frame
            await drain(writer, self.limits.write_timeout, self.counters)

    def _now(self) -> str:
        sec = int(time.time())
        if sec != self._date[0]:
            self._date = (sec, http_date(sec))
        return self._date[1]


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(sec: float) -> str:
    """RFC 9110's IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), whatever the locale;
    not ``email.utils.formatdate``, whose import costs the runtime 0.5 MB."""
    t = time.gmtime(sec)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


async def drain(writer: asyncio.StreamWriter, timeout: float, counters: HttpCounters) -> None:
    """Wait (at most ``timeout`` s) until the connection's queue is below its high-water mark;
    a client that takes nothing for that long is dropped (raises :class:`_Close`)."""
    transport = writer.transport
    if transport.is_closing():
        raise _Close()
    if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
        return
    try:
        await asyncio.wait_for(writer.drain(), timeout)
    except asyncio.TimeoutError:
        counters.slow_dropped_total += 1
        transport.abort()
        raise _Close() from None


def _wants_keep_alive(req: Request) -> bool:
    conn = req.headers.get("connection", "").lower()
    if req.version == "HTTP/1.0":
        return "keep-alive" in conn
    return "close" not in conn
