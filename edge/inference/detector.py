"""The detection pipeline for one image: preprocess -> backend -> postprocess.

:class:`FaceDetector` is the one protocol the runtime, ``bench`` and the peer detectors
share: ``prepare`` (the preprocessing alone, which the runtime runs in its capture thread),
``detect_prepared`` (the rest) and ``detect_timed`` (both, with per-stage times).
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

import numpy as np

from edgeface.errors import ModelError
from edgeface.frames import Detections, Timing
from edgeface.inference.backends import InferenceBackend, open_backend
from edgeface.inference.postprocess import PostprocessConfig, postprocess
from edgeface.inference.preprocess import preprocess
from edgeface.inference.priors import prior_boxes


class FaceDetector(Protocol):
    """What the runtime, ``bench`` and ``eval`` need from a detector."""

    input_size: tuple[int, int]  # (width, height) the network sees

    def prepare(self, image_bgr: np.ndarray, frame_size: tuple[int, int] | None = None
                ) -> Any:  # pragma: no cover - protocol
        """Preprocess one BGR image; the result is handed to :meth:`detect_prepared`.
        ``frame_size``: the image is a scaled copy of a frame of that (width, height), and
        detections are to be in the frame's pixels."""
        ...

    def detect_prepared(self, prepared: Any, preprocess_s: float = 0.0
                        ) -> tuple[Detections, Timing]:  # pragma: no cover - protocol
        ...

    def detect_timed(self, image_bgr: np.ndarray
                     ) -> tuple[Detections, Timing]:  # pragma: no cover - protocol
        ...


def detect_timed(detector: FaceDetector, image_bgr: np.ndarray) -> tuple[Detections, Timing]:
    """``prepare`` then ``detect_prepared``, timing the preprocessing."""
    t0 = time.perf_counter()
    prepared = detector.prepare(image_bgr)
    return detector.detect_prepared(prepared, time.perf_counter() - t0)


class Detector:
    """Detect faces in BGR images with any :class:`InferenceBackend`."""

    def __init__(self, backend: InferenceBackend, config: PostprocessConfig | None = None):
        self.backend = backend
        self.info = backend.info
        self.input_size = tuple(self.info.input_size)
        self.config = config or PostprocessConfig()
        w, h = self.info.input_size
        self.priors = prior_boxes(w, h, tuple(map(tuple, self.info.min_sizes)),
                                  tuple(self.info.steps))

    @classmethod
    def open(cls, model: str | os.PathLike, config: PostprocessConfig | None = None, *,
             provider: str = "auto", threads: int | None = None,
             input_size: tuple[int, int] | None = None, **options: Any) -> Detector:
        """A detector for a model file, on the backend the registry chooses for it."""
        return cls(open_backend(model, provider=provider, threads=threads,
                                input_size=input_size, **options), config)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self.detect_timed(image_bgr)[0]

    def detect_timed(self, image_bgr: np.ndarray) -> tuple[Detections, Timing]:
        return detect_timed(self, image_bgr)

    def prepare(self, image_bgr: np.ndarray, frame_size: tuple[int, int] | None = None
                ) -> tuple[np.ndarray, tuple[float, float]]:
        """The blob and the scale back to frame pixels (see :func:`preprocess`)."""
        return preprocess(image_bgr, self.info.input_size, self.info.mean, frame_size)

    def detect_prepared(self, prepared: tuple[np.ndarray, tuple[float, float]],
                        preprocess_s: float = 0.0) -> tuple[Detections, Timing]:
        """Inference and postprocessing on what :meth:`prepare` returned."""
        blob, scale = prepared
        t0 = time.perf_counter()
        loc, scores, landm = self.backend.infer(blob)
        t1 = time.perf_counter()
        if not (loc.shape == (len(self.priors), 4) and scores.shape == (len(self.priors),)
                and landm.shape == (len(self.priors), 10)):  # a dynamic graph, checked here
            raise ModelError(f"the model's outputs {loc.shape}, {scores.shape}, {landm.shape} "
                             f"do not match its {len(self.priors)} priors (metadata min_sizes "
                             "and steps)")
        dets = postprocess(loc, scores, landm, self.priors, self.info.input_size, scale,
                           self.info.variance, self.config)
        return dets, Timing(preprocess_s, t1 - t0, time.perf_counter() - t1)
