"""Image -> network input. The one preprocessing used by detect, run, eval and calibration,
so that every path sees identical tensors."""

from __future__ import annotations

import cv2
import numpy as np

from edgeface.inference.model_info import DEFAULT_MEAN_BGR


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
    if (w, h) != (tw, th):
        # Bit-exact on every CPU: INTER_LINEAR's SIMD paths differ by one grey level on ~11%
        # of pixels between x86 and ARM NEON, which moved scores by up to 5e-3. The exact
        # kernel costs +0.22 ms per 720p frame on x86, in the capture thread
        # (benchmarks/preprocess_resize.py). On 4 channels it is vectorised where on 3 it
        # is not: BGRA first, then the same values (tests/inference/test_preprocess.py):
        # 640x480 -> 416x416 went from 1.16 to 0.77 ms, the whole of preprocess, on x86, for
        # a transient copy of the frame (+3.4 MB peak RSS of `run` on 720p video).
        image_bgr = cv2.resize(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2BGRA), (tw, th),
                               interpolation=cv2.INTER_LINEAR_EXACT)
    blob = np.empty((1, 3, th, tw), dtype=np.float32)
    # One pass per channel straight into the NCHW buffer: no HWC float temporary.
    for c in range(3):
        np.subtract(image_bgr[:, :, c], np.float32(mean[c]), out=blob[0, c], dtype=np.float32)
    fw, fh = frame_size if frame_size is not None else (w, h)
    return blob, (fw / tw, fh / th)
