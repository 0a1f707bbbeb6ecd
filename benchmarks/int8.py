#!/usr/bin/env python
"""INT8 quantization (issue 4): FP32 vs INT8 accuracy, latency and size for FeatherFace V1.

Runs ``edgeface quantize --int8``'s own pipeline (``edgeface.quantize.int8.quantize_int8``) with
its defaults on the shared WIDERFace-416 data: calibration split ``calib`` (50 images),
accuracy guard on split ``eval`` (100 images), ``--exclude auto``. Then, in one process:

- latency: FP32, the INT8 model the command wrote, the same INT8 quantization with no
  block kept in float, and the written model's quantization without compaction
  (``Int8Config(compact=False)``), measured round-robin in chunks (order rotating each round)
  at 1 and 2 threads with the runtime's session options; medians, ratio of medians and
  median of per-round ratios;
- where the time goes (ONNX Runtime profiler, 1 thread): op-type shares for FP32 and INT8;
- sizes, SHA-256 and where the bytes go (``size_breakdown``) for FP32, INT8 before
  compaction and INT8 as written, and the largest output difference compaction makes;
- ``--sweep``: the alternatives behind the defaults (calibration method, per-channel vs
  per-tensor, reduce_range, activation type, QOperator format), each quantized with no
  exclusions, scored on the eval split and timed against FP32 in one interleaved run.
  Without ``--sweep``, the sweep of the previous result file is carried over, marked with
  the date and command of the run it came from.

    python benchmarks/int8.py              # -> benchmarks/results/int8.json and int8.md
    python benchmarks/int8.py --sweep      # + the alternatives (3.5 min in all, 2-core x86)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _shared import REPO
from _shared import V1_WEIGHTS as DEFAULT_WEIGHTS
from _shared import WIDERFACE_416 as WIDERFACE

OUT_DIR = REPO / "benchmarks" / "results"
KIND = "edgeface-int8"
SCHEMA_VERSION = 1
TARGETS = {"max_ap_drop": 1.0, "aim_ap_drop": 0.5, "latency_ratio_1t": 0.7, "size_ratio": 0.35}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", type=Path, default=None,
                    help="FP32 export to use [default: export V1 to a temporary directory]")
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--widerface", type=Path, default=WIDERFACE)
    ap.add_argument("--calib-split", default="calib")
    ap.add_argument("--eval-split", default="eval")
    ap.add_argument("--runs", type=int, default=400, help="latency runs per model and threads")
    ap.add_argument("--chunk", type=int, default=5, help="runs per turn in the round-robin")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--sweep", action="store_true", help="also measure the alternatives")
    ap.add_argument("--sweep-runs", type=int, default=100,
                    help="latency runs per variant in the sweep (1 thread)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the models in this directory")
    ap.add_argument("--output-dir", "--out-dir", dest="out_dir", type=Path, default=OUT_DIR)
    return ap.parse_args(argv)


def op_time_shares(path: Path, blob: np.ndarray, runs: int = 30) -> dict[str, float]:
    """Share of kernel time per operator type (%), 1 thread (see edgeface.bench.op_profile)."""
    from edgeface.bench.op_profile import op_time_shares as shares

    return shares(path, blob, runs, threads=1, min_percent=1.0)

def ap_points(ap: dict) -> dict[str, float | None]:
    return {s: None if v is None else round(100 * v, 2) for s, v in ap.items()}


def sweep(fp32: Path, calib_blobs: list[np.ndarray], eval_ds, fp32_ap: dict, blob: np.ndarray,
          runs: int, chunk: int, work: Path, keep: Path | None) -> list[dict]:
    """Each alternative quantized without exclusions: AP on the eval split, 1-thread latency
    against FP32 in one interleaved run, size."""
    import onnx
    from tqdm import tqdm

    from edgeface.calibration.evaluation import evaluate_detector
    from edgeface.inference.backends import open_backend
    from edgeface.quantize import ort_quant
    from edgeface.quantize.config import QUANTIZED_OP_TYPES, Int8Config
    from edgeface.quantize.guard import check_budget
    from edgeface.quantize.latency import measure_latency

    base = Int8Config()
    variants = {
        "default": base,
        "no reduce_range": replace(base, reduce_range=False),
        "per-tensor": replace(base, per_channel=False),
        "S8 activations": replace(base, activation_type="s8"),
        "percentile 99.999": replace(base, percentile=99.999),
        "minmax": replace(base, method="minmax"),
        "minmax, no reduce_range (ORT's VNNI advice)": replace(base, method="minmax",
                                                               reduce_range=False),
        "entropy": replace(base, method="entropy"),
        "DeformConv weights float": replace(base, dcn_weights_int8=False),
    }
    pre = work / "pre.onnx"
    ort_quant.preprocess_model(fp32, pre)
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    ranges: dict[tuple, Path] = {}
    rows, paths = [], {}
    for name, cfg in tqdm(variants.items(), desc="sweep", unit="variant", file=sys.stderr):
        key = (cfg.method, cfg.percentile, cfg.symmetric_activations)
        t0 = time.perf_counter()
        if key not in ranges:
            tensors, _ = ort_quant.calibrate(pre, calib_blobs, cfg, work,
                                             total=len(calib_blobs), progress=False)
            ranges[key] = work / f"ranges_{len(ranges)}.json"
            ort_quant.save_ranges(tensors, ranges[key])
        dst = (keep or work) / f"sweep_{len(rows)}.onnx"
        ort_quant.build_model(pre, ranges[key], cfg, [], meta, {"variant": name}, dst)
        res = evaluate_detector(open_backend(dst, provider="cpu", threads=1), eval_ds,
                                progress=False)
        drops = check_budget(fp32_ap, res.ap, TARGETS["max_ap_drop"])
        rows.append({"variant": name, "config": cfg.describe(), "ap": ap_points(res.ap),
                     "drop_points": drops.drops, "within_1pt": drops.passed,
                     "size_bytes": dst.stat().st_size, "seconds": round(time.perf_counter() - t0,
                                                                         1)})
        paths[name] = dst
    # QOperator format, for the record (ORT recommends QDQ on CPU).
    try:
        with ort_quant.quiet():
            qq = ort_quant.ort_quantization()
            qq.quantize_static(str(pre), str(work / "qop.onnx"), None,
                               quant_format=qq.QuantFormat.QOperator, per_channel=True,
                               reduce_range=True, activation_type=qq.QuantType.QUInt8,
                               weight_type=qq.QuantType.QInt8,
                               calibrate_method=ort_quant.calib_method(base.method),
                               op_types_to_quantize=list(QUANTIZED_OP_TYPES),
                               calibration_cache_path=str(ranges[(base.method, base.percentile,
                                                                  False)]))
        rows.append({"variant": "QOperator format", "error": None})
    except Exception as exc:  # report why it cannot be used
        rows.append({"variant": "QOperator format",
                     "error": (str(exc).strip().splitlines() or [type(exc).__name__])[0][:70]})
    lat = measure_latency({"fp32": fp32, **paths}, blob, threads=1, runs=runs, chunk=chunk)
    for r in rows:
        if r["variant"] in paths:
            r["latency_ms"] = lat["median_ms"][r["variant"]]
            r["latency_ratio"] = lat["ratio"][r["variant"]]
            r["paired_ratio"] = lat["paired_ratio"][r["variant"]]
    rows.append({"variant": "FP32", "ap": ap_points(fp32_ap),
                 "latency_ms": lat["median_ms"]["fp32"], "size_bytes": fp32.stat().st_size})
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from edgeface.calibration.calib_data import open_image_set
    from edgeface.calibration.image_folder import iter_blobs
    from edgeface.calibration.widerface import load_widerface
    from edgeface.quantize.config import Int8Config, Int8Job
    from edgeface.quantize.graph import summarize_float_nodes
    from edgeface.quantize.int8 import quantize_int8
    from edgeface.quantize.latency import measure_latency
    from edgeface.system.platform import describe, fingerprint

    threads = sorted({int(t) for t in args.threads.split(",")})
    load_start = [round(x, 2) for x in os.getloadavg()]
    tmp = tempfile.TemporaryDirectory(prefix="edgeface-int8-bench-")
    work = Path(tmp.name)
    keep = args.keep
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    if args.onnx is None:
        from edgeface.quantize.export import export_model

        fp32 = (keep or work) / "v1.onnx"
        print(export_model(args.weights, fp32, arch="v1").summary(), file=sys.stderr)
    else:
        fp32 = args.onnx
    out_dir = keep or work
    int8_path = out_dir / "v1.int8.onnx"
    plain_path = out_dir / "v1.int8.no-exclusions.onnx"
    loose_path = out_dir / "v1.int8.uncompacted.onnx"

    calib = open_image_set(args.widerface, args.calib_split)
    eval_ds = load_widerface(args.widerface, args.eval_split)
    t0 = time.perf_counter()
    report = quantize_int8(fp32, int8_path, calib,
                           Int8Job(exclude="auto", bench_runs=0, force=True, progress=True),
                           eval_dataset=eval_ds,
                           log_fn=lambda m: print(f"int8: {m}", file=sys.stderr))
    command_s = time.perf_counter() - t0
    plain = quantize_int8(fp32, plain_path, calib,
                          Int8Job(max_ap_drop=None, bench_runs=0, force=True, progress=False))
    # The written model's quantization (same calibration, same blocks in float), not compacted.
    loose = quantize_int8(fp32, loose_path, calib,
                          Int8Job(Int8Config(compact=False), max_ap_drop=None,
                                  exclude=report.excluded["blocks"], bench_runs=0, force=True,
                                  progress=False))
    search = report.search
    plain_ap = search[0]["int8_ap"] if search else None

    eval_blobs = [b for _, b in zip(range(8), iter_blobs(eval_ds, (416, 416)))]
    blob = eval_blobs[0]
    latency = {}
    for t in threads:
        latency[str(t)] = measure_latency(
            {"fp32": fp32, "int8": int8_path, "int8_no_exclusions": plain_path,
             "int8_uncompacted": loose_path}, blob, t,
            runs=args.runs, warmup=args.warmup, chunk=args.chunk)
    profile = {"fp32": op_time_shares(fp32, blob), "int8": op_time_shares(int8_path, blob)}
    sizes = size_section(fp32, loose_path, int8_path, eval_blobs, loose.int8["sha256"])

    rows, sweep_from = None, None
    if args.sweep:
        calib_blobs = list(iter_blobs(calib, (416, 416)))
        rows = sweep(fp32, calib_blobs, eval_ds, _ap_from_report(report), blob,
                     args.sweep_runs, args.chunk, work, keep)
    else:
        rows, sweep_from = previous_sweep(args.out_dir / "int8.json")

    fp = fingerprint()
    acc = report.accuracy
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    command = "python benchmarks/int8.py " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = {
        "schema_version": SCHEMA_VERSION, "kind": KIND,
        "created": created,
        "platform": fp, "conditions": {"loadavg_start": load_start,
                                       "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"runs": args.runs, "warmup": args.warmup, "chunk": args.chunk,
                     "threads": threads, "calib_split": args.calib_split,
                     "eval_split": args.eval_split, "widerface": str(args.widerface),
                     "latency_input": "1x3x416x416, first eval image, network inference only",
                     "command": command.strip()},
        "targets": TARGETS,
        "report": report.to_json(),
        "command_seconds": round(command_s, 1),
        "no_exclusions": {"ap": plain_ap, "size_bytes": plain.int8["size_bytes"],
                          "float_summary": summarize_float_nodes(plain.float_nodes)},
        "latency": latency,
        "op_time_share_pct_1thread": profile,
        "sizes": sizes,
        "sweep": rows,
        "sweep_from": sweep_from or {"created": created, "command": command.strip(),
                                     "fp32_size_bytes": report.fp32["size_bytes"],
                                     "int8_compacted": True},
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "int8.json").write_text(json.dumps(doc, indent=1, default=str) + "\n",
                                            encoding="utf-8")
    md = markdown(doc, describe(fp))
    (args.out_dir / "int8.md").write_text(md, encoding="utf-8")
    print(md)
    print(f"wrote {args.out_dir / 'int8.json'} and int8.md", file=sys.stderr)
    tmp.cleanup()
    return 0 if acc and acc["passed"] else 1


def size_section(fp32: Path, loose: Path, written: Path, blobs: list[np.ndarray],
                 loose_sha256: str) -> dict:
    """Byte breakdown of FP32, INT8 before compaction and INT8 as written; the largest output
    difference between the two INT8 files over ``blobs`` (compaction must not change it)."""
    import onnx
    import onnxruntime as ort

    from edgeface.inference.backends.onnxruntime.runtime import session_options
    from edgeface.quantize.compaction import size_breakdown

    out: dict = {"files": {}}
    for key, path in (("fp32", fp32), ("int8_uncompacted", loose), ("int8", written)):
        b = size_breakdown(onnx.load(str(path)))
        assert b["total_bytes"] == path.stat().st_size
        out["files"][key] = b
    fp32_bytes = out["files"]["fp32"]["total_bytes"]
    int8_bytes = out["files"]["int8"]["total_bytes"]
    graph_meta = out["files"]["fp32"]["parts"]["graph_metadata"]
    out["int8_uncompacted_sha256"] = loose_sha256
    out["ratio"] = round(int8_bytes / fp32_bytes, 4)
    out["ratio_uncompacted"] = round(out["files"]["int8_uncompacted"]["total_bytes"]
                                     / fp32_bytes, 4)
    # The FP32 file still carries the exporter's graph-level signature dump, which the INT8
    # file drops; the like-for-like ratio leaves it out of both.
    out["fp32_graph_metadata_bytes"] = graph_meta
    out["ratio_without_fp32_graph_metadata"] = round(int8_bytes / (fp32_bytes - graph_meta), 4)
    sess, kernels = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate((loose, written)):
            so = session_options(1)
            so.optimized_model_filepath = str(Path(tmp) / f"{i}.onnx")
            sess.append(ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]))
            kernels.append([(n.domain, n.op_type) for n in onnx.load(
                so.optimized_model_filepath).graph.node])
    # What ONNX Runtime runs after its graph optimisations, op by op, in graph order.
    out["ort_optimized_nodes"] = len(kernels[1])
    out["ort_optimized_ops_identical"] = kernels[0] == kernels[1]
    diff = 0.0
    for blob in blobs:
        a, b = (s.run(None, {"input": blob}) for s in sess)
        diff = max(diff, *(float(np.abs(x - y).max()) for x, y in zip(a, b)))
    out["compaction_max_abs_diff"] = diff
    out["compaction_check_images"] = len(blobs)
    return out


def previous_sweep(path: Path) -> tuple[list | None, dict | None]:
    """The sweep rows of an earlier result file and the run they came from."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not old.get("sweep"):
        return None, None
    origin = old.get("sweep_from") or {  # files from before compaction
        "created": old.get("created"), "command": old["settings"].get("command"),
        "fp32_size_bytes": old["report"]["fp32"]["size_bytes"],
        "int8_compacted": "compact" in old["report"]["config"]}
    return old["sweep"], origin


def _ap_from_report(report) -> dict[str, float]:
    return {s: (float("nan") if v is None else v) for s, v in report.accuracy["fp32"].items()}


def size_markdown(sizes: dict) -> list[str]:
    """Where the bytes go: FP32, INT8 before compaction, INT8 as written."""
    files = sizes["files"]
    cols = [("fp32", "FP32"), ("int8_uncompacted", "INT8 before compaction"),
            ("int8", "INT8 written")]
    lines = ["| bytes | " + " | ".join(c for _, c in cols) + " |",
             "|---|" + "---:|" * len(cols)]

    def row(label: str, get) -> None:
        lines.append(f"| {label} | " + " | ".join(f"{get(files[k]):,}" for k, _ in cols) + " |")

    types = sorted({t for k, _ in cols for t in files[k]["initializers_by_type"]},
                   key=lambda t: -files["fp32"]["initializers_by_type"].get(t, {"bytes": 0})[
                       "bytes"])
    for t in types:
        row(f"initializers {t}", lambda f, t=t: f["initializers_by_type"].get(
            t, {"bytes": 0})["bytes"])
    row("&nbsp;&nbsp;of which initializer names", lambda f: f["initializer_name_bytes"])
    row("initializer count", lambda f: sum(d["count"] for d in f["initializers_by_type"]
                                           .values()))
    row("node protos", lambda f: f["parts"]["nodes"])
    row("&nbsp;&nbsp;node names", lambda f: f["node_detail"]["name_bytes"])
    row("&nbsp;&nbsp;tensor names referenced", lambda f: f["node_detail"]["tensor_ref_bytes"])
    row("&nbsp;&nbsp;attributes", lambda f: f["node_detail"]["attribute_bytes"])
    row("&nbsp;&nbsp;per-node metadata", lambda f: f["node_detail"]["metadata_bytes"])
    row("node count", lambda f: f["node_detail"]["count"])
    row("value_info", lambda f: f["parts"]["value_info"])
    row("graph metadata (exporter signature dump)", lambda f: f["parts"]["graph_metadata"])
    row("model metadata (`edgeface.*`)", lambda f: f["parts"]["model_metadata"])
    row("other (graph I/O, opsets, headers)", lambda f: f["parts"]["other"])
    row("**total**", lambda f: f["total_bytes"])
    lines += ["", f"INT8/FP32: {sizes['ratio']:.1%} as written, {sizes['ratio_uncompacted']:.1%}"
              f" before compaction; {sizes['ratio_without_fp32_graph_metadata']:.1%} if the FP32 "
              f"file also dropped its {sizes['fp32_graph_metadata_bytes']:,} B graph-level "
              "exporter metadata. Compaction (merged identical constants, short internal "
              "names, no exporter metadata) "
              + ("leaves the outputs bitwise equal" if sizes["compaction_max_abs_diff"] == 0
                 else f"changes the outputs by at most {sizes['compaction_max_abs_diff']:.3g}")
              + f" on {sizes['compaction_check_images']} eval images; after ONNX Runtime's "
              f"graph optimisations both files run "
              + ("the same" if sizes.get("ort_optimized_ops_identical") else "DIFFERENT")
              + f" {sizes.get('ort_optimized_nodes')} ops in the same order.\n"]
    return lines


def markdown(doc: dict, platform: str) -> str:
    r = doc["report"]
    acc = r["accuracy"]
    lines = ["# INT8 quantization: FeatherFace V1, FP32 vs INT8\n",
             f"**{platform}**; load average {doc['conditions']['loadavg_start']} -> "
             f"{doc['conditions']['loadavg_end']} (shared machine).\n",
             f"Quantization: {r['config']['description']}; calibrated on "
             f"{r['calibration']['images']} images ({r['calibration']['source']}). Blocks kept "
             f"in float by `--exclude auto`: {', '.join(r['excluded']['blocks']) or 'none'}.\n",
             f"## Accuracy ({acc['dataset']}, {acc['images']} images)\n",
             "| model | easy | medium | hard |", "|---|---:|---:|---:|"]
    fp, i8 = ap_points(acc["fp32"]), ap_points(acc["int8"])
    lines.append("| FP32 | " + " | ".join(f"{fp[s]:.2f}" for s in fp) + " |")
    lines.append("| INT8 (written) | " + " | ".join(f"{i8[s]:.2f}" for s in i8) + " |")
    lines.append("| drop, points | " + " | ".join(f"{acc['drop_points'][s]:+.2f}" for s in fp)
                 + " |")
    plain = doc["no_exclusions"]["ap"]
    if plain:
        p = ap_points(plain)
        lines.append("| INT8, nothing kept in float | " + " | ".join(
            f"{p[s]:.2f}" for s in p) + " |")
    lines += ["", f"Budget {acc['max_ap_drop']:g} point per setting: "
              f"{'met' if acc['passed'] else 'NOT met'}.", "",
              "## Latency (network inference, median, interleaved in one run)\n",
              "| threads | FP32 ms | INT8 ms | INT8/FP32 | paired | INT8 no-excl. ms | ratio "
              "| INT8 uncompacted ms | ratio |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t, lat in doc["latency"].items():
        m, ra, pr = lat["median_ms"], lat["ratio"], lat["paired_ratio"]
        row = (f"| {t} | {m['fp32']:.2f} | {m['int8']:.2f} | {ra['int8']:.3f} | "
               f"{pr['int8']:.3f} | {m['int8_no_exclusions']:.2f} | "
               f"{ra['int8_no_exclusions']:.3f} |")
        if "int8_uncompacted" in m:
            row += f" {m['int8_uncompacted']:.2f} | {ra['int8_uncompacted']:.3f} |"
        lines.append(row)
    lines.append(f"\n{doc['settings']['runs']} runs per model and thread count, chunks of "
                 f"{doc['settings']['chunk']}, runtime session options.\n")
    prof = doc["op_time_share_pct_1thread"]
    for k in ("fp32", "int8"):
        lines.append(f"- Time by op type, {k.upper()} (1 thread): " + ", ".join(
            f"{op} {pct:.0f}%" for op, pct in list(prof[k].items())[:6]))
    lines += ["", "## Size\n",
              f"FP32 {r['fp32']['size_bytes']:,} B -> INT8 {r['int8']['size_bytes']:,} B "
              f"({r['size_ratio']:.1%}). Nodes in float: {r['float_summary']}.\n"]
    if doc.get("sizes"):
        lines += size_markdown(doc["sizes"])
    if doc.get("sweep"):
        origin = doc.get("sweep_from") or {}
        notes = [f"`{origin.get('command')}`"]
        if origin.get("fp32_size_bytes", r["fp32"]["size_bytes"]) != r["fp32"]["size_bytes"]:
            notes.append(f"FP32 export then {origin['fp32_size_bytes']:,} B")
        if not origin.get("int8_compacted", True):
            notes.append("INT8 files not compacted")
        when = ("this run" if origin.get("created") == doc["created"] else
                f"the run of {origin.get('created')} ({', '.join(notes)}), not rerun")
        lines += ["## Alternatives (no blocks kept in float; latency at 1 thread, interleaved)\n",
                  f"From {when}.\n",
                  "| variant | easy | medium | hard | max drop | ms | /FP32 | paired | size KiB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in doc["sweep"]:
            if row.get("error") is not None or "ap" not in row:
                note = row.get("error") or "ok"
                lines.append(f"| {row['variant']} | {note} |||||||| ")
                continue
            ap = row["ap"]
            drop = max(row["drop_points"].values()) if "drop_points" in row else 0.0
            ratio = f"{row['latency_ratio']:.3f}" if "latency_ratio" in row else "1"
            paired = f"{row['paired_ratio']:.3f}" if "paired_ratio" in row else "1"
            lines.append(f"| {row['variant']} | {ap['easy']:.2f} | {ap['medium']:.2f} | "
                         f"{ap['hard']:.2f} | {drop:+.2f} | {row['latency_ms']:.2f} | {ratio} | "
                         f"{paired} | {row['size_bytes'] / 1024:.0f} |")
    t = doc["targets"]
    lat1 = doc["latency"].get("1", {}).get("ratio", {}).get("int8")
    lines += ["", "## Targets\n",
              f"- AP drop <= {t['max_ap_drop']} point: "
              f"{'PASS' if acc['passed'] else 'FAIL'} (worst "
              f"{max(acc['drop_points'].values()):+.2f})",
              f"- INT8 latency <= {t['latency_ratio_1t']}x FP32 at 1 thread: "
              + (f"{'PASS' if lat1 <= t['latency_ratio_1t'] else 'FAIL'} ({lat1:.3f}x)"
                 if lat1 else "not measured"),
              f"- INT8 file <= {t['size_ratio']:.0%} of FP32: "
              f"{'PASS' if r['size_ratio'] <= t['size_ratio'] else 'FAIL'} "
              f"({r['size_ratio']:.1%})",
              "", f"Reproduce: `{doc['settings']['command']}`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
