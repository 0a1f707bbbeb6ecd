"""Latency and memory measurement behind ``edgeface bench``.

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
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgeface.common.timing import paired_ratio, round_robin
from edgeface.errors import ConfigError, EdgefaceError, ModelError

SCHEMA_VERSION = 1
RESULT_KIND = "edgeface-bench"
DEFAULT_FRAME_SIZE = (640, 480)
DEFAULT_FRAME_COUNT = 16
STAGES = ("preprocess", "inference", "postprocess")


# --------------------------------------------------------------------------- what to measure


@dataclass(frozen=True)
class ModelSpec:
    """One model to measure: an edgeface ONNX file or a peer (see :mod:`edgeface.peers`)."""

    kind: str  # "onnx" | "peer"
    target: str  # file path or peer name
    label: str | None = None  # None: derived from the model's metadata


def parse_model_arg(text: str) -> ModelSpec:
    """``PATH``, ``LABEL=PATH`` or ``peer:NAME`` -> :class:`ModelSpec` (file must exist)."""
    if text.startswith("peer:"):
        from edgeface.bench.peers import PEERS

        name = text[5:]
        if name not in PEERS:
            raise ConfigError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
        return ModelSpec("peer", name)
    label, sep, path = text.partition("=")
    if not sep:
        label, path = None, text
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return ModelSpec("onnx", str(p.resolve()), label or None)


@dataclass(frozen=True)
class FrameSpec:
    """The frames every model sees: real images (cycled) or synthetic ones, at ``size``."""

    kind: str  # "images" | "synthetic"
    paths: tuple[str, ...] = ()
    size: tuple[int, int] | None = DEFAULT_FRAME_SIZE  # (w, h); None keeps stored size
    count: int = DEFAULT_FRAME_COUNT
    seed: int = 0
    source: str = ""  # human description, e.g. the folder

    def load(self) -> list[np.ndarray]:
        import cv2

        from edgeface.media.images import read_image

        if self.kind == "images":
            frames = [read_image(p) for p in self.paths]
        else:
            frames = synthetic_frames(self.count, self.size or DEFAULT_FRAME_SIZE, self.seed)
        if self.size:
            frames = [f if f.shape[1::-1] == tuple(self.size)
                      else cv2.resize(f, tuple(self.size), interpolation=cv2.INTER_AREA)
                      for f in frames]
        return frames

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "count": len(self.paths) or self.count,
                             "size": list(self.size) if self.size else "stored",
                             "source": self.source}
        if self.kind == "images":
            import hashlib

            names = "\n".join(Path(p).name for p in self.paths)
            d["list_sha256"] = hashlib.sha256(names.encode()).hexdigest()[:16]
        else:
            d["note"] = ("synthetic frames contain no faces: postprocess time is a lower "
                         "bound; pass --images for content-dependent figures")
        return d


def synthetic_frames(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Deterministic smooth-noise BGR frames (camera-like statistics, no faces)."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    out = []
    for _ in range(count):
        small = rng.integers(0, 256, (max(1, h // 16), max(1, w // 16), 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        noise = rng.integers(-8, 9, img.shape, dtype=np.int16)
        out.append(np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


def default_image_dir() -> Path | None:
    """Benchmark images: $EDGEFACE_BENCH_IMAGES, else the shared WIDERFace-416 set
    ($EDGEFACE_SHARED, or ``shared/`` beside a source checkout), else None (synthetic)."""
    env = os.environ.get("EDGEFACE_BENCH_IMAGES")
    if env:
        return Path(env)
    roots = [Path(os.environ["EDGEFACE_SHARED"])] if os.environ.get("EDGEFACE_SHARED") else []
    roots.append(Path(__file__).resolve().parents[2] / "shared")
    for root in roots:
        d = root / "datasets" / "widerface-val-416" / "images"
        if d.is_dir():
            return d
    return None


def make_frame_spec(images: Sequence[str | os.PathLike] | None = None,
                    size: tuple[int, int] | None = DEFAULT_FRAME_SIZE,
                    count: int = DEFAULT_FRAME_COUNT, synthetic: bool = False) -> FrameSpec:
    """Frames from ``images`` (files/folders), the default image folder, or synthetic."""
    from edgeface.media.images import expand_inputs

    if synthetic:
        return FrameSpec("synthetic", size=size or DEFAULT_FRAME_SIZE, count=count,
                         source="synthetic")
    if images:
        paths = list(expand_inputs(images))
        source = ", ".join(str(p) for p in images)
        if not paths:
            raise ConfigError(f"no images found in {source}")
    else:
        d = default_image_dir()
        if d is None:
            return FrameSpec("synthetic", size=size or DEFAULT_FRAME_SIZE, count=count,
                             source="synthetic (no image folder found)")
        paths = list(expand_inputs([d]))
        source = _describe_dir(d)
    # Spread the picks over the (sorted) set so that several events/scenes are covered.
    step = max(1, len(paths) // count)
    picked = [str(p) for p in paths[::step][:count]]
    return FrameSpec("images", tuple(picked), size, len(picked), source=source)


def _describe_dir(d: Path) -> str:
    parts = d.resolve().parts
    return "/".join(parts[-3:]) if "datasets" in parts else str(d)


# --------------------------------------------------------------------------- statistics


def summarize(samples: np.ndarray, faces: np.ndarray | None = None) -> dict[str, Any]:
    """Per-frame stage times ``[n, 3]`` (seconds) -> latency/stage/throughput summary (ms)."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, 3)
    total = samples.sum(axis=1) * 1e3
    if total.size == 0:
        raise ValueError("no samples to summarize")

    def r(x: float) -> float:
        return round(float(x), 4)

    out: dict[str, Any] = {
        "runs": int(total.size),
        "latency_ms": {"p50": r(np.percentile(total, 50)), "p90": r(np.percentile(total, 90)),
                       "p99": r(np.percentile(total, 99)), "mean": r(total.mean()),
                       "std": r(total.std()), "min": r(total.min()), "max": r(total.max())},
        "stages_ms": {s: {"p50": r(np.percentile(samples[:, i] * 1e3, 50)),
                          "mean": r(samples[:, i].mean() * 1e3)}
                      for i, s in enumerate(STAGES)},
        "throughput_fps": r(1e3 / total.mean()),
    }
    if faces is not None and len(faces):
        out["faces_per_frame"] = r(np.mean(faces))
    return out


def op_time_shares(path: str | os.PathLike, blob: np.ndarray, runs: int = 30,
                   threads: int = 1, min_percent: float = 0.5) -> dict[str, float]:
    """Share of kernel time per operator type (%), from ONNX Runtime's profiler.

    A separate session with the runtime's options: profiling adds overhead, so these runs
    are never part of the timings. Operators below ``min_percent`` are left out.
    """
    import json
    import tempfile

    import onnxruntime as ort

    from edgeface.inference.backends.onnxruntime_backend import session_options

    with tempfile.TemporaryDirectory() as tmp:
        so = session_options(threads)
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "profile")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for _ in range(runs):
            sess.run(None, {name: blob})
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e["args"]["op_name"]
            per_op[op] = per_op.get(op, 0.0) + e["dur"]
    total = sum(per_op.values()) or 1.0
    ranked = sorted(per_op.items(), key=lambda kv: -kv[1])
    return {op: round(100 * d / total, 1) for op, d in ranked if 100 * d / total >= min_percent}


# --------------------------------------------------------------------------- worker process


def _onnx_record(path: Path, backend: Any) -> dict[str, Any]:
    """What identifies an edgeface ONNX model in results: file, digest, arch, precision."""
    from edgeface.common.files import sha256_file

    info = backend.info
    extra = dict(info.extra)
    precision = (extra.get("precision") or extra.get("quantization") or "").strip('"').lower()
    source = "metadata"
    if not precision:
        stem = path.stem.lower()
        precision, source = ("int8", "file name") if ("int8" in stem or "qdq" in stem) \
            else ("fp32", "default")
    label = default_label(info.arch, precision, extra.get("dcn", "").strip('"'))
    provider = backend.providers[0] if backend.providers else "CPUExecutionProvider"
    if provider != "CPUExecutionProvider":
        label += f" ({provider.replace('ExecutionProvider', '')} EP)"
    return {
        "label": label,
        "kind": "edgeface", "file": path.name, "arch": info.arch, "precision": precision,
        "precision_source": source, "dcn": extra.get("dcn", "").strip('"') or None,
        "format": "onnx", "size_bytes": path.stat().st_size, "sha256": sha256_file(path),
        "input_size": list(info.input_size), "providers": list(backend.providers),
        "threads_control": "onnxruntime intra-op",
    }


def default_label(arch: str, precision: str, dcn: str | None = None) -> str:
    """``v1``, ``fp32`` -> ``FeatherFace V1 FP32`` (+ the DCN variant when not the default)."""
    names = {"v1": "V1", "eca_cbam": "ECA-CBAM", "cbam": "CBAM",
             "eca_cbam_parallel": "ECA-CBAM parallel"}
    label = f"FeatherFace {names.get(arch, arch)} {precision.upper()}"
    if dcn and dcn != "onnx":
        label += f" ({dcn} DCN)"
    return label


def _build(spec: Mapping[str, Any], threads: int, input_size: tuple[int, int],
           conf: float, nms: float, provider: str = "auto"
           ) -> tuple[Any, dict[str, Any]]:
    from edgeface.inference.postprocess import PostprocessConfig

    config = PostprocessConfig(conf_threshold=conf, nms_threshold=nms)
    if spec["kind"] == "peer":
        from edgeface.bench.peers import make_peer

        return make_peer(spec["target"], threads, input_size, config)
    from edgeface.inference.detector import Detector

    det = Detector.open(spec["target"], config, threads=threads, provider=provider)
    return det, _onnx_record(Path(spec["target"]), det.backend)


class _Proto:
    """The worker's private channel: JSON lines on the original stdout; fd 1 then points to
    stderr so that anything a library prints cannot corrupt the protocol."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self.out = os.fdopen(os.dup(1), "w", encoding="utf-8")
        os.dup2(2, 1)

    def send(self, **msg: Any) -> None:
        self.out.write(json.dumps(msg) + "\n")
        self.out.flush()


def _worker_main() -> int:
    """``python -m edgeface.bench.harness --worker``: one (model, threads), driven over stdin."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    proto = _Proto()
    from edgeface.runtime.memory import peak_rss_bytes, rss_bytes

    try:
        cfg = json.loads(sys.stdin.readline())
        import cv2

        cv2.setNumThreads(cfg["threads"])
        frames: list[np.ndarray] = []
        if cfg.get("frames"):
            fs = cfg["frames"]
            frames = FrameSpec(fs["kind"], tuple(fs["paths"]),
                               tuple(fs["size"]) if fs["size"] else None, fs["count"],
                               fs["seed"]).load()
        baseline = rss_bytes()
        t0 = time.perf_counter()
        det, record = _build(cfg["spec"], cfg["threads"], tuple(cfg["input_size"]),
                             cfg["conf"], cfg["nms"], cfg.get("provider", "auto"))
        load_s = time.perf_counter() - t0
    except EdgefaceError as exc:
        proto.send(ok=False, error=str(exc), exit_code=exc.exit_code)
        return 1
    except Exception as exc:  # reported by the parent as one line
        proto.send(ok=False, error=f"{type(exc).__name__}: {exc}", exit_code=1)
        return 1
    proto.send(ok=True, model=record, load_s=round(load_s, 4),
               baseline_rss_mb=round(baseline / 2**20, 2))
    index = 0
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "run":
            times = np.empty((cmd["n"], 3))
            faces = np.empty(cmd["n"], dtype=np.int64)
            for i in range(cmd["n"]):
                dets, t = det.detect_timed(frames[index % len(frames)])
                index += 1
                times[i] = (t.preprocess, t.inference, t.postprocess)
                faces[i] = len(dets)
            proto.send(ok=True, t=times.tolist(), faces=faces.tolist())
        elif cmd["cmd"] == "pipeline":
            try:
                stats = _run_pipeline(det, cmd["source"], cmd["warmup"], cmd["runs"])
            except EdgefaceError as exc:
                proto.send(ok=False, error=str(exc), exit_code=exc.exit_code)
                return 1
            proto.send(ok=True, stats=stats)
        elif cmd["cmd"] == "stop":
            proto.send(ok=True, peak_rss_mb=round(peak_rss_bytes() / 2**20, 2))
            return 0
    return 0


def _run_pipeline(detector: Any, source: str, warmup: int, runs: int) -> dict[str, Any]:
    """The real runtime loop (source thread, detector, no sinks) on ``source``.

    Files and folders loop so that ``warmup + runs`` frames are always available.
    """
    try:
        from edgeface.runtime.loop import Runtime
    except ImportError:
        raise EdgefaceError("pipeline mode needs edgeface.runtime, which this installation "
                            "does not have") from None
    from edgeface.runtime.sources import open_source

    with Runtime(open_source(source, loop=True), detector, [], status_interval=0,
                 record_latencies=True) as rt:
        if warmup:
            rt.run(max_frames=warmup)
        stats = rt.run(max_frames=runs)
    lat = stats.latencies or {}
    if not stats.frames:
        raise EdgefaceError(f"{source}: no frames were processed")
    samples = np.stack([lat[s] for s in STAGES], axis=1)
    loop = lat["capture_wait"] + lat["detect"] + lat["output"]
    out = summarize(samples)
    out["throughput_fps"] = round(stats.fps, 2)  # wall clock, capture included
    out["loop_ms"] = {"p50": round(float(np.percentile(loop, 50)) * 1e3, 4),
                      "mean": round(float(loop.mean()) * 1e3, 4)}
    out["capture_wait_ms"] = {"p50": round(float(np.percentile(lat["capture_wait"], 50)) * 1e3,
                                           4)}
    out["faces_per_frame"] = round(stats.faces / stats.frames, 4)
    out["dropped"] = stats.dropped
    out["wall_s"] = round(stats.wall_s, 3)
    return out


class WorkerError(EdgefaceError):
    """A benchmark worker failed; the message carries its reason."""


class Worker:
    """Parent side of one worker process."""

    def __init__(self, spec: ModelSpec, threads: int, frames: FrameSpec | None,
                 input_size: tuple[int, int], conf: float, nms: float,
                 provider: str = "auto"):
        self.spec = spec
        self.threads = threads
        env = dict(os.environ)
        # One pool size for every library; passive OpenMP waits so that an idle worker's
        # threads sleep instead of spinning while another model is being measured.
        env.update(OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE",
                   OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeface.bench.harness", "--worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, env=env, text=True, bufsize=1,
            # Own session: Ctrl-C reaches only the parent, which stops the workers in order.
            # A worker whose parent died sees EOF on stdin and exits.
            start_new_session=True)
        cfg = {"spec": asdict(spec), "threads": threads, "input_size": list(input_size),
               "conf": conf, "nms": nms, "provider": provider,
               "frames": {**asdict(frames), "paths": list(frames.paths)} if frames else None}
        self._send(cfg)
        self.ready = self._recv()
        self.record: dict[str, Any] = self.ready["model"]
        if spec.label:
            self.record["label"] = spec.label

    def _send(self, msg: Mapping[str, Any]) -> None:
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._died()

    def _recv(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            self._died()
        msg = json.loads(line)
        if not msg.get("ok"):
            self.close()
            raise WorkerError(f"{self.spec.label or self.spec.target}: {msg['error']}",
                              msg.get("exit_code", 1))
        return msg

    def _died(self) -> None:
        self.proc.wait(timeout=10)
        self._stderr.seek(0)
        tail = [ln for ln in self._stderr.read().strip().splitlines() if ln.strip()][-1:]
        raise WorkerError(f"benchmark worker for {self.spec.label or self.spec.target} exited "
                          f"with status {self.proc.returncode}"
                          + (f": {tail[0][:300]}" if tail else ""))

    def run(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        self._send({"cmd": "run", "n": n})
        msg = self._recv()
        return np.asarray(msg["t"], dtype=np.float64).reshape(-1, 3), np.asarray(msg["faces"])

    def pipeline(self, source: str, warmup: int, runs: int) -> dict[str, Any]:
        self._send({"cmd": "pipeline", "source": source, "warmup": warmup, "runs": runs})
        return self._recv()["stats"]

    def stop(self) -> float | None:
        """End the worker; returns its peak RSS in MB (None if it could not say)."""
        try:
            out, _ = self.proc.communicate(json.dumps({"cmd": "stop"}) + "\n", timeout=30)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            self.close()
            return None
        for line in reversed(out.strip().splitlines()):
            msg = json.loads(line)
            if "peak_rss_mb" in msg:
                return msg["peak_rss_mb"]
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


# --------------------------------------------------------------------------- benchmark runs


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
        "mode": mode, "interrupted": False, "platform": fingerprint(),
        "settings": {
            "runs": s.runs, "warmup": s.warmup, "chunk": s.chunk, "threads": list(s.threads),
            "interleaved": mode == "model", "isolation": "one process per (model, threads)",
            "frames": s.frames.describe() if s.frames else None, "source": s.source,
            "input_size": list(input_size), "provider": s.provider,
            "postprocess": {"conf_threshold": s.conf, "nms_threshold": s.nms},
            "command": s.command},
        "conditions": {"loadavg_start": _loadavg()},
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
    doc["conditions"]["loadavg_end"] = _loadavg()
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


def _loadavg() -> list[float] | None:
    """1/5/15-minute load averages: a busy machine explains noisy figures."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
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


def _dedupe_labels(records: list[dict[str, Any]]) -> None:
    """Make model labels unique within a run: the file name, then a counter, is appended."""
    for attempt in ("file", "index"):
        seen: dict[str, int] = {}
        for m in records:
            seen[m["label"]] = seen.get(m["label"], 0) + 1
        if all(n == 1 for n in seen.values()):
            return
        count: dict[str, int] = {}
        for m in records:
            if seen[m["label"]] > 1:
                count[m["label"]] = count.get(m["label"], 0) + 1
                if attempt == "file" and m.get("file"):
                    m["label"] = f"{m['label']} [{m['file']}]"
                elif attempt == "index":
                    m["label"] = f"{m['label']} #{count[m['label']]}"


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


# --------------------------------------------------------------------------- schema & files

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))

# A minimal structural schema (documented in benchmarks/README.md): dict = required keys,
# [spec] = list of, tuple of types = isinstance, set = allowed values.
_RESULT_SPEC: dict[str, Any] = {
    "model": {"label": str, "kind": {"edgeface", "peer"}, "size_bytes": (int, type(None)),
              "sha256": _OPT_STR, "precision": _OPT_STR},
    "threads": int,
    "runs": int,
    "latency_ms": {"p50": _OPT_NUM, "p90": _OPT_NUM, "p99": _OPT_NUM, "mean": _OPT_NUM},
    "throughput_fps": _OPT_NUM,
    "peak_rss_mb": _OPT_NUM,
}
_DOC_SPEC: dict[str, Any] = {
    "schema_version": int,
    "kind": {RESULT_KIND},
    "created": str,
    "mode": {"model", "pipeline"},
    "interrupted": bool,
    "platform": {"slug": str, "cpu_model": str, "cores": int, "machine": str, "isa": dict,
                 "os": str, "python": str, "onnxruntime": str, "board": _OPT_STR},
    "settings": {"runs": int, "warmup": int, "threads": [int]},
    "results": [_RESULT_SPEC],
    "ratios": [{"threads": int, "model": str, "baseline": str, "p50_ratio": _NUM}],
}


class ResultSchemaError(ConfigError):
    """A result file does not follow the documented schema."""


def _check(value: Any, spec: Any, where: str) -> None:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ResultSchemaError(f"{where or 'document'}: expected an object")
        for key, sub in spec.items():
            if key not in value:
                raise ResultSchemaError(f"{where + '.' if where else ''}{key}: missing")
            _check(value[key], sub, f"{where + '.' if where else ''}{key}")
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise ResultSchemaError(f"{where}: expected a list")
        for i, item in enumerate(value):
            _check(item, spec[0], f"{where}[{i}]")
    elif isinstance(spec, set):
        if value not in spec:
            raise ResultSchemaError(f"{where}: {value!r} is not one of {sorted(spec)}")
    else:
        types = spec if isinstance(spec, tuple) else (spec,)
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if isinstance(value, float) and not math.isfinite(value) and value is not None:
            ok = False
        if not ok:
            names = "/".join("null" if t is type(None) else t.__name__ for t in types)
            raise ResultSchemaError(f"{where}: expected {names}, got {type(value).__name__}")


def validate_result(doc: Any) -> None:
    """Raise :class:`ResultSchemaError` naming the first field that breaks the schema."""
    if not isinstance(doc, dict):
        raise ResultSchemaError("document: expected a JSON object")
    version = doc.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ResultSchemaError(f"schema_version {version} is newer than this edgeface "
                                f"understands ({SCHEMA_VERSION}); upgrade edgeface")
    _check(doc, _DOC_SPEC, "")


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one result file; errors name the file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ResultSchemaError(f"{p}: not valid JSON ({exc})") from None
    try:
        validate_result(doc)
    except ResultSchemaError as exc:
        raise ResultSchemaError(f"{p}: {exc}") from None
    return doc


def result_filename(doc: Mapping[str, Any]) -> str:
    """``<platform slug>_<YYYY-MM-DD>[_pipeline].json``."""
    day = doc["created"][:10]
    suffix = "_pipeline" if doc["mode"] == "pipeline" else ""
    return f"{doc['platform']['slug']}_{day}{suffix}.json"


def save_result(doc: Mapping[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``doc`` (validated) under ``out_dir``; never overwrites (``-2``, ``-3``...)."""
    validate_result(doc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = result_filename(doc)
    path = out / name
    n = 2
    while path.exists():
        path = out / name.replace(".json", f"-{n}.json")
        n += 1
    from edgeface.common.files import atomic_write

    return atomic_write(path, json.dumps(doc, indent=1) + "\n")


# --------------------------------------------------------------------------- tables


def fmt_num(v: Any, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{nd}f}"


def fmt_mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.2f}"


def frames_note(doc: Mapping[str, Any]) -> str:
    """``16 widerface-val-416 images at 640x480`` / ``synthetic frames (no faces) at ...``."""
    f = doc["settings"].get("frames") or {}
    size = f.get("size")
    size = f"{size[0]}x{size[1]}" if isinstance(size, list) else "their stored size"
    what = (f"{f.get('count')} images from {f.get('source')}" if f.get("kind") == "images"
            else "synthetic frames (no faces)")
    return f"{what} at {size}"


def load_note(doc: Mapping[str, Any]) -> str:
    """``load average 8.1 -> 9.2 on 2 cores`` (1-minute, start and end), or ''."""
    cond = doc.get("conditions") or {}
    start, end = cond.get("loadavg_start"), cond.get("loadavg_end")
    if not start:
        return ""
    span = f"{start[0]:.1f}" + (f" -> {end[0]:.1f}" if end else "")
    return f"load average {span} on {doc['platform'].get('cores')} cores"


def ratio_lookup(doc: Mapping[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """(label, threads) -> ratio record; the baseline of each thread count maps to 1.0."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in doc.get("ratios", []):
        out[(r["model"], r["threads"])] = r
        out.setdefault((r["baseline"], r["threads"]), {"p50_ratio": 1.0})
    return out


def markdown_table(doc: Mapping[str, Any]) -> str:
    """One run as a Markdown table (what ``edgeface bench`` prints)."""
    from edgeface.system.platform import describe

    ratios = ratio_lookup(doc)
    st = doc["settings"]
    what = frames_note(doc) if doc["mode"] == "model" else f"source {st.get('source')}"
    lines = [f"**{describe(doc['platform'])}** — {doc['mode']} mode, {what}, "
             f"{st['runs']} runs after {st['warmup']} warm-up per model and thread count"
             + (f", {load_note(doc)}" if load_note(doc) else "")
             + (", INTERRUPTED (partial)" if doc.get("interrupted") else ""), ""]
    lines += ["| Model | Threads | p50 ms | p90 ms | p99 ms | mean ms | pre / infer / post "
              "p50 ms | FPS | peak RSS MB | model RSS MB | size MB | p50 vs first model |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["results"]:
        lines.append(_row(r, ratios))
    return "\n".join(lines)


def _row(r: Mapping[str, Any], ratios: Mapping[tuple[str, int], Any],
         prefix: Sequence[str] = ()) -> str:
    lat = r["latency_ms"]
    st = r.get("stages_ms") or {}
    split = " / ".join(fmt_num((st.get(s) or {}).get("p50"), 2) for s in STAGES) if st else "—"
    ratio = ratios.get((r["model"]["label"], r["threads"]))
    rel = f"{ratio['p50_ratio']:.2f}×" if ratio else "—"
    cells = [*prefix, r["model"]["label"], str(r["threads"]), fmt_num(lat.get("p50"), 2),
             fmt_num(lat.get("p90"), 2), fmt_num(lat.get("p99"), 2),
             fmt_num(lat.get("mean"), 2), split,
             fmt_num(r.get("throughput_fps")), fmt_num(r.get("peak_rss_mb")),
             fmt_num(r.get("model_rss_mb")), fmt_mb(r["model"].get("size_bytes")), rel]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        sys.exit(_worker_main())
    sys.exit("usage: python -m edgeface.bench.harness --worker (internal; use `edgeface bench`)")
