"""Benchmark runs: what to measure (:class:`ModelSpec`, :class:`BenchSettings`) and
:func:`run_benchmark`, which drives one worker process per (model, threads).

Design (see benchmarks/README.md for the result schema):

* Every (model, threads) configuration runs in its **own worker process**: peak RSS is that
  model's alone, and ONNX Runtime / OpenMP thread pools are created once with the right size.
* Within one thread count, the workers are driven **round-robin in chunks** (A, B, C, then
  B, C, A, ...): only one works at a time (the others block on a pipe, their pools asleep),
  and slow drift of a shared or thermally throttling machine hits every model alike. Ratios
  between models are computed from the same run, both as a ratio of medians and as the median
  of per-round ratios.
* Model-only mode times ``Detector.detect_timed`` on real images (cycled, same sequence for
  every model) resized to a camera-like frame size, so preprocess includes the resize and
  postprocess sees real faces; synthetic frames are a recorded fallback. Pipeline mode
  (``--source``) runs the real runtime loop on a video or camera.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeface.bench.frames import FrameSpec, make_frame_spec
from edgeface.bench.model_spec import ModelSpec
from edgeface.bench.records import _dedupe_labels
from edgeface.bench.results import RESULT_KIND, SCHEMA_VERSION
from edgeface.bench.stats import summarize
from edgeface.bench.worker import Worker
from edgeface.common.timing import paired_ratio, round_robin
from edgeface.errors import ConfigError, EdgefaceError, ModelError
from edgeface.system import thermal


def dcn_baselines(specs: Sequence[ModelSpec]) -> list[ModelSpec]:
    """``specs`` with, after each FP32 model with DeformConv, the same model on ONNX
    Runtime's DeformConv, when the DCN fast path is what runs it."""
    from edgeface.inference.dcn import sampler
    from edgeface.inference.onnx_proto import read_summary

    if not sampler.available():
        return list(specs)
    out: list[ModelSpec] = []
    for spec in specs:
        out.append(spec)
        if spec.kind != "onnx" or spec.dcn != "auto":
            continue
        try:
            summary = read_summary(spec.target)
        except ModelError:
            continue  # the worker says what is wrong with it
        if summary.op_types.get("DeformConv") and not summary.has_qdq:
            out.append(ModelSpec("onnx", spec.target, spec.label and
                                 f"{spec.label} (ONNX Runtime DeformConv)", "onnxruntime"))
    return out


def parse_model_arg(text: str) -> ModelSpec:
    """``PATH``, ``LABEL=PATH`` or ``peer:NAME`` -> :class:`ModelSpec` (file must exist)."""
    if text.startswith("peer:"):
        from edgeface.bench.peers import PEERS

        name = text[5:]
        PEERS.get(name)  # an unknown name: one line naming the known peers
        return ModelSpec("peer", name)
    label, sep, path = text.partition("=")
    if not sep:
        label, path = None, text
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return ModelSpec("onnx", str(p.resolve()), label or None)



@dataclass
class BenchSettings:
    models: list[ModelSpec]
    threads: list[int]
    runs: int = 200
    warmup: int = 20
    chunk: int = 10
    frames: FrameSpec | None = None
    source: str | None = None  # pipeline mode
    conf: float = 0.5
    nms: float = 0.4
    input_size: tuple[int, int] | None = None  # peers; default: the first ONNX model's
    provider: str = "auto"  # edgeface models: auto (the backend's default), cpu, cuda, tensorrt
    command: str = field(default_factory=lambda: " ".join(
        shlex.quote(a) for a in ["edgeface", *sys.argv[1:]]))


def run_benchmark(s: BenchSettings, show_progress: bool = True) -> dict[str, Any]:
    """Measure every model at every thread count; returns a result document (schema v1)."""
    from edgeface.system.platform import fingerprint

    if not s.models:
        raise ConfigError("nothing to benchmark: give --model MODEL.onnx and/or --peers")
    if s.runs < 1 or s.warmup < 0 or s.chunk < 1 or not s.threads or min(s.threads) < 1:
        raise ConfigError("runs and chunk must be >= 1, warmup >= 0, threads >= 1")
    mode = "pipeline" if s.source else "model"
    if mode == "model" and s.frames is None:
        s.frames = make_frame_spec()
    input_size = s.input_size or _first_input_size(s.models) or (416, 416)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "kind": RESULT_KIND,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": mode, "interrupted": False, "platform": {**fingerprint(), "dcn": _dcn(),
                                                   "preprocess": _preprocess()},
        "settings": {
            "runs": s.runs, "warmup": s.warmup, "chunk": s.chunk, "threads": list(s.threads),
            "interleaved": mode == "model", "isolation": "one process per (model, threads)",
            "frames": s.frames.describe() if s.frames else None, "source": s.source,
            "input_size": list(input_size), "provider": s.provider,
            "postprocess": {"conf_threshold": s.conf, "nms_threshold": s.nms},
            "command": s.command},
        "conditions": {"loadavg_start": _loadavg(), "thermal_start": _thermal()},
        "results": [], "ratios": []}
    bar = _progress_bar(len(s.models) * len(s.threads) * (s.runs + s.warmup), show_progress)
    try:
        for t in s.threads:
            step = _run_pipeline_threads if mode == "pipeline" else _run_model_threads
            if step(s, t, input_size, doc, bar.update):
                doc["interrupted"] = True
                break
    finally:
        bar.close()
    cond = doc["conditions"]
    cond["loadavg_end"] = _loadavg()
    cond["thermal_end"] = _thermal()
    # Why this run may be slower than the board can be (empty: nothing reported any).
    cond["throttling"] = thermal.throttle_evidence(cond["thermal_start"], cond["thermal_end"])
    if not doc["results"] and doc["interrupted"]:
        raise EdgefaceError("interrupted before any measurement completed", 130)
    return doc


def _run_model_threads(s: BenchSettings, t: int, input_size: tuple[int, int],
                       doc: dict[str, Any], progress: Callable[[int], None]) -> bool:
    workers: list[Worker] = []
    interrupted = False
    try:
        try:
            for spec in s.models:
                workers.append(Worker(spec, t, s.frames, input_size, s.conf, s.nms, s.provider))
        except KeyboardInterrupt:
            return True
        _dedupe_labels([w.record for w in workers])
        runners = {str(i): w.run for i, w in enumerate(workers)}
        chunks, interrupted = round_robin(runners, s.runs, s.warmup, s.chunk, progress)
    finally:
        peaks = [w.stop() for w in workers]
    if not chunks["0"]:
        return interrupted
    summaries = []
    for i, w in enumerate(workers):
        times = np.concatenate([c[0] for c in chunks[str(i)]])
        faces = np.concatenate([c[1] for c in chunks[str(i)]])
        res = {"model": w.record, "threads": t, **summarize(times, faces),
               "peak_rss_mb": peaks[i], "load_s": w.ready["load_s"],
               "baseline_rss_mb": w.ready["baseline_rss_mb"]}
        if peaks[i] is not None:
            res["model_rss_mb"] = round(peaks[i] - w.ready["baseline_rss_mb"], 2)
        summaries.append(res)
    doc["results"].extend(summaries)
    base = summaries[0]
    for i, res in enumerate(summaries[1:], start=1):
        doc["ratios"].append({
            "threads": t, "model": res["model"]["label"], "baseline": base["model"]["label"],
            "p50_ratio": round(res["latency_ms"]["p50"] / base["latency_ms"]["p50"], 4),
            "inference_p50_ratio": round(res["stages_ms"]["inference"]["p50"]
                                         / base["stages_ms"]["inference"]["p50"], 4),
            "paired_p50_ratio": paired_ratio([c[0] for c in chunks[str(i)]],
                                             [c[0] for c in chunks["0"]])})
    return interrupted


def _run_pipeline_threads(s: BenchSettings, t: int, input_size: tuple[int, int],
                          doc: dict[str, Any], progress: Callable[[int], None]) -> bool:
    for spec in s.models:
        w = None
        try:
            w = Worker(spec, t, None, input_size, s.conf, s.nms, s.provider)
            _dedupe_labels([*(r["model"] for r in doc["results"] if r["threads"] == t),
                            w.record])
            stats = w.pipeline(s.source, s.warmup, s.runs)
        except KeyboardInterrupt:
            if w is not None:
                w.close()
            return True
        peak = w.stop()
        progress(s.runs + s.warmup)
        res = {"model": w.record, "threads": t, **stats, "peak_rss_mb": peak,
               "load_s": w.ready["load_s"], "baseline_rss_mb": w.ready["baseline_rss_mb"]}
        if peak is not None:
            res["model_rss_mb"] = round(peak - w.ready["baseline_rss_mb"], 2)
        doc["results"].append(res)
    return False


def _dcn() -> str:
    """Which kernel runs DeformConv here by default (each model's ``dcn_path`` says what
    ran it)."""
    from edgeface.inference.dcn import sampler

    reason = sampler.unavailable_reason()
    return "sampler (C extension)" if reason is None else f"onnxruntime ({reason})"


def _preprocess() -> str:
    """Which preprocessing the workers run (the compiled kernel or OpenCV's path)."""
    from edgeface.inference.preprocess import preprocess_path

    return preprocess_path()


def _loadavg() -> list[float] | None:
    """1/5/15-minute load averages: a busy machine explains noisy figures."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def _thermal() -> dict[str, Any] | None:
    """SoC temperature and throttling flags now: a throttled Pi 4 runs at half speed."""
    try:
        return thermal.read().as_dict()
    except Exception:  # a reading must never cost the measurement
        return None


def _first_input_size(models: Sequence[ModelSpec]) -> tuple[int, int] | None:
    for m in models:
        if m.kind == "onnx":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.log_severity_level = 3
            try:
                shape = ort.InferenceSession(m.target, so, providers=[
                    "CPUExecutionProvider"]).get_inputs()[0].shape
            except Exception:
                return None  # the worker will report why the model cannot be loaded
            if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
                return int(shape[3]), int(shape[2])
    return None


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="bench", file=sys.stderr, leave=False,
                dynamic_ncols=True)
