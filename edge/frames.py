"""The types every layer passes around: a captured :class:`Frame`, the :class:`Detections`
found in it, the :class:`Timing` of that, face :class:`Track` events and the
:class:`FrameResult` that carries them to the outputs.

This module is the ground floor: it imports the standard library and numpy only (never
OpenCV or ONNX Runtime), so that a sink, the HTTP server or a command's ``--help`` can name
these types on a base install where the device's stack is not in place yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np


@dataclass
class Frame:
    """One captured image (BGR uint8, HxWx3) and when it was captured."""

    index: int  # position in the source's capture sequence (gaps = dropped frames)
    timestamp: float  # wall clock (time.time()) at capture
    image: np.ndarray
    captured: float = 0.0  # time.monotonic() at capture, for frame-age measurements
    label: Optional[str] = None  # e.g. the file name of an image in a folder source
    # What the source's ``prepare`` hook returned for this image (computed in the capture
    # thread, overlapping inference), and the seconds it took; None without a hook.
    prepared: Any = None
    prepare_s: float = 0.0


@dataclass
class Detections:
    """Faces in one image, in original image pixels."""

    boxes: np.ndarray  # [N, 4] float32 x1, y1, x2, y2
    scores: np.ndarray  # [N] float32 face probability
    landmarks: np.ndarray  # [N, 5, 2] float32 (eyes, nose, mouth corners)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0, 5, 2), np.float32))

    def to_list(self, ndigits: int = 2) -> list[dict[str, Any]]:
        """JSON-ready list of faces."""
        boxes = np.round(self.boxes.astype(np.float64), ndigits).tolist()
        scores = np.round(self.scores.astype(np.float64), 4).tolist()
        lms = np.round(self.landmarks.astype(np.float64), ndigits).tolist()
        return [{"box": b, "score": s, "landmarks": lm} for b, s, lm in zip(boxes, scores, lms)]


@dataclass(frozen=True)
class Timing:
    """Seconds spent in each stage of one detection."""

    preprocess: float
    inference: float
    postprocess: float

    @property
    def total(self) -> float:
        return self.preprocess + self.inference + self.postprocess


EventType = Literal["start", "update", "end"]


@dataclass
class Track:
    """One face followed across frames, in the frame's pixels (made by
    :mod:`edgeface.runtime.tracking`)."""

    id: int
    box: np.ndarray  # [4] x1, y1, x2, y2 of the latest detection
    score: float  # of the latest detection
    landmarks: np.ndarray  # [5, 2]
    start_ts: float  # wall clock of the first detection
    last_ts: float  # wall clock of the latest detection
    hits: int = 1  # frames the face was detected in
    misses: int = 0  # consecutive detection runs without it
    confirmed: bool = False  # persisted long enough to be reported (debounce)
    best_score: float = 0.0
    best_ts: float = 0.0
    #: The best-scoring view: a copy of the frame around the face (at most
    #: ``edgeface.runtime.events.VIEW_MAX_SIDE``), where that copy starts in the frame
    #: (x, y) and its scale (view pixels per frame pixel), and the face's box in the frame.
    best_image: Optional[np.ndarray] = field(default=None, repr=False)
    best_box: Optional[np.ndarray] = None
    best_offset: tuple[int, int] = (0, 0)
    best_scale: float = 1.0

    def box_in_view(self) -> Optional[np.ndarray]:
        """``best_box`` in the pixels of ``best_image``."""
        if self.best_box is None:
            return None
        ox, oy = self.best_offset
        return (np.asarray(self.best_box, np.float64) - (ox, oy, ox, oy)) * self.best_scale

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: id, times, box, score, landmarks (pixels rounded to 0.01)."""
        return {"track_id": self.id, "start": round(self.start_ts, 3),
                "last_seen": round(self.last_ts, 3),
                "box": np.round(self.box.astype(np.float64), 2).tolist(),
                "score": round(float(self.score), 4),
                "landmarks": np.round(self.landmarks.astype(np.float64), 2).tolist(),
                "best_score": round(float(self.best_score), 4), "frames": self.hits}


@dataclass
class TrackEvent:
    """A change of one track, at frame time ``ts``: it started (the face persisted long
    enough to count), was updated (a better view, at a limited rate) or ended."""

    type: EventType
    track: Track
    ts: float

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.type, "ts": round(self.ts, 3), **self.track.to_dict()}
        if self.type == "end":
            d["duration_s"] = round(self.track.last_ts - self.track.start_ts, 3)
        return d


@dataclass
class FrameResult:
    """One processed frame: the frame, the faces found in it and how long that took. Its
    JSON record is the one schema `detect`, `run` and the HTTP API write (docs/detect.md,
    "Detection records")."""

    frame: Frame
    detections: Detections
    timing: Timing
    #: Per face, the id of the track it belongs to (None: not yet a confirmed track); None
    #: when no tracker runs.
    track_ids: Optional[list[Optional[int]]] = None
    #: Track events of this frame, for event sinks.
    events: list[TrackEvent] = field(default_factory=list)
    #: False when the motion gate skipped the detector: the faces are the tracker's held ones.
    detected: bool = True
    #: True for the tracks ended at shutdown, delivered with the last frame: event sinks
    #: take the events, per-frame outputs (JSON lines, video, HTTP) ignore it.
    only_events: bool = False

    def to_record(self) -> dict[str, Any]:
        """The JSON-lines record: timestamp, frame index, size, latency and the faces."""
        h, w = self.frame.image.shape[:2]
        faces = self.detections.to_list()
        if self.track_ids is not None:
            for face, tid in zip(faces, self.track_ids):
                face["track_id"] = tid
        rec = {"ts": round(self.frame.timestamp, 3), "frame": self.frame.index,
               "width": w, "height": h, "latency_ms": round(self.timing.total * 1e3, 2),
               "faces": faces}
        if not self.detected:
            rec["detected"] = False
        if self.frame.label is not None:
            rec["image"] = self.frame.label
        return rec
