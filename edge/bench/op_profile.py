"""Where a model's time goes: per-operator-type shares from ONNX Runtime's profiler."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def op_time_shares(path: str | os.PathLike, blob: np.ndarray, runs: int = 30,
                   threads: int = 1, min_percent: float = 0.5) -> dict[str, float]:
    """Share of kernel time per operator type (%), from ONNX Runtime's profiler.

    A separate session with the runtime's options: profiling adds overhead, so these runs
    are never part of the timings. Operators below ``min_percent`` are left out.
    """
    import onnxruntime as ort

    from edgeface.inference.backends.onnxruntime.runtime import session_options

    with tempfile.TemporaryDirectory() as tmp:
        so = session_options(threads)
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "profile")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for _ in range(runs):
            sess.run(None, {name: blob})
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e["args"]["op_name"]
            per_op[op] = per_op.get(op, 0.0) + e["dur"]
    total = sum(per_op.values()) or 1.0
    ranked = sorted(per_op.items(), key=lambda kv: -kv[1])
    return {op: round(100 * d / total, 1) for op, d in ranked if 100 * d / total >= min_percent}
