"""Frame sources: camera-less files, folders and in-process fake devices."""

from __future__ import annotations

import logging
import os
import threading
import time

import cv2
import numpy as np
import pytest
from runtime_fakes import FakeReader, decode_video, synthetic_frames, write_video

from edgeface.errors import EXIT_SOURCE, MissingDependency, SourceError
from edgeface.runtime.capture_priority import BackgroundSwitch, can_leave_idle
from edgeface.runtime.sources import (
    CaptureSettings,
    SourceTimeout,
    ThreadedSource,
    as_bgr,
    classify,
    open_source,
)
from edgeface.runtime.sources.csi import csi_pipeline, opencv_has_gstreamer
from edgeface.runtime.sources.stream import redact_url


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("media") / "clip.mp4", synthetic_frames(12))


def drain(src, timeout=5.0):
    frames = []
    while (f := src.read(timeout=timeout)) is not None:
        frames.append(f)
    return frames


@pytest.mark.parametrize("spec, kind, norm", [
    (0, "camera", 0), ("2", "camera", 2), ("/dev/video1", "camera", "/dev/video1"),
    ("picamera", "picamera", 0), ("csi", "csi", 0), ("csi:1", "csi", 1),
    ("rtsp://cam.local/stream", "stream", "rtsp://cam.local/stream"),
    ("http://10.0.0.2:8080/video", "stream", "http://10.0.0.2:8080/video"),
])
def test_classify(spec, kind, norm):
    assert classify(spec) == (kind, norm)


def test_classify_paths(tmp_path, video):
    assert classify(tmp_path) == ("folder", str(tmp_path))
    assert classify(str(video)) == ("file", str(video))
    assert classify(f"file://{video}") == ("file", str(video))
    with pytest.raises(SourceError, match="no such file"):
        classify(tmp_path / "missing.mp4")
    with pytest.raises(SourceError, match="csi:N"):
        classify("csi:left")


def test_video_file_every_frame_in_order(video):
    expected = decode_video(video)
    with open_source(str(video)) as src:
        assert not src.live and src.fps == pytest.approx(10, rel=0.01)
        frames = drain(src)
        assert src.read() is None  # stays ended
    assert [f.index for f in frames] == list(range(len(expected)))
    for f, e in zip(frames, expected):
        np.testing.assert_array_equal(f.image, e)
    assert src.stats.dropped == 0


def test_file_source_is_not_dropped_by_a_slow_consumer(video):
    with open_source(video, prefetch=1) as src:
        frames = []
        while (f := src.read(timeout=5)) is not None:
            time.sleep(0.01)
            frames.append(f.index)
    assert frames == list(range(12)) and src.stats.dropped == 0


def test_loop_restarts_a_file(video):
    with open_source(video, loop=True) as src:
        idx = [src.read(timeout=5).index for _ in range(30)]
    assert idx == list(range(30))


def test_folder_source_sorted_skips_corrupt(tmp_path, caplog):
    imgs = synthetic_frames(3)
    for name, img in zip(["b.png", "a.jpg", "sub/c.png"], imgs):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), img)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING), open_source(tmp_path) as src:
        frames = drain(src)
    assert [f.label.split("/")[-1] for f in frames] == ["a.jpg", "b.png", "c.png"]
    assert [f.index for f in frames] == [0, 1, 3]  # broken.jpg was index 2
    assert src.stats.corrupt == 1 and "broken.jpg" in caplog.text
    np.testing.assert_array_equal(frames[1].image, imgs[0])


def test_single_image_is_a_one_frame_source(tmp_path):
    p = tmp_path / "one.png"
    cv2.imwrite(str(p), synthetic_frames(1)[0])
    with open_source(p) as src:
        assert len(drain(src)) == 1


def test_bad_files_are_source_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images in folder") as e:
        open_source(tmp_path / "empty")
    assert e.value.exit_code == EXIT_SOURCE
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(SourceError, match="cannot open video file"):
        open_source(bad)


def test_absent_camera_and_unreachable_stream_fail_clearly():
    with pytest.raises(SourceError, match="v4l2-ctl") as e:
        open_source("/dev/video97")
    assert e.value.exit_code == EXIT_SOURCE
    # A closed local port: refused at once, no network involved.
    with pytest.raises(SourceError, match=r"cannot open stream rtsp://\*\*\*@127.0.0.1:9/"):
        open_source("rtsp://user:secret@127.0.0.1:9/live")


def test_live_source_keeps_only_the_newest_frame():
    class Gated(FakeReader):
        """Delivers frames while allowed, then blocks like a camera between frames."""

        def __init__(self):
            super().__init__()
            self.allowed = threading.Semaphore(0)

        def read(self):
            while not self.allowed.acquire(timeout=0.05):
                if stopping.is_set():
                    return None
            return super().read()

    def wait_captured(n):
        deadline = time.monotonic() + 5
        while src.stats.captured < n and time.monotonic() < deadline:
            time.sleep(0.005)
        assert src.stats.captured == n

    stopping = threading.Event()
    reader = Gated()
    src = ThreadedSource(reader, "fake", live=True)
    try:
        for _ in range(5):
            reader.allowed.release()
        wait_captured(5)
        f = src.read(timeout=1)
        assert f.index == 4 and src.stats.dropped == 4  # the newest; the 4 older ones dropped
        with pytest.raises(SourceTimeout):  # and it is not handed out twice
            src.read(timeout=0.05)
        for _ in range(3):
            reader.allowed.release()
        wait_captured(8)
        assert src.read(timeout=1).index == 7 and src.stats.dropped == 6
    finally:
        stopping.set()
        src.close()


class PolicyRecorder(FakeReader):
    """Delivers a frame per permit and records the capture thread's scheduling policy at
    every read (the moment decoding of the next frame would start)."""

    def __init__(self):
        super().__init__()
        self.allowed = threading.Semaphore(0)
        self.stopping = threading.Event()
        self.policies = []
        self.tid = None

    def read(self):
        self.tid = threading.get_native_id()
        self.policies.append(os.sched_getscheduler(0))
        while not self.allowed.acquire(timeout=0.02):
            if self.stopping.is_set():
                return None
        return super().read()


def wait_for(cond, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


@pytest.mark.skipif(not can_leave_idle(),
                    reason="needs Linux and CAP_SYS_NICE or RLIMIT_NICE >= 20 to leave SCHED_IDLE")
@pytest.mark.parametrize("live", [False, True])
def test_capture_works_ahead_in_the_background_and_normally_when_the_detector_waits(live):
    reader = PolicyRecorder()
    src = ThreadedSource(reader, "fake", live=live, prefetch=4)
    try:
        wait_for(lambda: len(reader.policies) == 1, "the first read")
        reader.allowed.release()
        wait_for(lambda: len(reader.policies) == 2, "the second read")
        reader.allowed.release()
        wait_for(lambda: len(reader.policies) == 3, "the third read")
        # Nothing was waiting for the detector before frame 0: normal; then ahead: idle.
        assert reader.policies == [os.SCHED_OTHER, os.SCHED_IDLE, os.SCHED_IDLE]
        assert os.sched_getscheduler(reader.tid) == os.SCHED_IDLE
        while True:  # the detector takes what is there...
            try:
                src.read(timeout=0.05)
            except SourceTimeout:
                break
        # ...and, having to wait, raises the thread that is decoding its next frame.
        assert os.sched_getscheduler(reader.tid) == os.SCHED_OTHER
        reader.allowed.release()
        wait_for(lambda: len(reader.policies) == 4, "the fourth read")
        assert reader.policies[3] == os.SCHED_IDLE  # frame 2 is waiting again
    finally:
        reader.stopping.set()
        src.close()


@pytest.mark.parametrize("prefetch", [1, 2])
def test_a_file_source_decodes_no_further_ahead_than_its_queue(prefetch):
    """Room first, then decode: a frame decoded while the queue is full would wait, whole,
    beside it (a 720p frame and its model input: 4.8 MB)."""
    reader = FakeReader(limit=100)
    src = ThreadedSource(reader, "fake", live=False, prefetch=prefetch)
    try:
        wait_for(lambda: reader.produced >= prefetch, "the queue to fill")
        time.sleep(0.2)  # a capture thread that decodes ahead would have read one more
        assert reader.produced == prefetch
        assert src.read(timeout=1.0).index == 0
        wait_for(lambda: reader.produced == prefetch + 1, "the next decode")
        time.sleep(0.1)
        assert reader.produced == prefetch + 1
        assert [src.read(timeout=1.0).index for _ in range(5)] == [1, 2, 3, 4, 5]
    finally:
        src.close()


def test_capture_priority_can_be_left_alone():
    reader = PolicyRecorder()
    src = ThreadedSource(reader, "fake", live=False, prefetch=4, background_when_ahead=False)
    try:
        for _ in range(3):
            reader.allowed.release()
        wait_for(lambda: len(reader.policies) == 4, "four reads")
        assert set(reader.policies) == {os.sched_getscheduler(0)}
    finally:
        reader.stopping.set()
        src.close()


def test_background_is_never_entered_without_the_right_to_leave_it(monkeypatch):
    """Without CAP_SYS_NICE / RLIMIT_NICE a thread in SCHED_IDLE could never come back:
    the probe finds that out on a throwaway thread and the switch stays off."""
    calls = []

    def refusing(pid, policy, param):
        calls.append((threading.get_native_id(), policy))
        if policy != getattr(os, "SCHED_IDLE", -1):
            raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "SCHED_IDLE", getattr(os, "SCHED_IDLE", 5), raising=False)
    monkeypatch.setattr(os, "SCHED_OTHER", getattr(os, "SCHED_OTHER", 0), raising=False)
    monkeypatch.setattr(os, "sched_setscheduler", refusing, raising=False)
    monkeypatch.setattr(os, "sched_param", lambda p: p, raising=False)
    import edgeface.runtime.capture_priority as tp

    monkeypatch.setattr(tp, "_IDLE", os.SCHED_IDLE)
    monkeypatch.setattr(tp, "_OTHER", os.SCHED_OTHER)
    can_leave_idle.cache_clear()
    try:
        assert can_leave_idle() is False
        assert calls and all(tid != threading.get_native_id() for tid, _ in calls)
        switch = BackgroundSwitch()
        switch.attach()
        switch.set(True)
        assert not switch.enabled and not switch.background and len(calls) == 2
    finally:
        can_leave_idle.cache_clear()


def test_video_file_opens_without_parameters_its_backend_refuses(monkeypatch, video):
    real = cv2.VideoCapture
    opened = []

    def picky(target, api, params=None):
        opened.append(list(params or []))
        if params:
            return real("/nonexistent/clip.mp4")  # what a backend refusing a parameter gives
        return real(target, api)

    monkeypatch.setattr(cv2, "VideoCapture", picky)
    with open_source(video) as src:
        assert len(drain(src)) == 12
    # OpenCV 4.5.5 / 4.6.0 have no CAP_PROP_N_THREADS: then the file opens without params.
    asked = [cv2.CAP_PROP_N_THREADS, 1] if hasattr(cv2, "CAP_PROP_N_THREADS") else []
    assert opened[0] == asked and opened[-1] == [] and len(opened) == (2 if asked else 1)


def test_live_source_reopens_with_backoff(caplog):
    reader = FakeReader(fail_after=3, refuse_reopen=2, period=0.001)
    with caplog.at_level(logging.WARNING), \
            ThreadedSource(reader, "flaky", live=True, reconnect=True,
                           backoff=(0.01, 0.04)) as src:
        seen = set()
        deadline = time.monotonic() + 5
        while reader.produced < 10 and time.monotonic() < deadline:
            try:
                seen.add(src.read(timeout=0.5).index)
            except SourceTimeout:
                pass
    assert reader.produced >= 10, "the source did not come back"
    assert src.stats.reconnects == 1 and reader.opens == 4  # initial + 2 refused + 1 success
    assert "source lost; reopening" in caplog.text and "reopened after 3 attempt" in caplog.text
    assert max(seen) >= 3  # frames after the failure arrived


def test_live_file_ends_at_eof_without_reconnecting():
    reader = FakeReader(limit=5)
    with ThreadedSource(reader, "file", live=True, reconnect=False) as src:
        end = time.monotonic() + 5
        while src.read(timeout=5) is not None and time.monotonic() < end:
            pass
    assert reader.opens == 1 and src.stats.reconnects == 0


def test_live_file_playback_is_paced(video):
    with open_source(video, live=True, capture=CaptureSettings(fps=100)) as src:
        t0 = time.monotonic()
        n = len(drain(src, timeout=2))
        elapsed = time.monotonic() - t0
    assert src.live and n >= 1
    assert elapsed >= 11 / 100 * 0.8  # 12 frames at 100 fps take >= ~0.11 s


def test_read_timeout_and_close_wake_the_reader():
    reader = FakeReader(period=0.2)
    src = ThreadedSource(reader, "slow", live=True)
    with pytest.raises(SourceTimeout):
        src.read(timeout=0.01)
    result = []
    t = threading.Thread(target=lambda: result.append(src.read()))
    t.start()
    time.sleep(0.02)
    src.close()
    t.join(timeout=2)
    assert not t.is_alive()


def test_capture_thread_errors_surface_on_read():
    class Exploding(FakeReader):
        def read(self):
            raise RuntimeError("driver crashed")

    src = ThreadedSource(Exploding(), "boom", live=True)
    with pytest.raises(SourceError, match="driver crashed"):
        src.read(timeout=2)
    src.close()


def test_corrupt_device_frames_are_skipped_and_counted():
    class Weird(FakeReader):
        def read(self):
            img = super().read()
            if img is not None and self.produced == 2:
                return np.zeros((4, 4, 3), np.float32)  # not uint8
            return img

    with ThreadedSource(Weird(limit=4), "weird", live=False) as src:
        frames = drain(src)
    assert [f.index for f in frames] == [0, 2, 3] and src.stats.corrupt == 1


def test_as_bgr():
    assert as_bgr(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert as_bgr(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    img = np.zeros((4, 5, 3), np.uint8)
    assert as_bgr(img) is img
    assert as_bgr(np.zeros((4, 5, 3), np.float32)) is None
    assert as_bgr(np.zeros((0, 5, 3), np.uint8)) is None
    assert as_bgr(None) is None


def test_picamera_without_picamera2_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "picamera2", None)  # make the import fail
    with pytest.raises(MissingDependency) as e:
        open_source("picamera")
    msg = str(e.value)
    assert "sudo apt install python3-picamera2" in msg and "--system-site-packages" in msg


def test_csi_pipeline_and_gstreamer_check():
    pipe = csi_pipeline(1, (1920, 1080), 30)
    assert pipe.startswith("nvarguscamerasrc sensor-id=1 ")
    assert "width=1920, height=1080, framerate=30/1" in pipe and "appsink drop=true" in pipe
    if opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(MissingDependency, match="GStreamer"):
        open_source("csi:0")


def test_redact_url():
    assert redact_url("rtsp://admin:pw@10.0.0.5:554/h264") == "rtsp://***@10.0.0.5:554/h264"
    assert redact_url("rtsp://10.0.0.5/h264") == "rtsp://10.0.0.5/h264"


def test_looping_a_folder_of_only_corrupt_images_ends(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"junk")
    (tmp_path / "b.jpg").write_bytes(b"junk")
    with open_source(tmp_path, loop=True) as src:
        assert src.read(timeout=5) is None
    assert src.stats.corrupt == 2
