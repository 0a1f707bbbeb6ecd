"""Where a frame of the DCN fast form goes: thread CPU time of each ONNX Runtime segment,
each stage's DCN GEMMs and the sampler per shape, at 1 thread.

Thread CPU time, not wall time: on a shared machine (load 10 on 2 cores) wall times of
the same frame varied 2x, CPU times of the parts by a few percent. Reported per part:
the minimum over frames and the median; the sums of minima by kind come last.

    python benchmarks/dcn_parts.py out/v1.int8.onnx [--runs 60]
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from edgeface.inference.backends.onnxruntime.runtime import session_options
from edgeface.inference.dcn import runner, sampler


class _Timed:
    """Stands in for a session or the extension: runs the real one and records its CPU
    time under ``key`` (a function of the call's arguments)."""

    def __init__(self, real, key, times) -> None:
        self.real, self.key, self.times = real, key, times

    def _call(self, name, *args):
        t0 = time.thread_time()
        out = getattr(self.real, name)(*args)
        self.times[self.key(name, args)].append(time.thread_time() - t0)
        return out

    def run(self, *args):
        return self._call("run", *args)

    def sample(self, *args):
        return self._call("sample", *args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=60)
    args = ap.parse_args()
    fast = runner.FastDcnSession(open(args.model, "rb").read(), 1, session_options(1))
    times: dict = collections.defaultdict(list)
    fast._plan = [(_Timed(s, lambda n, a, i=i: f"segment {i}", times) if s else None, ins, outs,
                   [(d, _Timed(g, lambda n, a, i=i: f"gemm after segment {i}", times)
                     if g else None)  # None: the next segment runs this GEMM
                    for d, g in stage])
                  for i, (s, ins, outs, stage) in enumerate(fast._plan)]
    sampler._load()
    sampler._module = _Timed(sampler._module, lambda n, a: f"sample C={a[7]} {a[5]}x{a[6]}",
                             times)
    x = np.random.default_rng(0).random((1, 3, 416, 416)).astype(np.float32) * 255 - 128
    total = []
    for _ in range(args.runs):
        t0 = time.thread_time()
        fast.run(None, {"input": x})
        total.append(time.thread_time() - t0)
    skip = min(10, args.runs // 2)
    kinds: dict = collections.defaultdict(float)
    for key in sorted(times):
        per_frame = np.array(times[key]).reshape(args.runs, -1).sum(1)[skip:]
        print(f"{key:28s} min {per_frame.min() * 1e3:7.3f}  median "
              f"{np.median(per_frame) * 1e3:7.3f} ms")
        kinds[key.split(" ")[0]] += per_frame.min() * 1e3
    print("sums of minima, ms: " + ", ".join(f"{k} {v:.2f}" for k, v in kinds.items()))
    frame = np.array(total[skip:]) * 1e3
    print(f"frame: min {frame.min():.2f}  median {np.median(frame):.2f} ms CPU")


if __name__ == "__main__":
    main()
