"""The frames every model sees in model-only mode: real images (cycled) or synthetic ones.

:func:`make_frame_spec` picks them (``--images``, the shared WIDERFace set, or synthetic);
a :class:`FrameSpec` travels to each worker process, which loads the same frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeface.errors import ConfigError

DEFAULT_FRAME_SIZE = (640, 480)
DEFAULT_FRAME_COUNT = 16


@dataclass(frozen=True)
class FrameSpec:
    """The frames every model sees: real images (cycled) or synthetic ones, at ``size``."""

    kind: str  # "images" | "synthetic"
    paths: tuple[str, ...] = ()
    size: tuple[int, int] | None = DEFAULT_FRAME_SIZE  # (w, h); None keeps stored size
    count: int = DEFAULT_FRAME_COUNT
    seed: int = 0
    source: str = ""  # human description, e.g. the folder

    def load(self) -> list[np.ndarray]:
        import cv2

        from edgeface.media.images import read_image

        if self.kind == "images":
            frames = [read_image(p) for p in self.paths]
        else:
            frames = synthetic_frames(self.count, self.size or DEFAULT_FRAME_SIZE, self.seed)
        if self.size:
            frames = [f if f.shape[1::-1] == tuple(self.size)
                      else cv2.resize(f, tuple(self.size), interpolation=cv2.INTER_AREA)
                      for f in frames]
        return frames

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "count": len(self.paths) or self.count,
                             "size": list(self.size) if self.size else "stored",
                             "source": self.source}
        if self.kind == "images":
            import hashlib

            names = "\n".join(Path(p).name for p in self.paths)
            d["list_sha256"] = hashlib.sha256(names.encode()).hexdigest()[:16]
        else:
            d["note"] = ("synthetic frames contain no faces: postprocess time is a lower "
                         "bound; pass --images for content-dependent figures")
        return d


def synthetic_frames(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Deterministic smooth-noise BGR frames (camera-like statistics, no faces)."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    out = []
    for _ in range(count):
        small = rng.integers(0, 256, (max(1, h // 16), max(1, w // 16), 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        noise = rng.integers(-8, 9, img.shape, dtype=np.int16)
        out.append(np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


def default_image_dir() -> Path | None:
    """Benchmark images: $EDGEFACE_BENCH_IMAGES, else the shared WIDERFace-416 set
    ($EDGEFACE_SHARED, or ``shared/`` beside a source checkout), else None (synthetic)."""
    env = os.environ.get("EDGEFACE_BENCH_IMAGES")
    if env:
        return Path(env)
    roots = [Path(os.environ["EDGEFACE_SHARED"])] if os.environ.get("EDGEFACE_SHARED") else []
    roots.append(Path(__file__).resolve().parents[2] / "shared")
    for root in roots:
        d = root / "datasets" / "widerface-val-416" / "images"
        if d.is_dir():
            return d
    return None


def make_frame_spec(images: Sequence[str | os.PathLike] | None = None,
                    size: tuple[int, int] | None = DEFAULT_FRAME_SIZE,
                    count: int = DEFAULT_FRAME_COUNT, synthetic: bool = False) -> FrameSpec:
    """Frames from ``images`` (files/folders), the default image folder, or synthetic."""
    from edgeface.media.images import expand_inputs

    if synthetic:
        return FrameSpec("synthetic", size=size or DEFAULT_FRAME_SIZE, count=count,
                         source="synthetic")
    if images:
        paths = list(expand_inputs(images))
        source = ", ".join(str(p) for p in images)
        if not paths:
            raise ConfigError(f"no images found in {source}")
    else:
        d = default_image_dir()
        if d is None:
            return FrameSpec("synthetic", size=size or DEFAULT_FRAME_SIZE, count=count,
                             source="synthetic (no image folder found)")
        paths = list(expand_inputs([d]))
        source = _describe_dir(d)
    # Spread the picks over the (sorted) set so that several events/scenes are covered.
    step = max(1, len(paths) // count)
    picked = [str(p) for p in paths[::step][:count]]
    return FrameSpec("images", tuple(picked), size, len(picked), source=source)


def _describe_dir(d: Path) -> str:
    parts = d.resolve().parts
    return "/".join(parts[-3:]) if "datasets" in parts else str(d)
