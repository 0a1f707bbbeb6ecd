"""What an inference backend is: preprocessed blob in, raw network outputs out.

A backend takes the blob ``[1, 3, H, W]`` float32 and returns the raw outputs for that
image: box regressions ``[A, 4]``, face probabilities ``[A]``, landmark regressions
``[A, 10]``. Everything else (priors, decoding, NMS) is the detector's, so every backend
gives identical detections for identical outputs.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from edgeface.inference.model_info import ModelInfo
from edgeface.system.cpu import usable_cores

RawOutputs = tuple[np.ndarray, np.ndarray, np.ndarray]


class InferenceBackend(Protocol):
    """What the detector needs from an inference engine."""

    info: ModelInfo
    name: str  # e.g. "onnxruntime", "tensorrt", "pytorch"
    providers: Sequence[str]  # where it runs, most preferred first (for logs and results)
    threads: int | None

    def infer(self, blob: np.ndarray) -> RawOutputs:  # pragma: no cover - protocol
        ...


def default_threads() -> int:
    """Inference threads when none are asked for: the cores this process may use."""
    return usable_cores()
