"""Build a TensorRT engine from an edgeface ONNX export, on the device that will run it.

Carries out a :class:`~.plan.BuildPlan` with NVIDIA's TensorRT Python API, version by
version as documented (TensorRT 10.3 ``samples/python/efficientdet/build_engine.py``,
``simple_progress_monitor.py``, ``common.py``; TensorRT 8.5 ``samples/python/common.py``):

1. ``trt.init_libnvinfer_plugins(logger, "")``: registers ``ModulatedDeformConv2d``, which the
   ONNX parser (TensorRT >= 10.1) imports ``DeformConv`` as;
2. ``builder.create_network(flags)``: ``1 << EXPLICIT_BATCH`` before 10.0, 0 from 10.0;
3. ``OnnxParser.parse_from_file``; on failure every ``get_error(i)`` becomes one line;
4. ``config.set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)``, ``BuilderFlag.FP16`` /
   ``INT8``, an optimization profile only for a dynamic export (min = opt = max = the
   metadata's 1x3xHxW), ``config.int8_calibrator`` for the implicit fallback;
5. the timing cache beside the engine: ``create_timing_cache(bytes)`` (None: unreadable),
   ``set_timing_cache(cache, ignore_mismatch=False)`` (False: another device's), either
   failure dropping it for an empty one, then ``get_timing_cache().serialize()``;
6. ``config.progress_monitor`` (IProgressMonitor, TensorRT >= 9) for progress;
7. ``builder.build_serialized_network`` (None on failure) -> the engine, written atomically,
   then its sidecar (:func:`edgeface.inference.backends.tensorrt.cache.engine_document`) last, so a
   crashed build never leaves an engine that looks complete.

Never run against a real TensorRT here (no GPU): tests check this call sequence against
FakeTensorRT (tests/quantize/test_tensorrt_build.py).
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgeface import __version__
from edgeface.common.files import atomic_write, sha256_file
from edgeface.errors import ConfigError, EdgefaceError, ModelError
from edgeface.inference.backends.tensorrt.cache import engine_document, stale_reason
from edgeface.inference.backends.tensorrt.cuda import call, load_cudart
from edgeface.inference.backends.tensorrt.plan import GRIDSAMPLE_HINT, BuildPlan, TrtCaps
from edgeface.inference.backends.tensorrt.runtime import load_tensorrt, this_device
from edgeface.inference.model_info import read_sidecar

log = logging.getLogger(__name__)


class BuildError(EdgefaceError):
    """TensorRT could not build the engine (its own messages say why)."""


def up_to_date(plan: BuildPlan, device: Any) -> bool:
    """Whether ``plan.output`` is already this build: its sidecar names this model, precision
    and input size, and it is fresh for ``device``."""
    try:
        doc = read_sidecar(plan.output)
    except ModelError:
        return False
    built = doc.get("built_from") or {}
    same = (built.get("precision") == plan.precision and built.get("int8_mode") ==
            plan.int8_mode and list(built.get("input_size") or []) == list(plan.info.input_size))
    return same and stale_reason(doc, plan.output, device, plan.model_sha256) is None


def parse_errors(parser: Any, caps: TrtCaps) -> str:
    """The parser's errors as one line; an unsupported DeformConv points to the GridSample
    export. ``node_operator()`` exists from TensorRT 10 (8.5's ParserError has ``node()``)."""
    parts, dcn = [], False
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        dcn = dcn or op == "DeformConv" or "DeformConv" in str(err.desc())
        where = f"node {err.node()}" + (f" ({op})" if op else "")
        parts.append(f"{where}: {err.desc()}")
    hint = f"; {GRIDSAMPLE_HINT}" if dcn else ""
    return f"TensorRT {caps.version}'s ONNX parser refused it: " + "; ".join(parts[:3]) + hint


def progress_monitor(trt: Any, say: Callable[[str], None]) -> Any:
    """An IProgressMonitor printing top-level phases (signatures of TensorRT 10.3's
    simple_progress_monitor sample; the base ``__init__`` must be called)."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.t0 = time.perf_counter()

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int
                        ) -> None:
            if parent_phase is None:
                say(f"[{time.perf_counter() - self.t0:6.1f} s] {phase_name} ({num_steps} "
                    "steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            pass

    return Monitor()


def entropy_calibrator(trt: Any, cudart: Any, blobs: Iterable[np.ndarray],
                       shape: tuple[int, ...], cache_path: Path, say: Callable[[str], None]
                       ) -> Any:
    """IInt8EntropyCalibrator2 fed by the calibration reader, its cache at ``cache`` (the
    fallback before TensorRT 8.6; pattern of TensorRT 8.5's efficientdet ``EngineCalibrator``
    and the 10.3 ``pyInt8Doc.h`` docstrings, with cuda-python for the device buffer; the
    parameter names are the interface's)."""
    nbytes = int(np.prod(shape)) * 4

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(blobs)
            self.device = call(cudart, cudart.cudaMalloc(nbytes), "cudaMalloc")
            self.used = 0

        def get_batch_size(self) -> int:
            return 1  # explicit batch: the batch is in the tensor shape

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                blob = np.ascontiguousarray(next(self.batches), dtype=np.float32)
            except StopIteration:
                return None
            call(cudart, cudart.cudaMemcpy(self.device, blob.ctypes.data, nbytes,
                                           cudart.cudaMemcpyKind.cudaMemcpyHostToDevice),
                 "cudaMemcpy")
            self.used += 1
            if self.used % 10 == 0:
                say(f"calibrated on {self.used} images")
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic_write(cache_path, bytes(cache))

    return EntropyCalibrator()


def attach_timing_cache(config: Any, path: Path) -> Any:
    """The timing cache beside the engine, read if present, attached to ``config``; one
    it refuses (another GPU or TensorRT: after a JetPack upgrade) is dropped with one
    warning line and an empty one is used, so the build still writes a fresh cache.
    ``create_timing_cache`` returns None for bytes it cannot read; ``set_timing_cache(...,
    ignore_mismatch=False)`` False for a cache of another device (TensorRT 10.3 docstring)."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return cache
    if data:
        log.warning("timing cache %s was made by another TensorRT or GPU: starting an empty "
                    "one (this build times every tactic again)", path.name)
        cache = config.create_timing_cache(b"")
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return cache
    log.warning("TensorRT refused an empty timing cache: building without one")
    return None


def build_engine(plan: BuildPlan, *, say: Callable[[str], None] = log.info,
                 calib_blobs: Iterable[np.ndarray] | None = None, force: bool = False,
                 trt: Any = None, cudart: Any = None) -> dict[str, Any]:
    """Build ``plan`` and write the engine, its timing cache and its sidecar; returns the
    sidecar document (``{"up_to_date": True, ...}`` when the engine already matched and
    ``force`` is off: a restart or a rerun never rebuilds)."""
    trt = trt or load_tensorrt()
    cudart = cudart or load_cudart()
    caps = TrtCaps(str(trt.__version__))
    if caps.version != plan.trt.version:
        raise EdgefaceError(f"the plan is for TensorRT {plan.trt.version}, this is "
                            f"{caps.version}: plan again without --trt-version")
    if plan.problems:
        msg, code = plan.problems[0]
        raise EdgefaceError(msg, code)
    device = this_device(trt, cudart)
    if plan.output.exists() and not force:
        if up_to_date(plan, device):
            say(f"{plan.output} is up to date ({device.describe()})")
            return {**read_sidecar(plan.output), "up_to_date": True}
        raise ConfigError(f"{plan.output} exists and was not built from this model for "
                          "this device; use --force to replace it")

    level = trt.Logger.INFO if log.isEnabledFor(logging.DEBUG) else trt.Logger.WARNING
    logger = trt.Logger(level)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) \
        if caps.explicit_batch_flag else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.model)):
        raise ModelError(f"{plan.model}: {parse_errors(parser, caps)}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace)
    inp = network.get_input(0)
    if plan.dynamic or any(int(d) < 0 for d in inp.shape):
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, plan.input_shape, plan.input_shape, plan.input_shape)
        config.add_optimization_profile(profile)
    if plan.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.int8:
        # A weakly typed network with Q/DQ layers still needs the flag ("Int8 precision has
        # been set for a layer ..., but int8 is not configured in the builder"); strongly
        # typed networks would keep the float layers in FP32 instead of FP16. See "Explicit
        # Quantization", https://docs.nvidia.com/deeplearning/tensorrt/latest/
        # inference-library/quantized-types-explicit-quantization.html
        config.set_flag(trt.BuilderFlag.INT8)
    calibrator = None
    try:
        if plan.int8_mode == "calibrator":
            if calib_blobs is None:
                raise EdgefaceError("the entropy calibrator needs calibration images (--calib)")
            calibrator = entropy_calibrator(trt, cudart, calib_blobs, plan.input_shape,
                                            plan.calib_cache, say)
            config.int8_calibrator = calibrator
        # Held until the build ends: "The cache must not be destroyed until after the
        # engine is built" (set_timing_cache's docstring).
        timing_in = attach_timing_cache(config, plan.timing_cache)
        if caps.progress_monitor:
            config.progress_monitor = progress_monitor(trt, say)

        say(f"building {plan.precision.upper()} engine with TensorRT {caps.version} on "
            f"{device.describe()} (minutes on a Jetson)")
        t0 = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        seconds = time.perf_counter() - t0
        del timing_in
    finally:  # also when the build raises (a bad calibration image, Ctrl-C)
        if calibrator is not None:
            cudart.cudaFree(calibrator.device)
    if serialized is None:
        raise BuildError(f"TensorRT {caps.version} could not build {plan.model.name} (its "
                         "messages above say why)")
    atomic_write(plan.output, lambda f: f.write(memoryview(serialized)))
    timing = config.get_timing_cache()
    if timing is not None:
        atomic_write(plan.timing_cache, lambda f: f.write(memoryview(timing.serialize())))
    else:
        log.warning("TensorRT kept no timing cache: %s not written", plan.timing_cache.name)
    builder_record = {
        "workspace_bytes": plan.workspace, "fp16_flag": plan.fp16, "int8_flag": plan.int8,
        "explicit_batch_flag": caps.explicit_batch_flag, "timing_cache": str(plan.timing_cache),
        "seconds": round(seconds, 1),
        "calibration_source": str(plan.calib) if plan.int8_mode == "calibrator" else None,
        "calibration_cache": str(plan.calib_cache) if plan.int8_mode == "calibrator" else None,
    }
    doc = engine_document(
        metadata={**plan.info.to_metadata(), "edgeface.precision": plan.precision},
        source=plan.model.resolve(), source_sha256=plan.model_sha256,
        input_size=plan.info.input_size, precision=plan.precision, int8_mode=plan.int8_mode,
        device=device, engine_sha256=sha256_file(plan.output),
        engine_bytes=plan.output.stat().st_size, builder=builder_record,
        edgeface_version=__version__, created=datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec="seconds"))
    atomic_write(plan.sidecar, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    say(f"built {plan.output} ({plan.output.stat().st_size / 1e6:.1f} MB) in {seconds:.1f} s")
    return doc
