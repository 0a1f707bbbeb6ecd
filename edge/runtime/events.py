"""Where a face track keeps its best view: the region of a frame around the face.

A :class:`~edgeface.frames.Track` is one face followed across frames; a
:class:`~edgeface.frames.TrackEvent` says that it started, was updated (a better view, at a
limited rate) or ended. The tracker (:mod:`edgeface.runtime.tracking`) keeps each track's
best view with :func:`crop_around`, bounded by :data:`VIEW_MARGIN` and :data:`VIEW_MAX_SIDE`.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

#: The best view of a face is kept as the box grown by this share on each side: enough for a
#: snapshot or crop with some context, and a few kilobytes instead of a whole frame (a track
#: holding its 720p frame kept 2.7 MB alive; ten faces, 27 MB of the 512 MB budget).
VIEW_MARGIN = 0.3
#: ... and scaled down to this longest side, what a snapshot or crop is encoded at anyway: a
#: close face's view would otherwise be ~1 MB (measured: 3.3 MB for 35 tracks at 720p).
VIEW_MAX_SIDE = 320


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
