"""A video file (or a single still image) read frame by frame, every frame, in order.

A damaged region in the middle of a file makes OpenCV's decoder give up there, as if the
file had ended (measured: a 2 KB damaged run halfway through an mp4v file ended reading at
frame 46 of 100), or drop frames without a word. :class:`VideoFileReader` notices that the
file has frames left, finds the first frame after the damage that decodes, reports the
frames in between as corrupt (so the run says how many and exits 1) and goes on to the real
end. Each frame's place is its timestamp, not a count of the frames returned: frames the
decoder dropped silently are counted where they were lost, and a frame decoded again after a
seek (which can land before its target) is never returned twice. An AVI whose chunk
headers were damaged is worse: FFmpeg resyncs to the next whole chunk and numbers it as if
nothing was lost, timestamps included; the file's index says which frames lost their chunk
(:mod:`avi_index`), and reading jumps over them. A file that ends before the frames its
header declares (cut short) reports the missing ones as corrupt too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeface.errors import SourceError
from edgeface.media.images import IMAGE_EXTENSIONS
from edgeface.media.opencv_compat import capture_params
from edgeface.runtime.sources.avi_index import lost_frames
from edgeface.runtime.sources.base import CorruptFrame, Reader
from edgeface.runtime.sources.capture import CvCaptureReader
from edgeface.runtime.sources.folder import ImageFolderReader
from edgeface.runtime.sources.registry import CaptureSettings, SourceKind, register_source

log = logging.getLogger(__name__)

#: Without a frame count, how far past a failure to look for decodable frames.
_UNKNOWN_END_PROBE = 4096
#: A timestamp within this fraction of a frame of the nominal frame grid places its frame
#: (a constant-rate file); off the grid (a variable-rate file) frames are counted instead.
_ON_GRID = 0.05
#: Frames that decode again after a seek and are skipped, at most, before giving up there.
_MAX_REPLAYED = 4096
#: Reads tried again after a failed one before searching by seeks. OpenCV 5.1 consumes the
#: undecodable frame and the next read goes on (with its timestamp), where the seek search
#: would start 16 frames back and fail inside the damage; older builds skip such frames
#: inside one read, or stay stuck (then the retries fail at once and the search follows).
_RETRY_READS = 32
#: A file shorter than its header says by more than this many frames is reported as cut
#: (a count estimated from the duration may be off by a frame or two).
_TRUNCATED_SLACK = 2


class VideoFileReader(CvCaptureReader):
    """A video file that continues past damaged regions (see the module docstring)."""

    def open(self) -> None:
        super().open()
        self._next = 0  # index of the next frame read() returns
        self._pending: Optional[np.ndarray] = None  # first good frame after a damaged run
        self._pending_ms = -1.0
        self._last_ms: Optional[float] = None  # timestamp of the last frame returned
        self._base: Optional[int] = None  # grid index of frame 0
        self._ended = False
        self._last_print: Optional[np.ndarray] = None
        self._timestamps = False  # seen increasing: this file and backend give them
        fps = self.fps()
        self._grid = fps if 0 < fps < 1000 else 0.0
        self._holes = lost_frames(self.target) or []  # AVI frames whose chunk is gone
        self._shift = 0  # frames lost in runs before here that timestamps do not count

    def _past_holes(self, at: int, place: Optional[int]) -> int:
        """The index of a frame that seems to be frame ``at``, given the runs the AVI index
        says are gone: FFmpeg resyncs over a run to the next whole chunk and numbers it as
        if nothing was lost (this build; a demuxer that numbers by the index gives ``at``
        past the run already, and it stays)."""
        while self._holes and self._holes[0][1] <= self._next:
            self._holes.pop(0)
        while self._holes and self._holes[0][0] <= at:
            first, end = self._holes.pop(0)
            moved = at if at >= end else end + at - first
            if place is not None:
                self._shift += moved - at  # later timestamps are short by as many frames
            at = moved
        return at

    def read(self) -> Optional[np.ndarray]:
        if self._cap is None or self._ended:
            return None
        if self._pending is not None:
            return self._give(self._pending, self._pending_ms)
        failed, total = 0, self._frame_count()
        for _ in range(_MAX_REPLAYED):
            ok, image = self._cap.read()
            if not ok:
                failed += 1
                if failed <= _RETRY_READS and self._next + failed < total:
                    continue  # a build whose failed read still consumed the frame
                break
            ms = self._pos_ms()
            if self._last_ms is not None:
                if ms > self._last_ms:
                    self._timestamps = True
                elif self._timestamps:
                    continue  # returned already: the decoder went back (after a seek)
            place = self._place(ms)
            # its place by timestamp; without one, each failed read was one frame
            at = max(place, self._next) if place is not None else self._next + failed
            seems, at = at, self._past_holes(at, place) if self._holes else at
            if at > self._next:  # dropped by the decoder, or chunks lost
                self._pending, self._pending_ms = image, ms
                self._lost(at, "lost their chunks (damaged)" if at != seems else
                               "could not be decoded (damaged)")
            return self._give(image, ms)
        total = self._frame_count()
        if total - self._next > _TRUNCATED_SLACK and self._is_last(total - 1):
            # The last frame was returned already, under a smaller number: the decoder
            # skipped frames without an error (an AVI's damaged chunks), and a search from
            # here would only decode the last ones again.
            self._ended = True
            skipped, self._next = total - self._next, total
            raise CorruptFrame(f"{skipped} frame(s) of {self.describe} could not be decoded "
                               f"(damaged): {total - skipped} of the {total} it declares "
                               "decoded, the last one included", skipped)
        resume = self._resume_after(self._next)
        if resume is None:
            total = self._frame_count()
            self._ended = True
            if total - self._next > _TRUNCATED_SLACK:
                self._lost(total, "could not be read: nothing decodes from there to the end "
                                  f"(damaged, or the file is cut short: it declares {total})")
            return None  # the real end
        self._lost(resume, f"could not be decoded (damaged); continuing at frame {resume}")
        return None  # not reached

    def _lost(self, upto: int, why: str) -> None:
        skipped, first = upto - self._next, self._next
        self._next = upto
        raise CorruptFrame(f"frames {first}-{upto - 1} of {self.describe} {why}", skipped)

    def _give(self, image: np.ndarray, ms: float) -> np.ndarray:
        self._pending = None
        self._last_ms = ms
        self._last_print = _fingerprint(image)
        if self._base is None and self._grid:
            self._base = self._grid_index(ms)
        self._next += 1
        return image

    def _pos_ms(self) -> float:
        import cv2

        return float(self._cap.get(cv2.CAP_PROP_POS_MSEC))

    def _grid_index(self, ms: float) -> Optional[int]:
        x = ms * self._grid / 1000.0
        return round(x) if self._grid and ms >= 0 and abs(x - round(x)) < _ON_GRID else None

    def _place(self, ms: float) -> Optional[int]:
        """The frame's index from its timestamp, in a constant-rate file; else None."""
        index = self._grid_index(ms)
        if index is None or self._base is None or not self._timestamps:
            return None
        return index - self._base + self._shift

    def _is_last(self, index: int) -> bool:
        """Whether frame ``index`` is the frame returned last (the capture is then spent)."""
        if self._last_print is None or not self._seek(index, fresh_only=False):
            return False
        same = np.array_equal(_fingerprint(self._pending), self._last_print)
        self._pending = None
        return same

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
        place = self._place(self._pending_ms)
        if place is not None and place > failed:
            good = place  # where the seek really landed
        if self._holes:  # a seek reads the last 16 frames before its target: over a run
            good = self._past_holes(good, place)
        log.debug("%s: frames %d-%d damaged, resuming at %d", self.describe, failed,
                  good - 1, good)
        return good

    def _seek(self, index: int, fresh_only: bool = True) -> bool:
        """Reopen at frame ``index`` and decode it into ``_pending``; True on success, and
        only for a frame after the last one returned.

        A fresh capture each time: after a decode error OpenCV's capture stays stuck."""
        import cv2

        CvCaptureReader.close(self)
        CvCaptureReader.open(self)
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = self._cap.read()
        ms = self._pos_ms() if ok else -1.0
        ok = ok and (not fresh_only or not self._timestamps or self._last_ms is None
                     or ms > self._last_ms)
        self._pending, self._pending_ms = (image, ms) if ok else (None, -1.0)
        return ok


def _fingerprint(image: np.ndarray) -> np.ndarray:
    """Every 16th pixel of every 16th row (24 KB at 1080p, microseconds): decoding is
    deterministic, so the same frame decoded twice gives the same one."""
    return image[::16, ::16].copy()


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
