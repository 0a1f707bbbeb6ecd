"""Fast path for FeatherFace's deformable convolutions (ONNX ``DeformConv``).

A compiled sampler (``_sampler``, an optional C extension) writes the bilinear, mask-weighted
samples of every kernel tap as columns; the contraction with the weights is then one MatMul
that ONNX Runtime runs (and that static INT8 can cover). See :mod:`.sampler`.
"""

from edgeface.inference.dcn.sampler import (
    DISABLE_ENV,
    available,
    sample_columns,
    to_nhwc,
    unavailable_reason,
)

__all__ = ["DISABLE_ENV", "available", "sample_columns", "to_nhwc", "unavailable_reason"]
