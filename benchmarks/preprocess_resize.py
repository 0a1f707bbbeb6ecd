"""What bit-identical preprocessing costs: OpenCV resize interpolations, per frame.

OpenCV's ``INTER_LINEAR`` uses fixed-point SIMD paths that differ between x86 and ARM NEON
(±1 grey level on ~20% of pixels, moving scores by up to 5e-3); ``INTER_LINEAR_EXACT`` is
bit-exact everywhere. This times both (and ``INTER_AREA``, the other common choice) on the
frame sizes cameras deliver, resized to the 416x416 network input, one OpenCV thread as the
runtime uses, interleaved round-robin so that a busy machine slows all alike. It also
reports how far each is from ``INTER_LINEAR`` in grey levels, on real face images.

``--convert`` times the whole of ``preprocess`` instead (416x416 frames, which skip the
resize, and the sizes above), against the mean subtraction it replaced (numpy on the
stride-3/4 channel views) and numpy on split planes, in thread CPU time, after checking that
all three give the same bits.

    python benchmarks/preprocess_resize.py [--runs 300] [-o results/preprocess_resize.json]
    python benchmarks/preprocess_resize.py --convert [--runs 300] [-o FILE.json]
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
    ap.add_argument("--convert", action="store_true",
                    help="time the whole of preprocess against its former mean subtraction")
    ap.add_argument("-o", "--output", "--out", dest="out", type=Path, default=None)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    images = [read_image(p) for p in
              list(expand_inputs([SHARED / "datasets" / "widerface-val-native" / "images"]))]
    if args.convert:
        return _convert(images, args.runs, args.out or RESULTS / "preprocess_convert.json")
    args.out = args.out or RESULTS / "preprocess_resize.json"
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


def _convert(images: list[np.ndarray], runs: int, out_path: Path) -> int:
    import os
    import time

    import cv2

    from edgeface.common.timing import round_robin
    from edgeface.inference.preprocess import preprocess

    def resized(image: np.ndarray) -> np.ndarray:
        if image.shape[1::-1] == TARGET:
            return image
        return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA), TARGET,
                          interpolation=cv2.INTER_LINEAR_EXACT)

    def strided(image: np.ndarray, mean: tuple) -> np.ndarray:  # what preprocess did before
        image = resized(image)
        blob = np.empty((1, 3, *TARGET[::-1]), dtype=np.float32)
        for c in range(3):
            np.subtract(image[:, :, c], np.float32(mean[c]), out=blob[0, c], dtype=np.float32)
        return blob

    def split_numpy(image: np.ndarray, mean: tuple) -> np.ndarray:
        planes = cv2.split(resized(image))
        blob = np.empty((1, 3, *TARGET[::-1]), dtype=np.float32)
        for c in range(3):
            np.subtract(planes[c], np.float32(mean[c]), out=blob[0, c], dtype=np.float32)
        return blob

    mean = (104.0, 117.0, 123.0)
    variants = {"numpy_strided": strided, "split_numpy": split_numpy,
                "preprocess": lambda image, m: preprocess(image, TARGET, m)[0]}
    out: dict = {"platform": {"machine": platform.machine(), "cv2": cv2.__version__,
                              "numpy": np.__version__, "python": platform.python_version()},
                 "runs": runs, "clock": "time.thread_time", "load_before": os.getloadavg(),
                 "sizes": {}}
    for w, h in [TARGET, *SIZES]:
        frames = [cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images]
        for f in frames:
            want = strided(f, mean).view(np.uint32)
            for name, fn in variants.items():
                if not np.array_equal(fn(f, mean).view(np.uint32), want):
                    print(f"{name} differs from numpy_strided at {w}x{h}", file=sys.stderr)
                    return 1

        def runner(fn, frames: list = frames):
            def run(n: int) -> np.ndarray:
                t = np.empty(n)
                for i in range(n):
                    f = frames[i % len(frames)]
                    t0 = time.thread_time()
                    fn(f, mean)
                    t[i] = time.thread_time() - t0
                return t
            return run

        chunks, _ = round_robin({k: runner(v) for k, v in variants.items()}, runs, 20, 10)
        out["sizes"][f"{w}x{h}"] = {k: round(float(np.median(np.concatenate(c))) * 1e3, 4)
                                    for k, c in chunks.items()}
    out["load_after"] = os.getloadavg()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=1) + "\n")
    lines = ["| frame | before: numpy on strided channels ms | numpy on split planes ms | "
             "preprocess ms | saved ms |", "|---|---:|---:|---:|---:|"]
    for size, m in out["sizes"].items():
        lines.append(f"| {size} | {m['numpy_strided']:.3f} | {m['split_numpy']:.3f} | "
                     f"{m['preprocess']:.3f} | {m['numpy_strided'] - m['preprocess']:.3f} |")
    table = "\n".join(lines)
    out_path.with_suffix(".md").write_text(
        f"# preprocess to {TARGET[0]}x{TARGET[1]}, thread CPU time ({out['platform']['machine']}"
        f", OpenCV {cv2.__version__}, 1 thread, median of {runs}, interleaved; load "
        f"{out['load_before'][0]:.2f} -> {out['load_after'][0]:.2f})\n\n{table}\n")
    print(table)
    print(f"load average {out['load_before']} -> {out['load_after']}")
    return 0


def _perf() -> float:
    import time

    return time.perf_counter()


if __name__ == "__main__":
    sys.exit(main())
