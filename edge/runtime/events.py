"""Face tracks and their events: what event sinks (MQTT, webhook, crops) receive.

A :class:`Track` is one face followed across frames; a :class:`TrackEvent` says that a track
started (the face persisted long enough to count), was updated (a better view, at a limited
rate) or ended (the face was absent long enough). One person walking past is one track: one
``start``, a few ``update`` and one ``end`` event, not one message per frame.

The tracker (:mod:`edgeface.runtime.tracking`) produces them; the processing loop hands them
to every sink with the frame's result (``FrameResult.events``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np

EventType = Literal["start", "update", "end"]

#: The best view of a face is kept as the box grown by this share on each side: enough for a
#: snapshot or crop with some context, and a few kilobytes instead of a whole frame (a track
#: holding its 720p frame kept 2.7 MB alive; ten faces, 27 MB of the 512 MB budget).
VIEW_MARGIN = 0.3
#: ... and scaled down to this longest side, what a snapshot or crop is encoded at anyway: a
#: close face's view would otherwise be ~1 MB (measured: 3.3 MB for 35 tracks at 720p).
VIEW_MAX_SIDE = 320


@dataclass
class Track:
    """One face followed across frames, in the frame's pixels."""

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
    #: The best-scoring view: a copy of the frame around the face (:func:`crop_around`,
    #: at most VIEW_MAX_SIDE), where that copy starts in the frame (x, y) and its scale
    #: (view pixels per frame pixel), and the face's box in the frame.
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
    """A change of one track, at frame time ``ts``."""

    type: EventType
    track: Track
    ts: float

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.type, "ts": round(self.ts, 3), **self.track.to_dict()}
        if self.type == "end":
            d["duration_s"] = round(self.track.last_ts - self.track.start_ts, 3)
        return d


def crop_around(image: np.ndarray, box: Any, margin: float = VIEW_MARGIN
                ) -> Optional[tuple[np.ndarray, tuple[int, int]]]:
    """A copy of ``image`` inside ``box`` (x1, y1, x2, y2) grown by ``margin`` on each side,
    clipped to the image, and where it starts (x, y); None when nothing of the box is in
    the image."""
    view = region_around(image, box, margin)
    # .copy(), not np.ascontiguousarray: a full-width region is already contiguous, and
    # would come back as a view that keeps the whole frame alive.
    return None if view is None else (view[0].copy(), view[1])


def region_around(image: np.ndarray, box: Any, margin: float = VIEW_MARGIN
                  ) -> Optional[tuple[np.ndarray, tuple[int, int]]]:
    """:func:`crop_around` without the copy: a view into ``image`` (valid only as long as
    ``image`` is not written)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64)[:4])
    if not all(np.isfinite((x1, y1, x2, y2))):
        return None
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    ix1, iy1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
    ix2, iy2 = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    if ix2 <= ix1 or iy2 <= iy1:
        return None
    return image[iy1:iy2, ix1:ix2], (ix1, iy1)
