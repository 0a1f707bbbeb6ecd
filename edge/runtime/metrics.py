"""Runtime counters, a latency histogram and their Prometheus text exposition.

Updated once per frame by the processing loop and read by the HTTP server threads; one lock
keeps a scrape consistent. Everything is O(1) per frame and bounded in memory. The HTTP
server's own connection counters (:class:`HttpCounters`) are written by its one event-loop
thread only, so they need no lock.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Callable, Iterable, Mapping

import numpy as np

from edgeface.common.stats import percentiles

# Histogram bucket upper bounds in seconds, dense where Pi/Jetson latencies fall.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2,
                   0.3, 0.5, 1.0, 2.0)
STAGES = ("capture_wait", "preprocess", "inference", "postprocess", "output")


class HttpCounters:
    """The HTTP server's gauges and counters (plain ints, written by its event-loop thread)."""

    def __init__(self) -> None:
        self.open_connections = 0
        self.stream_clients = 0
        self.connections_total = 0
        self.refused_total = 0  # connections past the cap (answered 503)
        self.evicted_total = 0  # closed at the cap, waiting for a head, for a newcomer
        self.slow_dropped_total = 0  # clients cut because they stopped taking bytes
        self.timeouts_total = 0  # request heads not received in time (idle or half-sent)
        self.requests_total = 0
        self.jpeg_encodes_total = 0

    def samples(self) -> list[tuple[str, str, str, int]]:
        """(name, type, help, value) for the Prometheus exposition."""
        return [
            ("edgeface_http_connections", "gauge", "Open HTTP connections.",
             self.open_connections),
            ("edgeface_http_stream_clients", "gauge", "MJPEG viewers connected.",
             self.stream_clients),
            ("edgeface_http_connections_total", "counter", "HTTP connections accepted.",
             self.connections_total),
            ("edgeface_http_connections_refused_total", "counter",
             "HTTP connections refused with 503 at the connection cap.", self.refused_total),
            ("edgeface_http_connections_evicted_total", "counter",
             "HTTP connections waiting for a request (idle or half-sent) closed at the "
             "connection cap to admit a new one.", self.evicted_total),
            ("edgeface_http_slow_clients_dropped_total", "counter",
             "HTTP clients dropped because they stopped reading.", self.slow_dropped_total),
            ("edgeface_http_timeouts_total", "counter",
             "HTTP connections closed for an idle or half-sent request.", self.timeouts_total),
            ("edgeface_http_requests_total", "counter", "HTTP requests served.",
             self.requests_total),
            ("edgeface_http_jpeg_encodes_total", "counter",
             "JPEG encodes for snapshots and streams (at most one per frame).",
             self.jpeg_encodes_total),
        ]


class Metrics:
    """What the device has done since start: frames, faces, drops, latency, memory."""

    def __init__(self, window: int = 512):
        self._lock = threading.Lock()
        self.start_time = time.time()
        self._start_mono = time.monotonic()
        self.frames = 0
        self.faces = 0
        self.dropped = 0
        self.corrupt = 0
        self.reconnects = 0
        self.rss = 0
        self.peak_rss = 0
        self.memory_limit: int | None = None
        self.last_frame_time = 0.0  # monotonic, 0 before the first frame
        self.last_faces = 0
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._stage_sums = dict.fromkeys(STAGES, 0.0)
        self._window = np.zeros(window, np.float64)  # recent total latencies (s), a ring
        self._frame_times = np.zeros(64, np.float64)  # recent frame completion times, a ring
        self._n = 0
        self.gated = 0  # frames the motion gate did not send to the detector
        self._latency_n = 0  # detections recorded in the latency window
        self.http = HttpCounters()
        self._collectors: list[tuple[str, Callable[[], Mapping[str, float]], frozenset]] = []

    def add_stats(self, component: str, stats: Callable[[], Mapping[str, float]],
                  gauges: Iterable[str] = ()) -> None:
        """Expose a component's ``stats()`` dict (an MQTT sink, the motion gate, the SoC's
        temperature...) as ``edgeface_<component>_<key>``: gauges as they are, the other
        keys as ``_total`` counters. Read at each scrape, outside the frame lock."""
        self._collectors.append((component, stats, frozenset(gauges)))

    def observe(self, latency: float, faces: int, stages: dict[str, float] | None = None,
                now: float | None = None, detected: bool = True) -> None:
        """Account for one processed frame (``latency`` in seconds: detection time).
        ``detected=False``: the motion gate skipped the detector; the frame counts, its
        (held) faces are the last ones, and no latency is recorded."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.frames += 1
            self.last_faces = faces
            self.last_frame_time = now
            self._frame_times[self._n % self._frame_times.size] = now
            if not detected:
                self.gated += 1
                self._n += 1
                return
            self.faces += faces
            self._bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1
            self._latency_sum += latency
            if stages:
                for k, v in stages.items():
                    self._stage_sums[k] = self._stage_sums.get(k, 0.0) + v
            self._window[self._latency_n % self._window.size] = latency
            self._latency_n += 1
            self._n += 1

    def set_source_counters(self, dropped: int, corrupt: int, reconnects: int) -> None:
        with self._lock:
            self.dropped, self.corrupt, self.reconnects = dropped, corrupt, reconnects

    def set_rss(self, rss: int, peak: int | None = None) -> None:
        with self._lock:
            self.rss = rss
            self.peak_rss = max(self.peak_rss, rss, peak or 0)

    def uptime(self) -> float:
        return time.monotonic() - self._start_mono

    def fps(self, now: float | None = None) -> float:
        """Frames per second over the last (up to) 64 frames; 0 during an outage (no frame
        for 2 s, or for 3 of the recent frame intervals if those are longer)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            n = min(self._n, self._frame_times.size)
            if n < 2:
                return 0.0
            last = self._frame_times[(self._n - 1) % self._frame_times.size]
            first = self._frame_times[(self._n - n) % self._frame_times.size]
        if last <= first:
            return 0.0
        interval = (last - first) / (n - 1)
        if now - last > max(2.0, 3 * interval):
            return 0.0
        return 1.0 / interval

    def percentiles(self, *qs: float) -> list[float]:
        """Percentiles (0-100) of recent total latencies, in seconds (NaN before any frame)."""
        with self._lock:
            recent = self._window[: min(self._latency_n, self._window.size)].copy()
        if recent.size == 0:
            return [float("nan")] * len(qs)
        return [float(v) for v in percentiles(recent, qs)]

    def status_line(self, now: float | None = None) -> str:
        """One human line: FPS, p50/p95 latency, faces, drops, RSS (and gated frames)."""
        p50, p95 = self.percentiles(50, 95)
        gated = f" | gated {self.gated}" if self.gated else ""
        return (f"{self.fps(now):5.1f} fps | latency p50 {p50 * 1e3:.1f} ms p95 "
                f"{p95 * 1e3:.1f} ms | frames {self.frames} | faces {self.last_faces} | "
                f"dropped {self.dropped}{gated} | rss {self.rss / (1 << 20):.1f} MB")

    def prometheus(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            counts = list(self._bucket_counts)
            lat_sum = self._latency_sum
            stage_sums = dict(self._stage_sums)
            vals = dict(frames=self.frames, faces=self.faces, dropped=self.dropped,
                        gated=self.gated,
                        corrupt=self.corrupt, reconnects=self.reconnects, rss=self.rss,
                        peak=self.peak_rss, limit=self.memory_limit,
                        last=self.last_frame_time)
        out = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {_num(v)}" for labels, v in samples)

        metric("edgeface_frames_total", "counter", "Frames processed.", [("", vals["frames"])])
        metric("edgeface_faces_total", "counter", "Faces detected.", [("", vals["faces"])])
        metric("edgeface_gated_frames_total", "counter",
               "Frames the motion gate did not send to the detector.", [("", vals["gated"])])
        metric("edgeface_dropped_frames_total", "counter",
               "Live frames replaced by a newer one before they were processed.",
               [("", vals["dropped"])])
        metric("edgeface_corrupt_frames_total", "counter", "Frames that could not be decoded.",
               [("", vals["corrupt"])])
        metric("edgeface_source_reconnects_total", "counter", "Times the source was reopened.",
               [("", vals["reconnects"])])
        cum, buckets = 0, []
        for bound, c in zip(LATENCY_BUCKETS, counts):
            cum += c
            buckets.append((f'_bucket{{le="{bound}"}}', cum))
        buckets.append(('_bucket{le="+Inf"}', cum + counts[-1]))
        out.append("# HELP edgeface_latency_seconds Detection latency per frame "
                   "(preprocess + inference + postprocess).")
        out.append("# TYPE edgeface_latency_seconds histogram")
        out.extend(f"edgeface_latency_seconds{suffix} {n}" for suffix, n in buckets)
        out.append(f"edgeface_latency_seconds_sum {_num(lat_sum)}")
        out.append(f"edgeface_latency_seconds_count {cum + counts[-1]}")
        metric("edgeface_stage_seconds_total", "counter", "Time spent per pipeline stage.",
               [(f'{{stage="{k}"}}', v) for k, v in stage_sums.items()])
        metric("edgeface_fps", "gauge", "Frames per second over the last 64 frames.",
               [("", self.fps())])
        metric("edgeface_resident_memory_bytes", "gauge", "Resident set size.",
               [("", vals["rss"])])
        metric("edgeface_resident_memory_peak_bytes", "gauge", "Peak resident set size.",
               [("", vals["peak"])])
        if vals["limit"]:
            metric("edgeface_memory_limit_bytes", "gauge", "The --memory-limit.",
                   [("", vals["limit"])])
        age = time.monotonic() - vals["last"] if vals["last"] else float("nan")
        metric("edgeface_last_frame_age_seconds", "gauge", "Seconds since the last frame.",
               [("", age)])
        metric("edgeface_uptime_seconds", "gauge", "Seconds since start.", [("", self.uptime())])
        for name, kind, help_, value in self.http.samples():
            metric(name, kind, help_, [("", value)])
        for component, stats, gauges in self._collectors:
            try:
                values = dict(stats())
            except Exception:  # a component's failure must not take /metrics down
                continue
            for key, value in values.items():
                if value is None:
                    continue
                gauge = key in gauges
                name = f"edgeface_{component}_{key}" + ("" if gauge else "_total")
                metric(name, "gauge" if gauge else "counter", f"{component}: {key}.",
                       [("", value)])
        return "\n".join(out) + "\n"


def _num(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if v != v:
        return "NaN"
    return repr(float(v))
