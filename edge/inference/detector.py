"""The detection pipeline for one image: preprocess -> backend -> the family's decode + NMS.

:class:`FaceDetector` is the one protocol the runtime, ``bench`` and the peer detectors
share: ``prepare`` (the preprocessing alone, which the runtime runs in its capture thread),
``detect_prepared`` (the rest) and ``detect_timed`` (both, with per-stage times).
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

import numpy as np

from edgeface.errors import ConfigError, ModelError
from edgeface.frames import Detections, Timing
from edgeface.inference.backends import InferenceBackend, backend_for, open_backend
from edgeface.inference.families import get_family
from edgeface.inference.postprocess import PostprocessConfig
from edgeface.inference.preprocess import preprocess


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
    """Detect faces in BGR images with any :class:`InferenceBackend`: the backend's
    ``info.family`` (:mod:`edgeface.inference.families`) decodes its outputs."""

    def __init__(self, backend: InferenceBackend, config: PostprocessConfig | None = None):
        self.backend = backend
        self.info = backend.info
        self.input_size = tuple(self.info.input_size)
        self.config = config or PostprocessConfig()
        self.family = get_family(self.info.family, ModelError)
        self.decode = self.family.decoder(self.info)

    @classmethod
    def open(cls, model: str | os.PathLike, config: PostprocessConfig | None = None, *,
             provider: str = "auto", threads: int | None = None,
             input_size: tuple[int, int] | None = None, family: str | None = None,
             **options: Any) -> Detector:
        """A detector for a model file, on the backend the registry chooses for it.
        ``family``: the family of a foreign ONNX file (see :func:`family_options`)."""
        return cls(open_backend(model, provider=provider, threads=threads,
                                input_size=input_size, **options,
                                **family_options(model, family)), config)

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
        raw = self.backend.infer(blob)
        t1 = time.perf_counter()
        dets = self.decode(raw, scale, self.config)
        return dets, Timing(preprocess_s, t1 - t0, time.perf_counter() - t1)


def family_options(model: str | os.PathLike, family: str | None) -> dict[str, str]:
    """``open_backend`` options for ``--family``: the ONNX Runtime backend's ``family``
    names the family of an ONNX file without edgeface metadata; other formats (a TensorRT
    engine's sidecar, a checkpoint) always know theirs."""
    if family is None:
        return {}
    if backend_for(model).name != "onnxruntime":
        raise ConfigError(f"--family applies to a foreign .onnx model; {os.fspath(model)} "
                          "names its own family")
    return {"family": family}
