"""RetinaFace prior (anchor) boxes, computed once per input size."""

from __future__ import annotations

import functools
import math

import numpy as np


@functools.lru_cache(maxsize=16)
def prior_boxes(
    width: int,
    height: int,
    min_sizes: tuple[tuple[int, ...], ...],
    steps: tuple[int, ...],
    clip: bool = False,
) -> np.ndarray:
    """Priors ``[A, 4]`` as (cx, cy, w, h) normalised to the input size; ``clip`` clamps
    them to [0, 1] (RetinaFace's ``cfg['clip']``, off in its MobileNet and ResNet configs).

    Order matches the heads: level by level (stride 8, 16, 32), then row-major over the
    feature map (y, x), then the level's anchor sizes. The array is read-only (it is cached).
    """
    out = []
    for sizes, step in zip(min_sizes, steps):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        cy, cx = np.meshgrid((np.arange(fh) + 0.5) * step / height,
                             (np.arange(fw) + 0.5) * step / width, indexing="ij")
        n = len(sizes)
        level = np.empty((fh, fw, n, 4), dtype=np.float32)
        level[..., 0] = cx[..., None]
        level[..., 1] = cy[..., None]
        level[..., 2] = np.asarray(sizes, dtype=np.float32) / width
        level[..., 3] = np.asarray(sizes, dtype=np.float32) / height
        out.append(level.reshape(-1, 4))
    priors = np.concatenate(out)
    if clip:
        np.clip(priors, 0.0, 1.0, out=priors)
    priors.setflags(write=False)
    return priors
