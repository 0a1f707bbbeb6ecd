"""What the benchmark scripts share: paths into ../shared (``EDGEFACE_SHARED`` overrides),
the V1 export and test videos they make from it (per run, never committed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEFACE_SHARED", REPO.parent / "shared"))
V1_WEIGHTS = SHARED / "models" / "featherface" / "featherface_v1_mobilenet0.25_Final.pth"
WIDERFACE_416 = SHARED / "datasets" / "widerface-val-416"
IMAGES_416 = WIDERFACE_416 / "images"


def export_v1(out: Path) -> Path:
    """`edgeface export` of the shared V1 checkpoint, in a child process, so that torch never
    enters the process that measures the runtime."""
    subprocess.run([sys.executable, "-m", "edgeface.cli", "export", "--arch", "v1",
                    "--weights", str(V1_WEIGHTS), "-o", str(out)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    return out


def make_video(path: Path, size: tuple[int, int], n: int = 150,
               images: Path = IMAGES_416) -> Path:
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
