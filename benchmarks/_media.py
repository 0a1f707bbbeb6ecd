"""Test media shared by the runtime benchmark scripts (never committed: made per run)."""

from __future__ import annotations

import sys
from pathlib import Path


def make_video(path: Path, size: tuple[int, int], n: int, images: Path) -> Path:
    """An mp4v clip of ``n`` frames at ``size`` cycling through the face images in ``images``."""
    import cv2

    files = sorted(images.rglob("*.jpg"))
    if not files:
        sys.exit(f"no images under {images} (set EDGEFACE_SHARED)")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
    for i in range(n):
        writer.write(cv2.resize(cv2.imread(str(files[i % len(files)])), size))
    writer.release()
    return path
