"""Image -> network input. The one preprocessing used by detect, run, eval and calibration,
so that every path sees identical tensors."""

from __future__ import annotations

import cv2
import numpy as np

from .model_info import DEFAULT_MEAN_BGR


def preprocess(
    image_bgr: np.ndarray,
    size: tuple[int, int],
    mean: tuple[float, float, float] = DEFAULT_MEAN_BGR,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize a BGR uint8 image to ``size`` (width, height), subtract ``mean``, return NCHW.

    Returns the float32 blob ``[1, 3, H, W]`` and the ``(sx, sy)`` factors that map model
    pixel coordinates back to the original image (x_orig = x_model * sx). The aspect ratio is
    not kept: FeatherFace was trained on square crops and the heads are anchor-based.
    """
    if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        shape = None if image_bgr is None else image_bgr.shape
        raise ValueError(f"expected a BGR image of shape HxWx3, got {shape}")
    h, w = image_bgr.shape[:2]
    tw, th = size
    if (w, h) != (tw, th):
        image_bgr = cv2.resize(image_bgr, (tw, th), interpolation=cv2.INTER_LINEAR_EXACT)
    blob = np.empty((1, 3, th, tw), dtype=np.float32)
    # One pass per channel straight into the NCHW buffer: no HWC float temporary.
    for c in range(3):
        np.subtract(image_bgr[:, :, c], np.float32(mean[c]), out=blob[0, c], dtype=np.float32)
    return blob, (w / tw, h / th)
