"""Network outputs -> face detections: decode, threshold, NMS, top-k, map back.

Everything is vectorised over anchors; only NMS iterates, once per *kept* box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeface.frames import Detections


@dataclass(frozen=True)
class PostprocessConfig:
    """Detection settings. Defaults suit a live camera; evaluation uses :data:`EVAL_SETTINGS`."""

    conf_threshold: float = 0.5
    nms_threshold: float = 0.4
    top_k: int = 5000  # candidates kept before NMS, by score
    keep_top_k: int = 750  # detections kept after NMS

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf_threshold <= 1.0:
            raise ValueError(f"confidence threshold must be in [0, 1], got {self.conf_threshold}")
        if not 0.0 < self.nms_threshold <= 1.0:
            raise ValueError(f"NMS threshold must be in (0, 1], got {self.nms_threshold}")
        if self.top_k < 1 or self.keep_top_k < 1:
            raise ValueError("top_k and keep_top_k must be positive")


# Common practice for WIDERFace evaluation (RetinaFace's test_widerface settings).
EVAL_SETTINGS = PostprocessConfig(conf_threshold=0.02, nms_threshold=0.4, top_k=5000,
                                  keep_top_k=750)


def decode(
    loc: np.ndarray, landm: np.ndarray, priors: np.ndarray, variance: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Decode box and landmark regressions against priors (normalised coordinates).

    ``loc`` [N, 4], ``landm`` [N, 10], ``priors`` [N, 4] (cx, cy, w, h) ->
    boxes [N, 4] (x1, y1, x2, y2) and landmarks [N, 5, 2].
    """
    v0, v1 = variance
    centers = priors[:, :2] + loc[:, :2] * v0 * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * v1)
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
    lm = priors[:, None, :2] + landm.reshape(-1, 5, 2) * v0 * priors[:, None, 2:]
    return boxes, lm


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, limit: int) -> np.ndarray:
    """Greedy NMS; returns indices of kept boxes in descending score order (at most ``limit``).

    Boxes use the RetinaFace "+1" pixel area convention, as the reference implementation does.
    """
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and len(keep) < limit:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    loc: np.ndarray,
    scores: np.ndarray,
    landm: np.ndarray,
    priors: np.ndarray,
    input_size: tuple[int, int],
    scale: tuple[float, float],
    variance: tuple[float, float],
    config: PostprocessConfig,
) -> Detections:
    """Raw outputs for one image (``[A,4]``, ``[A]``, ``[A,10]``) -> :class:`Detections`.

    ``input_size`` is the network's (width, height); ``scale`` maps network pixels to the
    original image (from :func:`edgeface.preprocess.preprocess`).
    """
    cand = np.flatnonzero(scores > config.conf_threshold)
    if cand.size == 0:
        return Detections.empty()
    if cand.size > config.top_k:
        cand = cand[np.argpartition(-scores[cand], config.top_k - 1)[: config.top_k]]
    boxes, lms = decode(loc[cand], landm[cand], priors[cand], variance)
    w, h = input_size
    px = np.array([w * scale[0], h * scale[1]], dtype=np.float32)
    boxes = (boxes.reshape(-1, 2, 2) * px).reshape(-1, 4).astype(np.float32)
    lms = (lms * px).astype(np.float32)
    sc = scores[cand].astype(np.float32)
    keep = nms(boxes, sc, config.nms_threshold, config.keep_top_k)
    return Detections(boxes[keep], sc[keep], lms[keep])
