"""What the decode of raw outputs into detections costs per frame, before and after the fast path.

Runs each model once on the shared WIDERFace images (resized to 640x480, as ``edgeface
bench`` does, then to the 416x416 input), keeps the raw outputs, checks that the family's
decode and the frozen reference (tests/postprocess_reference.py: the decode as of c47241a)
give the same bits for every frame and setting, then times both interleaved round-robin, in
thread CPU time, on the 16 frames ``edgeface bench`` picks and on all of them.

``--cold`` runs the model before every timed decode, as ``edgeface bench`` does: a 40 ms
inference evicts numpy's code and data from the caches, and each numpy call then costs
several times its warm price, so that is the figure the bench's postprocess column shows.

    python benchmarks/postprocess_decode.py [-m v1.onnx -m v1.int8.onnx] [--peer]
        [--cold] [--runs 400] [-o FILE.json]

Without ``-m`` it exports V1 FP32 from the shared checkpoint (in a child process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _shared import IMAGES_416, export_v1  # noqa: E402

FRAME = (640, 480)
BENCH_FRAMES = 16  # edgeface bench's default: every len/16-th image of the sorted set


def _detectors(models: list[Path], peer: bool) -> dict:
    from edgeface.inference.detector import Detector

    dets = {m.name: Detector.open(m, threads=1) for m in models}
    if peer:
        from edgeface.bench.peers import RetinaFaceBackend

        dets["retinaface-mnet025"] = Detector(RetinaFaceBackend(1, (416, 416)))
    return dets


def _frames(detector, images: list[np.ndarray]) -> list[tuple]:
    """(raw outputs, scale, blob) of each image."""
    out = []
    for image in images:
        blob, scale = detector.prepare(image)
        out.append((detector.backend.infer(blob), scale, blob))
    return out


def _check(detector, frames: list[tuple], configs: list) -> None:
    import postprocess_reference as ref

    dec = detector.decode
    for raw, scale, _ in frames:
        for config in configs:
            a = dec(raw, scale, config)
            b = ref.postprocess(*dec.split(raw), dec.priors, dec.info.input_size, scale,
                                dec.info.variance, config)
            for name in ("boxes", "scores", "landmarks"):
                x, y = getattr(a, name), getattr(b, name)
                if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                    sys.exit(f"{name} differ from the reference ({config})")


def _time(detector, frames: list[tuple], config, runs: int, cold: bool) -> dict:
    import postprocess_reference as ref

    from edgeface.common.timing import round_robin

    dec = detector.decode
    info = dec.info

    def old(raw, scale):
        return ref.postprocess(*dec.split(raw), dec.priors, info.input_size, scale,
                               info.variance, config)

    def runner(decode):
        state = {"i": 0}

        def run(n: int) -> list:
            times = []
            for _ in range(n):
                k = state["i"] % len(frames)
                state["i"] += 1
                raw, scale, blob = frames[k]
                if cold:
                    raw = detector.backend.infer(blob)
                t0 = time.thread_time()
                decode(raw, scale)
                times.append((k, time.thread_time() - t0))
            return times
        return run

    new = runner(lambda raw, scale: dec(raw, scale, config))
    chunks, _ = round_robin({"old": runner(old), "new": new}, runs, 2 * len(frames), 8)
    res: dict = {}
    for name, cs in chunks.items():
        t = np.array([x for c in cs for _, x in c]) * 1e6
        res[name] = {"p50_us": round(float(np.median(t)), 1),
                     "mean_us": round(float(t.mean()), 1),
                     "p90_us": round(float(np.percentile(t, 90)), 1)}
    per_round = [np.median([x for _, x in n]) / np.median([x for _, x in o])
                 for n, o in zip(chunks["new"], chunks["old"])]
    res["per_frame_p50_us"] = {
        name: [round(float(np.median([x for c in cs for k, x in c if k == i])) * 1e6, 1)
               for i in range(len(frames))] for name, cs in chunks.items()}
    res["new_over_old_p50"] = round(res["new"]["p50_us"] / res["old"]["p50_us"], 3)
    res["new_over_old_round_median"] = round(float(np.median(per_round)), 3)
    return res


def main(argv: list[str] | None = None) -> int:
    import cv2

    from edgeface.inference.postprocess import EVAL_SETTINGS, PostprocessConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", type=Path, action="append", default=[])
    ap.add_argument("--peer", action="store_true", help="add the RetinaFace peer")
    ap.add_argument("--cold", action="store_true", help="run the model before each decode")
    ap.add_argument("--runs", type=int, default=400, help="timed decodes per variant")
    ap.add_argument("--all", action="store_true", help="time every image, not bench's 16")
    ap.add_argument("-o", "--out", type=Path, default=None)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    tmp = tempfile.TemporaryDirectory()
    models = args.model or [export_v1(Path(tmp.name) / "v1.onnx")]
    files = sorted(IMAGES_416.rglob("*.jpg"))
    if not files:
        sys.exit(f"no images under {IMAGES_416} (set EDGEFACE_SHARED)")
    step = max(1, len(files) // BENCH_FRAMES)
    picked = files if args.all else files[::step][:BENCH_FRAMES]
    images = [cv2.resize(cv2.imread(str(f)), FRAME, interpolation=cv2.INTER_AREA)
              for f in picked]
    config = PostprocessConfig()
    out: dict = {"platform": {"machine": platform.machine(), "processor": platform.processor(),
                              "numpy": np.__version__, "python": platform.python_version()},
                 "clock": "time.thread_time", "frames": len(images), "frame_size": FRAME,
                 "cold": args.cold, "runs": args.runs, "config": vars(config),
                 "load_before": os.getloadavg(), "models": {}}
    for name, det in _detectors(models, args.peer).items():
        frames = _frames(det, images)
        _check(det, frames, [config, EVAL_SETTINGS])
        faces = [len(det.decode(raw, scale, config)) for raw, scale, _ in frames]
        res = _time(det, frames, config, args.runs, args.cold)
        res["faces_per_frame"] = faces
        out["models"][name] = res
        print(f"{name:22s} old p50 {res['old']['p50_us']:6.1f} us  new p50 "
              f"{res['new']['p50_us']:6.1f} us  new/old {res['new_over_old_p50']:.2f} "
              f"(per-round median {res['new_over_old_round_median']:.2f})", flush=True)
        per = res["per_frame_p50_us"]
        for label, i in (("no face", faces.index(min(faces))),
                         ("most faces", faces.index(max(faces)))):
            print(f"  {label} ({faces[i]}): old {per['old'][i]} us, new {per['new'][i]} us")
    out["load_after"] = os.getloadavg()
    print(f"load average before {out['load_before']}, after {out['load_after']}")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
