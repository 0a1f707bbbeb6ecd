"""What an inference backend is: preprocessed blob in, raw network outputs out.

A backend takes the blob ``[1, 3, H, W]`` float32 and returns the raw outputs for that
image: box regressions ``[A, 4]``, face probabilities ``[A]``, landmark regressions
``[A, 10]``. Everything else (priors, decoding, NMS) is the detector's, so every backend
gives identical detections for identical outputs.
"""

from __future__ import annotations

import os
from typing import Protocol, Sequence

import numpy as np

from edgeface.inference.model_info import ModelInfo

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
    """The cores this process may use (respects CPU affinity / cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
