"""The processing loop with the motion gate and the tracker: frames without motion skip the
detector and keep the tracked face, one face crossing the picture is one track with one
start and one end (the end delivered at shutdown if the face is still there), and the JSON
records say which frames were detected."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from runtime_fakes import write_video

from edgeface.frames import Detections, Timing
from edgeface.inference.detector import detect_timed
from edgeface.runtime.loop import Runtime
from edgeface.runtime.metrics import Metrics
from edgeface.runtime.motion import MotionGate
from edgeface.runtime.settings import LoopSettings
from edgeface.runtime.sinks import JsonLinesSink
from edgeface.runtime.sources import open_source
from edgeface.runtime.tracking import Tracker


class BrightSquareDetector:
    """A FaceDetector that finds the bright square of the test video: exact, instant."""

    input_size = (160, 120)

    def __init__(self):
        self.runs = 0

    def prepare(self, image, frame_size=None):
        return image

    def detect_prepared(self, image, preprocess_s=0.0):
        self.runs += 1
        ys, xs = np.nonzero(image[:, :, 0] > 240)
        if ys.size == 0:
            return Detections.empty(), Timing(preprocess_s, 1e-4, 1e-5)
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        lms = np.tile(box[:, None, :2], (1, 5, 1)).astype(np.float32)
        return Detections(box, np.array([0.99], np.float32), lms), \
            Timing(preprocess_s, 1e-4, 1e-5)

    def detect_timed(self, image):
        return detect_timed(self, image)


def scene(n_still: int, n_moving: int, n_gone: int) -> list[np.ndarray]:
    """A textured background; a 30x30 white square still, then moving, then gone."""
    rng = np.random.default_rng(0)
    bg = rng.integers(20, 120, (120, 160, 3), dtype=np.uint8)
    frames = []
    for i in range(n_still + n_moving + n_gone):
        img = bg.copy()
        if i < n_still + n_moving:
            x = 10 + 3 * max(0, i - n_still)
            img[40:70, x:x + 30] = 255
        frames.append(img)
    return frames


class EventCatcher:
    def __init__(self):
        self.results = []

    def write(self, result):
        self.results.append(result)

    def flush(self):
        pass

    def close(self):
        pass

    def describe(self):
        return "catcher"


@pytest.fixture
def clip(tmp_path):
    # MJPG keeps the still frames identical enough for a frame difference (lossy codecs
    # flicker a little, as real cameras do).
    return write_video(tmp_path / "scene.avi", scene(30, 30, 30), fps=30)


def test_gated_frames_keep_the_track_and_one_face_is_one_track(clip, tmp_path):
    det = BrightSquareDetector()
    out = tmp_path / "out.jsonl"
    catcher = EventCatcher()
    metrics = Metrics()
    gate = MotionGate(hold_s=0.0, interval_s=3600.0)
    tracker = Tracker(min_hits=2, max_misses=2, min_absent_s=0.0)
    with Runtime(open_source(clip, prepare=det.prepare), det, [JsonLinesSink(out), catcher],
                 settings=LoopSettings(status_interval=0), metrics=metrics, gate=gate,
                 tracker=tracker) as rt:
        stats = rt.run()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert stats.frames == len(records) == 90
    gated = [r["frame"] for r in records if r.get("detected") is False]
    # The still start after its first frames, and the empty end, are gated; the moving
    # stretch is not.
    assert stats.gated == len(gated) == metrics.gated > 20
    assert not set(range(32, 60)) & set(gated)
    assert det.runs == 90 - len(gated)
    # Frames of the still stretch that were gated still report the (held) face and its id.
    held = [r for r in records if r.get("detected") is False and r["frame"] < 30]
    assert held and all(len(r["faces"]) == 1 and r["faces"][0]["track_id"] == 1 for r in held)
    events = [(e.type, e.track.id) for r in catcher.results for e in r.events]
    assert events.count(("start", 1)) == 1 and events.count(("end", 1)) == 1
    assert {t for _, t in events} == {1}


def test_a_face_still_there_at_the_end_gets_its_end_event_at_shutdown(tmp_path):
    clip = write_video(tmp_path / "s.avi", scene(20, 0, 0), fps=30)
    det = BrightSquareDetector()
    catcher = EventCatcher()
    out = tmp_path / "o.jsonl"
    t0 = time.time()
    with Runtime(open_source(clip, prepare=det.prepare), det, [JsonLinesSink(out), catcher],
                 settings=LoopSettings(status_interval=0), tracker=Tracker(min_hits=2)) as rt:
        rt.run()
    last = catcher.results[-1]
    assert last.only_events and [e.type for e in last.events] == ["end"]
    assert last.events[0].ts >= t0
    # Per-frame outputs ignore the shutdown result: one record per frame.
    assert len(out.read_text().splitlines()) == 20
