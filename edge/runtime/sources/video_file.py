"""A video file (or a single still image) read frame by frame, every frame, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from edgeface.errors import SourceError
from edgeface.media.images import IMAGE_EXTENSIONS
from edgeface.runtime.sources.base import Reader
from edgeface.runtime.sources.capture import CvCaptureReader
from edgeface.runtime.sources.folder import ImageFolderReader
from edgeface.runtime.sources.registry import CaptureSettings, SourceKind, register_source


def _file_reader(target: Any, settings: CaptureSettings) -> tuple[Reader, str]:
    import cv2

    p = Path(target)
    if not p.is_file():
        raise SourceError(f"no such file: {p}")
    if p.suffix.lower() in IMAGE_EXTENSIONS:  # a still image is a one-frame sequence
        return ImageFolderReader([p]), str(p)
    # One decoder thread, the capture thread itself: decoding already overlaps inference,
    # and FFmpeg's own threads (normal priority) would take cores from inference
    # (benchmarks/pipeline_overhead.py: 0.3 ms more CPU per 480p frame, and contention).
    reader = CvCaptureReader(str(p), cv2.CAP_ANY, f"video file {p}",
                             params=(cv2.CAP_PROP_N_THREADS, 1), params_optional=True,
                             hint="not a video OpenCV can decode (corrupt file or "
                                  "unsupported codec)")
    reader.open()  # validate now: a bad file is a SourceError before anything starts
    return reader, str(p)


def _is_file(text: str) -> Optional[str]:
    p = Path(text).expanduser()
    return str(p) if p.exists() and not p.is_dir() else None


register_source(SourceKind("file", live=False, make_reader=_file_reader, matches=_is_file, rank=70))
