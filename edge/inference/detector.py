"""The detection pipeline for one frame: preprocess -> backend -> postprocess."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgeface.inference.backends import InferenceBackend, OnnxRuntimeBackend
from edgeface.inference.postprocess import Detections, PostprocessConfig, postprocess
from edgeface.inference.preprocess import preprocess
from edgeface.inference.priors import prior_boxes


@dataclass(frozen=True)
class Timing:
    """Seconds spent in each stage of one detection."""

    preprocess: float
    inference: float
    postprocess: float

    @property
    def total(self) -> float:
        return self.preprocess + self.inference + self.postprocess


class Detector:
    """Detect faces in BGR images with any :class:`InferenceBackend`."""

    def __init__(self, backend: InferenceBackend, config: PostprocessConfig | None = None):
        self.backend = backend
        self.info = backend.info
        self.config = config or PostprocessConfig()
        w, h = self.info.input_size
        self.priors = prior_boxes(w, h, tuple(map(tuple, self.info.min_sizes)),
                                  tuple(self.info.steps))

    @classmethod
    def from_onnx(
        cls,
        model_path: str | os.PathLike,
        config: PostprocessConfig | None = None,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> Detector:
        return cls(OnnxRuntimeBackend(model_path, threads=threads, providers=providers,
                                      input_size=input_size), config)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self.detect_timed(image_bgr)[0]

    def detect_timed(self, image_bgr: np.ndarray) -> tuple[Detections, Timing]:
        t0 = time.perf_counter()
        blob, scale = self.prepare(image_bgr)
        return self.detect_prepared(blob, scale, time.perf_counter() - t0)

    def prepare(self, image_bgr: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """The preprocessing step alone (the runtime runs it in its capture thread)."""
        return preprocess(image_bgr, self.info.input_size, self.info.mean)

    def detect_prepared(self, blob: np.ndarray, scale: tuple[float, float],
                        preprocess_s: float = 0.0) -> tuple[Detections, Timing]:
        """Inference and postprocessing on a blob from :meth:`prepare`."""
        t0 = time.perf_counter()
        loc, scores, landm = self.backend.infer(blob)
        t1 = time.perf_counter()
        dets = postprocess(loc, scores, landm, self.priors, self.info.input_size, scale,
                           self.info.variance, self.config)
        return dets, Timing(preprocess_s, t1 - t0, time.perf_counter() - t1)
