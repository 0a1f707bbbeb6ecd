"""Frame sources: USB/V4L2 cameras, the Raspberry Pi camera, Jetson CSI cameras, network
streams, folders of images and video files, behind one small interface
(:class:`~edgeface.runtime.sources.base.FrameSource`).

Every source captures in its own thread (:mod:`.threaded`):

* a **live** source (camera, stream) keeps only the newest frame, so the detector never works
  on a stale one; frames replaced before they were read are counted as dropped. When the
  device or stream disappears it is reopened with exponential backoff (and logged).
* a **file** source (video file, image folder) is read in order, every frame, with a small
  prefetch queue so that decoding overlaps inference; it ends cleanly at the end of the file.

While a frame is already waiting for the detector, the capture thread decodes and
preprocesses the next one in the background (``SCHED_IDLE``, see
:mod:`edgeface.runtime.capture_priority`), so that it fills idle cores instead of taking one
from inference; when the detector waits, it runs normally.

``live`` can be overridden: ``live=True`` on a file plays it back in real time at its frame
rate, like a camera would deliver it (useful to rehearse a deployment without a camera).

Each kind registers itself in its module (:mod:`.registry`); importing this package
registers them all, in the order ``--source`` tries them.
"""

from edgeface.runtime.sources import camera, csi, folder, picamera, stream, video_file  # noqa: F401
from edgeface.runtime.sources.base import (
    CorruptFrame,
    FrameSource,
    Reader,
    SourceStats,
    SourceTimeout,
    as_bgr,
)
from edgeface.runtime.sources.registry import (
    CAPTURE_OPTIONS,
    SOURCE_OPTION,
    SOURCES,
    CaptureSettings,
    SourceKind,
    classify,
    open_source,
    register_source,
    selected,
    selector_options,
    selectors_given,
    source_kinds,
    source_options,
)
from edgeface.runtime.sources.threaded import ThreadedSource

__all__ = ["CAPTURE_OPTIONS", "SOURCE_OPTION", "SOURCES", "CaptureSettings", "CorruptFrame",
           "FrameSource", "Reader", "SourceKind", "SourceStats", "SourceTimeout",
           "ThreadedSource", "as_bgr", "classify", "open_source", "register_source",
           "selected", "selector_options", "selectors_given", "source_kinds", "source_options"]
