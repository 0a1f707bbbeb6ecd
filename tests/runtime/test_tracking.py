"""Face tracks: association, debounce, best view, rate-limited updates, ids (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.errors import ConfigError
from edgeface.frames import Detections, Frame
from edgeface.runtime.tracking import TRACK_OPTIONS, Tracker, associate, iou_matrix

FPS = 15.0
W, H = 640, 480


def dets(*faces: tuple[tuple[float, float, float, float], float]) -> Detections:
    """Detections from (box, score) pairs; landmarks at the box centre."""
    if not faces:
        return Detections.empty()
    boxes = np.array([b for b, _ in faces], np.float32)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return Detections(boxes, np.array([s for _, s in faces], np.float32),
                      np.repeat(centres[:, None, :], 5, axis=1))


def frame(i: int) -> Frame:
    return Frame(index=i, timestamp=100.0 + i / FPS, image=np.zeros((H, W, 3), np.uint8))


def box_at(x: float, y: float = 200.0, size: float = 60.0) -> tuple[float, ...]:
    return (x, y, x + size, y + size)


def run(tracker: Tracker, per_frame: list[list], start: int = 0):
    """Feed ``per_frame`` (each a list of (box, score), or None for a gated frame); returns
    (ids per frame, all events, frames)."""
    ids, events, frames = [], [], []
    for k, faces in enumerate(per_frame):
        f = frame(start + k)
        frames.append(f)
        if faces is None:
            tracker.skip(f)
            ids.append(None)
            continue
        got, ev = tracker.update(dets(*faces), f)
        ids.append(got)
        events += ev
    return ids, events, frames


def types(events) -> list[str]:
    return [e.type for e in events]


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]])
    got = iou_matrix(a, b)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got[0], [1.0, 50 / 150, 0.0])
    assert not got[1].any()
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_a_face_crossing_the_frame_is_one_track_with_one_start_and_one_end():
    tr = Tracker()
    walk = [[(box_at(x), 0.9)] for x in range(0, W - 60, 6)]  # ~6 s across, 15 fps
    ids, events, _ = run(tr, walk + [[]] * 30)
    assert types(events) == ["start", "end"]
    assert {i for got in ids for i in got if i is not None} == {1}
    assert ids[0] == [None] and ids[1] == [None] and ids[2] == [1]  # min_hits=3
    end = events[-1]
    assert end.track.id == 1 and end.track.hits == len(walk)
    assert end.to_dict()["duration_s"] == pytest.approx((len(walk) - 1) / FPS, abs=1e-3)
    assert tr.active == [] and (tr.started, tr.ended) == (1, 1)


def test_two_faces_crossing_each_other_keep_their_ids():
    tr = Tracker()
    seq = []
    for k in range(60):  # same height, 8 px per frame each way: the boxes pass through
        a, b = 100 + 8 * k, 540 - 8 * k
        seq.append([(box_at(a), 0.9), (box_at(b), 0.8)])
    ids, events, _ = run(tr, seq)
    assert types(events) == ["start", "start"]
    assert ids[2] == [1, 2]
    for got in ids[2:]:  # detection 0 is always the face that started on the left
        assert got == [1, 2]


def test_flicker_shorter_than_max_misses_does_not_end_a_track():
    tr = Tracker(max_misses=3, min_absent_s=0.0)
    face = [(box_at(200), 0.9)]
    seq = [face] * 5 + [[]] * 2 + [face] * 5 + [[], face] * 5
    ids, events, _ = run(tr, seq)
    assert types(events) == ["start"]
    assert ids[-1] == [1]


def test_a_track_ends_after_max_misses_and_min_absent():
    tr = Tracker(max_misses=3, min_absent_s=1.0)
    face = [(box_at(200), 0.9)]
    ids, events, frames = run(tr, [face] * 5 + [[]] * 30)
    assert types(events) == ["start", "end"]
    # three misses take 0.2 s at 15 fps; the end waits for 1 s since the last sighting
    assert events[-1].ts - events[-1].track.last_ts == pytest.approx(1.0, abs=1 / FPS)
    assert events[-1].ts == frames[4].timestamp + 15 / FPS


def test_a_single_spurious_detection_never_starts_a_track():
    tr = Tracker(min_hits=3)
    blip = [(box_at(300), 0.95)]
    # alone, and every other run (never three in a row)
    ids, events, _ = run(tr, [blip] + [[]] * 10 + [blip, [], blip, blip, [], blip] * 5)
    assert events == [] and tr.active == [] and tr.started == 0
    assert all(i is None for got in ids for i in got)


def test_pending_faces_are_listed_until_confirmed_or_dropped():
    tr = Tracker(min_hits=3)
    run(tr, [[(box_at(100), 0.9)]] * 2)
    assert len(tr.pending) == 1 and tr.pending[0].hits == 2 and tr.active == []
    run(tr, [[(box_at(100), 0.9)]], start=2)
    assert tr.pending == [] and [t.id for t in tr.active] == [1]
    run(tr, [[(box_at(100), 0.9), (box_at(400), 0.8)]], start=3)
    assert len(tr.pending) == 1
    run(tr, [[(box_at(100), 0.9)]], start=4)
    assert tr.pending == []


def test_skipped_frames_do_not_count_as_absences():
    tr = Tracker(max_misses=2, min_absent_s=0.0)
    face = [(box_at(200), 0.9)]
    # a person standing still: the gate skips a minute of frames between forced runs
    seq = [face] * 4 + ([None] * 29 + [face]) * 30 + [None] * 900 + [[]]
    ids, events, _ = run(tr, seq)
    assert types(events) == ["start"]
    assert [t.id for t in tr.active] == [1]
    assert tr.skipped == 29 * 30 + 900
    # one miss after a long skipped stretch is one miss, not an end
    assert tr.active[0].misses == 1


def test_skip_returns_the_held_faces():
    tr = Tracker(min_hits=2)
    run(tr, [[(box_at(100), 0.9), (box_at(400), 0.7)]] * 2 + [[(box_at(300, 10), 0.6)]])
    held, ids = tr.skip(frame(10))
    assert ids == [1, 2] and len(held) == 2
    np.testing.assert_allclose(held.boxes[0], box_at(100))
    assert held.scores.tolist() == pytest.approx([0.9, 0.7])
    assert held.landmarks.shape == (2, 5, 2)
    empty, none = Tracker().skip(frame(0))
    assert len(empty) == 0 and none == []


def test_the_best_frame_is_the_highest_scoring():
    tr = Tracker(update_interval_s=0.0)
    scores = [0.6, 0.7, 0.95, 0.8, 0.65, 0.9]
    _, _, frames = run(tr, [[(box_at(100 + 5 * k), s)] for k, s in enumerate(scores)])
    t = tr.active[0]
    assert t.best_score == pytest.approx(0.95)
    np.testing.assert_allclose(t.best_box, box_at(110))
    assert t.best_ts == frames[2].timestamp
    # The view is a copy of frame 2 around the face (margin included), not the frame: a
    # track must not keep a whole frame alive.
    ox, oy = t.best_offset
    h, w = t.best_image.shape[:2]
    assert h * w < frames[2].image.shape[0] * frames[2].image.shape[1] / 4
    assert not np.shares_memory(t.best_image, frames[2].image)
    np.testing.assert_array_equal(t.best_image, frames[2].image[oy:oy + h, ox:ox + w])
    x1, y1, x2, y2 = box_at(110)
    assert ox <= x1 and oy <= y1 and ox + w >= x2 and oy + h >= y2


def test_a_cut_off_face_never_replaces_a_whole_one():
    tr = Tracker()
    inside, cut = box_at(20), (0.0, 200.0, 60.0, 260.0)
    run(tr, [[(cut, 0.7)], [(inside, 0.6)], [(cut, 0.99)]])
    t = tr.active[0]
    assert t.best_score == pytest.approx(0.6)  # whole face beats the cut-off one
    np.testing.assert_allclose(t.best_box, inside)


def test_update_events_are_rate_limited():
    tr = Tracker(update_interval_s=5.0, best_margin=0.0)
    # the view improves on every frame for 20 s
    seq = [[(box_at(200), 0.5 + 0.49 * k / 300)] for k in range(300)]
    _, events, _ = run(tr, seq)
    ups = [e for e in events if e.type == "update"]
    assert types(events)[0] == "start" and 3 <= len(ups) <= 4
    times = [e.ts for e in events]
    assert all(b - a >= 5.0 - 1e-9 for a, b in zip(times, times[1:]))
    # no update when nothing improved
    tr2 = Tracker(update_interval_s=0.0)
    _, ev2, _ = run(tr2, [[(box_at(200), 0.9)]] * 50)
    assert types(ev2) == ["start"]


def test_events_carry_a_snapshot_of_the_track():
    tr = Tracker(min_hits=1)
    _, events, _ = run(tr, [[(box_at(100), 0.9)]])
    start = events[0]
    run(tr, [[(box_at(130), 0.8)]], start=1)
    np.testing.assert_allclose(start.track.box, box_at(100))
    assert start.track.hits == 1 and tr.active[0].hits == 2


def test_ids_are_never_reused():
    tr = Tracker(min_hits=2, max_misses=1, min_absent_s=0.0)
    seen = []
    for k in range(4):
        ids, events, _ = run(tr, [[(box_at(50 + 100 * k), 0.9)]] * 3 + [[]], start=10 * k)
        seen += [e.track.id for e in events if e.type == "start"]
    ids, events, _ = run(tr, [[(box_at(100), 0.9)]] * 2, start=100)
    ended = tr.flush(200.0)
    assert types(ended) == ["end"] and ended[0].ts == 200.0
    ids, events, _ = run(tr, [[(box_at(100), 0.9)]] * 2, start=300)
    seen += [ended[0].track.id] + [e.track.id for e in events]
    assert seen == [1, 2, 3, 4, 5, 6]


def test_flush_ends_confirmed_tracks_and_drops_pending_ones():
    tr = Tracker(min_hits=3)
    run(tr, [[(box_at(100), 0.9)]] * 3 + [[(box_at(100), 0.9), (box_at(400), 0.9)]])
    events = tr.flush(50.0)
    assert types(events) == ["end"] and events[0].track.id == 1
    assert tr.active == [] and tr.flush(51.0) == []


def test_small_fast_faces_are_followed_by_centre_distance():
    tr = Tracker()
    # a 12 px face moving 15 px per frame: consecutive boxes never overlap
    seq = [[((20 + 15 * k, 100, 32 + 15 * k, 112), 0.8)] for k in range(30)]
    ids, events, _ = run(tr, seq)
    assert types(events) == ["start"]
    assert ids[-1] == [1]
    # a face of very different size at that distance is a new face
    assert associate(np.array([box_at(100, size=20)]), np.array([box_at(110, size=200)])) == []


def test_associate_prefers_overlap_then_distance():
    tracks = np.array([box_at(100), box_at(400)])
    detections = np.array([box_at(470), box_at(105)])
    assert sorted(associate(tracks, detections)) == [(0, 1), (1, 0)]
    assert associate(np.zeros((0, 4)), detections) == []


def test_options_declarations_and_from_options():
    keys = [o.key for o in TRACK_OPTIONS]
    assert len(set(keys)) == len(keys) and all(k.startswith("track_") for k in keys)
    for o in TRACK_OPTIONS:
        assert o.flag == "--" + o.key.replace("_", "-") and o.help
        assert o.check(o.key, o.default) == o.default
        assert o.check(o.key, str(o.default)) == o.default  # flags arrive as strings
    with pytest.raises(ConfigError):
        TRACK_OPTIONS[0].check("track_min_hits", 0)
    tr = Tracker.from_options({"track_min_hits": 5, "track_update_interval": None,
                               "motion": True})
    assert tr.min_hits == 5 and tr.update_interval_s == 5.0 and tr.max_misses == 3
    with pytest.raises(ValueError):
        Tracker(min_hits=0)


def test_a_view_is_a_copy_even_when_the_face_spans_the_frame():
    """A full-width region is contiguous already: np.ascontiguousarray would hand back a
    view that keeps the whole frame (2.7 MB at 720p) alive in the track."""
    from edgeface.runtime.events import crop_around

    frame = np.zeros((120, 160, 3), np.uint8)
    tr = Tracker(min_hits=1)
    tr.update(dets(((5, 10, 155, 100), 0.9)), Frame(0, 0.0, frame))
    view = tr.active[0].best_image
    assert view is not None and view.shape[1] == 160
    assert not np.shares_memory(view, frame)
    crop, _ = crop_around(frame, (0, 10, 160, 100))
    assert not np.shares_memory(crop, frame)
