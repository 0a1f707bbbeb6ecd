"""The image API's worker: one thread that runs detection jobs for ``POST /detect``, and the
admission that bounds what waits for it.

In ``edgeface run`` the thread runs at ``SCHED_IDLE`` and only decodes and prepares: the
camera loop runs the inference on its own session between frames, within a time budget
(:mod:`edgeface.runtime.lend`), so the API can be as busy as its clients like and the camera
keeps its pace. Decoding releases the GIL, so the background thread never holds the camera
loop up for longer than the few Python statements around it. In ``edgeface serve`` it runs
at normal priority and does the inference too, on a session that has every core.

Admission happens on the event-loop thread before a request's body is read: at most
``max_requests`` requests and ``max_bytes`` of their bodies are in the building at once
(503 past either), and a job that has not started within ``queue_timeout`` seconds is given
up (503), so a starved worker costs its clients bounded waits, never unbounded memory.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import logging
import os
import threading
import time
from typing import Any, Callable, Optional

from edgeface.http.osthread import name_os_thread
from edgeface.http.router import HttpError

log = logging.getLogger(__name__)


def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere, e.g. musl). From the process's own symbols:
    ``ctypes.util.find_library`` would import subprocess and run ldconfig at every start."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


class _Job:
    __slots__ = ("fn", "future", "loop", "queued", "started", "cancelled")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future,
                 loop: asyncio.AbstractEventLoop):
        self.fn, self.future, self.loop = fn, future, loop
        self.queued = time.monotonic()
        self.started = self.cancelled = False


def background_priority() -> str:
    """Put the calling thread in the background: ``SCHED_IDLE`` where Linux allows (entering
    it needs no privilege), else nice 19. Returns which ("idle", "nice 19" or "normal")."""
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None and hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, idle, os.sched_param(0))  # 0: this thread (Linux)
            return "idle"
        except OSError as exc:
            log.debug("SCHED_IDLE refused: %s", exc)
    try:
        os.nice(19 - os.nice(0))  # per thread on Linux
        return "nice 19"
    except OSError:
        return "normal"


class ApiWorker:
    """Runs ``await worker.run(fn)`` calls one at a time in its thread, in arrival order."""

    def __init__(self, *, background: bool, max_requests: int, max_bytes: int,
                 queue_timeout: float, name: str = "http-api"):
        self.background = background
        self.max_requests, self.max_bytes = max_requests, max_bytes
        self.queue_timeout = queue_timeout
        self.name = name
        self.priority = "normal"
        self._jobs: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: Optional[threading.Thread] = None
        # Written on the event-loop thread only.
        self.admitted = self.admitted_bytes = 0
        self.refused_full = self.timed_out = 0
        # Written by the worker thread only.
        self.done = self.failed = 0
        self.busy_s = 0.0
        self._recent = collections.deque(maxlen=16)  # seconds of recent jobs

    def start(self) -> ApiWorker:
        self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
        self._thread.start()
        return self

    # -- event-loop thread -------------------------------------------------------------
    def admit(self, nbytes: int) -> None:
        """Take a place for a request of ``nbytes``, or raise 503 (+ Retry-After)."""
        if self.admitted >= self.max_requests or (
                self.admitted and self.admitted_bytes + nbytes > self.max_bytes):
            self.refused_full += 1
            raise HttpError(503, "busy", {"Retry-After": str(self.retry_after())},
                            detail=f"{self.admitted} requests are queued or running; "
                                   "try again later")
        self.admitted += 1
        self.admitted_bytes += nbytes

    def release(self, nbytes: int) -> None:
        self.admitted -= 1
        self.admitted_bytes -= nbytes

    def retry_after(self) -> int:
        """Whole seconds until the queue has probably moved on (1-60)."""
        recent = list(self._recent)
        per_job = sum(recent) / len(recent) if recent else 1.0
        return max(1, min(60, round(per_job * max(self.admitted, 1))))

    async def run(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` in the worker thread; its result or exception. 503 if it has not started
        within ``queue_timeout`` seconds (it then never runs)."""
        loop = asyncio.get_running_loop()
        job = _Job(fn, loop.create_future(), loop)
        with self._cond:
            if self._stop:
                raise HttpError(503, "shutting down", detail="the server is stopping")
            self._jobs.append(job)
            self._cond.notify()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self.queue_timeout)
        except asyncio.TimeoutError:
            with self._cond:
                started = job.started
                job.cancelled = not started
            if started:  # it is running: its end is near
                return await job.future
            self.timed_out += 1
            raise HttpError(503, "busy", {"Retry-After": str(self.retry_after())},
                            detail=f"not started within {self.queue_timeout:g} s: the "
                                   "device has no CPU to spare now") from None
        except asyncio.CancelledError:
            with self._cond:
                job.cancelled = not job.started
            raise

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop

    @property
    def queued(self) -> int:
        return len(self._jobs)

    # -- worker thread ---------------------------------------------------------------
    def _work(self) -> None:
        name_os_thread(self.name)
        if self.background:
            self.priority = background_priority()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._jobs or self._stop)
                if self._stop:
                    return
                job = self._jobs.popleft()
                if job.cancelled:
                    continue
                job.started = True
            t0 = time.perf_counter()
            try:
                result, error = job.fn(), None
            except BaseException as exc:  # handed to the request; the thread lives on
                result, error = None, exc
            took = time.perf_counter() - t0
            self.busy_s += took
            self._recent.append(took)
            if error is None:
                self.done += 1
            else:
                self.failed += 1
            try:
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return
            del job, result, error  # the images go now, not when the next job comes
            if _TRIM is not None and not self._jobs:
                # Idle: give the job's freed memory (decoded images: 36 MB for 12 Mpx)
                # back to the system rather than keep it in malloc's free lists next to a
                # camera loop that needs every MB it can get.
                _TRIM(0)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the job in progress (queued ones never run) and join the thread."""
        with self._cond:
            self._stop = True
            dropped = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        for job in dropped:
            try:
                job.loop.call_soon_threadsafe(job.future.cancel)
            except RuntimeError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def stats(self) -> dict[str, float]:
        return {"done": self.done, "failed": self.failed, "refused_busy": self.refused_full,
                "timed_out": self.timed_out, "busy_seconds": round(self.busy_s, 3),
                "queued": self.queued, "admitted": self.admitted}


def _settle(future: asyncio.Future, result: Any, error: Optional[BaseException]) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
        future.exception()  # a request that went away must not leave it "never retrieved"
    else:
        future.set_result(result)
