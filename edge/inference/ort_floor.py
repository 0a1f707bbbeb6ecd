"""A DeformConv model on an ONNX Runtime without the kernel (< 1.25): refused before the
session from the graph's op types, or after it from ONNX Runtime's own error, as one line
(exit 3) naming the floor and the ways out (:mod:`edgeface.system.onnxruntime_floor`)."""

from __future__ import annotations

import os

from edgeface.errors import ModelError
from edgeface.system.onnxruntime_floor import DEFORMCONV_MIN_TEXT, runs_deformconv, ways_out


class DeformConvUnsupported(ModelError):
    """A DeformConv model on an ONNX Runtime without the kernel (exit 3). ``reason`` and
    ``fix`` are the message's two halves, for `edgeface doctor`'s finding and its fix."""

    def __init__(self, model: str | os.PathLike, version: str, provider: str = "cpu"):
        self.reason = (f"{model} uses DeformConv, which ONNX Runtime {version} cannot run "
                       f"(it needs ONNX Runtime >= {DEFORMCONV_MIN_TEXT})")
        self.fix = ways_out(provider)
        super().__init__(f"{self.reason}: {self.fix}")


def model_has_deformconv(model: str | os.PathLike) -> bool | None:
    """Whether the ONNX graph has a DeformConv node; None when the file cannot be read as
    ONNX (ONNX Runtime then says why when it opens it)."""
    from edgeface.inference.onnx_proto import read_summary

    try:
        return bool(read_summary(model).op_types.get("DeformConv"))
    except ModelError:
        return None


def check_before_session(model: str | os.PathLike, version: str, provider: str) -> None:
    """Refuse a DeformConv model before ONNX Runtime ``version`` fails on it. Not for
    ``--provider tensorrt``, which may take the node itself."""
    if provider != "tensorrt" and not runs_deformconv(version) \
            and model_has_deformconv(model):
        raise DeformConvUnsupported(model, version, provider)


def is_missing_kernel(message: str) -> bool:
    """ONNX Runtime's session error for a missing DeformConv kernel."""
    return "DeformConv" in message and ("NOT_IMPLEMENTED" in message
                                        or "Could not find an implementation" in message)
