"""TensorRT backend: runs a serialized engine from ``edgeface quantize --tensorrt`` on the GPU.

Registered for ``.engine`` / ``.plan`` files (the folder's ``SPEC``). The engine's
:class:`ModelInfo` and what it was built from and for come from its sidecar (:mod:`.cache`);
an engine built for another TensorRT, GPU, L4T release or model is refused before TensorRT
touches it (exit 3, with the command that rebuilds it).

The calls follow NVIDIA's TensorRT Python API as documented for TensorRT 10.x (JetPack 6.1/6.2)
and present since 8.5 (JetPack 5), so one path serves both: ``trt.init_libnvinfer_plugins``
before ``Runtime.deserialize_cuda_engine`` (the DeformConv layers are the
``ModulatedDeformConv2d`` plugin, which must be registered to deserialise), then the
tensor-name API (``num_io_tensors``, ``get_tensor_name/mode/shape/dtype``,
``set_tensor_address``, ``execute_async_v3``) of ``samples/python/common_runtime.py`` (TensorRT
10.3); the binding-index API (``execute_async_v2``) is gone in 10.x. A dynamic engine
(``export --dynamic``: its input reads -1 dims) gets the metadata's 1x3xHxW through
``context.set_input_shape`` before anything is bound. Buffers are bound once:
a page-locked host array and a device buffer per tensor; each frame is one host->device copy,
one enqueue, three device->host copies and one stream synchronisation. CUDA comes through
cuda-python (why not pycuda: :mod:`edgeface.inference.backends.tensorrt.cuda`).

Its own stage times (upload, execute, download; CUDA events on the stream, so they measure
the GPU, not Python) are kept per frame (:attr:`TensorRTBackend.last_stages`) and summed
(:meth:`TensorRTBackend.stage_summary`, logged when the backend is closed).

Not run on a Jetson yet: the tests drive it against fakes of TensorRT and the CUDA runtime
(tests/inference/test_tensorrt_backend.py); docs/tensorrt.md says how to check it on one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import MissingDependency, ModelError
from edgeface.inference.backends.base import RawOutputs
from edgeface.inference.backends.tensorrt.cache import DeviceFacts, check_engine, jetson_release
from edgeface.inference.backends.tensorrt.cuda import (
    PinnedArray,
    call,
    device_properties,
    load_cudart,
)
from edgeface.inference.families import get_family
from edgeface.inference.model_info import INPUT_NAME, ModelInfo, read_sidecar

log = logging.getLogger(__name__)

TENSORRT_HINT = ("on a Jetson: sudo apt install python3-libnvinfer (JetPack's TensorRT Python "
                 "bindings; or the nvidia-tensorrt meta-package), in a venv created with "
                 "--system-site-packages")
STAGES = ("upload", "execute", "download")


def load_tensorrt() -> Any:
    """The ``tensorrt`` module, or MissingDependency (exit 2) naming the JetPack package."""
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependency(f"TensorRT's Python bindings are not importable ({exc}); "
                                f"{TENSORRT_HINT}") from None
    return tensorrt


def this_device(trt: Any, cudart: Any, device: int = 0, root: str | os.PathLike = "/"
                ) -> DeviceFacts:
    """The facts an engine is checked against: TensorRT, the GPU, L4T/JetPack."""
    l4t, jetpack = jetson_release(root)
    return DeviceFacts(tensorrt=str(trt.__version__), l4t=l4t, jetpack=jetpack,
                       **device_properties(cudart, device))


def engine_info(path: Path, doc: dict[str, Any], input_size: tuple[int, int] | None
                ) -> ModelInfo:
    """The :class:`ModelInfo` of an engine from its sidecar (engines have a fixed input)."""
    try:
        info = ModelInfo.from_metadata({str(k): str(v) for k, v in doc["metadata"].items()})
        built = (doc.get("built_from") or {}).get("input_size")
        if built:
            info = info.with_input_size(*built)
        info.check()
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    if input_size and tuple(input_size) != tuple(info.input_size):
        w, h = info.input_size
        raise ModelError(f"{path} was built for a fixed {w}x{h} input; cannot run it at "
                         f"{input_size[0]}x{input_size[1]} (build another engine)")
    return info


class TensorRTBackend:
    """Runs an edgeface TensorRT engine; one CUDA stream, buffers bound once."""

    name = "tensorrt"

    def __init__(self, model_path: str | os.PathLike, *, provider: str = "tensorrt",
                 input_size: tuple[int, int] | None = None, device: int = 0,
                 root: str | os.PathLike = "/"):
        self.path = Path(model_path)
        self.threads = None  # the GPU runs it: no CPU threads to set (its spec takes none)
        self.providers = ["TensorRT"]
        self._buffers: dict[str, PinnedArray] = {}
        self._stream = None
        self._events: list[Any] = []
        self.context = self.engine = self._runtime = None
        doc = read_sidecar(self.path)
        self.info = engine_info(self.path, doc, input_size)
        trt = self.trt = load_tensorrt()
        cudart = self.cudart = load_cudart(root)
        call(cudart, cudart.cudaSetDevice(device), "cudaSetDevice")
        self.device = this_device(trt, cudart, device, root)
        self.sidecar = check_engine(self.path, self.device)
        self.providers = [f"TensorRT {self.device.tensorrt}"]

        logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(logger, "")  # DeformConv = ModulatedDeformConv2d plugin
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ModelError(f"TensorRT {trt.__version__} could not deserialise {self.path} "
                             "(see the TensorRT message above); rebuild it on this device")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise ModelError(f"{self.path}: TensorRT could not create an execution context "
                             "(out of GPU memory?)")
        try:
            self._bind()
        except BaseException:
            self.close()
            raise
        self.last_stages: dict[str, float] = {}
        self._sums = dict.fromkeys(STAGES, 0.0)
        self.frames = 0

    def _bind(self) -> None:
        """Check the engine's tensors against the metadata; allocate and bind them once."""
        trt, engine, cudart = self.trt, self.engine, self.cudart
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        # The model's family (from the sidecar) owns the output contract: names, order and
        # the dimensions after [1, anchors].
        family = get_family(self.info.family, ModelError)
        w, h = self.info.input_size
        anchors = self.info.anchors()
        want = [o.name for o in family.outputs]  # TensorRT's tensor order need not be it
        ordered = sorted(outputs, key=lambda n: want.index(n) if n in want else len(want))
        try:
            family.check_io(inputs, [(n, (1, anchors, *self._tail(family, n)))
                                     for n in ordered], self.info)
        except ModelError as exc:
            raise ModelError(f"{self.path} is not an edgeface detector engine: {exc}") from None
        self._outputs = want
        expected = {INPUT_NAME: (1, 3, h, w),
                    **{o.name: (1, anchors, *o.tail) for o in family.outputs}}
        self._fix_input_shape(expected[INPUT_NAME])
        for name in names:
            # The context's shapes: a dynamic engine's are resolved by set_input_shape.
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            if shape != expected[name]:
                raise ModelError(f"{self.path}: tensor {name!r} has shape {list(shape)}, "
                                 f"expected {list(expected[name])} (input {w}x{h}, "
                                 f"{anchors} anchors)")
            buf = PinnedArray(cudart, shape, trt.nptype(engine.get_tensor_dtype(name)))
            self._buffers[name] = buf
            if not self.context.set_tensor_address(name, int(buf.device_ptr)):
                raise ModelError(f"{self.path}: TensorRT refused the address of {name!r}")
        self._stream = call(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
        for _ in range(len(STAGES) + 1):  # one by one: close() destroys those made so far
            self._events.append(call(cudart, cudart.cudaEventCreate(), "cudaEventCreate"))

    @staticmethod
    def _tail(family: Any, name: str) -> tuple[int, ...]:
        """The family's dimensions after [1, A] for output ``name`` (none for a name it does
        not have: check_io then names the mismatch)."""
        return next((o.tail for o in family.outputs if o.name == name), ())

    def _fix_input_shape(self, want: tuple[int, ...]) -> None:
        """A dynamic engine (``export --dynamic``: -1 dims) runs at the metadata's size: set it
        on the context, within the build's optimization profile (min = opt = max)."""
        dims = tuple(int(d) for d in self.engine.get_tensor_shape(INPUT_NAME))
        if all(d >= 0 for d in dims):
            return
        if len(dims) != len(want) or any(0 <= d != e for d, e in zip(dims, want)):
            raise ModelError(f"{self.path}: tensor {INPUT_NAME!r} has shape {list(dims)}, "
                             f"expected {list(want)}")
        if not self.context.set_input_shape(INPUT_NAME, want):
            raise ModelError(f"{self.path}: its optimization profile does not accept input "
                             f"{list(want)} (see the TensorRT message above); rebuild it with "
                             "`edgeface quantize --tensorrt` from the same model")

    def infer(self, blob: np.ndarray) -> RawOutputs:
        cudart, stream, ev = self.cudart, self._stream, self._events
        inp = self._buffers[INPUT_NAME]
        if blob.shape != inp.host.shape:
            raise ModelError(f"input blob {list(blob.shape)} does not match the engine's "
                             f"{list(inp.host.shape)}")
        np.copyto(inp.host, blob, casting="same_kind")
        call(cudart, cudart.cudaEventRecord(ev[0], stream), "cudaEventRecord")
        inp.upload(stream)
        call(cudart, cudart.cudaEventRecord(ev[1], stream), "cudaEventRecord")
        if not self.context.execute_async_v3(stream_handle=int(stream)):
            raise ModelError(f"{self.path}: TensorRT could not enqueue the inference")
        call(cudart, cudart.cudaEventRecord(ev[2], stream), "cudaEventRecord")
        for name in self._outputs:
            self._buffers[name].download(stream)
        call(cudart, cudart.cudaEventRecord(ev[3], stream), "cudaEventRecord")
        call(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        for i, stage in enumerate(STAGES):
            ms = call(cudart, cudart.cudaEventElapsedTime(ev[i], ev[i + 1]),
                      "cudaEventElapsedTime")
            self.last_stages[stage] = ms / 1000.0
            self._sums[stage] += ms / 1000.0
        self.frames += 1
        # Copies: the host buffers are overwritten by the next frame.
        return tuple(self._buffers[n].host[0].astype(np.float32, copy=True)
                     for n in self._outputs)

    def stage_summary(self) -> dict[str, Any]:
        """Frames run and the mean GPU time of each stage, in milliseconds."""
        n = max(self.frames, 1)
        return {"frames": self.frames,
                **{f"{s}_ms": round(1000.0 * self._sums[s] / n, 4) for s in STAGES}}

    def close(self) -> None:
        """Free the GPU buffers, events and stream, then the context, engine and runtime, in
        that order (also on garbage collection; closing twice is harmless)."""
        cudart = getattr(self, "cudart", None)
        if cudart is None:
            return
        if getattr(self, "frames", 0):
            s = self.stage_summary()
            log.info("tensorrt: %d frames, mean upload %.3f ms, execute %.3f ms, download "
                     "%.3f ms", s["frames"], s["upload_ms"], s["execute_ms"], s["download_ms"])
            self.frames = 0
        for buf in self._buffers.values():
            buf.free()
        self._buffers = {}
        for ev in self._events:
            cudart.cudaEventDestroy(ev)
        self._events = []
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        # TensorRT frees an object when its last Python reference goes: the context before
        # its engine, the engine before its runtime (NVIDIA's samples ``del`` them so), now
        # rather than whenever the garbage collector gets to this backend.
        self.context = self.engine = self._runtime = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass
