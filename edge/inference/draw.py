"""Annotated images: boxes, scores and landmarks drawn on a copy of the frame."""

from __future__ import annotations

import cv2
import numpy as np

from edgeface.frames import Detections

_LANDMARK_COLORS = ((255, 0, 0), (0, 255, 255), (255, 0, 255), (0, 255, 0), (0, 128, 255))


def annotate(image_bgr: np.ndarray, dets: Detections, copy: bool = True) -> np.ndarray:
    """Draw detections; returns the annotated image (a copy unless ``copy`` is False)."""
    out = image_bgr.copy() if copy else image_bgr
    thick = max(1, round(min(out.shape[:2]) / 400))
    for box, score, lms in zip(dets.boxes.astype(int), dets.scores, dets.landmarks.astype(int)):
        x1, y1, x2, y2 = box.tolist()
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), thick)
        cv2.putText(out, f"{score:.2f}", (x1, max(0, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, (0, 255, 0), thick)
        for (x, y), color in zip(lms.tolist(), _LANDMARK_COLORS):
            cv2.circle(out, (x, y), thick + 1, color, -1)
    return out
