"""One processed frame and its JSON record: the one schema `detect`, `run` and the HTTP API
write (documented in docs/detect.md, "Detection records")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from edgeface.inference.detector import Timing
from edgeface.inference.postprocess import Detections
from edgeface.media.frame import Frame


@dataclass
class FrameResult:
    """One processed frame: the frame, the faces found in it and how long that took."""

    frame: Frame
    detections: Detections
    timing: Timing
    #: Per face, the id of the track it belongs to (None: not yet a confirmed track); None
    #: when no tracker runs.
    track_ids: Optional[list[Optional[int]]] = None
    #: Track events of this frame (edgeface.runtime.events.TrackEvent), for event sinks.
    events: list[Any] = field(default_factory=list)
    #: False when the motion gate skipped the detector: the faces are the tracker's held ones.
    detected: bool = True
    #: True for the tracks ended at shutdown, delivered with the last frame: event sinks
    #: take the events, per-frame outputs (JSON lines, video, HTTP) ignore it.
    only_events: bool = False

    def to_record(self) -> dict:
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
