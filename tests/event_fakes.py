"""Hand-made track events for the event sinks' tests (MQTT, webhook, crops): what the tracker
(edgeface.runtime.tracking) hands the sinks, without running it."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from runtime_fakes import make_result, synthetic_frames

from edgeface.frames import FrameResult, Track, TrackEvent

T0 = 1700000000.0


def make_track(track_id: int = 1, box=(40, 30, 90, 100), with_image: bool = True,
               size=(160, 120)) -> Track:
    image = synthetic_frames(1, size)[0] if with_image else None
    b = np.array(box, np.float32)
    return Track(id=track_id, box=b, score=0.93, landmarks=np.full((5, 2), 50, np.float32),
                 start_ts=T0, last_ts=T0 + 2.5, hits=12, confirmed=True, best_score=0.95,
                 best_ts=T0 + 1.25, best_image=image, best_box=b.copy() if with_image else None)


def event(kind: str, track: Track, ts: float = T0 + 3.0) -> TrackEvent:
    return TrackEvent(kind, track, ts)


def with_events(events: list[TrackEvent], i: int = 0) -> FrameResult:
    result = make_result(i)
    result.events = list(events)
    return result


def lifecycle(track_id: int = 1) -> list[FrameResult]:
    """start, update, end of one track, one frame each."""
    t = make_track(track_id)
    return [with_events([event("start", t, T0)], 0), with_events([event("update", t, T0 + 1)], 1),
            with_events([event("end", t, T0 + 3)], 2)]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
