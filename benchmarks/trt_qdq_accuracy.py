#!/usr/bin/env python
"""TensorRT-target INT8 (issue 14): FP32 vs the Q/DQ model TensorRT consumes, scored on the CPU.

Runs ``edgeface quantize --int8 --provider tensorrt``'s own pipeline (``quantize_int8`` with
``tensorrt_int8_config()``: symmetric signed INT8 activations and weights, per-channel
weights, zero points 0, float bias, DeformConv float) on the shared WIDERFace-416 data:
calibration split ``calib`` (50 images), accuracy guard on split ``eval`` (100 images),
``--exclude auto``. ONNX Runtime runs the Q/DQ model on this CPU. Also recorded:

- the same quantization with no block kept in float (the guard's first trial);
- the written Q/DQ model run with ONNX Runtime's graph optimisations off, so that every
  QuantizeLinear/DequantizeLinear executes as written in float ("fake quantization"): AP that
  does not depend on ONNX Runtime's integer kernels, the closest CPU stand-in for TensorRT's
  INT8 kernels (INT32 accumulation) - still not TensorRT, whose AP needs a device
  (benchmarks/trt_compare.py);
- the check of the written graph against TensorRT's Q/DQ rules, sizes and digests.

    edgeface export --arch v1 --weights .../featherface_v1_mobilenet0.25_Final.pth -o /tmp/v1.onnx
    python benchmarks/trt_qdq_accuracy.py --onnx /tmp/v1.onnx   # -> results/trt_qdq_accuracy.*
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _shared import REPO, WIDERFACE_416, export_v1

OUT_DIR = REPO / "benchmarks" / "results"
KIND = "edgeface-trt-qdq-accuracy"
SCHEMA_VERSION = 1
SETTINGS = ("easy", "medium", "hard")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", type=Path, default=None,
                    help="FP32 V1 export [default: export it to a temporary directory]")
    ap.add_argument("--widerface", type=Path, default=WIDERFACE_416)
    ap.add_argument("--calib-split", default="calib")
    ap.add_argument("--eval-split", default="eval")
    ap.add_argument("--max-ap-drop", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="keep the models in this directory")
    ap.add_argument("-o", "--output-dir", dest="out_dir", type=Path, default=OUT_DIR)
    return ap.parse_args(argv)


def points(ap: dict) -> dict:
    return {s: None if ap.get(s) is None else round(100 * ap[s], 2) for s in SETTINGS}


def evaluate_as_written(path: Path, dataset, threads: int | None) -> dict:
    """AP of a Q/DQ model with ONNX Runtime's graph optimisations off (Q/DQ run in float)."""
    import onnxruntime as ort

    from edgeface.calibration.evaluation import evaluate_detector
    from edgeface.inference.backends import open_backend
    from edgeface.inference.backends.onnxruntime.runtime import session_options

    backend = open_backend(path, provider="cpu", threads=threads)
    so = session_options(backend.threads)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    backend.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return evaluate_detector(backend, dataset, progress=None, desc="eval Q/DQ as written").ap


def markdown(doc: dict, platform_line: str) -> str:
    acc = doc["report"]["accuracy"]
    fp32, q = points(acc["fp32"]), points(acc["int8"])
    plain, written = doc["no_exclusions_ap"], doc["as_written_ap"]
    blocks = doc["report"]["excluded"]["blocks"]
    rows = [("FP32", fp32), ("TensorRT-target Q/DQ (written)", q),
            ("drop, points (the guard's)", {s: round(acc["drop_points"][s], 2)
                                            for s in SETTINGS})]
    if plain:
        rows.append(("Q/DQ, nothing kept in float", points(plain)))
    rows.append(("written model, Q/DQ executed as written (no ORT fusion)", points(written)))
    table = ["| model | easy | medium | hard |", "|---|---:|---:|---:|"]
    table += [f"| {name} | " + " | ".join(f"{v[s]:.2f}" for s in SETTINGS) + " |"
              for name, v in rows]
    cfg = doc["report"]["config"]
    rules = doc["tensorrt_rules"]
    return "\n".join([
        "# INT8 for TensorRT: FeatherFace V1, FP32 vs the TensorRT-target Q/DQ model",
        "",
        f"**{platform_line}**; ONNX Runtime on the CPU (no TensorRT here).",
        "",
        f"Quantization: {cfg['description']}; symmetric activations, zero points 0, float "
        f"bias, DeformConv float; extra options {json.dumps(cfg.get('extra_options'))}. "
        f"Calibrated on {doc['report']['calibration']['images']} images "
        f"({doc['settings']['widerface']} split {doc['settings']['calib_split']}).",
        "",
        f"Blocks kept in float by `--exclude auto`: {', '.join(blocks) or 'none'}.",
        "",
        f"## Accuracy ({acc['dataset']}, {acc['images']} images, faces "
        f"{acc['faces']['easy']}/{acc['faces']['medium']}/{acc['faces']['hard']})",
        "",
        *table,
        "",
        f"Budget {acc['max_ap_drop']:g} point per setting: "
        f"{'met' if acc['passed'] else 'MISSED'}.",
        "",
        "## TensorRT's Q/DQ rules",
        "",
        "Written graph: " + ("keeps them (signed INT8, zero points 0, per-channel weights on "
                             "axis 0, no INT32 bias, DeformConv weights float)" if not rules
                             else "BREAKS them: " + "; ".join(rules[:5])) + ".",
        f"Q/DQ nodes: {doc['qdq_nodes']}; size {doc['report']['int8']['size_bytes']:,} B "
        f"(float weights with a Q/DQ pair each: TensorRT folds them at build time).",
        "",
        "## What this does not show",
        "",
        "TensorRT's own INT8 accuracy and speed: the engine has never been built here. On a "
        "Jetson: `edgeface quantize --tensorrt -m <this model> -o v1.int8.engine`, then "
        "`python benchmarks/trt_compare.py --engine v1.int8.engine --onnx <this model>`.",
        "",
        f"Reproduce: `{doc['settings']['command']}` ({doc['seconds']:.0f} s).",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from edgeface.calibration.calib_data import open_image_set
    from edgeface.calibration.widerface import load_widerface
    from edgeface.inference.backends.tensorrt.qdq import qdq_problems
    from edgeface.quantize.config import Int8Job
    from edgeface.quantize.graph import load_model
    from edgeface.quantize.int8 import quantize_int8
    from edgeface.quantize.targets import tensorrt_int8_config
    from edgeface.system.platform import describe, fingerprint

    load_start = [round(x, 2) for x in os.getloadavg()]
    tmp = tempfile.TemporaryDirectory(prefix="edgeface-trt-qdq-")
    out_dir = args.keep or Path(tmp.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = args.onnx or export_v1(out_dir / "v1.onnx")
    qdq = out_dir / "v1.trt-int8.onnx"
    eval_ds = load_widerface(args.widerface, args.eval_split)
    t0 = time.perf_counter()
    job = Int8Job(tensorrt_int8_config(), max_ap_drop=args.max_ap_drop, exclude="auto",
                  threads=args.threads, bench_runs=0, force=True, keep_rejected=True,
                  progress=None)
    report = quantize_int8(fp32, qdq, open_image_set(args.widerface, args.calib_split), job,
                           eval_dataset=eval_ds,
                           log_fn=lambda m: print(f"trt-qdq: {m}", file=sys.stderr))
    seconds = time.perf_counter() - t0
    written = qdq if report.accepted else Path(report.int8["path"])
    proto = load_model(written)
    as_written = evaluate_as_written(written, eval_ds, args.threads)
    command = "python benchmarks/trt_qdq_accuracy.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    fp = fingerprint()
    doc = {
        "schema_version": SCHEMA_VERSION, "kind": KIND,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": fp,
        "conditions": {"loadavg_start": load_start,
                       "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"widerface": str(args.widerface), "calib_split": args.calib_split,
                     "eval_split": args.eval_split, "max_ap_drop": args.max_ap_drop,
                     "command": command.strip()},
        "report": report.to_json(),
        "no_exclusions_ap": report.search[0]["int8_ap"] if report.search else None,
        "as_written_ap": {s: round(float(v), 6) for s, v in as_written.items()},
        "tensorrt_rules": qdq_problems(proto),
        "qdq_nodes": sum(n.op_type in ("QuantizeLinear", "DequantizeLinear")
                         for n in proto.graph.node),
        "seconds": round(seconds, 1),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "trt_qdq_accuracy.json").write_text(
        json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    md = markdown(doc, describe(fp))
    (args.out_dir / "trt_qdq_accuracy.md").write_text(md, encoding="utf-8")
    print(md)
    tmp.cleanup()
    return 0 if report.accepted and not doc["tensorrt_rules"] else 1


if __name__ == "__main__":
    sys.exit(main())
