"""Reading still images with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class ImageReadError(ValueError):
    """An image file is missing, unreadable or not an image."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a BGR uint8 image or raise :class:`ImageReadError` with a one-line reason."""
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: no such file")
    if p.is_dir():
        raise ImageReadError(f"{p}: is a directory")
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise ImageReadError(f"{p}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"{p}: not a decodable image (corrupt or unsupported format)")
    return image


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files as given; directories expanded (recursively, sorted) to their image files."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*")
                              if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            yield p
