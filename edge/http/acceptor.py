"""Accepting connections for the HTTP server, on its event loop, without ``asyncio.Server``.

Why not ``asyncio.start_server``: on Python 3.13 (Raspberry Pi OS Trixie) a connection
accepted in the loop iteration that closes the server fails in ``Server._attach``
(AssertionError), and a transport collected unclosed calls ``Server._wakeup`` a second time
(TypeError at exit, the traceback `run` printed under SIGTERM in Trixie's CI): 171 such
errors in 20 rounds of a connection flood closed mid-way (tests/runtime/http/
test_http_acceptor.py). Here each transport is made by ``open_connection(sock=...)`` and
belongs to no server, and closing stops accepting first.

At the cap a newcomer costs no transport until it may have a slot: one whose request head
has not arrived is looked at once more after ``HEAD_GRACE`` s, then refused with a raw
``send`` of the 503 and a close. The refusals are paced (``REFUSAL_RATE``): past the budget
the server stops accepting for a moment and the rest wait in the kernel's listen backlog.
Before, 600 reconnecting half-sent heads (cap 512 + 16) evicted one another ~2,400 times a
second, each a transport, a task and an abort: half a core of the device
(benchmarks/results/http_load_hostile_quiet.md).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from typing import Optional

from edgeface.http.protocol import OVERLOADED, HttpConnections
from edgeface.http.ratelimit import TokenBucket

log = logging.getLogger(__name__)

#: Connections taken from the backlog per wake-up (asyncio's server takes its backlog, 1024:
#: a burst that size would hold the loop ~20 ms before any of them is served).
ACCEPT_BATCH = 64
#: Seconds a newcomer at the cap gets for its request head to arrive before it is refused.
#: A client sends its head right after the handshake; on loopback the accept can win that
#: race by microseconds, and a LAN round trip is a few ms: 0.1 s covers both.
HEAD_GRACE = 0.1
#: Newcomers waiting out ``HEAD_GRACE`` at once (each holds a file descriptor); past it the
#: one waiting longest is decided early.
GRACE_MAX = 64
#: Raw refusals per second (and burst) before the server pauses accepting: a refusal is an
#: accept, two peeks, a send and a close, ~30 us of the loop; 500/s keeps that near 1.5 %
#: of an x86-64 core (~6 % of a Pi 4's) whatever the clients do. A probe queued behind 72
#: reconnecting clients waits ~0.15 s (at 200/s: p50 172 ms, p95 421 ms under the hostile
#: load of benchmarks/http_load.py).
REFUSAL_RATE, REFUSAL_BURST = 500.0, 50.0
#: Seconds accepting pauses after accept() fails for want of file descriptors or memory
#: (asyncio's own server waits 1 s).
EXHAUSTED_PAUSE = 1.0
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_PEEK = 4096


class Acceptor:
    """Takes connections from ``sock`` (listening, non-blocking) and hands each to
    ``connections`` as asyncio streams with a ``limit`` byte read buffer."""

    def __init__(self, sock: socket.socket, connections: HttpConnections, limit: int):
        self._sock, self.connections, self._limit = sock, connections, limit
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._reading = False
        self._resume: Optional[asyncio.TimerHandle] = None
        # newcomers at the cap waiting for their head: its timer, and whether the socket is
        # watched (it had sent nothing at accept: its head is decided the moment it arrives)
        self._grace: dict[socket.socket, tuple[asyncio.TimerHandle, bool]] = {}
        self._opening: dict[asyncio.Task, socket.socket] = {}  # until the streams exist
        self._refusals = TokenBucket(REFUSAL_RATE, REFUSAL_BURST, time.monotonic())
        self.closed = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start accepting (call on the loop's thread)."""
        self._loop = loop
        self._read(True)

    def _read(self, on: bool) -> None:
        if on == self._reading or self._loop is None or (on and self.closed):
            return
        self._reading = on
        if on:
            self._loop.add_reader(self._sock.fileno(), self._accept)
        else:
            self._loop.remove_reader(self._sock.fileno())

    def _pause(self, seconds: float) -> None:
        assert self._loop is not None
        self._read(False)
        if self._resume is None:
            self._resume = self._loop.call_later(seconds, self._unpause)

    def _unpause(self) -> None:
        self._resume = None
        self._read(True)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    log.warning("HTTP: cannot accept a connection (%s); pausing %.0f s",
                                exc.strerror, EXHAUSTED_PAUSE)
                    self._pause(EXHAUSTED_PAUSE)
                    return
                continue  # ECONNABORTED and the like: that client is gone already
            conn.setblocking(False)
            if not self.connections.at_cap(len(self._opening)):
                self._open(conn, True)
                continue
            data = _peek(conn)
            if data and _complete(data):
                if not self._admit(conn, True):
                    return
            elif not self._wait_for_head(conn, watch=data is None):
                return

    def _wait_for_head(self, conn: socket.socket, watch: bool) -> bool:
        """Give ``conn`` ``HEAD_GRACE`` s for its head; when ``GRACE_MAX`` already wait, the
        one waiting longest is decided now (a probe behind 72 reconnecting half-sent heads
        got a 503 when newcomers were refused at once instead). ``watch``: it sent nothing
        yet, so its first bytes decide (a probe whose accept beat its head waited the whole
        grace: /healthz p95 103 ms under the hostile load). False: refusals pause."""
        go_on = True
        if len(self._grace) >= GRACE_MAX:
            oldest = next(iter(self._grace))
            self._forget(oldest)
            go_on = self._admit(oldest, _head_arrived(oldest))
        assert self._loop is not None
        self._grace[conn] = (self._loop.call_later(HEAD_GRACE, self._look_again, conn), watch)
        if watch:
            self._loop.add_reader(conn.fileno(), self._first_bytes, conn)
        return go_on

    def _forget(self, conn: socket.socket) -> None:
        handle, watched = self._grace.pop(conn)
        handle.cancel()
        if watched and self._loop is not None:
            self._loop.remove_reader(conn.fileno())

    def _first_bytes(self, conn: socket.socket) -> None:
        data = _peek(conn)
        if data is None:
            return
        handle, _ = self._grace[conn]
        self._loop.remove_reader(conn.fileno())  # type: ignore[union-attr]
        self._grace[conn] = (handle, False)
        if not data:  # closed before sending anything: nothing to answer
            self._forget(conn)
            conn.close()
        elif _complete(data):
            self._forget(conn)
            self._admit(conn, True)
        # else a part of a head: the timer decides

    def _look_again(self, conn: socket.socket) -> None:
        self._forget(conn)
        self._admit(conn, _head_arrived(conn))

    def _admit(self, conn: socket.socket, ready: bool) -> bool:
        """Open ``conn`` at the cap if it may have a slot (evicting only when its head is
        ``ready``), else refuse it; False once refusals must pause."""
        if not self.connections.would_refuse(ready):
            self._open(conn, ready)
            return True
        return self._refuse(conn)

    def _open(self, conn: socket.socket, may_evict: bool) -> None:
        assert self._loop is not None
        self._opening[self._loop.create_task(self._serve(conn, may_evict))] = conn

    async def _serve(self, conn: socket.socket, may_evict: bool) -> None:
        task = asyncio.current_task()
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=self._limit)
        except (OSError, asyncio.CancelledError):  # close() came first: end quietly
            conn.close()
            return
        finally:
            self._opening.pop(task, None)  # type: ignore[arg-type]
        if self.closed:
            writer.transport.abort()
            return
        await self.connections(reader, writer, may_evict)

    def _refuse(self, conn: socket.socket) -> bool:
        """Answer 503 and close, without a transport; False once the refusal budget is spent
        (accepting then pauses until it refills)."""
        c = self.connections.counters
        c.connections_total += 1
        c.refused_total += 1
        try:
            conn.send(OVERLOADED)
        except OSError:
            pass
        conn.close()
        now, bucket = time.monotonic(), self._refusals
        bucket.wait(now)  # refilled up to now, then this refusal's token taken
        bucket.take()
        wait = bucket.wait(now)
        if not wait:
            return True
        self._pause(wait)
        return False

    async def close(self) -> None:
        """Stop accepting, close the listening socket and every newcomer not yet served,
        and wait for those being opened (each then ends in ``connections``' close)."""
        self.closed = True
        self._read(False)
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        self._sock.close()
        for conn in list(self._grace):
            self._forget(conn)
            conn.close()
        for task in self._opening:
            task.cancel()
        if self._opening:
            await asyncio.wait(list(self._opening), timeout=1.0)
        for conn in self._opening.values():  # a task cancelled before it ran closed nothing
            conn.close()
        self._opening.clear()


def _peek(conn: socket.socket) -> Optional[bytes]:
    """What the client sent so far, left in the buffer; None: nothing yet; b"": it closed
    (or the socket failed)."""
    try:
        return conn.recv(_PEEK, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def _complete(data: bytes) -> bool:
    """A whole request head (or more than fits a peek)."""
    return b"\r\n\r\n" in data or len(data) == _PEEK


def _head_arrived(conn: socket.socket) -> bool:
    """Whether the whole request head is in the socket's buffer. A client that closed
    already has not: it never evicts anyone."""
    data = _peek(conn)
    return bool(data) and _complete(data)
