"""Motion gating: decide per frame, cheaply, whether the face detector needs to run.

:class:`MotionGate` keeps a low-resolution picture of the still scene and runs the detector
only when the frame differs from it, for a hold time after that, and at least every
``interval_s`` seconds whatever happens, so that the tracks of faces standing still are
still checked (and end when the face has gone without moving, e.g. in the dark).

Per frame: a nearest-neighbour downscale to ``height`` rows (~100) and to grey, a 5x5
Gaussian blur, then a normalisation to zero mean and a fixed contrast (the frame's standard
deviation, floored), so that auto-exposure, dimming and clouds do not look like motion and
a dim scene is not blind to it. A pixel has changed when it differs from the background by
more than ``threshold`` levels (of 255, after normalisation); the frame has motion when the
changed share is at least ``min_area``. The background is a running average with a short
time constant (``background_s``, 1 s by default; frame-rate independent): the gate asks "is
something changing?", not "is someone there?". A person who stops moving, a lamp switched
on, the empty spot a person leaves behind are absorbed within a second or two, and the
forced runs keep checking the faces that stay. A sudden change of more than
``recalibrate_area`` of the picture (all lights on, the camera's IR mode) counts as motion
once and restarts the background from that frame, rather than triggering until the average
catches up.

Cost: 0.23 ms of CPU per 1280x720 frame (median over 2,475 frames of
``benchmarks/motion_gating.py``: x86-64, 2 cores at load ~7, one OpenCV thread; 0.1 ms in a
tight loop), against 29 ms per detector run there. Its work is fixed by ``height`` (~18,000
pixels read), whatever the frame's resolution.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np

from edgeface.runtime.options import Option, boolean, number

#: Contrast every low-resolution frame is normalised to (standard deviation, grey levels).
_NORM_STD = 50.0
#: A flat scene's contrast is not stretched past this (noise would look like motion).
_MIN_STD = 10.0

MOTION_OPTIONS = (
    Option("motion", "--motion", boolean, False, cli="bool",
           help="Run the face detector only on frames with motion, for --motion-hold "
                "seconds after it and every --motion-interval seconds (saves CPU on still "
                "scenes; frames in between reuse the tracked faces)."),
    Option("motion_threshold", "--motion-threshold", number(1, 255), 25.0, metavar="1..255",
           help="Grey levels a pixel must change by to count as changed (after the "
                "frame's contrast is normalised)."),
    Option("motion_area", "--motion-area", number(0, 1, lo_open=True), 0.002,
           metavar="0..1",
           help="Share of the picture that must change to count as motion (0.002: a face "
                "of 1/15 of the frame's height; a walking person whose face the detector "
                "can find changes ten times more)."),
    Option("motion_hold", "--motion-hold", number(0, 3600), 2.0, metavar="SECONDS",
           help="Keep detecting this long after motion stops."),
    Option("motion_interval", "--motion-interval", number(0, 3600, lo_open=True), 2.0,
           metavar="SECONDS",
           help="Detect at least this often without motion, so that faces standing still "
                "stay tracked and ended tracks end."),
)


class MotionGate:
    """``check(image_bgr, now)`` is True when the detector should run on this frame.

    ``now`` is the frame's time in seconds (any clock that does not run backwards; a jump
    back restarts the timers). ``force=True`` runs the detector whatever the picture says
    (pass ``bool(tracker.pending)``: a face seen once is confirmed or dropped in the next
    frames, not at the next forced runs seconds apart). Counters: ``checked``, ``skipped``
    (frames the detector may skip), ``motion`` (frames with motion), ``forced`` (runs every
    ``interval_s`` without motion), ``requested`` (runs for ``force``), ``recalibrations``;
    ``last_area`` is the changed share of the latest frame and ``last_reason`` why it ran or
    not: "start", "motion", "hold", "requested", "forced" or "skip".
    """

    def __init__(self, *, threshold: float = 25.0, min_area: float = 0.002,
                 hold_s: float = 2.0, interval_s: float = 2.0, height: int = 100,
                 background_s: float = 1.0, recalibrate_area: float = 0.5):
        if not 0 < threshold <= 255:
            raise ValueError(f"threshold must be in (0, 255], got {threshold}")
        if not 0 < min_area < recalibrate_area <= 1:
            raise ValueError("expected 0 < min_area < recalibrate_area <= 1, got "
                             f"{min_area}, {recalibrate_area}")
        if hold_s < 0 or interval_s <= 0 or background_s <= 0 or height < 8:
            raise ValueError("hold_s >= 0, interval_s > 0, background_s > 0 and height >= 8 "
                             "are required")
        self.threshold = float(threshold)
        self.min_area = float(min_area)
        self.hold_s = float(hold_s)
        self.interval_s = float(interval_s)
        self.height = int(height)
        self.background_s = float(background_s)
        self.recalibrate_area = float(recalibrate_area)
        self.checked = self.skipped = self.motion = self.forced = self.requested = 0
        self.recalibrations = 0
        self.last_area = 0.0
        self.last_reason = ""
        self._background: Optional[np.ndarray] = None
        self._last_check: Optional[float] = None
        self._last_run: Optional[float] = None
        self._last_motion = -math.inf

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> Optional[MotionGate]:
        """The gate the ``MOTION_OPTIONS`` values ask for; None when ``motion`` is off."""
        if not values.get("motion"):
            return None
        d = {o.key: o.default for o in MOTION_OPTIONS}
        d.update({k: v for k, v in values.items() if k in d and v is not None})
        return cls(threshold=d["motion_threshold"], min_area=d["motion_area"],
                   hold_s=d["motion_hold"], interval_s=d["motion_interval"])

    def check(self, image_bgr: np.ndarray, now: float, *, force: bool = False) -> bool:
        """Update the background with this frame; True when the detector should run."""
        small = self._small(image_bgr)
        self.checked += 1
        if self._last_check is not None and now < self._last_check:
            self._last_run = None  # the clock went back: restart the timers
            self._last_motion = -math.inf
        dt = 0.0 if self._last_check is None else now - self._last_check
        self._last_check = now
        moved = self._compare(small, dt)
        if moved:
            self.motion += 1
            self._last_motion = now
        if self._last_run is None:
            reason = "start"
        elif moved:
            reason = "motion"
        elif now - self._last_motion < self.hold_s:
            reason = "hold"
        elif force:
            reason = "requested"
            self.requested += 1
        elif now - self._last_run >= self.interval_s:
            reason = "forced"
            self.forced += 1
        else:
            reason = "skip"
        self.last_reason = reason
        if reason == "skip":
            self.skipped += 1
            return False
        self._last_run = now
        return True

    def stats(self) -> dict[str, Any]:
        """The counters, JSON-ready (e.g. for metrics or a summary line)."""
        return {"checked": self.checked, "skipped": self.skipped, "motion": self.motion,
                "forced": self.forced, "requested": self.requested,
                "recalibrations": self.recalibrations,
                "last_area": round(self.last_area, 5)}

    def reset(self) -> None:
        """Forget the background (e.g. after the source reconnected or was moved)."""
        self._background = None
        self._last_check = self._last_run = None
        self._last_motion = -math.inf

    # ------------------------------------------------------------------ internals

    def _small(self, image: np.ndarray) -> np.ndarray:
        """Grey, ~``height`` rows, blurred, normalised to zero mean and a fixed contrast."""
        import cv2

        h, w = image.shape[:2]
        if h > self.height:
            size = (max(1, round(w * self.height / h)), self.height)
            # Nearest neighbour reads only the pixels it keeps (area averaging costs 100x
            # more at 720p); the blur below does the averaging on the small picture.
            image = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small = cv2.GaussianBlur(image, (5, 5), 0).astype(np.float32)
        mean, std = cv2.meanStdDev(small)
        small -= float(mean[0, 0])
        small *= _NORM_STD / max(float(std[0, 0]), _MIN_STD)
        return small

    def _compare(self, small: np.ndarray, dt: float) -> bool:
        """Changed share against the background, which then follows the frame."""
        import cv2

        bg = self._background
        if bg is None or bg.shape != small.shape:
            self._background = small
            self.last_area = 0.0
            return False
        changed = np.count_nonzero(np.abs(small - bg) > self.threshold)
        self.last_area = area = float(changed) / small.size
        if area >= self.recalibrate_area:
            self._background = small
            self.recalibrations += 1
            return True
        # Exponential average with a time constant, not a per-frame weight: the same
        # background_s whatever the frame rate (and a long gap catches up at once).
        alpha = 1.0 - math.exp(-max(dt, 0.0) / self.background_s)
        if alpha > 0:
            cv2.accumulateWeighted(small, bg, alpha)
        return area >= self.min_area
