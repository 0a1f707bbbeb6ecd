"""What an inference backend is: preprocessed blob in, raw network outputs out.

A backend takes the blob ``[1, 3, H, W]`` float32 and returns the raw outputs for that
image: box regressions ``[A, 4]``, face probabilities ``[A]``, landmark regressions
``[A, 10]``. Everything else (priors, decoding, NMS) is the detector's, so every backend
gives identical detections for identical outputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, TypeAlias

from edgeface.inference.model_info import ModelInfo
from edgeface.system.cpu import usable_cores

if TYPE_CHECKING:
    import numpy as np

# A string, so that the registry (and `edgeface doctor`, which asks it for the backends'
# checks before its numpy check has run) imports no numpy.
RawOutputs: TypeAlias = "tuple[np.ndarray, np.ndarray, np.ndarray]"


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
