"""The processing loop: frames in, faces out, in bounded memory.

source.read -> detector (preprocess -> backend -> postprocess) -> sinks, once per frame, in
one thread. Capture, decoding and the detector's preprocessing run in the source's own
thread, overlapping inference; everything else here is O(1) per frame: metrics, an RSS
check against the memory limit, a rate-limited watchdog ping and a periodic status line.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Optional, Sequence, TextIO

import numpy as np

from edgeface.common.stats import percentiles
from edgeface.errors import EdgefaceError
from edgeface.frames import Detections, FrameResult, Timing
from edgeface.inference.detector import FaceDetector
from edgeface.runtime.lend import DetectorLender
from edgeface.runtime.memory import MemoryGuard, peak_rss_bytes
from edgeface.runtime.metrics import STAGES, Metrics
from edgeface.runtime.motion import MotionGate
from edgeface.runtime.notify import Notifier
from edgeface.runtime.settings import LoopSettings
from edgeface.runtime.sinks import Sink
from edgeface.runtime.sources import FrameSource, SourceTimeout
from edgeface.runtime.tracking import Tracker

log = logging.getLogger(__name__)

_KEEP = 4096  # per-stage latencies kept for summaries unless record_latencies=True
_NO_TIME = Timing(0.0, 0.0, 0.0)  # a frame the motion gate kept from the detector


@dataclass
class RunStats:
    """What a run did. Latencies are in seconds; ``latency`` summarises them in ms."""

    frames: int = 0
    faces: int = 0
    gated: int = 0  # frames the motion gate kept from the detector
    dropped: int = 0
    corrupt: int = 0
    reconnects: int = 0
    wall_s: float = 0.0
    fps: float = 0.0
    peak_rss_bytes: int = 0
    stopped: bool = False  # stop() was called (signal), as opposed to end of source / limit
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    latencies: Optional[dict[str, np.ndarray]] = None  # per frame, with record_latencies

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("frames", "faces", "gated", "dropped", "corrupt",
                                           "reconnects", "wall_s", "fps", "peak_rss_bytes",
                                           "stopped", "latency")}
        d["wall_s"] = round(self.wall_s, 3)
        d["fps"] = round(self.fps, 2)
        return d

    def summary_line(self) -> str:
        total = self.latency.get("detect", {})
        gated = f", {self.gated} gated by motion" if self.gated else ""
        return (f"{self.frames} frames in {self.wall_s:.1f} s ({self.fps:.1f} fps), "
                f"{self.faces} faces{gated}, latency p50 "
                f"{total.get('p50_ms', float('nan')):.1f} ms "
                f"p95 {total.get('p95_ms', float('nan')):.1f} ms, {self.dropped} dropped, "
                f"{self.corrupt} corrupt, peak rss {self.peak_rss_bytes / (1 << 20):.1f} MB")


class Runtime:
    """Run ``detector`` on every frame of ``source`` and hand results to ``sinks``.

    ``settings``: the memory limit (exit with :class:`~edgeface.errors.MemoryLimitExceeded`,
    code 5, when RSS goes above it), the status interval, the read timeout and whether to
    record every latency (:class:`~edgeface.runtime.settings.LoopSettings`). Status lines
    go to ``status_stream``.
    ``notifier``: sd_notify READY/WATCHDOG/STATUS (see :mod:`edgeface.notify`).
    ``lender``: other threads' inferences (the image API) that the loop runs on its own
    detector between frames, within the lender's time budget.
    The runtime owns ``source`` and ``sinks``: :meth:`close` (or ``with``) closes them.
    """

    def __init__(
        self,
        source: FrameSource,
        detector: FaceDetector,
        sinks: Sequence[Sink] = (),
        *,
        settings: Optional[LoopSettings] = None,
        notifier: Optional[Notifier] = None,
        metrics: Optional[Metrics] = None,
        status_stream: Optional[TextIO] = None,
        gate: Optional[MotionGate] = None,
        tracker: Optional[Tracker] = None,
        lender: Optional[DetectorLender] = None,
    ):
        self.source = source
        self.detector = detector
        self.sinks = list(sinks)
        settings = settings or LoopSettings()
        limit = settings.memory_limit
        self.guard = MemoryGuard(limit)
        self.status_interval = settings.status_interval
        self.notifier = notifier or Notifier(None)
        self.metrics = metrics or Metrics()
        self.metrics.memory_limit = limit
        self.status_stream = status_stream
        self.record_latencies = settings.record_latencies
        self.read_timeout = settings.read_timeout
        self.gate = gate
        self.tracker = tracker
        self.lender = lender  # the image API's inferences, run between frames
        self._last_frame = None  # kept to deliver the tracks that end at shutdown
        self._stop = threading.Event()

    def _process(self, frame) -> FrameResult:
        """Motion gate -> detector -> tracker for one frame. A frame the gate skips keeps
        the tracker's held faces and costs no inference (``FrameResult.detected``)."""
        gate, tracker = self.gate, self.tracker
        if gate is not None and not gate.check(frame.image, frame.timestamp,
                                               force=bool(tracker and tracker.pending)):
            frame.prepared = None
            if tracker is None:
                return FrameResult(frame, Detections.empty(), _NO_TIME, detected=False)
            dets, ids = tracker.skip(frame)
            return FrameResult(frame, dets, _NO_TIME, track_ids=ids, detected=False)
        try:
            dets, timing = self._detect(frame)
        except EdgefaceError:
            raise
        except Exception as exc:
            raise EdgefaceError(f"inference failed on frame {frame.index} of "
                                f"{self.source.name}: {exc}") from exc
        if tracker is None:
            return FrameResult(frame, dets, timing)
        ids, events = tracker.update(dets, frame)
        return FrameResult(frame, dets, timing, track_ids=ids, events=events)

    def _end_tracks(self) -> None:
        """Tracks still open when the run stops end now, so event sinks see every end."""
        if self.tracker is None or self._last_frame is None:
            return
        events = self.tracker.flush(time.time())
        if events:
            result = FrameResult(self._last_frame, Detections.empty(), _NO_TIME, events=events,
                                 detected=False, only_events=True)
            for sink in self.sinks:
                sink.write(result)

    def _detect(self, frame) -> tuple[Detections, Timing]:
        """The detector on one frame, reusing what the source's capture thread prepared."""
        if frame.prepared is None:  # a source opened without the detector's prepare
            return self.detector.detect_timed(frame.image)
        prepared, frame.prepared = frame.prepared, None  # not needed past inference
        return self.detector.detect_prepared(prepared, frame.prepare_s)

    def stop(self) -> None:
        """Ask the loop to finish the current frame and return (thread- and signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, max_frames: Optional[int] = None, duration: Optional[float] = None
            ) -> RunStats:
        """Process frames until the source ends, ``max_frames``/``duration`` is reached, or
        :meth:`stop` is called. Sinks are flushed before returning (or raising)."""
        lat = {k: array("d") for k in ("detect", *STAGES)}
        stats = RunStats()
        start = time.monotonic()
        deadline = start + duration if duration else None
        next_status = start + self.status_interval if self.status_interval else None
        metrics, notifier, source = self.metrics, self.notifier, self.source
        lender = self.lender
        perf = time.perf_counter
        frames = faces = gated = 0
        try:
            while not self._stop.is_set():
                if max_frames is not None and frames >= max_frames:
                    break
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if next_status is not None and now >= next_status:
                    self._status()
                    next_status = now + self.status_interval
                t0 = perf()
                try:
                    frame = source.read(timeout=self.read_timeout)
                except SourceTimeout:
                    # Waiting for a (re)connecting source is not a hang: keep pinging.
                    notifier.watchdog()
                    if lender is not None:
                        lender.serve(idle=True)  # the detector has nothing else to do
                    continue
                if frame is None:
                    break
                t1 = perf()
                result = self._process(frame)
                self._last_frame = frame
                dets, timing = result.detections, result.timing
                t2 = perf()
                for sink in self.sinks:
                    sink.write(result)
                t3 = perf()
                frames += 1
                if result.detected:
                    faces += len(dets)
                else:
                    gated += 1
                stages = {"capture_wait": t1 - t0, "preprocess": timing.preprocess,
                          "inference": timing.inference, "postprocess": timing.postprocess,
                          "output": t3 - t2}
                metrics.observe(timing.total, len(dets), stages, detected=result.detected)
                if result.detected:
                    lat["detect"].append(timing.total)
                    for k, v in stages.items():
                        lat[k].append(v)
                if not self.record_latencies and len(lat["detect"]) >= 2 * _KEEP:
                    for a in lat.values():
                        del a[:_KEEP]
                st = source.stats
                metrics.set_source_counters(st.dropped, st.corrupt, st.reconnects)
                metrics.set_rss(self.guard.check())  # raises MemoryLimitExceeded
                if frames == 1:
                    notifier.ready(f"first frame from {source.name}")
                notifier.watchdog()
                if lender is not None:
                    lender.serve()
        finally:
            wall = time.monotonic() - start
            if lender is not None:
                lender.close()
            try:
                self._end_tracks()
            finally:
                self.flush()
            stats.frames, stats.faces, stats.wall_s = frames, faces, wall
            stats.gated = gated
            stats.fps = frames / wall if wall > 0 else 0.0
            st = source.stats
            stats.dropped, stats.corrupt, stats.reconnects = st.dropped, st.corrupt, st.reconnects
            stats.peak_rss_bytes = max(peak_rss_bytes(), self.guard.peak)
            stats.stopped = self._stop.is_set()
            stats.latency = {k: _summary(np.frombuffer(a, np.float64)) for k, a in lat.items()}
            if self.record_latencies:
                stats.latencies = {k: np.array(a, np.float64) for k, a in lat.items()}
            metrics.set_source_counters(stats.dropped, stats.corrupt, stats.reconnects)
        return stats

    def _status(self) -> None:
        line = self.metrics.status_line()
        self.notifier.status(line)
        if self.status_stream is not None:
            try:
                self.status_stream.write(f"edgeface: {line}\n")
                self.status_stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr must not stop the device

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        """Close sinks and source (each even if another fails); the first error is raised."""
        errors = []
        for closer in [*(s.close for s in self.sinks), self.source.close]:
            try:
                closer()
            except Exception as exc:
                errors.append(exc)
        self.notifier.close()
        if errors:
            raise errors[0]

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def limit_opencv_threads() -> None:
    """Run OpenCV's own functions (decode colour conversion, resize) single-threaded.

    The runtime's parallelism is its capture thread next to inference; OpenCV's thread pool
    on top of that only contends with ONNX Runtime for the same cores (measured: ~2 ms of
    CPU per 720p frame, benchmarks/pipeline_overhead.py). Process-wide; respects an explicit
    ``OPENCV_FOR_THREADS_NUM``. Called by `edgeface run`.
    """
    if "OPENCV_FOR_THREADS_NUM" not in os.environ:
        import cv2

        cv2.setNumThreads(1)


def quiet_opencv_logging() -> None:
    """Keep OpenCV's own capture warnings ("can't open camera by index") and FFmpeg's
    decoder chatter (a damaged video prints dozens of "header damaged" lines) off stderr:
    the sources already turn each failure into one actionable line and count it. Respects
    an explicit ``OPENCV_LOG_LEVEL`` / ``OPENCV_FFMPEG_LOGLEVEL``."""
    # Read by OpenCV when it opens its first FFmpeg capture; 8 = AV_LOG_FATAL.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")
    if "OPENCV_LOG_LEVEL" not in os.environ:
        from edgeface.media.opencv_compat import set_log_level_error

        set_log_level_error()


def _summary(a: np.ndarray) -> dict[str, float]:
    if a.size == 0:
        return {"n": 0}
    p50, p95, p99 = percentiles(a, (50, 95, 99)) * 1e3
    return {"n": int(a.size), "mean_ms": round(float(a.mean() * 1e3), 3),
            "p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3),
            "p99_ms": round(float(p99), 3), "max_ms": round(float(a.max() * 1e3), 3)}
