"""Stand-ins for NVIDIA's ``tensorrt`` module and cuda-python's CUDA runtime, for tests on a
machine without a GPU. They are NOT TensorRT or CUDA.

FakeTensorRT offers the part of the TensorRT Python API edgeface calls, in the form NVIDIA
documents for the version it poses as (10.x: ``create_network(0)``, ``IProgressMonitor``,
``ParserError.node_operator``; 8.5: ``EXPLICIT_BATCH`` required by the ONNX parser, no
progress monitor, DeformConv not importable), and records every call in ``calls`` so that
tests can hold edgeface to the documented sequence. Its parser reads the model's operator
types (DeformConv needs 10.1+ and ``init_libnvinfer_plugins``; Q/DQ needs BuilderFlag.INT8 at
build time, as TensorRT's own errors say). Its "engine" is a JSON header naming the ONNX
file, and executing it runs that ONNX model in ONNX Runtime on the CPU, reading and writing
the device addresses bound with ``set_tensor_address``.

FakeCudart is cuda-python's runtime module (``cuda.bindings.runtime``): calls return
``(err, *values)``; device and pinned memory are real numpy buffers whose addresses are the
"pointers", so copies between them are real copies.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.inference.onnx_proto import read_summary

ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"


class _Enum(enum.IntEnum):
    pass


def _vt(version: str) -> tuple[int, int]:
    a, b = (int(x) for x in version.split(".")[:2])
    return a, b


class FakeTensorRT(types.ModuleType):
    """``import tensorrt`` answered by a recorder (see the module docstring)."""

    def __init__(self, version: str = "10.3.0", build_fails: bool = False):
        super().__init__("tensorrt")
        self.__version__ = version
        self.calls: list[tuple[str, tuple]] = []
        self.plugins_initialised = False
        self.build_fails = build_fails
        trt = self

        def rec(name: str, *args: Any) -> None:
            trt.calls.append((name, args))

        self._rec = rec

        class Logger:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

            def __init__(self, level: int = 2):
                rec("Logger", level)

        self.Logger = Logger
        self.NetworkDefinitionCreationFlag = _Enum("NetworkDefinitionCreationFlag",
                                                   {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 5})
        self.MemoryPoolType = _Enum("MemoryPoolType", {"WORKSPACE": 0})
        self.BuilderFlag = _Enum("BuilderFlag", {"FP16": 0, "INT8": 1})
        self.TensorIOMode = _Enum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
        self.DataType = _Enum("DataType", {"FLOAT": 0, "HALF": 1})

        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                rec("IInt8EntropyCalibrator2.__init__")

        self.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
        if _vt(version) >= (9, 0):
            class IProgressMonitor:
                def __init__(self) -> None:
                    rec("IProgressMonitor.__init__")

            self.IProgressMonitor = IProgressMonitor
        self.Builder = lambda logger: _Builder(trt, logger)
        self.OnnxParser = lambda network, logger: _Parser(trt, network)
        self.Runtime = lambda logger: _Runtime(trt)

    def init_libnvinfer_plugins(self, logger: Any, namespace: str) -> bool:
        self._rec("init_libnvinfer_plugins", namespace)
        self.plugins_initialised = True
        return True

    def nptype(self, dtype: Any) -> type:
        return np.float16 if dtype == self.DataType.HALF else np.float32

    def names(self) -> list[str]:
        """The recorded call names, in order."""
        return [c[0] for c in self.calls]


class _Tensor:
    def __init__(self, name: str, shape: tuple):
        self.name, self.shape = name, shape


class _Network:
    def __init__(self, flags: int):
        self.flags = flags
        self.inputs: list[_Tensor] = []
        self.model: Path | None = None
        self.has_qdq = False

    num_inputs = property(lambda self: len(self.inputs))
    get_input = lambda self, i: self.inputs[i]  # noqa: E731 - TensorRT's accessor pair


class _ParserError:
    def __init__(self, trt: FakeTensorRT, op: str, desc: str):
        self._op, self._desc = op, desc
        if _vt(trt.__version__) >= (10, 0):  # 8.5's ParserError has no node_operator
            self.node_operator = lambda: op

    def code(self) -> int:
        return 8

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return 3


class _Parser:
    def __init__(self, trt: FakeTensorRT, network: _Network):
        self.trt, self.network, self.errors = trt, network, []

    def parse_from_file(self, path: str) -> bool:
        self.trt._rec("OnnxParser.parse_from_file", path)
        ver = _vt(self.trt.__version__)
        if ver < (10, 0) and not self.network.flags & (1 << 0):
            self.errors.append(_ParserError(self.trt, "", "This version of the ONNX parser only "
                               "supports TensorRT INetworkDefinitions with an explicit batch "
                               "dimension."))
            return False
        summary = read_summary(path)
        for op in summary.op_types:
            if op == "DeformConv" and ver < (10, 1):
                self.errors.append(_ParserError(self.trt, op, "No importer registered for op: "
                                                "DeformConv. Plugin not found"))
            elif op == "DeformConv" and not self.trt.plugins_initialised:
                self.errors.append(_ParserError(self.trt, op, "ModulatedDeformConv2d plugin "
                                                "was not found in the plugin registry!"))
            elif op.startswith("Fancy"):
                self.errors.append(_ParserError(self.trt, op, f"No importer registered for op: "
                                                f"{op}"))
        if self.errors:
            return False
        name, dims = summary.inputs[0]
        self.network.inputs = [_Tensor(name, tuple(d if isinstance(d, int) else -1
                                                   for d in dims))]
        self.network.model = Path(path)
        self.network.has_qdq = summary.has_qdq
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> _ParserError:
        return self.errors[i]


class _TimingCache:
    def __init__(self, data: bytes):
        self.data = data

    def serialize(self) -> bytes:
        return self.data + b"+timing"


class _Config:
    def __init__(self, trt: FakeTensorRT):
        object.__setattr__(self, "trt", trt)
        object.__setattr__(self, "flags", set())
        object.__setattr__(self, "timing", None)
        object.__setattr__(self, "profiles", [])

    def __setattr__(self, name: str, value: Any) -> None:
        # A pybind object: unknown attributes fail; progress_monitor only from TensorRT 9.
        allowed = {"int8_calibrator"} | ({"progress_monitor"}
                                         if _vt(self.trt.__version__) >= (9, 0) else set())
        if name not in allowed:
            raise AttributeError(f"'IBuilderConfig' object has no attribute '{name}'")
        self.trt._rec(f"config.{name}=")
        object.__setattr__(self, name, value)

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.trt._rec("config.set_memory_pool_limit", pool, size)

    def set_flag(self, flag: Any) -> None:
        self.trt._rec("config.set_flag", flag)
        self.flags.add(flag)

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        self.trt._rec("config.create_timing_cache", bytes(data))
        return _TimingCache(bytes(data))

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self.trt._rec("config.set_timing_cache", ignore_mismatch)
        object.__setattr__(self, "timing", cache)
        return True

    def get_timing_cache(self) -> _TimingCache:
        return self.timing

    def add_optimization_profile(self, profile: Any) -> int:
        self.trt._rec("config.add_optimization_profile", profile.shapes)
        self.profiles.append(profile)
        return 0


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class _Builder:
    def __init__(self, trt: FakeTensorRT, logger: Any):
        self.trt = trt
        trt._rec("Builder")

    def create_network(self, flags: int) -> _Network:
        self.trt._rec("builder.create_network", flags)
        return _Network(flags)

    def create_builder_config(self) -> _Config:
        self.trt._rec("builder.create_builder_config")
        return _Config(self.trt)

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _Config) -> bytes | None:
        trt = self.trt
        trt._rec("builder.build_serialized_network")
        if trt.build_fails:
            return None
        if network.has_qdq and trt.BuilderFlag.INT8 not in config.flags:
            print("[E] Int8 precision has been set for a layer or layer output, but int8 is "
                  "not configured in the builder", file=sys.stderr)
            return None
        monitor = getattr(config, "progress_monitor", None)
        if monitor is not None:
            monitor.phase_start("Building engine", None, 2)
            monitor.step_complete("Building engine", 0)
            monitor.phase_finish("Building engine")
        calib = getattr(config, "int8_calibrator", None)
        if calib is not None:
            cached = calib.read_calibration_cache()
            batches = 0
            while cached is None and calib.get_batch([network.inputs[0].name]):
                batches += 1
            trt._rec("calibrator.batches", batches, calib.get_batch_size())
            if cached is None:
                calib.write_calibration_cache(b"TRT-8502-EntropyCalibration2\n")
        header = {"model": str(network.model), "flags": sorted(int(f) for f in config.flags)}
        return ENGINE_MAGIC + json.dumps(header).encode()


class _Runtime:
    def __init__(self, trt: FakeTensorRT):
        self.trt = trt
        trt._rec("Runtime")

    def deserialize_cuda_engine(self, data: bytes) -> _Engine | None:
        self.trt._rec("runtime.deserialize_cuda_engine")
        if not data.startswith(ENGINE_MAGIC):
            return None
        header = json.loads(data[len(ENGINE_MAGIC):])
        return _Engine(self.trt, Path(header["model"]))


class _Engine:
    def __init__(self, trt: FakeTensorRT, model: Path):
        import onnxruntime as ort

        self.trt = trt
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        self.io = [(i.name, trt.TensorIOMode.INPUT, tuple(i.shape))
                   for i in self.session.get_inputs()]
        self.io += [(o.name, trt.TensorIOMode.OUTPUT, tuple(o.shape))
                    for o in self.session.get_outputs()]

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def get_tensor_name(self, i: int) -> str:
        return self.io[i][0]

    def get_tensor_mode(self, name: str) -> Any:
        return next(m for n, m, _ in self.io if n == name)

    def get_tensor_shape(self, name: str) -> tuple:
        return next(s for n, _, s in self.io if n == name)

    def get_tensor_dtype(self, name: str) -> Any:
        return self.trt.DataType.FLOAT

    def create_execution_context(self) -> _Context:
        self.trt._rec("engine.create_execution_context")
        return _Context(self)


class _Context:
    def __init__(self, engine: _Engine):
        self.engine = engine
        self.addresses: dict[str, int] = {}

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.engine.trt._rec("context.set_tensor_address", name)
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        eng = self.engine
        eng.trt._rec("context.execute_async_v3")
        feeds = {}
        for name, mode, shape in eng.io:
            if mode == eng.trt.TensorIOMode.INPUT:
                n = int(np.prod(shape))
                buf = (ctypes.c_float * n).from_address(self.addresses[name])
                feeds[name] = np.frombuffer(buf, np.float32).reshape(shape).copy()
        outs = eng.session.run(None, feeds)
        outputs = [name for name, mode, _ in eng.io if mode != eng.trt.TensorIOMode.INPUT]
        for name, out in zip(outputs, outs):
            data = np.ascontiguousarray(out, np.float32)
            ctypes.memmove(self.addresses[name], data.ctypes.data, data.nbytes)
        return True


class FakeCudart(types.ModuleType):
    """cuda-python's ``cuda.bindings.runtime``, with numpy buffers as memory."""

    def __init__(self, devices: int = 1, name: bytes = b"Orin", cc: tuple[int, int] = (8, 7),
                 sms: int = 8):
        super().__init__("cuda.bindings.runtime")
        self.cudaError_t = _Enum("cudaError_t", {"cudaSuccess": 0, "cudaErrorNoDevice": 100})
        self.cudaMemcpyKind = _Enum("cudaMemcpyKind", {"cudaMemcpyHostToDevice": 1,
                                                       "cudaMemcpyDeviceToHost": 2})
        self.devices = devices
        self.props = types.SimpleNamespace(name=name, major=cc[0], minor=cc[1],
                                           multiProcessorCount=sms, totalGlobalMem=7 << 30)
        self.memory: dict[int, np.ndarray] = {}
        self.kinds: dict[int, str] = {}
        self.copies: list[tuple[str, int]] = []
        self.streams = 0
        self.events: dict[int, float] = {}
        self._ok = self.cudaError_t.cudaSuccess

    def cudaGetDeviceCount(self) -> tuple:
        if not self.devices:
            return (self.cudaError_t.cudaErrorNoDevice, 0)
        return (self._ok, self.devices)

    def cudaGetDeviceProperties(self, device: int) -> tuple:
        return (self._ok, self.props)

    def cudaSetDevice(self, device: int) -> tuple:
        return (self._ok,)

    def _alloc(self, n: int, kind: str) -> tuple:
        buf = np.zeros(n, np.uint8)
        self.memory[buf.ctypes.data] = buf
        self.kinds[buf.ctypes.data] = kind
        return (self._ok, buf.ctypes.data)

    def cudaMalloc(self, n: int) -> tuple:
        return self._alloc(n, "device")

    def cudaMallocHost(self, n: int) -> tuple:
        return self._alloc(n, "pinned")

    def cudaFree(self, ptr: int) -> tuple:
        assert self.kinds.pop(ptr) == "device"
        del self.memory[ptr]
        return (self._ok,)

    def cudaFreeHost(self, ptr: int) -> tuple:
        assert self.kinds.pop(ptr) == "pinned"
        del self.memory[ptr]
        return (self._ok,)

    def cudaMemcpyAsync(self, dst: int, src: int, n: int, kind: Any, stream: Any) -> tuple:
        return self.cudaMemcpy(dst, src, n, kind)

    def cudaMemcpy(self, dst: int, src: int, n: int, kind: Any) -> tuple:
        want = "device" if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice else None
        assert want is None or self.kinds.get(int(dst)) == want, "H2D into non-device memory"
        ctypes.memmove(int(dst), int(src), n)
        self.copies.append((kind.name, n))
        return (self._ok,)

    def cudaStreamCreate(self) -> tuple:
        self.streams += 1
        return (self._ok, 1000 + self.streams)

    def cudaStreamSynchronize(self, stream: Any) -> tuple:
        return (self._ok,)

    def cudaStreamDestroy(self, stream: Any) -> tuple:
        self.streams -= 1
        return (self._ok,)

    def cudaEventCreate(self) -> tuple:
        ev = len(self.events) + 1
        self.events[ev] = 0.0
        return (self._ok, ev)

    def cudaEventRecord(self, ev: int, stream: Any) -> tuple:
        self.events[ev] = time.perf_counter()
        return (self._ok,)

    def cudaEventElapsedTime(self, a: int, b: int) -> tuple:
        return (self._ok, (self.events[b] - self.events[a]) * 1000.0)

    def cudaEventDestroy(self, ev: int) -> tuple:
        self.events.pop(ev, None)
        return (self._ok,)


def install_fakes(monkeypatch: Any, trt: FakeTensorRT | None = None,
                  cudart: FakeCudart | None = None) -> tuple[FakeTensorRT, FakeCudart]:
    """Make ``import tensorrt`` and ``from cuda.bindings import runtime`` find the fakes
    (None: a fresh one of each)."""
    trt = trt or FakeTensorRT()
    cudart = cudart or FakeCudart()
    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda.bindings = bindings
    for name, mod in (("tensorrt", trt), ("cuda", cuda), ("cuda.bindings", bindings),
                      ("cuda.bindings.runtime", cudart)):
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None)  # find_spec() works
        monkeypatch.setitem(sys.modules, name, mod)
    return trt, cudart


def hide_modules(monkeypatch: Any, *names: str) -> None:
    """Make ``import name`` fail, as on a machine without it."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)
