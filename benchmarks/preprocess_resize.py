"""What bit-identical preprocessing costs: OpenCV resize interpolations, per frame.

OpenCV's ``INTER_LINEAR`` uses fixed-point SIMD paths that differ between x86 and ARM NEON
(±1 grey level on ~20% of pixels, moving scores by up to 5e-3); ``INTER_LINEAR_EXACT`` is
bit-exact everywhere. This times both (and ``INTER_AREA``, the other common choice) on the
frame sizes cameras deliver, resized to the 416x416 network input, one OpenCV thread as the
runtime uses, interleaved round-robin so that a busy machine slows all alike. It also
reports how far each is from ``INTER_LINEAR`` in grey levels, on real face images.

    python benchmarks/preprocess_resize.py [--runs 300] [-o results/preprocess_resize.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SHARED  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = [(640, 480), (1280, 720), (1920, 1080)]
TARGET = (416, 416)


def main(argv: list[str] | None = None) -> int:
    import cv2

    from edgeface.common.timing import round_robin
    from edgeface.media.images import expand_inputs, read_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("-o", "--output", "--out", dest="out", type=Path,
                    default=RESULTS / "preprocess_resize.json")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    images = [read_image(p) for p in
              list(expand_inputs([SHARED / "datasets" / "widerface-val-native" / "images"]))]
    modes = {"INTER_LINEAR": cv2.INTER_LINEAR, "INTER_LINEAR_EXACT": cv2.INTER_LINEAR_EXACT,
             "INTER_AREA": cv2.INTER_AREA}
    out: dict = {"platform": {"machine": platform.machine(), "cv2": cv2.__version__,
                              "python": platform.python_version()},
                 "runs": args.runs, "target": list(TARGET), "sizes": {}}
    for w, h in SIZES:
        frames = [cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images]

        def runner(flag: int, frames: list = frames):
            def run(n: int) -> np.ndarray:
                t = np.empty(n)
                for i in range(n):
                    f = frames[i % len(frames)]
                    t0 = _perf()
                    cv2.resize(f, TARGET, interpolation=flag)
                    t[i] = _perf() - t0
                return t
            return run

        chunks, _ = round_robin({k: runner(v) for k, v in modes.items()}, args.runs, 20, 10)
        med = {k: float(np.median(np.concatenate(c))) * 1e3 for k, c in chunks.items()}
        diffs = {}
        for k, flag in modes.items():
            d = [np.abs(cv2.resize(f, TARGET, interpolation=flag).astype(np.int16)
                        - cv2.resize(f, TARGET, interpolation=cv2.INTER_LINEAR))
                 for f in frames]
            diffs[k] = {"max": int(max(x.max() for x in d)),
                        "share_differing": round(float(np.mean([(x > 0).mean() for x in d])), 4)}
        out["sizes"][f"{w}x{h}"] = {
            "median_ms": {k: round(v, 4) for k, v in med.items()},
            "vs_linear_ms": {k: round(v - med["INTER_LINEAR"], 4) for k, v in med.items()},
            "vs_linear_grey_levels": diffs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    lines = ["| frame | INTER_LINEAR ms | INTER_LINEAR_EXACT ms | INTER_AREA ms | EXACT - LINEAR "
             "ms | EXACT vs LINEAR: max / share of pixels differing |",
             "|---|---:|---:|---:|---:|---:|"]
    for size, r in out["sizes"].items():
        m, dv = r["median_ms"], r["vs_linear_grey_levels"]["INTER_LINEAR_EXACT"]
        lines.append(f"| {size} | {m['INTER_LINEAR']:.3f} | {m['INTER_LINEAR_EXACT']:.3f} | "
                     f"{m['INTER_AREA']:.3f} | {r['vs_linear_ms']['INTER_LINEAR_EXACT']:+.3f} | "
                     f"{dv['max']} / {dv['share_differing']:.1%} |")
    table = "\n".join(lines)
    args.out.with_suffix(".md").write_text(
        f"# Resize cost to {TARGET[0]}x{TARGET[1]} ({out['platform']['machine']}, OpenCV "
        f"{out['platform']['cv2']}, 1 thread, median of {args.runs}, interleaved)\n\n"
        f"{table}\n")
    print(table)
    return 0


def _perf() -> float:
    import time

    return time.perf_counter()


if __name__ == "__main__":
    sys.exit(main())
