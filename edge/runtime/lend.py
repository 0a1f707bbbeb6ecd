"""Lending the camera loop's detector to other threads (the image API) between two frames.

``POST /detect`` inside ``edgeface run`` used to infer on a second model session of its own,
at ``SCHED_IDLE``. That kept the camera's pace, but while both ran there were two inference
working sets: +22 MB for the session's weights and activations, which took a busy API with
MQTT to 205 MB of RSS, over the 200 MB budget (``benchmarks/results/api_load_mqtt.md``
before this module). Here the API decodes and prepares its images on its own thread and the
camera loop runs them on the camera's own session, between frames: one working set, and the
camera's share is a budget rather than a scheduler's promise. Lent inference takes at most
``share`` of wall-clock time (5 % by default; a camera running flat out kept 0.92 of its
frame rate, the rest going to decoding the uploads) plus one ``burst``; while the source has
no frame to give (a camera reconnecting) the loop lends without a budget, since the
detector would be idle anyway.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.frames import Detections, Timing

if TYPE_CHECKING:
    from edgeface.inference.detector import FaceDetector

#: Fraction of wall-clock time the camera lends by default.
DEFAULT_SHARE = 0.05
#: Seconds of inference the budget may save up while nobody borrows: a few images at
#: ~30 ms each on this x86 machine; much more would be a visible stall of the camera.
BURST_S = 0.25


class LoanRefused(EdgefaceError):
    """The loop did not run a lent inference in time, or it has stopped."""


class _Loan:
    __slots__ = ("prepared", "preprocess_s", "done", "result", "error", "cancelled")

    def __init__(self, prepared: Any, preprocess_s: float):
        self.prepared, self.preprocess_s = prepared, preprocess_s
        self.done = threading.Event()
        self.result: Optional[tuple[Detections, Timing]] = None
        self.error: Optional[BaseException] = None
        self.cancelled = False


class DetectorLender:
    """A :class:`FaceDetector` for other threads whose inference the loop runs.

    Borrowers call :meth:`prepare` (in their own thread) and :meth:`detect_prepared` (which
    waits for the loop, at most ``timeout`` s); the processing loop calls :meth:`serve`
    after every frame and :meth:`close` when it stops.
    """

    def __init__(self, detector: FaceDetector, *, share: float = DEFAULT_SHARE,
                 burst: float = BURST_S, timeout: float = 15.0,
                 clock: Callable[[], float] = time.monotonic):
        self.detector = detector
        self.input_size = detector.input_size
        self.share, self.burst, self.timeout = share, burst, timeout
        self._clock = clock
        self._tokens = burst  # seconds of inference the loop may lend now
        self._refilled = clock()
        self._loans: collections.deque[_Loan] = collections.deque()
        self._lock = threading.Lock()
        self._closed = False
        self.lent = 0
        self.lent_s = 0.0

    # -- borrower's side (any thread) ----------------------------------------------------
    def prepare(self, image_bgr: np.ndarray, frame_size: tuple[int, int] | None = None) -> Any:
        return self.detector.prepare(image_bgr, frame_size)  # pure: safe in any thread

    def detect_prepared(self, prepared: Any, preprocess_s: float = 0.0
                        ) -> tuple[Detections, Timing]:
        loan = _Loan(prepared, preprocess_s)
        with self._lock:
            if self._closed:
                raise LoanRefused("the processing loop has stopped")
            self._loans.append(loan)
        del prepared
        if not loan.done.wait(self.timeout):
            with self._lock:
                loan.cancelled = not loan.done.is_set()
            if loan.cancelled:
                raise LoanRefused(f"the camera loop lent no time within {self.timeout:g} s")
        if loan.error is not None:
            raise loan.error
        assert loan.result is not None
        return loan.result

    def detect_timed(self, image_bgr: np.ndarray) -> tuple[Detections, Timing]:
        # Imported here: the detector imports OpenCV, and the HTTP output that imports this
        # module is registered by `run` before its --help, on installs without OpenCV too.
        from edgeface.inference.detector import detect_timed

        return detect_timed(self, image_bgr)

    # -- the loop's side -----------------------------------------------------------------
    def serve(self, idle: bool = False) -> int:
        """Run waiting loans while the budget allows (``idle``: the loop has no frame, no
        budget needed). Returns how many ran. Called by the processing loop only."""
        if not self._loans:  # the per-frame cost when nobody borrows
            return 0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.share)
        self._refilled = now
        ran = 0
        while idle or self._tokens > 0:
            with self._lock:
                loan = self._loans.popleft() if self._loans else None
            if loan is None:
                break
            if loan.cancelled:
                continue
            t0 = time.perf_counter()
            try:
                loan.result = self.detector.detect_prepared(loan.prepared, loan.preprocess_s)
            except Exception as exc:  # the borrower's error, not the loop's
                loan.error = exc
            except BaseException:  # the loop's own end (a second Ctrl-C): it goes on up
                loan.error = LoanRefused("the processing loop has stopped")
                loan.done.set()
                raise
            took = time.perf_counter() - t0
            loan.prepared = None
            if not idle:
                self._tokens -= took  # may go below 0: the next loan waits for the refill
            self.lent += 1
            self.lent_s += took
            ran += 1
            with self._lock:
                loan.done.set()
        return ran

    def close(self) -> None:
        """Refuse every waiting and future loan (the loop has stopped)."""
        with self._lock:
            self._closed = True
            loans = list(self._loans)
            self._loans.clear()
        for loan in loans:
            loan.error = LoanRefused("the processing loop has stopped")
            loan.done.set()

    @property
    def waiting(self) -> int:
        return len(self._loans)

    def stats(self) -> dict[str, float]:
        """For /metrics (``edgeface_api_lent_*``)."""
        return {"images": self.lent, "seconds": round(self.lent_s, 3),
                "waiting": self.waiting, "share": self.share}
