#!/usr/bin/env python
"""Pipeline overhead (issue 5): end-to-end `edgeface run` FPS on a video vs model-only
throughput, measured in the same process, round after round.

Model-only: ``backend.infer`` on one preprocessed blob, back to back (no decode, no resize,
no postprocess, no output). End to end: :class:`edgeface.runtime.loop.Runtime` on a video file
source (every frame, decoded in the capture thread), the detector's preprocess, inference
and postprocess, and a JSON-lines sink writing to a file. Both use the same ONNX Runtime
session; the two measurements alternate, ``--rounds`` times, and the ratio is taken per
round (median reported). The video is made from the shared WIDERFace-416 images, scaled to
each ``--sizes`` entry (a camera-like resolution), and encoded with OpenCV (mp4v).

Two ratios are reported. The FPS ratio (end-to-end FPS / model-only FPS) is the acceptance
metric, and it is only meaningful on an otherwise idle machine: on a shared one the
scheduler hands a process with more runnable threads a larger share. The CPU ratio (model
CPU time per frame / end-to-end CPU time per frame, all threads of this process) is what the
pipeline costs the rest of the board: decoding and preprocessing run ahead in the capture
thread at SCHED_IDLE, on cores inference leaves idle, so they cost CPU time but little FPS.

    python benchmarks/pipeline_overhead.py            # -> benchmarks/results/pipeline_overhead.json

Acceptance (printed): end-to-end FPS >= 90 % of model-only throughput (overhead <= 10 %).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _shared import REPO, export_v1, make_video

DEFAULT_OUT = REPO / "benchmarks" / "results" / "pipeline_overhead.json"
TARGET = 0.90


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="ONNX model [default: export V1 from the shared weights to a temp dir]")
    ap.add_argument("--sizes", default="640x480,1280x720",
                    help="comma-separated video resolutions WxH")
    ap.add_argument("--frames", type=int, default=150, help="frames per video (and per "
                    "model-only measurement)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None,
                    help="inference threads [default: the runtime's default, all cores]")
    ap.add_argument("-o", "--output", "--out", dest="out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    return ap.parse_args(argv)


def model_only(backend, blob, n: int) -> tuple[float, float]:
    """(frames per wall second, process CPU seconds per frame) of back-to-back inference."""
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        backend.infer(blob)
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n


def end_to_end(detector, video: Path, out: Path) -> tuple[float, float, int, dict]:
    """The runtime on the whole video: (fps, CPU s per frame, frames, stage p50 ms).

    Timed from opening the source (its capture thread starts decoding then) to the end."""
    from edgeface.runtime.loop import Runtime
    from edgeface.runtime.settings import LoopSettings
    from edgeface.runtime.sinks import JsonLinesSink
    from edgeface.runtime.sources import open_source

    c0, t0 = time.process_time(), time.perf_counter()
    rt = Runtime(open_source(video, prepare=detector.prepare), detector, [JsonLinesSink(out)],
                 settings=LoopSettings(status_interval=0))
    stats = rt.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rt.close()
    return (stats.frames / wall, cpu / stats.frames, stats.frames,
            {k: v.get("p50_ms") for k, v in stats.latency.items()})


def main(argv=None) -> int:
    args = parse_args(argv)
    load0 = [round(x, 2) for x in os.getloadavg()]
    import cv2

    from edgeface.inference.backends.onnxruntime.runtime import OnnxRuntimeBackend
    from edgeface.inference.detector import Detector
    from edgeface.inference.preprocess import preprocess
    from edgeface.runtime.loop import limit_opencv_threads

    limit_opencv_threads()  # as `edgeface run` does

    tmp = Path(tempfile.mkdtemp(prefix="edgeface-overhead-"))
    model = args.model
    if model is None:
        model = export_v1(tmp / "v1.onnx")
    backend = OnnxRuntimeBackend(model, threads=args.threads)
    detector = Detector(backend)
    results = []
    for size_text in args.sizes.split(","):
        w, h = map(int, size_text.lower().split("x"))
        video = make_video(tmp / f"clip_{w}x{h}.mp4", (w, h), args.frames)
        cap = cv2.VideoCapture(str(video))
        frame = cap.read()[1]
        cap.release()
        blob, _ = preprocess(frame, backend.info.input_size, backend.info.mean)
        model_only(backend, blob, 20)  # warm-up
        end_to_end(detector, video, tmp / "warm.jsonl")
        rounds = []
        for r in range(args.rounds):
            m_fps, m_cpu = model_only(backend, blob, args.frames)
            e_fps, e_cpu, n, stages = end_to_end(detector, video, tmp / f"out_{r}.jsonl")
            assert n == args.frames, f"the runtime processed {n} of {args.frames} frames"
            rounds.append({"model_fps": m_fps, "e2e_fps": e_fps, "ratio": e_fps / m_fps,
                           "model_cpu_ms": m_cpu * 1e3, "e2e_cpu_ms": e_cpu * 1e3,
                           "cpu_ratio": m_cpu / e_cpu, "stage_p50_ms": stages})
            print(f"{w}x{h} round {r + 1}/{args.rounds}: model-only {m_fps:.1f} fps "
                  f"({m_cpu * 1e3:.1f} CPU ms/frame), end-to-end {e_fps:.1f} fps "
                  f"({e_cpu * 1e3:.1f} CPU ms/frame), ratio {e_fps / m_fps:.3f}, CPU ratio "
                  f"{m_cpu / e_cpu:.3f}", file=sys.stderr)
        ratio = statistics.median(x["ratio"] for x in rounds)
        cpu_ratio = statistics.median(x["cpu_ratio"] for x in rounds)
        results.append({
            "video": f"{w}x{h}", "frames": args.frames,
            "model_fps_median": round(statistics.median(x["model_fps"] for x in rounds), 2),
            "e2e_fps_median": round(statistics.median(x["e2e_fps"] for x in rounds), 2),
            "ratio_median": round(ratio, 4), "overhead_pct": round((1 - ratio) * 100, 2),
            "meets_target": ratio >= TARGET,
            "model_cpu_ms_per_frame": round(statistics.median(x["model_cpu_ms"] for x in rounds),
                                            2),
            "e2e_cpu_ms_per_frame": round(statistics.median(x["e2e_cpu_ms"] for x in rounds), 2),
            "cpu_ratio_median": round(cpu_ratio, 4),
            "cpu_overhead_pct": round((1 / cpu_ratio - 1) * 100, 2),
            "stage_p50_ms": {k: round(statistics.median(x["stage_p50_ms"][k] for x in rounds), 3)
                             for k in rounds[0]["stage_p50_ms"]},
            "rounds": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in x.items()
                        if k != "stage_p50_ms"} for x in rounds],
        })
    report = {
        "kind": "edgeface-pipeline-overhead", "schema_version": 1,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/pipeline_overhead.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "loadavg_at_start": load0,
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
                    "threads": backend.threads, "onnxruntime_providers": backend.providers},
        "model": {"file": Path(model).name, "arch": backend.info.arch,
                  "input_size": list(backend.info.input_size)},
        "target_ratio": TARGET, "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    md = [f"# Pipeline overhead: `edgeface run` end-to-end vs model-only ({report['date']})",
          "", f"`{report['command'].strip()}` on {platform.machine()} with {os.cpu_count()} "
          f"CPUs, {backend.threads} inference threads, model {report['model']['file']}, "
          f"{args.frames} frames per measurement, medians of {args.rounds} interleaved rounds.",
          "", "| video | model-only FPS | end-to-end FPS | FPS ratio | model-only CPU ms/frame "
          "| end-to-end CPU ms/frame | CPU ratio |", "|---|---|---|---|---|---|---|"]
    for r in results:
        md.append(f"| {r['video']} | {r['model_fps_median']} | {r['e2e_fps_median']} | "
                  f"{r['ratio_median']:.3f} {'(ok)' if r['meets_target'] else '(MISSED)'} | "
                  f"{r['model_cpu_ms_per_frame']} | {r['e2e_cpu_ms_per_frame']} | "
                  f"{r['cpu_ratio_median']:.3f} |")
    md += ["", f"Target: FPS ratio >= {TARGET}. Load average (1 min): {load0[0]} at start, "
           f"{os.getloadavg()[0]:.2f} at end. The FPS ratio is only meaningful on an otherwise "
           "idle machine; the CPU ratio (model-only CPU time / end-to-end CPU time per frame, "
           "all threads) is what the pipeline costs the rest of the board: capture decodes "
           "ahead on cores inference leaves idle, which costs CPU time but little FPS."]
    print("\n".join(md))
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"\nwrote {args.out}")
    ok = all(r["meets_target"] for r in results)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
