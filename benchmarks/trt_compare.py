#!/usr/bin/env python
"""TensorRT engine vs its ONNX model (issue 14): does the engine detect what the model does?

Run it on the Jetson that built the engine; it has not run on one yet (no GPU where edgeface
is developed: tests drive it against a fake TensorRT only):

    edgeface export --arch v1 --weights featherface_v1_mobilenet0.25_Final.pth -o v1.onnx
    edgeface quantize --tensorrt --fp16 -m v1.onnx -o v1.fp16.engine
    python benchmarks/trt_compare.py --engine v1.fp16.engine --onnx v1.onnx
    edgeface bench --model v1.fp16.engine --model v1.onnx     # latency, like any backend

For an INT8 engine, ``--onnx`` is the Q/DQ model it was built from. On each image (default:
shared/datasets/widerface-val-native, WIDER FACE at original resolution) both run edgeface's
own preprocessing and postprocessing (confidence 0.5, NMS 0.4): the engine through the
TensorRT backend, the model through ONNX Runtime on the CPU. Reported per image and overall:
faces each, faces matched (greedy, IoU >= 0.5), mean and lowest IoU of the matches, largest
score difference of a match, the largest raw output differences (scores everywhere, box
regressions where the ONNX model scores >= 0.5), the engine's own stage times (CUDA events)
and its median inference time. Verdict by the engine's precision: FP32/FP16 every face
matched at IoU >= 0.9 with scores within 0.05; INT8 90% matched, scores within 0.1.
Results: benchmarks/results/trt_compare_<platform>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
from _shared import REPO, SHARED

OUT_DIR = REPO / "benchmarks" / "results"
NATIVE = SHARED / "datasets" / "widerface-val-native" / "images"
KIND = "edgeface-trt-compare"
TOLERANCES = {"fp32": {"matched": 1.0, "min_iou": 0.9, "score": 0.05},
              "fp16": {"matched": 1.0, "min_iou": 0.9, "score": 0.05},
              "int8": {"matched": 0.9, "min_iou": 0.5, "score": 0.1}}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match(ref: np.ndarray, got: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int,
                                                                               float]]:
    """Greedy one-to-one matches (ref index, got index, IoU), best IoU first."""
    pairs = sorted(((iou(r, g), i, j) for i, r in enumerate(ref) for j, g in enumerate(got)),
                   reverse=True)
    used_r, used_g, out = set(), set(), []
    for v, i, j in pairs:
        if v >= threshold and i not in used_r and j not in used_g:
            used_r.add(i)
            used_g.add(j)
            out.append((i, j, v))
    return out


def compare(engine: Path, onnx: Path, images: list[Path], runs: int = 50) -> dict:
    """Detections and raw outputs of ``engine`` against ``onnx`` on ``images``."""
    from edgeface.inference.backends import open_backend
    from edgeface.inference.detector import Detector
    from edgeface.media.images import read_image

    trt = Detector(open_backend(engine, provider="tensorrt"))
    ort = Detector(open_backend(onnx, provider="cpu"))
    precision = (trt.backend.sidecar.get("built_from") or {}).get("precision", "fp32")
    tol = TOLERANCES[precision]
    rows, ious, score_diffs = [], [], []
    faces_ref = faces_matched = 0
    raw = {"scores_max_abs": 0.0, "boxes_max_abs_on_faces": 0.0}
    for path in images:
        frame = read_image(path)
        blob = ort.prepare(frame)[0]
        a, b = trt.backend.infer(blob), ort.backend.infer(blob)
        raw["scores_max_abs"] = max(raw["scores_max_abs"], float(np.abs(a[1] - b[1]).max()))
        faces = b[1] >= 0.5
        if faces.any():
            raw["boxes_max_abs_on_faces"] = max(raw["boxes_max_abs_on_faces"], float(
                np.abs(a[0][faces] - b[0][faces]).max()))
        got, ref = trt.detect(frame), ort.detect(frame)
        m = match(ref.boxes, got.boxes)
        ious += [v for _, _, v in m]
        score_diffs += [abs(float(ref.scores[i]) - float(got.scores[j])) for i, j, _ in m]
        faces_ref += len(ref)
        faces_matched += len(m)
        rows.append({"image": path.name, "onnx_faces": len(ref), "engine_faces": len(got),
                     "matched": len(m),
                     "min_iou": round(min((v for *_, v in m), default=1.0), 4)})
    blob = ort.prepare(read_image(images[0]))[0]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        trt.backend.infer(blob)
        times.append(time.perf_counter() - t0)
    matched = faces_matched / faces_ref if faces_ref else 1.0
    summary = {
        "onnx_faces": faces_ref, "matched": faces_matched, "matched_fraction": round(matched, 4),
        "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
        "min_iou": round(float(np.min(ious)), 4) if ious else None,
        "max_score_diff": round(float(np.max(score_diffs)), 4) if score_diffs else None,
        "raw": {k: round(v, 5) for k, v in raw.items()},
        "engine_infer_median_ms": round(1000 * float(np.median(times)), 3),
        "engine_stages_mean_ms": trt.backend.stage_summary(),
    }
    passed = (matched >= tol["matched"] and (not ious or min(ious) >= tol["min_iou"])
              and (not score_diffs or max(score_diffs) <= tol["score"]))
    record = {"precision": precision, "tolerance": tol, "passed": passed, "summary": summary,
              "images": rows, "engine_sidecar": trt.backend.sidecar,
              "device": trt.backend.device.record()}
    trt.backend.close()
    return record


def markdown(doc: dict) -> str:
    s, t = doc["result"]["summary"], doc["result"]["tolerance"]
    lines = [f"# TensorRT engine vs ONNX model: {Path(doc['engine']).name}", "",
             f"Device: {doc['device_line']}. Precision {doc['result']['precision'].upper()}; "
             f"reference: {Path(doc['onnx']).name} in ONNX Runtime on the CPU.", "",
             "| image | ONNX faces | engine faces | matched | lowest IoU |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['image']} | {r['onnx_faces']} | {r['engine_faces']} | {r['matched']} | "
              f"{r['min_iou']} |" for r in doc["result"]["images"]]
    lines += ["", f"Matched {s['matched']}/{s['onnx_faces']} ({s['matched_fraction']:.0%}), "
              f"mean IoU {s['mean_iou']}, lowest {s['min_iou']}, largest score difference "
              f"{s['max_score_diff']}; raw outputs: scores max |diff| "
              f"{s['raw']['scores_max_abs']}, box regressions on faces "
              f"{s['raw']['boxes_max_abs_on_faces']}.",
              f"Engine inference median {s['engine_infer_median_ms']} ms; stages (CUDA events, "
              f"mean ms): {json.dumps(s['engine_stages_mean_ms'])}.", "",
              f"Tolerance: {json.dumps(t)} -> **{'PASS' if doc['result']['passed'] else 'FAIL'}"
              "**.", "", f"Reproduce: `{doc['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", type=Path, required=True)
    ap.add_argument("--onnx", type=Path, required=True,
                    help="the model the engine was built from")
    ap.add_argument("--images", type=Path, default=NATIVE)
    ap.add_argument("--runs", type=int, default=50, help="engine runs for the median time")
    ap.add_argument("-o", "--output-dir", dest="out_dir", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    from edgeface.media.images import IMAGE_EXTENSIONS
    from edgeface.system.platform import describe, fingerprint

    images = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        sys.exit(f"no images under {args.images} (set EDGEFACE_SHARED or --images)")
    result = compare(args.engine, args.onnx, images, args.runs)
    fp = fingerprint()
    doc = {"kind": KIND, "schema_version": 1,
           "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "python benchmarks/trt_compare.py " + " ".join(
               sys.argv[1:] if argv is None else argv),
           "engine": str(args.engine), "onnx": str(args.onnx), "platform": fp,
           "device_line": describe(fp), "result": result}
    stem = f"trt_compare_{fp.get('slug', 'unknown')}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{stem}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    md = markdown(doc)
    (args.out_dir / f"{stem}.md").write_text(md)
    print(md)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
