"""A video file (or a single still image) read frame by frame, every frame, in order.

A damaged region in the middle of a file makes OpenCV's decoder give up there, as if the
file had ended (measured: a 2 KB damaged run halfway through an mp4v file ended reading at
frame 46 of 100). :class:`VideoFileReader` notices that the file has frames left, finds the
first frame after the damage that decodes, reports the frames in between as corrupt (so the
run says how many and exits 1) and goes on to the real end.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeface.errors import SourceError
from edgeface.media.images import IMAGE_EXTENSIONS
from edgeface.media.opencv_compat import capture_params
from edgeface.runtime.sources.base import CorruptFrame, Reader
from edgeface.runtime.sources.capture import CvCaptureReader
from edgeface.runtime.sources.folder import ImageFolderReader
from edgeface.runtime.sources.registry import CaptureSettings, SourceKind, register_source

log = logging.getLogger(__name__)

#: Without a frame count, how far past a failure to look for decodable frames.
_UNKNOWN_END_PROBE = 4096


class VideoFileReader(CvCaptureReader):
    """A video file that continues past damaged regions (see the module docstring)."""

    def open(self) -> None:
        super().open()
        self._next = 0  # index of the next frame read() returns
        self._pending: Optional[np.ndarray] = None  # first good frame after a damaged run

    def read(self) -> Optional[np.ndarray]:
        if self._cap is None:
            return None
        if self._pending is not None:
            image, self._pending = self._pending, None
            self._next += 1
            return image
        ok, image = self._cap.read()
        if ok:
            self._next += 1
            return image
        resume = self._resume_after(self._next)
        if resume is None:  # the real end (or nothing decodes after the damage)
            return None
        skipped = resume - self._next
        self._next = resume
        raise CorruptFrame(f"frames {resume - skipped}-{resume - 1} of {self.describe} could "
                           f"not be decoded (damaged); continuing at frame {resume}", skipped)

    def _frame_count(self) -> int:
        import cv2

        return int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def _resume_after(self, failed: int) -> Optional[int]:
        """The first decodable frame after ``failed``, with the capture positioned there
        and that frame held in ``_pending``; None when there is none before the end."""
        total = self._frame_count()
        end = total if total > 0 else failed + _UNKNOWN_END_PROBE
        if failed + 1 >= end:
            return None
        bad, good, step = failed, None, 1
        while good is None and bad + step < end:  # gallop forward to a decodable frame
            if self._seek(bad + step):
                good = bad + step
            else:
                bad, step = bad + step, step * 2
        if good is None and bad < end - 1 and self._seek(end - 1):
            good = end - 1  # a seek lands on the keyframe before it: late frames need it
        if good is None:
            return None
        while good - bad > 1:  # then back to the first one after the damage
            mid = (bad + good) // 2
            if self._seek(mid):
                good = mid
            else:
                bad = mid
        if not self._seek(good):  # re-position on the frame found
            return None
        log.debug("%s: frames %d-%d damaged, resuming at %d", self.describe, failed,
                  good - 1, good)
        return good

    def _seek(self, index: int) -> bool:
        """Reopen at frame ``index`` and decode it into ``_pending``; True on success.

        A fresh capture each time: after a decode error OpenCV's capture stays stuck."""
        import cv2

        self.close()
        CvCaptureReader.open(self)
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = self._cap.read()
        self._pending = image if ok else None
        return ok


def _file_reader(target: Any, settings: CaptureSettings) -> tuple[Reader, str]:
    import cv2

    p = Path(target)
    if not p.is_file():
        raise SourceError(f"no such file: {p}")
    if p.suffix.lower() in IMAGE_EXTENSIONS:  # a still image is a one-frame sequence
        return ImageFolderReader([p], settings.max_pixels), str(p)
    # One decoder thread, the capture thread itself: decoding already overlaps inference,
    # and FFmpeg's own threads (normal priority) would take cores from inference
    # (benchmarks/pipeline_overhead.py: 0.3 ms more CPU per 480p frame, and contention).
    reader = VideoFileReader(str(p), cv2.CAP_ANY, f"video file {p}",
                             params=capture_params(("CAP_PROP_N_THREADS", 1)),
                             params_optional=True,
                             hint="not a video OpenCV can decode (corrupt file or "
                                  "unsupported codec)", max_pixels=settings.max_pixels)
    reader.open()  # validate now: a bad file is a SourceError before anything starts
    return reader, str(p)


def _is_file(text: str) -> Optional[str]:
    p = Path(text).expanduser()
    return str(p) if p.exists() and not p.is_dir() else None


register_source(SourceKind("file", live=False, make_reader=_file_reader, matches=_is_file,
                           rank=70))
