"""ONNX Runtime's floor for DeformConv, the operator edgeface's default export uses: the
facts (which versions have the kernel, the ways out) that `doctor` and the model loader
(:mod:`edgeface.inference.ort_floor`) share.

Measured: ONNX Runtime 1.24.4 refuses the model ("NOT_IMPLEMENTED: Could not find an
implementation for DeformConv(19)"); 1.25.0 is the first release with the kernel. PyPI's
newest onnxruntime for Python 3.10 (JetPack 6's Python) is 1.23.2, so there the ways out are
TensorRT (which imports DeformConv through its plugin) or a model without DeformConv: the
GridSample export (``edgeface export --dcn gridsample``).
"""

from __future__ import annotations

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
