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

import os

DEFORMCONV_MIN = (1, 25)
DEFORMCONV_MIN_TEXT = ".".join(map(str, DEFORMCONV_MIN))
GRIDSAMPLE_EXPORT = "edgeface export --dcn gridsample"


#: edgeface's DCN fast path (:mod:`edgeface.inference.dcn`): its compiled sampler, and the
#: switch that turns it off (and its build)
DCN_EXTENSION = "edgeface.inference.dcn._sampler"
DCN_DISABLE_ENV = "EDGEFACE_NO_DCN_EXT"


def dcn_disabled_reason() -> str | None:
    """Why the DCN sampler is switched off by the environment; None when it is not."""
    value = os.environ.get(DCN_DISABLE_ENV, "")
    return None if value in ("", "0") else f"disabled by {DCN_DISABLE_ENV}={value}"


def dcn_not_built_reason(import_error: str) -> str:
    """The one line for a DCN sampler that does not import (``import_error``: why)."""
    return (f"the compiled DCN sampler is not built ({import_error}); reinstall with a C "
            "compiler and the Python headers (e.g. apt install gcc python3-dev)")


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
    if provider in ("cpu", "auto"):
        ways.append("edgeface's DCN fast path, which runs on any ONNX Runtime (reinstall "
                    "edgeface with gcc and python3-dev so its sampler builds, and leave "
                    f"{DCN_DISABLE_ENV} unset)")
    ways.append(f"a model without DeformConv: {GRIDSAMPLE_EXPORT}")
    return ", or ".join(ways)
