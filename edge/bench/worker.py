"""The benchmark worker process: one (model, threads) per process, driven over pipes.

The parent side is :class:`Worker`; the child runs ``python -m edgeface.bench.worker``
(:func:`main`): it builds the detector, then answers ``run`` (model-only timings on the
frames), ``pipeline`` (the real runtime loop on a source) and ``stop`` (peak RSS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgeface.bench.frames import FrameSpec
from edgeface.bench.model_spec import ModelSpec
from edgeface.bench.records import model_record
from edgeface.bench.stats import STAGES, summarize
from edgeface.errors import EdgefaceError


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
    return det, model_record(Path(spec["target"]), det.backend)


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


def main() -> int:
    """``python -m edgeface.bench.worker``: one (model, threads), driven over stdin."""
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
    from edgeface.runtime.loop import Runtime
    from edgeface.runtime.settings import LoopSettings
    from edgeface.runtime.sources import open_source

    with Runtime(open_source(source, loop=True, prepare=detector.prepare), detector, [],
                 settings=LoopSettings(status_interval=0, record_latencies=True)) as rt:
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
        if spec.dcn == "onnxruntime":  # the DCN fast path off in this worker only
            env["EDGEFACE_NO_DCN_EXT"] = "1"
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeface.bench.worker"], stdin=subprocess.PIPE,
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
        elif spec.dcn == "onnxruntime":
            self.record["label"] += " (ONNX Runtime DeformConv)"

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


if __name__ == "__main__":
    if sys.argv[1:]:
        sys.exit("usage: python -m edgeface.bench.worker (internal; use `edgeface bench`)")
    sys.exit(main())
