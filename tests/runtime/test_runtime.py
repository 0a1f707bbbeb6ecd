"""The processing loop with a fake backend: every frame, stop, memory cap, reconnects."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
from runtime_fakes import FakeBackend, FakeReader, decode_video, synthetic_frames, write_video

from edgeface.errors import EXIT_MEMORY, EdgefaceError, MemoryLimitExceeded
from edgeface.http.latest import LatestSink
from edgeface.inference.detector import Detector
from edgeface.runtime.loop import Runtime
from edgeface.runtime.settings import LoopSettings
from edgeface.runtime.sinks import JsonLinesSink
from edgeface.runtime.sources import ThreadedSource, open_source


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("media") / "clip.avi", synthetic_frames(15))


class RecordingNotifier:
    def __init__(self):
        self.events = []

    def ready(self, status=None):
        self.events.append("READY")

    def watchdog(self, now=None):
        self.events.append("WATCHDOG")

    def status(self, text):
        self.events.append("STATUS")

    def close(self):
        pass


def test_every_frame_of_a_file_in_order(video, tmp_path):
    detector = Detector(FakeBackend())
    out = tmp_path / "out.jsonl"
    status = io.StringIO()
    prepared_in = []

    def prepare(image):
        prepared_in.append(threading.current_thread().name)
        return detector.prepare(image)

    with Runtime(open_source(video, prepare=prepare), detector, [JsonLinesSink(out)],
                 settings=LoopSettings(status_interval=1e-6, record_latencies=True),
                 status_stream=status) as rt:
        stats = rt.run()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    frames = decode_video(video)
    assert stats.frames == len(records) == len(frames) == 15
    assert [r["frame"] for r in records] == list(range(15))
    for rec, img in zip(records, frames):  # same faces as the detector on the same frames
        expected = detector.detect(img)
        np.testing.assert_allclose([f["box"] for f in rec["faces"]], expected.boxes, atol=0.01)
    assert stats.faces == sum(len(r["faces"]) for r in records)
    assert stats.dropped == 0 and not stats.stopped
    assert set(stats.latencies) == {"detect", "capture_wait", "preprocess", "inference",
                                    "postprocess", "output"}
    assert all(a.shape == (15,) for a in stats.latencies.values())
    assert stats.latency["inference"]["n"] == 15 and stats.fps > 0
    # Preprocessing ran in the capture thread, once per frame.
    assert len(prepared_in) == 15 and all(n.startswith("capture") for n in prepared_in)
    assert stats.latency["preprocess"]["p50_ms"] > 0
    assert stats.peak_rss_bytes > 10 << 20
    assert "fps | latency p50" in status.getvalue()  # the periodic status line
    assert "15 frames" in stats.summary_line()


def test_max_frames_and_duration(video):
    with Runtime(open_source(video, loop=True), Detector(FakeBackend())) as rt:
        assert rt.run(max_frames=7).frames == 7
        t0 = time.monotonic()
        stats = rt.run(duration=0.3)
    assert 0.25 < time.monotonic() - t0 < 2 and stats.frames > 0


def test_stop_from_another_thread_finishes_and_flushes(video, tmp_path):
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(out, flush_each=False)
    rt = Runtime(open_source(video, loop=True), Detector(FakeBackend(delay=0.005)), [sink])
    threading.Timer(0.3, rt.stop).start()
    t0 = time.monotonic()
    stats = rt.run()
    assert time.monotonic() - t0 < 2 and stats.stopped
    lines = out.read_text().splitlines()  # flushed by run(), before close()
    assert len(lines) == stats.frames > 0 and json.loads(lines[-1])
    rt.close()


def test_memory_limit_exits_with_code_5_after_flushing(video, tmp_path):
    out = tmp_path / "out.jsonl"
    rt = Runtime(open_source(video), Detector(FakeBackend()), [JsonLinesSink(out,
                 flush_each=False)], settings=LoopSettings(memory_limit=1 << 20))
    with pytest.raises(MemoryLimitExceeded, match=r"exceeds the limit of 1.0 MB") as e:
        rt.run()
    rt.close()
    assert e.value.exit_code == EXIT_MEMORY
    assert len(out.read_text().splitlines()) == 1  # the frame that was done is written


def test_flaky_live_source_is_reopened_and_the_loop_keeps_going():
    reader = FakeReader(fail_after=5, refuse_reopen=1, period=0.002)
    src = ThreadedSource(reader, "flaky", live=True, reconnect=True, backoff=(0.02, 0.05))
    notifier = RecordingNotifier()
    latest = LatestSink()
    with Runtime(src, Detector(FakeBackend()), [latest], notifier=notifier,
                 settings=LoopSettings(read_timeout=0.01)) as rt:
        stats = rt.run(duration=0.6)
    assert stats.reconnects == 1 and reader.opens == 3
    assert stats.frames > 5 and latest.latest()[1].frame.index >= 5  # frames after the gap
    assert notifier.events.count("READY") == 1
    assert notifier.events.count("WATCHDOG") > stats.frames  # also pinged while reconnecting


def test_live_source_drops_are_counted_in_stats():
    reader = FakeReader(period=0.001)
    src = ThreadedSource(reader, "fast camera", live=True)
    with Runtime(src, Detector(FakeBackend(delay=0.02))) as rt:
        stats = rt.run(duration=0.4)
    assert stats.dropped > 0 and stats.frames > 0
    assert rt.metrics.dropped == stats.dropped


def test_inference_failure_is_one_clear_error(video):
    class Broken(FakeBackend):
        def infer(self, blob):
            raise RuntimeError("CUDA error: out of memory")

    with Runtime(open_source(video), Detector(Broken())) as rt, \
            pytest.raises(EdgefaceError, match="inference failed on frame 0 .*out of memory"):
        rt.run()


def test_ready_once_then_watchdog_each_frame():
    notifier = RecordingNotifier()
    src = ThreadedSource(FakeReader(limit=4), "four", live=False)
    with Runtime(src, Detector(FakeBackend()), notifier=notifier) as rt:
        rt.run()
    assert notifier.events == ["READY"] + ["WATCHDOG"] * 4


def test_limit_opencv_threads(monkeypatch):
    import cv2

    from edgeface.runtime.loop import limit_opencv_threads

    saved = cv2.getNumThreads()
    try:
        cv2.setNumThreads(4)
        monkeypatch.setenv("OPENCV_FOR_THREADS_NUM", "3")
        limit_opencv_threads()
        assert cv2.getNumThreads() == 4  # the operator's explicit choice wins
        monkeypatch.delenv("OPENCV_FOR_THREADS_NUM")
        limit_opencv_threads()
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(saved)
