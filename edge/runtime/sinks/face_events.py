"""What the event sinks (MQTT, webhook, face crops) share: an event's JSON message, the count
of live tracks, and a face's crop (taken in the processing loop, encoded in a worker).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np

from edgeface.runtime.events import VIEW_MARGIN, crop_around

#: Context around the face in a crop, as a fraction of the box's width/height on each side:
#: enough hair and chin for a person to recognise the face, little of the room (the same
#: margin the tracker keeps around a track's best view).
CROP_MARGIN = VIEW_MARGIN
#: Longest side of an encoded crop, in pixels (larger crops are scaled down, never up).
CROP_MAX_SIDE = 320
JPEG_QUALITY = 85


def event_message(event: Any, device: str, image: Optional[np.ndarray]) -> dict[str, Any]:
    """The JSON of a track event, as MQTT and the webhook send it: the event's fields plus the
    device name and the frame's size (the box and landmarks are in its pixels). Taken in the
    processing loop, because the tracker updates its tracks in place afterwards."""
    msg = {**event.to_dict(), "device": device}
    if image is not None:
        msg["width"], msg["height"] = int(image.shape[1]), int(image.shape[0])
    return msg


class LiveTracks:
    """The confirmed tracks alive now: a ``start`` adds one, an ``end`` removes it."""

    def __init__(self) -> None:
        self.ids: set[int] = set()

    def update(self, events: Iterable[Any]) -> bool:
        """Apply a frame's events; True when the count changed."""
        before = len(self.ids)
        for ev in events:
            if ev.type == "start":
                self.ids.add(ev.track.id)
            elif ev.type == "end":
                self.ids.discard(ev.track.id)
        return len(self.ids) != before

    @property
    def count(self) -> int:
        return len(self.ids)


def best_view(track: Any) -> Optional[np.ndarray]:
    """A copy of the region around the track's best view (None without one).

    Copied, not referenced, so that a queued crop keeps a few kilobytes alive rather than a
    whole frame, and stays valid whatever a source does with its buffers later. A slice copy
    of a face region takes tens of microseconds: cheap enough for the processing loop.
    """
    image, box = track.best_image, track.box_in_view()
    if image is None or box is None:
        return None
    return face_region(image, box)


def face_region(image: np.ndarray, box: Any, margin: float = CROP_MARGIN) -> Optional[np.ndarray]:
    """A copy of ``image`` inside ``box`` (x1, y1, x2, y2) grown by ``margin`` on each side,
    clipped to the image; None when nothing of the box is inside it."""
    view = crop_around(image, box, margin)
    return None if view is None else view[0]


def encode_jpeg(image: np.ndarray, max_side: int = CROP_MAX_SIDE,
                quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of a BGR image, scaled down so its longest side is at most ``max_side``."""
    import cv2

    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a {w}x{h} image as JPEG")
    return buf.tobytes()
