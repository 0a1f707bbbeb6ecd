"""Image -> network input. The one preprocessing used by detect, run, eval and calibration,
so that every path sees identical tensors."""

from __future__ import annotations

import os
import threading
from types import ModuleType
from typing import Optional

import cv2
import numpy as np

from edgeface.inference.model_info import DEFAULT_MEAN_BGR

#: Set to 1 to keep OpenCV's path even where the compiled kernel is built (same values).
DISABLE_ENV = "EDGEFACE_NO_PREPROCESS_EXT"


def _switched_off() -> bool:
    return os.environ.get(DISABLE_ENV, "") not in ("", "0")


def _load_fused() -> Optional[ModuleType]:
    """The compiled resize-and-subtract kernel (_preprocess.c), or None: not built (no
    compiler where the package was installed) or switched off by ``DISABLE_ENV``."""
    if _switched_off():
        return None
    try:
        from edgeface.inference import _preprocess
    except ImportError:
        return None
    return _preprocess


# One pass from the frame to the blob, the values of the OpenCV path below bit for bit:
# 640x480 -> 416x416 in 0.25 ms in place of 0.61 (0.28 for 0.70 with the caches emptied
# between frames; x86 AVX2, 1 thread, thread CPU time, benchmarks/preprocess_fused.py), and
# `edgeface bench`'s preprocess p50 0.87 -> 0.33 ms.
_fused = _load_fused()


def preprocess_path() -> str:
    """Which preprocessing runs here, for `edgeface doctor` and the bench record:
    ``kernel`` (the compiled one) or ``opencv (why)``."""
    if _fused is not None:
        return "kernel (C extension)"
    return f"opencv ({DISABLE_ENV} is set)" if _switched_off() else \
        "opencv (the compiled kernel is not built)"


# This thread's model-sized uint8 buffers for OpenCV's path (the resized BGRA image, its
# planes; the compiled kernel needs 20 KB of tables and rows, below malloc's mmap threshold),
# reused from frame to frame: allocated afresh, the 4 planes of 173 KB at 416x416 set
# glibc's malloc mapping and unmapping every buffer of the frame, 1,253 page faults a frame
# (3.8 ms in place of 0.7 at 640x480, measured in `edgeface bench`); reused, 4 to 14.
_scratch = threading.local()


def _model_sized(th: int, tw: int) -> tuple[np.ndarray, list[np.ndarray]]:
    held = getattr(_scratch, "held", None)
    if held is None or held[0].shape[:2] != (th, tw):
        held = _scratch.held = (np.empty((th, tw, 4), np.uint8),
                                [np.empty((th, tw), np.uint8) for _ in range(4)])
    return held


def preprocess(
    image_bgr: np.ndarray,
    size: tuple[int, int],
    mean: tuple[float, float, float] = DEFAULT_MEAN_BGR,
    frame_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize a BGR uint8 image to ``size`` (width, height), subtract ``mean``, return NCHW.

    Returns the float32 blob ``[1, 3, H, W]`` and the ``(sx, sy)`` factors that map model
    pixel coordinates back to the original image (x_orig = x_model * sx). The aspect ratio is
    not kept: FeatherFace was trained on square crops and the heads are anchor-based.
    ``frame_size`` (width, height): the image is a scaled copy of a frame of that size (a
    camera's lores stream), and the factors map to the frame instead.
    """
    if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        shape = None if image_bgr is None else image_bgr.shape
        raise ValueError(f"expected a BGR image of shape HxWx3, got {shape}")
    h, w = image_bgr.shape[:2]
    tw, th = size
    fw, fh = frame_size if frame_size is not None else (w, h)
    if ((w, h) != (tw, th) and _fused is not None and image_bgr.dtype == np.uint8
            and image_bgr.flags.c_contiguous and tw > 0 and th > 0):
        blob = np.empty((1, 3, th, tw), dtype=np.float32)
        _fused.resize_subtract(image_bgr, blob, h, w, th, tw,
                               *(float(np.float32(m)) for m in mean))
        return blob, (fw / tw, fh / th)
    if (w, h) != (tw, th):
        # Bit-exact on every CPU: INTER_LINEAR's SIMD paths differ by one grey level on ~11%
        # of pixels between x86 and ARM NEON, which moved scores by up to 5e-3. The exact
        # kernel costs +0.22 ms per 720p frame on x86, in the capture thread
        # (benchmarks/preprocess_resize.py). On 4 channels it is vectorised where on 3 it
        # is not: BGRA first, then the same values (tests/inference/test_preprocess.py):
        # 640x480 -> 416x416 went from 1.16 to 0.77 ms, the whole of preprocess, on x86, for
        # a transient copy of the frame (+3.4 MB peak RSS of `run` on 720p video).
        image_bgr = cv2.resize(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2BGRA), (tw, th),
                               dst=_model_sized(th, tw)[0],
                               interpolation=cv2.INTER_LINEAR_EXACT)
    blob = np.empty((1, 3, th, tw), dtype=np.float32)
    _subtract_mean_nchw(image_bgr, mean, blob[0])
    return blob, (fw / tw, fh / th)


def _subtract_mean_nchw(image: np.ndarray, mean: tuple[float, float, float],
                        out: np.ndarray) -> None:
    """``out[c] = float32(image[..., c]) - float32(mean[c])`` for c < 3, one pass a channel:
    no HWC float temporary."""
    means = [np.float32(m) for m in mean]
    # OpenCV 5 casts an integer-valued scalar to int16 for a uint8 source (5.1: x - 32768
    # gave -32767 at x = 0); other dtypes keep numpy's casting rules. A plane of up to 4
    # pixels can pass for the scalar (5.1 took a 1x1 one for it, returned a 4x1 array and
    # left the blob unwritten): numpy there too.
    if (image.dtype != np.uint8 or image.shape[0] * image.shape[1] <= 4
            or max(abs(m) for m in means) > 32767):
        for c in range(3):
            np.subtract(image[:, :, c], means[c], out=out[c], dtype=np.float32)
        return
    # Contiguous planes (SIMD split), then OpenCV's SIMD uint8 -> float32 subtract straight
    # into the blob: numpy on a stride-3/4 channel view is scalar, and on split planes it
    # still costs +0.05 ms. The whole preprocess: 0.32 -> 0.15 ms at 416x416, 0.86 -> 0.71
    # ms at 640x480, -0.15 ms at 720p and 1080p (x86 AVX2, 1 thread, thread CPU time;
    # benchmarks/preprocess_resize.py --convert), for 0.5 MB of uint8 planes (0.7 from
    # BGRA). The mean goes in as its float32 value: x - m is then exact in float64 too, so
    # the float32 result is numpy's in whichever precision OpenCV subtracts (4.5 .. 5.1 give
    # the same bits, tests/inference/test_preprocess.py).
    h, w, channels = image.shape
    planes = cv2.split(image, _model_sized(h, w)[1][:channels])
    for c in range(3):
        cv2.subtract(planes[c], float(means[c]), dst=out[c], dtype=cv2.CV_32F)
