"""The targets of ``edgeface quantize --int8 --target``: ``cpu`` (the default
:class:`~edgeface.quantize.config.Int8Config`) and ``tensorrt``, an INT8 Q/DQ model TensorRT
builds directly.

The TensorRT model comes from the same pipeline as the CPU target (:func:`edgeface.quantize.
int8.quantize_int8`: the WIDERFace calibration reader, the accuracy guard, ``--exclude
auto``); only the config differs, made from TensorRT's Q/DQ rules, which the TensorRT backend
owns (:mod:`edgeface.inference.backends.tensorrt.qdq`).
"""

from __future__ import annotations

import os

from edgeface.inference.backends.tensorrt.qdq import (
    TENSORRT_EXTRA_OPTIONS,
    TENSORRT_FIXED,
    qdq_problems,
)
from edgeface.quantize.config import (
    DEFAULT_METHOD,
    DEFAULT_PERCENTILE,
    Int8Config,
    QuantizationError,
)

TARGETS = ("cpu", "tensorrt")


def tensorrt_int8_config(method: str = DEFAULT_METHOD,
                         percentile: float = DEFAULT_PERCENTILE) -> Int8Config:
    """The Int8Config of a Q/DQ model TensorRT consumes directly."""
    return Int8Config(method=method, percentile=percentile, symmetric_activations=True,
                      dcn_weights_int8=False, cpu_graph_rewrites=False,
                      extra_options=dict(TENSORRT_EXTRA_OPTIONS),
                      **TENSORRT_FIXED)


def check_tensorrt_qdq(path: str | os.PathLike) -> None:
    """Raise QuantizationError naming the first problems when ``path`` breaks the rules."""
    from edgeface.quantize.graph import load_model

    problems = qdq_problems(load_model(path))
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise QuantizationError(f"{path} breaks TensorRT's Q/DQ rules: "
                                + "; ".join(problems[:3]) + more)
