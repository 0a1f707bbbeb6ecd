"""A stand-in for NVIDIA's ``tensorrt`` module, for tests on a machine without a GPU. It is
NOT TensorRT. (cuda-python's runtime stand-in, FakeCudart, is in cudart_fakes.py.)

FakeTensorRT offers the part of the TensorRT Python API edgeface calls, with TensorRT's own
names, parameter names and enum values (tests/inference/test_tensorrt_contract.py holds it to
the real 10.3 bindings), in the form NVIDIA documents for the version it poses as (10.x:
``create_network(0)``, ``IProgressMonitor``, ``ParserError.node_operator``; 8.5:
``EXPLICIT_BATCH`` required by the ONNX parser, no progress monitor, DeformConv not
importable), and records every call in ``calls`` so that tests can hold edgeface to the
documented sequence. Its parser reads the model's operator types (DeformConv needs 10.1+ and
``init_libnvinfer_plugins``; Q/DQ needs BuilderFlag.INT8 at build time, as TensorRT's own
errors say). Its "engine" is a JSON header (the ONNX file, the optimization profile) and
runs that model in ONNX Runtime on the CPU, through the addresses of ``set_tensor_address``.

It behaves where TensorRT's behaviour matters: a dynamic export's dims read -1 until
``set_input_shape`` (within the profile), and ``execute_async_v3`` fails before that; a
timing cache carries the TensorRT version and GPU it was made on, so
``create_timing_cache`` returns None for another version's bytes and
``set_timing_cache(..., ignore_mismatch=False)`` returns False for another GPU's cache.
Bookkeeping that is not TensorRT API is private (``_name``) or listed in ``FAKE_ONLY``.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
from cudart_fakes import FakeCudart

from edgeface.inference.onnx_proto import read_summary

__all__ = ["ENGINE_MAGIC", "FakeCudart", "FakeTensorRT", "hide_modules", "install_fakes"]

ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"
TIMING_MAGIC = b"FAKE-TRT-TIMING-CACHE"


class _Enum(enum.IntEnum):
    pass


def _vt(version: str) -> tuple[int, int]:
    a, b = (int(x) for x in version.split(".")[:2])
    return a, b


def _error(msg: str) -> None:
    """What TensorRT's logger prints on an API error (the call itself returns None/False)."""
    print(f"[E] [TRT] {msg}", file=sys.stderr)


class FakeTensorRT(types.ModuleType):
    """``import tensorrt`` answered by a recorder (see the module docstring)."""

    #: Test bookkeeping, not TensorRT API (the contract test checks none is a real name).
    FAKE_ONLY = frozenset({"calls", "plugins_initialised", "build_fails", "gpu", "names",
                           "FAKE_ONLY"})

    def __init__(self, version: str = "10.3.0", build_fails: bool = False, gpu: str = "Orin"):
        super().__init__("tensorrt")
        self.__version__ = version
        self.calls: list[tuple[str, tuple]] = []
        self.plugins_initialised = False
        self.build_fails = build_fails
        self.gpu = gpu  # the device a timing cache is made on
        trt = self

        def rec(name: str, *args: Any) -> None:
            trt.calls.append((name, args))

        self._rec = rec
        severity = _Enum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2,
                                      "INFO": 3, "VERBOSE": 4})

        class Logger:
            Severity = severity
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = severity

            def __init__(self, min_severity: Any = severity.WARNING):
                rec("Logger", min_severity)

        self.Logger = Logger
        # TensorRT 9 replaced EXPLICIT_PRECISION (1) with STRONGLY_TYPED (1).
        self.NetworkDefinitionCreationFlag = _Enum("NetworkDefinitionCreationFlag", {
            "EXPLICIT_BATCH": 0,
            "STRONGLY_TYPED" if _vt(version) >= (9, 0) else "EXPLICIT_PRECISION": 1})
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

    def nptype(self, trt_type: Any) -> type:
        return np.float16 if trt_type == self.DataType.HALF else np.float32

    def names(self) -> list[str]:
        """The recorded call names, in order."""
        return [c[0] for c in self.calls]


class _Tensor:
    def __init__(self, name: str, shape: tuple):
        self.name, self.shape = name, shape


class _Network:
    def __init__(self, flags: int):
        self._flags = flags
        self._inputs: list[_Tensor] = []
        self._model: Path | None = None
        self._has_qdq = False

    num_inputs = property(lambda self: len(self._inputs))

    def get_input(self, index: int) -> _Tensor:
        return self._inputs[index]


class _ParserError:
    def __init__(self, trt: FakeTensorRT, op: str, desc: str):
        self._op, self._desc = op, desc
        if _vt(trt.__version__) >= (10, 0):  # 8.5's ParserError has no node_operator
            self.node_operator = lambda: op

    code = lambda self: 8  # noqa: E731 - ErrorCode.UNSUPPORTED_NODE
    desc = lambda self: self._desc  # noqa: E731
    node = lambda self: 3  # noqa: E731


class _Parser:
    def __init__(self, trt: FakeTensorRT, network: _Network):
        self._trt, self._network, self._errors = trt, network, []

    def parse_from_file(self, model: str) -> bool:
        self._trt._rec("OnnxParser.parse_from_file", model)
        trt, network = self._trt, self._network
        ver = _vt(trt.__version__)
        if ver < (10, 0) and not network._flags & (1 << 0):
            self._errors.append(_ParserError(trt, "", "This version of the ONNX parser only "
                                "supports TensorRT INetworkDefinitions with an explicit batch "
                                "dimension."))
            return False
        summary = read_summary(model)
        for op in summary.op_types:
            if op == "DeformConv" and ver < (10, 1):
                self._errors.append(_ParserError(trt, op, "No importer registered for op: "
                                                 "DeformConv. Plugin not found"))
            elif op == "DeformConv" and not trt.plugins_initialised:
                self._errors.append(_ParserError(trt, op, "ModulatedDeformConv2d plugin was "
                                                 "not found in the plugin registry!"))
            elif op.startswith("Fancy"):
                self._errors.append(_ParserError(trt, op, f"No importer registered for op: "
                                                 f"{op}"))
        if self._errors:
            return False
        name, dims = summary.inputs[0]
        network._inputs = [_Tensor(name, tuple(d if isinstance(d, int) else -1 for d in dims))]
        network._model = Path(model)
        network._has_qdq = summary.has_qdq
        return True

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> _ParserError:
        return self._errors[index]


class _TimingCache:
    def __init__(self, trt: str, gpu: str, payload: bytes = b""):
        self._trt, self._gpu, self._payload = trt, gpu, payload

    def serialize(self) -> bytes:
        head = json.dumps({"trt": self._trt, "gpu": self._gpu}).encode()
        return TIMING_MAGIC + head + b"\n" + (self._payload or b"tactics")


class _Config:
    def __init__(self, trt: FakeTensorRT):
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "_flags", set())
        object.__setattr__(self, "_timing", None)
        object.__setattr__(self, "_profiles", [])

    def __setattr__(self, name: str, value: Any) -> None:
        # A pybind object: unknown attributes fail; progress_monitor only from TensorRT 9.
        allowed = {"int8_calibrator"} | ({"progress_monitor"}
                                         if _vt(self._trt.__version__) >= (9, 0) else set())
        if name not in allowed:
            raise AttributeError(f"'IBuilderConfig' object has no attribute '{name}'")
        self._trt._rec(f"config.{name}=")
        object.__setattr__(self, name, value)

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        self._trt._rec("config.set_memory_pool_limit", pool, pool_size)

    def set_flag(self, flag: Any) -> None:
        self._trt._rec("config.set_flag", flag)
        self._flags.add(flag)

    def create_timing_cache(self, serialized_timing_cache: bytes) -> _TimingCache | None:
        data = bytes(serialized_timing_cache)
        trt = self._trt
        trt._rec("config.create_timing_cache", data)
        if not data:
            return _TimingCache(trt.__version__, trt.gpu)
        head, _, payload = data[len(TIMING_MAGIC):].partition(b"\n")
        try:
            made = json.loads(head) if data.startswith(TIMING_MAGIC) else {}
        except ValueError:
            made = {}
        if made.get("trt") != trt.__version__:  # another version's or no cache at all
            _error("Failed to deserialize the timing cache: version or format mismatch")
            return None
        return _TimingCache(made["trt"], made["gpu"], payload)

    def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
        self._trt._rec("config.set_timing_cache", ignore_mismatch)
        if cache._gpu != self._trt.gpu and not ignore_mismatch:
            _error("Timing cache was created on a different device (cudaDeviceProp "
                   "mismatch)")
            return False
        object.__setattr__(self, "_timing", cache)
        return True

    def get_timing_cache(self) -> _TimingCache | None:
        return self._timing

    def add_optimization_profile(self, profile: Any) -> int:
        self._trt._rec("config.add_optimization_profile", profile._shapes)
        self._profiles.append(profile)
        return 0


class _Profile:
    def __init__(self) -> None:
        self._shapes: dict[str, tuple] = {}

    def set_shape(self, input: str, min: tuple, opt: tuple, max: tuple) -> None:  # noqa: A002
        self._shapes[input] = (tuple(min), tuple(opt), tuple(max))


class _Builder:
    def __init__(self, trt: FakeTensorRT, logger: Any):
        self._trt = trt
        trt._rec("Builder")

    def create_network(self, flags: int = 0) -> _Network:
        self._trt._rec("builder.create_network", flags)
        return _Network(flags)

    def create_builder_config(self) -> _Config:
        self._trt._rec("builder.create_builder_config")
        return _Config(self._trt)

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _Config) -> bytes | None:
        trt = self._trt
        trt._rec("builder.build_serialized_network")
        if trt.build_fails:
            return None
        if network._has_qdq and trt.BuilderFlag.INT8 not in config._flags:
            _error("Int8 precision has been set for a layer or layer output, but int8 is not "
                   "configured in the builder")
            return None
        if any(d < 0 for d in network.get_input(0).shape) and not config._profiles:
            _error("Network has dynamic or shape inputs, but no optimization profile has "
                   "been defined.")
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
            while cached is None and calib.get_batch([network.get_input(0).name]):
                batches += 1
            trt._rec("calibrator.batches", batches, calib.get_batch_size())
            if cached is None:
                calib.write_calibration_cache(b"TRT-8502-EntropyCalibration2\n")
        if config._timing is not None:  # the build adds what it timed
            config._timing._payload += b"+tactics"
        profile = {k: v for p in config._profiles for k, v in p._shapes.items()}
        header = {"model": str(network._model), "flags": sorted(int(f) for f in config._flags),
                  "profile": profile}
        return ENGINE_MAGIC + json.dumps(header).encode()


class _Runtime:
    def __init__(self, trt: FakeTensorRT):
        self._trt = trt
        trt._rec("Runtime")

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> _Engine | None:
        self._trt._rec("runtime.deserialize_cuda_engine")
        if not serialized_engine.startswith(ENGINE_MAGIC):
            return None
        header = json.loads(serialized_engine[len(ENGINE_MAGIC):])
        return _Engine(self._trt, Path(header["model"]), header.get("profile") or {})


class _Engine:
    def __init__(self, trt: FakeTensorRT, model: Path, profile: dict[str, Any]):
        import onnxruntime as ort

        self._trt, self._profile = trt, profile
        self._session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

        def dims(shape: list) -> tuple:  # a named (dynamic) dim reads -1, as in TensorRT
            return tuple(d if isinstance(d, int) else -1 for d in shape)

        self._io = [(i.name, trt.TensorIOMode.INPUT, dims(i.shape))
                    for i in self._session.get_inputs()]
        self._io += [(o.name, trt.TensorIOMode.OUTPUT, dims(o.shape))
                     for o in self._session.get_outputs()]

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def get_tensor_name(self, index: int) -> str:
        return self._io[index][0]

    def get_tensor_mode(self, name: str) -> Any:
        return next(m for n, m, _ in self._io if n == name)

    def get_tensor_shape(self, name: str) -> tuple:
        return next(s for n, _, s in self._io if n == name)

    def get_tensor_dtype(self, name: str) -> Any:
        return self._trt.DataType.FLOAT

    def create_execution_context(self, strategy: int = 0) -> _Context:
        self._trt._rec("engine.create_execution_context")
        return _Context(self)


class _Context:
    def __init__(self, engine: _Engine):
        self._engine = engine
        self._addresses: dict[str, int] = {}
        self._shapes = {n: s for n, m, s in engine._io if m == engine._trt.TensorIOMode.INPUT}

    def _inputs_set(self) -> bool:
        return all(d >= 0 for s in self._shapes.values() for d in s)

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        eng = self._engine
        eng._trt._rec("context.set_input_shape", name, tuple(shape))
        built = eng.get_tensor_shape(name)
        lo, _, hi = eng._profile.get(name, (built, built, built))
        if len(shape) != len(built) or any(
                not (a <= d <= b) or 0 <= f != d for d, a, b, f in zip(shape, lo, hi, built)):
            _error(f"IExecutionContext::setInputShape: {name} {list(shape)} is outside the "
                   f"optimization profile [{list(lo)}, {list(hi)}]")
            return False
        self._shapes[name] = tuple(int(d) for d in shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        eng = self._engine
        if name in self._shapes:
            return self._shapes[name]
        built = eng.get_tensor_shape(name)
        if all(d >= 0 for d in built) or not self._inputs_set():
            return built
        # Output shapes follow from the input shapes once those are set.
        feeds = {n: np.zeros(s, np.float32) for n, s in self._shapes.items()}
        outs = dict(zip([o.name for o in eng._session.get_outputs()],
                        eng._session.run(None, feeds)))
        return tuple(outs[name].shape)

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._engine._trt._rec("context.set_tensor_address", name)
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        eng = self._engine
        eng._trt._rec("context.execute_async_v3")
        if not self._inputs_set():
            _error("IExecutionContext::enqueueV3: input shapes are not all specified")
            return False
        feeds = {}
        for name, shape in self._shapes.items():
            n = int(np.prod(shape))
            buf = (ctypes.c_float * n).from_address(self._addresses[name])
            feeds[name] = np.frombuffer(buf, np.float32).reshape(shape).copy()
        outs = eng._session.run(None, feeds)
        outputs = [name for name, mode, _ in eng._io if mode != eng._trt.TensorIOMode.INPUT]
        for name, out in zip(outputs, outs):
            data = np.ascontiguousarray(out, np.float32)
            ctypes.memmove(self._addresses[name], data.ctypes.data, data.nbytes)
        return True


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
