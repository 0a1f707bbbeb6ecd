"""Face tracks: detections associated across frames, debounced into start/update/end events.

:class:`Tracker` matches each detection run's faces to the live tracks: greedily by IoU
with each track's box moved along its recent velocity (so two faces crossing each other
keep their ids), then, for what is left, by centre distance in units of the face's size
(small or fast faces whose boxes no longer overlap). All pairwise work is vectorised
numpy; the greedy pass loops only over candidate pairs, a few per face.

Debounce, counted in *detection runs* (frames skipped by the motion gate count for
nothing, so a person standing still is still there):

- a new face is pending until it has been seen ``min_hits`` runs in a row; then it gets
  the next id (ids are never reused) and a ``start`` event. A pending face that is missed
  once is forgotten without an event, so a single spurious detection never starts a track;
- a confirmed track ends (``end`` event) after ``max_misses`` runs in a row without it,
  and not before ``min_absent_s`` seconds since it was last seen, so a fast camera does not
  end tracks on a blink; :meth:`Tracker.flush` ends every track (at shutdown);
- each track keeps its best view: a copy of the region around the face (downscaled to at
  most VIEW_MAX_SIDE px) and the box there. A view replaces it when its score is higher
  by ``best_margin``, or when the kept box touches the frame's edge (a cut-off face) and
  the new one does not; a box on the edge never replaces one inside. A better view yields
  an ``update`` event, at most one per ``update_interval_s`` per track (a better view
  inside the interval is reported when it ends, with the next run).

Events carry a snapshot of the track (a shallow copy: arrays are replaced, never written
in place), so a sink may hand them to another thread. Memory: one view of at most
VIEW_MAX_SIDE² pixels per live track (~0.3 MB; a whole 720p frame would be 2.7 MB), plus
what sinks keep.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np

from edgeface.frames import Detections, Frame, Track, TrackEvent
from edgeface.runtime.events import VIEW_MAX_SIDE, region_around
from edgeface.runtime.options import Option, number

#: A track's box is moved along its velocity for at most this many frames (0.5 s at 30 fps):
#: a stale velocity over a long gap (the motion gate skipped frames because nothing moved)
#: would fling it away. Velocities are per frame, not per second: a file read faster than
#: real time, or a loaded machine, gives capture times that say nothing about motion.
_PREDICT_MAX_FRAMES = 15
#: Centre distances are in units of the face's size, floored so that tiny faces can move.
_MIN_SIZE_PX = 16.0
#: A box this close to the frame's border (pixels) is taken to be cut off.
_EDGE_PX = 2.0

EdgeTest = Callable[[np.ndarray], bool]

TRACK_OPTIONS = (
    Option("track_min_hits", "--track-min-hits", number(1, 1000, integer=True), 3,
           metavar="N",
           help="Detection runs in a row a face must be seen in before its track starts "
                "(a start event); fewer are ignored as spurious."),
    Option("track_max_misses", "--track-max-misses", number(1, 10**6, integer=True), 3,
           metavar="N",
           help="Detection runs in a row without a face before its track ends (frames "
                "skipped by --motion do not count)."),
    Option("track_min_absent", "--track-min-absent", number(0, 86400), 1.0,
           metavar="SECONDS",
           help="A track ends no sooner than this after its face was last seen."),
    Option("track_update_interval", "--track-update-interval", number(0, 86400), 5.0,
           metavar="SECONDS",
           help="Most frequent update events per track (sent when the best view improves)."),
)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] intersection over union of x1, y1, x2, y2 boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _greedy(key: np.ndarray, valid: np.ndarray, rows: np.ndarray, cols: np.ndarray
            ) -> list[tuple[int, int]]:
    """Pairs (rows[i], cols[j]) taken in ascending ``key`` among ``valid``, each once."""
    ii, jj = np.nonzero(valid)
    pairs, used_r, used_c = [], set(), set()
    for k in np.argsort(key[ii, jj], kind="stable"):
        r, c = int(rows[ii[k]]), int(cols[jj[k]])
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


def associate(tracks: np.ndarray, dets: np.ndarray, iou_threshold: float = 0.3,
              max_distance: float = 1.5) -> list[tuple[int, int]]:
    """(track index, detection index) pairs: greedy by IoU (at least ``iou_threshold``),
    then the rest greedy by centre distance over the track's size (at most
    ``max_distance``, for faces of similar size: areas within 4x)."""
    tracks = np.asarray(tracks, np.float64).reshape(-1, 4)
    dets = np.asarray(dets, np.float64).reshape(-1, 4)
    if not len(tracks) or not len(dets):
        return []
    iou = iou_matrix(tracks, dets)
    pairs = _greedy(-iou, iou >= iou_threshold, np.arange(len(tracks)), np.arange(len(dets)))
    # Masks, not np.setdiff1d: that imports numpy.ma on first use (~1 MB for the process).
    free_t, free_d = np.ones(len(tracks), bool), np.ones(len(dets), bool)
    free_t[[p[0] for p in pairs]] = False
    free_d[[p[1] for p in pairs]] = False
    rows, cols = np.flatnonzero(free_t), np.flatnonzero(free_d)
    if len(rows) and len(cols):
        t, d = tracks[rows], dets[cols]
        size_t = np.maximum((t[:, 2:] - t[:, :2]).max(axis=1), _MIN_SIZE_PX)
        centre_t = (t[:, :2] + t[:, 2:]) / 2
        centre_d = (d[:, :2] + d[:, 2:]) / 2
        dist = np.linalg.norm(centre_t[:, None] - centre_d[None], axis=2) / size_t[:, None]
        area_t = np.prod(np.clip(t[:, 2:] - t[:, :2], 1, None), axis=1)
        area_d = np.prod(np.clip(d[:, 2:] - d[:, :2], 1, None), axis=1)
        ratio = area_d[None, :] / area_t[:, None]
        ok = (dist <= max_distance) & (ratio >= 0.25) & (ratio <= 4.0)
        pairs += _greedy(dist, ok, rows, cols)
    return pairs


@dataclass
class _State:
    """A track plus what only the tracker needs."""

    track: Track
    velocity: np.ndarray  # [2] pixels per frame of the box centre
    last_index: int = 0  # source frame index of the latest detection
    last_event_ts: float = 0.0
    best_unreported: bool = False  # the best view improved since the last event

    def predicted(self, index: int) -> np.ndarray:
        frames = min(max(index - self.last_index, 0), _PREDICT_MAX_FRAMES)
        return self.track.box + np.tile(self.velocity * frames, 2)


class Tracker:
    """Follow faces across detection runs; see the module docstring for the rules.

    Per frame the loop calls :meth:`update` with the detections when the detector ran and
    :meth:`skip` when the motion gate skipped it; :meth:`flush` at the end. Counters:
    ``runs`` (updates), ``skipped``, ``started``, ``ended``.
    """

    def __init__(self, *, min_hits: int = 3, max_misses: int = 3, min_absent_s: float = 1.0,
                 update_interval_s: float = 5.0, iou_threshold: float = 0.3,
                 max_distance: float = 1.5, best_margin: float = 0.05, max_tracks: int = 256):
        if min_hits < 1 or max_misses < 1 or max_tracks < 1:
            raise ValueError("min_hits, max_misses and max_tracks must be at least 1")
        if min_absent_s < 0 or update_interval_s < 0 or not 0 < iou_threshold <= 1:
            raise ValueError("min_absent_s and update_interval_s must be >= 0 and "
                             "iou_threshold in (0, 1]")
        self.min_hits, self.max_misses = int(min_hits), int(max_misses)
        self.min_absent_s, self.update_interval_s = float(min_absent_s), float(update_interval_s)
        self.iou_threshold, self.max_distance = float(iou_threshold), float(max_distance)
        self.best_margin, self.max_tracks = float(best_margin), int(max_tracks)
        self.runs = self.skipped = self.started = self.ended = 0
        self._states: list[_State] = []
        self._next_id = 1

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> Tracker:
        """A tracker with the ``TRACK_OPTIONS`` values (missing or None: the defaults)."""
        d = {o.key: o.default for o in TRACK_OPTIONS}
        d.update({k: v for k, v in values.items() if k in d and v is not None})
        return cls(min_hits=d["track_min_hits"], max_misses=d["track_max_misses"],
                   min_absent_s=d["track_min_absent"],
                   update_interval_s=d["track_update_interval"])

    @property
    def active(self) -> list[Track]:
        """The confirmed tracks, oldest first (live objects: do not modify)."""
        return [s.track for s in self._states if s.track.confirmed]

    @property
    def pending(self) -> list[Track]:
        """Faces seen in the latest runs but not yet confirmed (no id, no event yet)."""
        return [s.track for s in self._states if not s.track.confirmed]

    def update(self, detections: Detections, frame: Frame
               ) -> tuple[list[Optional[int]], list[TrackEvent]]:
        """One detection run on ``frame``: per face its track id (None while pending), and
        the events it caused (ends, then starts, then updates)."""
        ts, image = frame.timestamp, frame.image
        self.runs += 1
        boxes = np.asarray(detections.boxes, np.float32).reshape(-1, 4)
        states = self._states
        pred = np.array([s.predicted(frame.index) for s in states]).reshape(-1, 4)
        pairs = associate(pred, boxes, self.iou_threshold, self.max_distance)
        det_of = dict(pairs)
        edge = self._edge_test(image)
        ended: list[TrackEvent] = []
        kept: list[_State] = []
        owner: dict[int, _State] = {}
        for i, s in enumerate(states):
            d = det_of.get(i)
            if d is not None:
                self._hit(s, detections, d, ts, image, edge, frame.index)
                owner[d] = s
                kept.append(s)
                continue
            tr = s.track
            tr.misses += 1
            if not tr.confirmed:
                continue  # pending faces must be seen in consecutive runs
            absent = ts - tr.last_ts
            if tr.misses >= self.max_misses and (absent < 0 or absent >= self.min_absent_s):
                ended.append(TrackEvent("end", copy.copy(tr), ts))
                self.ended += 1
            else:
                kept.append(s)
        for d in range(len(boxes)):
            if d not in owner and len(kept) < self.max_tracks:
                owner[d] = s = self._new(detections, d, ts, image, frame.index)
                kept.append(s)
        self._states = kept
        started, updated = [], []
        for s in kept:
            tr = s.track
            if not tr.confirmed and tr.hits >= self.min_hits:
                tr.confirmed, tr.id = True, self._next_id
                self._next_id += 1
                self.started += 1
                s.last_event_ts, s.best_unreported = ts, False
                started.append(TrackEvent("start", copy.copy(tr), ts))
            elif (tr.confirmed and s.best_unreported
                  and ts - s.last_event_ts >= self.update_interval_s):
                s.last_event_ts, s.best_unreported = ts, False
                updated.append(TrackEvent("update", copy.copy(tr), ts))
        ids = [owner[d].track.id if d in owner and owner[d].track.confirmed else None
               for d in range(len(boxes))]
        return ids, ended + started + updated

    def skip(self, frame: Frame) -> tuple[Detections, list[Optional[int]]]:
        """A frame the detector did not run on: nothing changes (not an absence). Returns
        the faces held from the confirmed tracks (their latest detections) and their ids."""
        self.skipped += 1
        tracks = self.active
        if not tracks:
            return Detections.empty(), []
        held = Detections(np.stack([t.box for t in tracks]).astype(np.float32),
                          np.array([t.score for t in tracks], np.float32),
                          np.stack([t.landmarks for t in tracks]).astype(np.float32))
        return held, [t.id for t in tracks]

    def flush(self, ts: float) -> list[TrackEvent]:
        """End every confirmed track (shutdown, end of the source); pending ones are dropped.
        Ids continue after a flush."""
        events = [TrackEvent("end", copy.copy(s.track), ts) for s in self._states
                  if s.track.confirmed]
        self.ended += len(events)
        self._states = []
        return events

    # ------------------------------------------------------------------ internals

    def _new(self, dets: Detections, d: int, ts: float, image: np.ndarray,
             index: int) -> _State:
        box = np.array(dets.boxes[d], np.float32)
        score = float(dets.scores[d])
        tr = Track(id=0, box=box, score=score,
                   landmarks=np.array(dets.landmarks[d], np.float32), start_ts=ts, last_ts=ts,
                   best_score=score, best_ts=ts)
        _keep_view(tr, image, box)
        return _State(tr, np.zeros(2, np.float64), last_index=index)

    def _hit(self, s: _State, dets: Detections, d: int, ts: float, image: np.ndarray,
             edge: EdgeTest, index: int) -> None:
        tr = s.track
        box = np.array(dets.boxes[d], np.float32)
        score = float(dets.scores[d])
        frames = index - s.last_index
        if frames > 0:
            move = ((box[:2] + box[2:]) - (tr.box[:2] + tr.box[2:])) / 2 / frames
            s.velocity = move if tr.hits == 1 else (s.velocity + move) / 2
        s.last_index = max(s.last_index, index)
        tr.box, tr.score = box, score
        tr.landmarks = np.array(dets.landmarks[d], np.float32)
        tr.last_ts = max(tr.last_ts, ts)
        tr.hits += 1
        tr.misses = 0
        if self._better(tr, box, score, edge):
            tr.best_score, tr.best_ts = score, ts
            _keep_view(tr, image, box)
            s.best_unreported = tr.confirmed or s.best_unreported

    def _better(self, tr: Track, box: np.ndarray, score: float, edge: EdgeTest) -> bool:
        if tr.best_box is None or tr.best_image is None:
            return True
        new_cut, old_cut = edge(box), edge(tr.best_box)
        if new_cut != old_cut:
            return old_cut  # a whole face beats a cut-off one, whatever the scores
        return score > tr.best_score + self.best_margin

    @staticmethod
    def _edge_test(image: np.ndarray) -> EdgeTest:
        h, w = image.shape[:2]

        def cut(box: np.ndarray) -> bool:
            return bool(box[0] <= _EDGE_PX or box[1] <= _EDGE_PX or box[2] >= w - _EDGE_PX
                        or box[3] >= h - _EDGE_PX)

        return cut


def _keep_view(track: Track, image: np.ndarray, box: np.ndarray) -> None:
    """Keep a copy of the region around ``box``, at most VIEW_MAX_SIDE, as the track's best
    view (see Track)."""
    view = region_around(image, box)
    track.best_box, track.best_scale = box, 1.0
    if view is None:
        track.best_image, track.best_offset = None, (0, 0)
        return
    region, track.best_offset = view
    h, w = region.shape[:2]
    if max(h, w) > VIEW_MAX_SIDE:
        import cv2

        # Scaled straight from the frame: copying the region first would be a transient
        # of up to a whole frame (2.7 MB at 720p) for a close face, every time it improves.
        scale = VIEW_MAX_SIDE / max(h, w)
        track.best_image = cv2.resize(region, (max(1, round(w * scale)),
                                               max(1, round(h * scale))),
                                      interpolation=cv2.INTER_AREA)
        track.best_scale = track.best_image.shape[1] / w
    else:
        track.best_image = region.copy()  # a copy even of a full-width region (crop_around)
