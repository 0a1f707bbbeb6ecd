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
    #: The best-scoring view: the frame (BGR) it was seen in, and its box there. Kept by
    #: reference (frames are not modified), replaced when a better view arrives.
    best_image: Optional[np.ndarray] = field(default=None, repr=False)
    best_box: Optional[np.ndarray] = None

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
