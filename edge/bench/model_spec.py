"""What one benchmark measures: a model file or a peer detector. Its own module, below both
:mod:`.runs` (which plans the runs) and :mod:`.worker` (which measures one in a child
process): the two used to import each other for this type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    """One model to measure: an edgeface ONNX file or a peer (see :mod:`edgeface.bench.peers`)."""

    kind: str  # "onnx" | "peer"
    target: str  # file path or peer name
    label: str | None = None  # None: derived from the model's metadata
    # "auto": the DCN fast path where it runs; "onnxruntime": ONNX Runtime's DeformConv (the
    # baseline the fast path is measured against, in the same interleaved run)
    dcn: str = "auto"
