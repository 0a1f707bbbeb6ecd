"""What the fused preprocessing kernel saves: ``preprocess`` with and without it, per frame.

``preprocess`` resizes a camera frame to the 416x416 network input and subtracts the mean.
With the compiled kernel (edge/inference/_preprocess.c) that is one pass; without it (not
built, or ``EDGEFACE_NO_PREPROCESS_EXT=1``) OpenCV converts to BGRA, resizes with
``INTER_LINEAR_EXACT``, splits and subtracts. Both give the same bits (checked here on every
frame before timing). Thread CPU time (``time.thread_time``) per call, one OpenCV thread as
the runtime uses, the two paths interleaved round-robin so that a busy machine slows both
alike. "warm": calls back to back; "cold": a 20 MB buffer is written between calls (untimed),
as inference does between two frames, so the frame and the buffers start outside the caches.

    python benchmarks/preprocess_fused.py [--runs 600] [-o FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED  # noqa: E402

SIZES = [(640, 480), (1280, 720), (1920, 1080)]
TARGET = (416, 416)
MEAN = (104.0, 117.0, 123.0)
EVICT_BYTES = 20 << 20  # the 2-core EPYC's L2 is 1 MB a core, its L3 32 MB shared


def main(argv: list[str] | None = None) -> int:
    import cv2

    from edgeface.common.timing import round_robin
    from edgeface.inference import preprocess as module
    from edgeface.media.images import expand_inputs, read_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=600)
    ap.add_argument("-o", "--output", type=Path, default=None, help="also write JSON here")
    args = ap.parse_args(argv)
    fused = module._load_fused()
    if fused is None:
        print(f"the kernel is not built (or {module.DISABLE_ENV} is set): nothing to compare",
              file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    images = [read_image(p) for p in
              list(expand_inputs([SHARED / "datasets" / "widerface-val-native" / "images"]))]
    evict = np.zeros(EVICT_BYTES, np.uint8)

    def call(kernel, frame: np.ndarray) -> np.ndarray:
        module._fused = kernel
        return module.preprocess(frame, TARGET, MEAN)[0]

    def runner(kernel, frames: list, cold: bool):
        def run(n: int) -> np.ndarray:
            t = np.empty(n)
            for i in range(n):
                if cold:
                    evict[::64] += 1  # one write a cache line
                t0 = time.thread_time()
                call(kernel, frames[i % len(frames)])
                t[i] = time.thread_time() - t0
            return t
        return run

    out: dict = {"platform": {"machine": platform.machine(), "cv2": cv2.__version__,
                              "numpy": np.__version__, "python": platform.python_version()},
                 "runs": args.runs, "clock": "time.thread_time", "target": list(TARGET),
                 "load_before": os.getloadavg(), "sizes": {}}
    try:
        for w, h in SIZES:
            frames = [cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images]
            for f in frames:
                if not np.array_equal(call(fused, f).view(np.uint32),
                                      call(None, f).view(np.uint32)):
                    print(f"the kernel differs from OpenCV's path at {w}x{h}", file=sys.stderr)
                    return 1
            row = {}
            for mode in ("warm", "cold"):
                runners = {"opencv": runner(None, frames, mode == "cold"),
                           "fused": runner(fused, frames, mode == "cold")}
                chunks, _ = round_robin(runners, args.runs, 20, 10)
                row[mode] = {k: round(float(np.median(np.concatenate(c))) * 1e3, 4)
                             for k, c in chunks.items()}
            out["sizes"][f"{w}x{h}"] = row
    finally:
        module._fused = fused
    out["load_after"] = os.getloadavg()
    lines = ["| frame | mode | OpenCV path ms | fused kernel ms | fused / OpenCV |",
             "|---|---|---:|---:|---:|"]
    for size, row in out["sizes"].items():
        for mode, m in row.items():
            lines.append(f"| {size} | {mode} | {m['opencv']:.3f} | {m['fused']:.3f} | "
                         f"{m['fused'] / m['opencv']:.2f} |")
    print(f"preprocess to {TARGET[0]}x{TARGET[1]}, thread CPU time ({platform.machine()}, "
          f"OpenCV {cv2.__version__}, 1 thread, median of {args.runs}, interleaved)")
    print("\n".join(lines))
    print(f"load average {out['load_before']} -> {out['load_after']}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
