"""Image sources: a folder of images (recursively, in path order) or one still image, read
frame by frame like a video file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeface.errors import SourceError
from edgeface.media.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageReadError,
    read_image,
)
from edgeface.runtime.sources.base import CorruptFrame
from edgeface.runtime.sources.registry import CaptureSettings, SourceKind, register_source


class ImageFolderReader:
    """Image files as a frame sequence; an unreadable one is a corrupt frame, skipped."""

    def __init__(self, files: list[Path], max_pixels: int = DEFAULT_MAX_PIXELS):
        self.files = files
        self.max_pixels = max_pixels
        self._i = 0
        self.current_label: Optional[str] = None

    def open(self) -> None:
        self._i = 0

    def read(self) -> Optional[np.ndarray]:
        if self._i >= len(self.files):
            return None
        path = self.files[self._i]
        self._i += 1
        self.current_label = str(path)
        try:
            return read_image(path, self.max_pixels)
        except ImageReadError as exc:
            raise CorruptFrame(str(exc)) from None

    def close(self) -> None:
        pass


def image_files(folder: Path) -> list[Path]:
    """The image files below ``folder``, sorted by path."""
    return sorted(f for f in folder.rglob("*") if f.is_file()
                  and f.suffix.lower() in IMAGE_EXTENSIONS)


def _folder_reader(target: Any, settings: CaptureSettings) -> tuple[ImageFolderReader, str]:
    p = Path(target)
    if not p.is_dir():
        raise SourceError(f"not a folder: {p}")
    files = image_files(p)
    if not files:
        raise SourceError(f"no images in folder {p} (looked for "
                          f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
    return ImageFolderReader(files, settings.max_pixels), str(p)


def _is_folder(text: str) -> Optional[str]:
    p = Path(text).expanduser()
    return str(p) if p.is_dir() else None


register_source(SourceKind("folder", live=False, make_reader=_folder_reader,
                           matches=_is_folder, rank=60))
