"""ONNX Runtime's floor for DeformConv, the operator edgeface's default export uses.

Measured: ONNX Runtime 1.24.4 refuses the model ("NOT_IMPLEMENTED: Could not find an
implementation for DeformConv(19)"); 1.25.0 is the first release with the kernel. PyPI's
newest onnxruntime for Python 3.10 (JetPack 6's Python) is 1.23.2, so there the ways out are
TensorRT (which imports DeformConv through its plugin) or a model without DeformConv: the
GridSample export (``edgeface export --dcn gridsample``).
"""

from __future__ import annotations

import os

from edgeface.errors import ModelError

DEFORMCONV_MIN = (1, 25)
DEFORMCONV_MIN_TEXT = ".".join(map(str, DEFORMCONV_MIN))
GRIDSAMPLE_EXPORT = "edgeface export --dcn gridsample"


def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.23.2"`` -> (1, 23, 2); local and dev suffixes ("+cu126", ".dev2025") dropped."""
    return tuple(int(p) for p in text.split("+")[0].split(".")[:3] if p.isdigit())


def runs_deformconv(version: str) -> bool:
    """Whether this ONNX Runtime version has the DeformConv kernel."""
    return version_tuple(version) >= DEFORMCONV_MIN


def ways_out(provider: str = "cpu") -> str:
    """The ways to run a DeformConv model on an older ONNX Runtime, as one clause."""
    ways = [f"pip install 'onnxruntime>={DEFORMCONV_MIN_TEXT}' (Python 3.11+)"]
    if provider != "tensorrt":
        ways.append("--provider tensorrt (a Jetson: TensorRT imports DeformConv)")
    ways.append(f"a model without DeformConv: {GRIDSAMPLE_EXPORT}")
    return ", or ".join(ways)


class DeformConvUnsupported(ModelError):
    """A DeformConv model on an ONNX Runtime without the kernel (exit 3). ``reason`` and
    ``fix`` are the message's two halves, for `edgeface doctor`'s finding and its fix."""

    def __init__(self, model: str | os.PathLike, version: str, provider: str = "cpu"):
        self.reason = (f"{model} uses DeformConv, which ONNX Runtime {version} cannot run "
                       f"(it needs ONNX Runtime >= {DEFORMCONV_MIN_TEXT})")
        self.fix = ways_out(provider)
        super().__init__(f"{self.reason}: {self.fix}")


def deformconv_error(model: str | os.PathLike, version: str, provider: str = "cpu"
                     ) -> DeformConvUnsupported:
    """The one-line error (exit 3) for a DeformConv model this ONNX Runtime cannot run."""
    return DeformConvUnsupported(model, version, provider)


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
        raise deformconv_error(model, version, provider)


def is_missing_kernel(message: str) -> bool:
    """ONNX Runtime's session error for a missing DeformConv kernel."""
    return "DeformConv" in message and ("NOT_IMPLEMENTED" in message
                                        or "Could not find an implementation" in message)
