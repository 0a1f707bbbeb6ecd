"""The decode as it was before the single-pass rewrite (edgeface c47241a): the reference that
the tests and benchmarks/postprocess_decode.py compare the fast path against, bit for bit.
Frozen on purpose: do not optimise it."""

from __future__ import annotations

import numpy as np

from edgeface.frames import Detections
from edgeface.inference.postprocess import PostprocessConfig


def decode(
    loc: np.ndarray, landm: np.ndarray, priors: np.ndarray, variance: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    v0, v1 = variance
    centers = priors[:, :2] + loc[:, :2] * v0 * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * v1)
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
    lm = priors[:, None, :2] + landm.reshape(-1, 5, 2) * v0 * priors[:, None, 2:]
    return boxes, lm


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, limit: int) -> np.ndarray:
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


def postprocess(loc: np.ndarray, scores: np.ndarray, landm: np.ndarray, priors: np.ndarray,
                input_size: tuple[int, int], scale: tuple[float, float],
                variance: tuple[float, float], config: PostprocessConfig) -> Detections:
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
