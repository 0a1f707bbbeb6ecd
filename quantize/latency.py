"""Latency of FP32 and INT8 models side by side: median inference time measured round-robin in
one process with the runtime's session options, for the quantization report and benchmarks.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from edgeface.common.timing import paired_ratio, round_robin, session_runner
from edgeface.inference.backends import open_backend
from edgeface.inference.model_info import INPUT_NAME


def measure_latency(models: Mapping[str, str | os.PathLike], blob: np.ndarray, threads: int,
                    runs: int = 50, warmup: int = 5, chunk: int = 5) -> dict[str, Any]:
    """Median inference latency of each model, measured round-robin in chunks (the order
    rotating each round) in one process, with the runtime's session options: each model is
    opened by :func:`~edgeface.inference.backends.open_backend` on the CPU (ONNX Runtime for
    ``.onnx``, whose ``session`` is timed). Ratios are to the first model."""

    def runner(backend):
        return session_runner(backend.session, {INPUT_NAME: blob})

    backends = {k: open_backend(p, provider="cpu", threads=threads) for k, p in models.items()}
    chunks, interrupted = round_robin({k: runner(b) for k, b in backends.items()}, runs,
                                      warmup, chunk)
    if interrupted:
        raise KeyboardInterrupt
    names = list(models)
    base = names[0]
    out: dict[str, Any] = {"threads": threads, "runs": runs, "chunk": chunk,
                           "median_ms": {}, "p90_ms": {}, "ratio": {}, "paired_ratio": {}}
    for k in names:
        ms = np.concatenate(chunks[k]) * 1e3
        out["median_ms"][k] = round(float(np.median(ms)), 3)
        out["p90_ms"][k] = round(float(np.percentile(ms, 90)), 3)
    for k in names[1:]:
        out["ratio"][k] = round(out["median_ms"][k] / out["median_ms"][base], 4)
        out["paired_ratio"][k] = paired_ratio([c[:, None] for c in chunks[k]],
                                              [c[:, None] for c in chunks[base]])
    return out
