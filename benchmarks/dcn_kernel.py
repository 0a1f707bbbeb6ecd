"""FeatherFace V1's 15 DeformConv layers: ONNX Runtime's DeformConv vs the fast path.

The fast path is the compiled sampler (``edgeface.inference.dcn``: NCHW -> NHWC, then the
channels-last deformable im2col into a preallocated buffer) followed by one ONNX Runtime
MatMul over the columns (+ bias, and the transpose back to NCHW, so both sides produce the
same tensor). Inputs are random, with offsets of FeatherFace's magnitude (a few pixels).
Each layer runs at 1 and 2 threads (ONNX Runtime's intra-op threads = the sampler's), all
variants interleaved round-robin, so a busy machine slows them alike; medians.

    python benchmarks/dcn_kernel.py [--runs 100] [--threads 1 2] [-o results/dcn_kernel.json]

Models are written with tests/onnx_writer.py, so this runs where ``onnx`` is not installed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import onnx_writer as ow  # noqa: E402

RESULTS = HERE / "results"


def _deform_conv_model(c: int, o: int, s: int, weight: np.ndarray, bias: np.ndarray) -> bytes:
    node = ow.node("DeformConv", ["x", "w", "offset", "b", "mask"], ["y"], dilations=[1, 1],
                   kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    g = ow.graph("dcn", [node],
                 [ow.value_info("x", ow.FLOAT, [1, c, s, s]),
                  ow.value_info("offset", ow.FLOAT, [1, 18, s, s]),
                  ow.value_info("mask", ow.FLOAT, [1, 9, s, s])],
                 [ow.value_info("y", ow.FLOAT, [1, o, s, s])],
                 [ow.tensor("w", ow.FLOAT, weight.shape, weight.ravel().tolist()),
                  ow.tensor("b", ow.FLOAT, bias.shape, bias.tolist())])
    return ow.model(g, ir_version=9, opset=19)


def _matmul_model(c: int, o: int, s: int, weight: np.ndarray, bias: np.ndarray) -> bytes:
    """cols [1, s*s, 9c] @ W [9c, o] + b -> [1, s, s, o] -> NCHW."""
    wmat = weight.transpose(2, 3, 1, 0).reshape(9 * c, o)  # tap-major, then channel
    nodes = [ow.node("MatMul", ["cols", "w"], ["mm"]), ow.node("Add", ["mm", "b"], ["mb"]),
             ow.node("Reshape", ["mb", "shape"], ["nhwc"]),
             ow.node("Transpose", ["nhwc"], ["y"], perm=[0, 3, 1, 2])]
    g = ow.graph("gemm", nodes, [ow.value_info("cols", ow.FLOAT, [1, s * s, 9 * c])],
                 [ow.value_info("y", ow.FLOAT, [1, o, s, s])],
                 [ow.tensor("w", ow.FLOAT, wmat.shape, wmat.ravel().tolist()),
                  ow.tensor("b", ow.FLOAT, bias.shape, bias.tolist()),
                  ow.tensor("shape", ow.INT64, [4], [1, s, s, o])])
    return ow.model(g, ir_version=9, opset=19)


def _session(model: bytes, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _timed(fn):
    def run(n: int) -> np.ndarray:
        t = np.empty(n)
        for i in range(n):
            t0 = time.perf_counter()
            fn()
            t[i] = time.perf_counter() - t0
        return t
    return run


def bench_layer(layer, threads: int, runs: int, rng: np.random.Generator) -> dict:
    from edgeface.common.timing import round_robin
    from edgeface.inference.dcn import sampler

    c, o, s = layer.in_channels, layer.out_channels, layer.size
    x = rng.standard_normal((1, c, s, s)).astype(np.float32)
    offset = rng.normal(0.0, 2.0, (1, 18, s, s)).astype(np.float32)
    mask = rng.uniform(0.0, 1.0, (1, 9, s, s)).astype(np.float32)
    weight = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    native = _session(_deform_conv_model(c, o, s, weight, bias), threads)
    gemm = _session(_matmul_model(c, o, s, weight, bias), threads)
    xt = np.empty((1, s, s, c), np.float32)
    cols = np.empty((1, s * s, 9 * c), np.float32)
    feeds = {"x": x, "offset": offset, "mask": mask}

    def fast():
        sampler.to_nhwc(x, threads=threads, out=xt)
        sampler.sample_columns(xt, offset, mask, threads=threads, out=cols)
        return gemm.run(None, {"cols": cols})[0]

    def sample_only():
        sampler.to_nhwc(x, threads=threads, out=xt)
        sampler.sample_columns(xt, offset, mask, threads=threads, out=cols)

    ref = native.run(None, feeds)[0]
    err = float(np.abs(fast() - ref).max())
    runners = {"ort_deformconv": _timed(lambda: native.run(None, feeds)),
               "fast_fp32": _timed(fast), "sampler_only": _timed(sample_only),
               "matmul_only": _timed(lambda: gemm.run(None, {"cols": cols}))}
    chunks, _ = round_robin(runners, runs, warmup=5, chunk=10)
    med = {k: round(float(np.median(np.concatenate(v))) * 1e3, 4) for k, v in chunks.items()}
    return {"layer": layer.name, "cin": c, "cout": o, "size": s, "threads": threads,
            "median_ms": med, "max_abs_diff": err,
            "speedup": round(med["ort_deformconv"] / med["fast_fp32"], 3)}


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from edgeface.inference.dcn import sampler
    from edgeface.inference.dcn.shapes import FEATHERFACE_V1

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("-o", "--output", "--out", dest="out", type=Path,
                    default=RESULTS / "dcn_kernel.json")
    args = ap.parse_args(argv)
    if not sampler.available():
        sys.exit(f"dcn_kernel: {sampler.unavailable_reason()}")
    rng = np.random.default_rng(0)
    rows = [bench_layer(layer, t, args.runs, rng)
            for t in args.threads for layer in FEATHERFACE_V1]
    totals = {}
    for t in args.threads:
        sel = [r for r in rows if r["threads"] == t]
        totals[str(t)] = {k: round(sum(r["median_ms"][k] for r in sel), 3)
                          for k in sel[0]["median_ms"]}
    out = {"platform": {"machine": platform.machine(), "processor": platform.processor(),
                        "python": platform.python_version(), "onnxruntime": ort.__version__,
                        "numpy": np.__version__},
           "runs": args.runs, "layers": rows, "totals_ms": totals}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    lines = ["| layer | Cin->Cout | size | threads | ORT DeformConv ms | sampler+MatMul ms "
             "(sampler / MatMul) | speed-up | max abs diff |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["median_ms"]
        lines.append(f"| {r['layer']} | {r['cin']}->{r['cout']} | {r['size']} | {r['threads']} "
                     f"| {m['ort_deformconv']:.3f} | {m['fast_fp32']:.3f} "
                     f"({m['sampler_only']:.3f} / {m['matmul_only']:.3f}) | "
                     f"{r['speedup']:.2f}x | {r['max_abs_diff']:.1e} |")
    for t, m in totals.items():
        lines.append(f"| **all 15** | | | {t} | {m['ort_deformconv']:.3f} | {m['fast_fp32']:.3f} "
                     f"({m['sampler_only']:.3f} / {m['matmul_only']:.3f}) | "
                     f"{m['ort_deformconv'] / m['fast_fp32']:.2f}x | |")
    table = "\n".join(lines)
    args.out.with_suffix(".md").write_text(
        f"# DCN layers: ONNX Runtime DeformConv vs sampler + MatMul ({out['platform']['machine']}"
        f", onnxruntime {ort.__version__}, median of {args.runs}, interleaved)\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
