"""FP32 accuracy: each FeatherFace checkpoint in PyTorch against its ONNX export.

Exports V1 and ECA-CBAM to a temporary directory (fixed 416x416, verified), evaluates the
checkpoint (PyTorch) and the export (ONNX Runtime, CPU) with the official WIDER FACE protocol
on the shared 416x416 eval split, and writes ``benchmarks/results/accuracy_fp32.{json,md}``.
Exits non-zero if PyTorch and ONNX differ by more than 0.002 AP in any setting.

    python benchmarks/accuracy_fp32.py [--shared ../shared] [--split eval] [--threads N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MODELS = {  # arch -> checkpoint file under shared/models/featherface
    "v1": "featherface_v1_mobilenet0.25_Final.pth",
    "eca_cbam": "featherface_eca_cbam_final.pth",
}
TOLERANCE = 0.002
SETTINGS = ("easy", "medium", "hard")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--split", default="eval")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("-o", "--output", "--out", dest="out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import onnxruntime
    import torch

    from edgeface.calibration.evaluation import evaluate_detector
    from edgeface.calibration.widerface import load_widerface
    from edgeface.common.files import sha256_file
    from edgeface.inference.backends.onnxruntime.runtime import OnnxRuntimeBackend
    from edgeface.models.torch_backend import TorchBackend
    from edgeface.quantize.export import export_model

    dataset_dir = args.shared / "datasets" / "widerface-val-416"
    ds = load_widerface(dataset_dir, args.split)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, filename in MODELS.items():
            weights = args.shared / "models" / "featherface" / filename
            onnx_path = Path(tmp) / f"{arch}.onnx"
            print(f"[{arch}] exporting {weights.name}", file=sys.stderr)
            export_model(weights, onnx_path, arch=arch)
            backends = {
                "pytorch": TorchBackend(weights, arch=arch, input_size=(416, 416),
                                        threads=args.threads),
                "onnx": OnnxRuntimeBackend(onnx_path, threads=args.threads),
            }
            results = {}
            for name, backend in backends.items():
                r = evaluate_detector(backend, ds, progress=None, desc=f"{arch} {name}")
                if r.skipped:
                    raise SystemExit(f"{len(r.skipped)} images unreadable; refusing to report")
                results[name] = r
                print(f"[{arch}] {name:8s} " + "  ".join(f"{s} {r.ap[s]:.4f}" for s in SETTINGS)
                      + f"  ({r.seconds:.1f} s)", file=sys.stderr)
            diff = {s: abs(results["pytorch"].ap[s] - results["onnx"].ap[s]) for s in SETTINGS}
            rows.append({
                "arch": arch, "checkpoint": filename,
                "checkpoint_sha256": sha256_file(weights), "onnx_sha256": sha256_file(onnx_path),
                "ap": {n: {s: round(r.ap[s], 6) for s in SETTINGS} for n, r in results.items()},
                "abs_diff": {s: round(v, 6) for s, v in diff.items()},
                "agree": all(v <= TOLERANCE for v in diff.values()),
                "seconds": {n: round(r.seconds, 1) for n, r in results.items()},
                "num_predictions": {n: r.num_predictions for n, r in results.items()},
            })
    first = results["onnx"]
    report = {
        "what": "WIDER FACE AP, FP32, PyTorch checkpoint vs ONNX export (ONNX Runtime, CPU)",
        "command": "python benchmarks/accuracy_fp32.py" + (" " + " ".join(argv) if argv else ""),
        "dataset": {"root": "shared/datasets/widerface-val-416", "split": ds.split,
                    "num_images": first.num_images, "num_faces": first.num_faces,
                    "stored_size": "416x416, mapped back with image_sizes.txt"},
        "settings": first.settings,
        "tolerance": TOLERANCE,
        "models": rows,
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_fp32.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "accuracy_fp32.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0 if all(r["agree"] for r in rows) else 1


def _markdown(rep: dict) -> str:
    d = rep["dataset"]
    f = d["num_faces"]
    lines = [
        "# FP32 accuracy: PyTorch vs ONNX",
        "",
        f"WIDER FACE val, `{d['root']}` split `{d['split']}`: {d['num_images']} images "
        f"({d['stored_size']}), {f['easy']}/{f['medium']}/{f['hard']} faces easy/medium/hard. "
        "Official protocol (IoU 0.5, 1000 thresholds, min-max normalised scores, VOC AP); "
        "detection at confidence 0.02, NMS 0.4, keep 750, input 416x416.",
        "",
        "| model | runtime | easy | medium | hard | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for m in rep["models"]:
        for name, ap in m["ap"].items():
            lines.append(f"| {m['arch']} | {name} | {ap['easy']:.4f} | {ap['medium']:.4f} | "
                         f"{ap['hard']:.4f} | {m['seconds'][name]} |")
        dd = m["abs_diff"]
        lines.append(f"| {m['arch']} | \\|difference\\| | {dd['easy']:.4f} | {dd['medium']:.4f} | "
                     f"{dd['hard']:.4f} | {'agree' if m['agree'] else 'DISAGREE'} "
                     f"(tolerance {rep['tolerance']}) |")
    env = rep["environment"]
    lines += [
        "",
        "Not comparable to published full-val AP: a 100-image subset, images resized to 416x416 "
        "without keeping the aspect ratio.",
        "",
        f"Reproduce: `{rep['command']}` (torch {env['torch']}, onnxruntime "
        f"{env['onnxruntime']}, {env['machine']}; {rep['created']}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
