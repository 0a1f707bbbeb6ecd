"""Latency statistics: per-frame stage times -> the summary stored in a bench result.

Ratios between models (``paired_ratio``) live in :mod:`edgeface.common.timing`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

STAGES = ("preprocess", "inference", "postprocess")


def summarize(samples: np.ndarray, faces: np.ndarray | None = None) -> dict[str, Any]:
    """Per-frame stage times ``[n, 3]`` (seconds) -> latency/stage/throughput summary (ms)."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, 3)
    total = samples.sum(axis=1) * 1e3
    if total.size == 0:
        raise ValueError("no samples to summarize")

    def r(x: float) -> float:
        return round(float(x), 4)

    out: dict[str, Any] = {
        "runs": int(total.size),
        "latency_ms": {"p50": r(np.percentile(total, 50)), "p90": r(np.percentile(total, 90)),
                       "p99": r(np.percentile(total, 99)), "mean": r(total.mean()),
                       "std": r(total.std()), "min": r(total.min()), "max": r(total.max())},
        "stages_ms": {s: {"p50": r(np.percentile(samples[:, i] * 1e3, 50)),
                          "mean": r(samples[:, i].mean() * 1e3)}
                      for i, s in enumerate(STAGES)},
        "throughput_fps": r(1e3 / total.mean()),
    }
    if faces is not None and len(faces):
        out["faces_per_frame"] = r(np.mean(faces))
    return out
