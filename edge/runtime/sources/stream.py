"""Network streams (RTSP, HTTP, ...) through FFmpeg, with open/read timeouts so that a dead
camera is noticed and reconnected."""

from __future__ import annotations

import re
from typing import Any, Optional

from edgeface.media.opencv_compat import capture_params
from edgeface.runtime.sources.capture import CvCaptureReader
from edgeface.runtime.sources.registry import CaptureSettings, SourceKind, register_source

URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
#: FFmpeg open and read timeouts: long enough for a camera on Wi-Fi, short enough that a
#: dead stream is reconnected within seconds.
TIMEOUT_MS = 10000


def redact_url(url: str) -> str:
    """Hide credentials in ``rtsp://user:pass@host/...`` before they reach a log."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", url)


def _stream_reader(target: Any, settings: CaptureSettings) -> tuple[CvCaptureReader, str]:
    import cv2

    name = redact_url(str(target))
    params = capture_params(("CAP_PROP_OPEN_TIMEOUT_MSEC", TIMEOUT_MS),
                            ("CAP_PROP_READ_TIMEOUT_MSEC", TIMEOUT_MS))
    return CvCaptureReader(str(target), cv2.CAP_FFMPEG, f"stream {name}", params=params,
                           hint="unreachable, wrong URL, or a protocol this OpenCV "
                                "build cannot read", max_pixels=settings.max_pixels), name


def _is_url(text: str) -> Optional[str]:
    return text if URL_RE.match(text) else None


register_source(SourceKind("stream", live=True, make_reader=_stream_reader, matches=_is_url,
                           rank=40))
