"""Issue 21's speed ratios from thread CPU time: the DCN fast form (FP32 and INT8), the FP32
model on ONNX Runtime's DeformConv and RetinaFace-MobileNet0.25, one process, 1 thread.

On a shared machine ``edgeface bench``'s wall-clock p50s of the same model moved 2x between
runs (load 9-12 on 2 cores); CPU time of the calling thread, which at 1 thread runs all of
ONNX Runtime's work and the sampler, moved a few percent. Models take turns of 3 frames.
Prints wall min/p25/median and CPU median/min per model, then the ratios.

    python benchmarks/dcn_ratios.py out/featherface_v1.onnx out/v1.int8.onnx [--rounds 25]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from edgeface.bench.peers import retinaface_session
from edgeface.inference.backends.onnxruntime.runtime import session_options
from edgeface.inference.dcn import runner


def _sessions(fp32: str, int8: str) -> dict:
    import onnxruntime as ort

    return {"int8": runner.FastDcnSession(open(int8, "rb").read(), 1, session_options(1)),
            "fp32": runner.FastDcnSession(open(fp32, "rb").read(), 1, session_options(1)),
            "fp32 native": ort.InferenceSession(fp32, session_options(1),
                                                providers=["CPUExecutionProvider"]),
            "retinaface": retinaface_session(1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fp32")
    ap.add_argument("int8")
    ap.add_argument("--rounds", type=int, default=25)
    args = ap.parse_args()
    x = np.random.default_rng(0).random((1, 3, 416, 416)).astype(np.float32) * 255 - 128
    sessions = _sessions(args.fp32, args.int8)
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    wall: dict = {k: [] for k in sessions}
    cpu: dict = {k: [] for k in sessions}
    for k, s in sessions.items():
        for _ in range(5):
            s.run(None, feeds[k])
    for _ in range(args.rounds):
        for k, s in sessions.items():
            for _ in range(3):
                t0, c0 = time.perf_counter(), time.thread_time()
                s.run(None, feeds[k])
                cpu[k].append((time.thread_time() - c0) * 1e3)
                wall[k].append((time.perf_counter() - t0) * 1e3)
    for k in sessions:
        print(f"{k:12s} wall min {np.min(wall[k]):6.2f} p25 {np.percentile(wall[k], 25):6.2f} "
              f"median {np.median(wall[k]):6.2f} | CPU median {np.median(cpu[k]):6.2f} "
              f"min {np.min(cpu[k]):6.2f} ms")
    for a, b, target in (("fp32", "retinaface", 1.9), ("int8", "retinaface", 1.3),
                         ("int8", "fp32 native", 0.6)):
        print(f"{a} / {b}: CPU median {np.median(cpu[a]) / np.median(cpu[b]):.2f}, wall "
              f"median {np.median(wall[a]) / np.median(wall[b]):.2f} (target <= {target})")


if __name__ == "__main__":
    main()
