"""FakeTensorRT and FakeCudart held to the real modules, without a GPU.

The TensorRT tests run against fakes; fakes that drift from the real API let real defects
through (a STRONGLY_TYPED of 5 where TensorRT says 1, parameter names nobody checked). Here
the real Python bindings are imported: TensorRT 10.3's (``tensorrt-cu12-bindings==10.3.0``,
module ``tensorrt_bindings``; JetPack 6.1/6.2's version) and cuda-python 12.6 (JetPack
6.1/6.2's CUDA minor), both in the ``dev`` extra. TensorRT's extension links
libnvinfer/libnvonnxparser/libnvinfer_plugin, which come only with TensorRT itself: this test
builds empty stand-ins with those SONAMEs (``gcc -shared``, the undefined symbols read from
the extension with ``nm``) in a temporary directory and preloads them, enough to import and
introspect the module, never to run it. Without gcc/nm or the packages it skips, saying why.

Checked: every TensorRT and CUDA attribute our code uses exists; every public name,
parameter name and enum value of the fakes matches the real one; the calibrator and the
progress monitor subclass the real interfaces. Then the fakes' behaviour that the Jetson
defects depended on.
"""

from __future__ import annotations

import ast
import ctypes
import importlib
import importlib.util
import inspect
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorrt_fakes as tf
from cudart_fakes import FakeCudart
from tensorrt_fakes import FakeTensorRT

from edgeface.inference.backends.tensorrt import build as tb

ROOT = Path(__file__).resolve().parents[2]
TRT_USERS = [ROOT / "edge/inference/backends/tensorrt/runtime.py",
             ROOT / "edge/inference/backends/tensorrt/build.py"]
CUDART_USERS = TRT_USERS + [ROOT / "edge/inference/backends/tensorrt/cuda.py",
                            ROOT / "edge/system/jetpack.py"]
# The names each module gives TensorRT objects -> the real class (attribute uses on them).
TRT_OBJECTS = {
    "runtime.py": {"engine": "ICudaEngine", "context": "IExecutionContext",
                   "_runtime": "Runtime"},
    "build.py": {"config": "IBuilderConfig", "builder": "Builder",
                 "network": "INetworkDefinition", "parser": "OnnxParser",
                 "profile": "IOptimizationProfile", "err": "ParserError",
                 "inp": "ITensor", "timing": "ITimingCache"}}
SKIP_HINT = "pip install -e '.[dev]' (tensorrt-cu12-bindings==10.3.0, cuda-python==12.6.*)"


@pytest.fixture(scope="module")
def real_trt(tmp_path_factory) -> Any:
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"TensorRT's Python bindings are not installed: {SKIP_HINT}")
    ext = next(Path(spec.submodule_search_locations[0]).glob("tensorrt*.so"), None)
    tools = [shutil.which(t) for t in ("gcc", "nm", "readelf")]
    if ext is None or not all(tools):
        pytest.skip("building the libnvinfer stand-ins needs gcc, nm and readelf (binutils)")
    gcc, nm, readelf = tools
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(libnv[^\]]+)\]",
                        subprocess.run([readelf, "-d", str(ext)], capture_output=True,
                                       text=True, check=True).stdout)
    undefined = [line.split()[-1] for line in subprocess.run(
        [nm, "-D", "--undefined-only", str(ext)], capture_output=True, text=True,
        check=True).stdout.splitlines() if line.split()[:1] == ["U"]]
    symbols = [s for s in undefined if "@" not in s and not s.startswith(("Py", "_Py"))]
    assert needed and symbols, (needed, symbols)
    out = tmp_path_factory.mktemp("nvinfer-stubs")
    source = out / "stub.c"
    source.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in symbols))
    for soname in needed:
        subprocess.run([gcc, "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o",
                        str(out / soname), str(source)], check=True)
        ctypes.CDLL(str(out / soname), mode=ctypes.RTLD_GLOBAL)  # NEEDED matches the SONAME
    try:
        return importlib.import_module("tensorrt_bindings")
    except ImportError as exc:
        pytest.skip(f"tensorrt_bindings did not import over the stand-ins: {exc}")


@pytest.fixture(scope="module")
def real_cudart() -> Any:
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError as exc:
        pytest.skip(f"cuda-python is not installed ({exc}): {SKIP_HINT}")


def signatures(func: Any) -> list[list[tuple[str, bool]]]:
    """The parameters (name, has a default) of each overload in a pybind11 docstring, or of
    ``inspect.signature`` (cuda-python's Cython functions), without ``self``."""
    try:
        sig = inspect.signature(func)
        if not any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
            return [[(n, p.default is not p.empty) for n, p in sig.parameters.items()
                     if n != "self"]]
    except (TypeError, ValueError):
        pass
    out = []
    for args in re.findall(r"^(?:\d+\. )?\w+\((.*)\) ->", func.__doc__ or "", re.MULTILINE):
        params, depth, cur = [], 0, ""
        for ch in args + ",":
            depth += ch in "[(" and 1 or ch in "])" and -1 or 0
            if ch == "," and depth == 0:
                params.append(cur.strip())
                cur = ""
            else:
                cur += ch
        params = [p for p in params if p]
        out.append([(p.split(":")[0].split("=")[0].strip(), "=" in p) for p in params
                    if p.split(":")[0].strip() != "self"])
    return out


def assert_same_parameters(fake: Any, real: Any, what: str) -> None:
    """The fake's parameter names are the real ones; it may leave out only trailing ones
    that have defaults (create_execution_context's ``strategy``)."""
    mine = [n for n in inspect.signature(fake).parameters if n != "self"]
    for overload in signatures(real):
        names = [n for n, _ in overload]
        if names[:len(mine)] == mine and all(d for _, d in overload[len(mine):]):
            return
    raise AssertionError(f"{what}{tuple(mine)} matches no signature of the real one: "
                         f"{signatures(real)}")


def public(obj: Any) -> set[str]:
    return {n for n in vars(obj) if not n.startswith("_")}


def attribute_uses(paths: list[Path], holder: str) -> set[tuple[str, ...]]:
    """``trt.A.B`` / ``self.trt.A`` chains in ``paths`` as ("A", "B")."""
    uses = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            chain = []
            while isinstance(node, ast.Attribute):
                chain.append(node.attr)
                node = node.value
            base = node.id if isinstance(node, ast.Name) else None
            if chain and chain[-1] == holder and base == "self":
                chain, base = chain[:-1], holder
            if base == holder and chain:
                uses.add(tuple(reversed(chain)))
    return uses


def object_uses(paths: list[Path]) -> set[tuple[str, str]]:
    """(real class, attribute) for ``engine.X``, ``self.context.X``... in ``paths``."""
    uses = set()
    for path in paths:
        objects = TRT_OBJECTS[path.name]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else \
                owner.attr if isinstance(owner, ast.Attribute) else None
            if name in objects:
                uses.add((objects[name], node.attr))
    return uses


def test_every_tensorrt_attribute_our_code_uses_exists(real_trt):
    module_uses = attribute_uses(TRT_USERS, "trt")
    object_uses_ = object_uses(TRT_USERS)
    assert len(module_uses) >= 15 and len(object_uses_) >= 30  # the walk found the code
    assert {c for c, _ in object_uses_} == {c for m in TRT_OBJECTS.values() for c in m.values()}
    missing = []
    for chain in sorted(module_uses):
        obj = real_trt
        for part in chain:
            obj = getattr(obj, part, None)
        if obj is None and chain != ("__version__",) or chain == ("__version__",) and \
                real_trt.__version__ != "10.3.0":
            missing.append("trt." + ".".join(chain))
    missing += [f"{c}.{a}" for c, a in sorted(object_uses_)
                if not hasattr(getattr(real_trt, c), a)]
    assert not missing, missing


def test_every_cuda_attribute_our_code_uses_exists(real_cudart):
    uses = attribute_uses(CUDART_USERS, "cudart")
    assert len(uses) >= 18
    missing = []
    for chain in sorted(uses):
        obj = real_cudart
        for part in chain:
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append("cudart." + ".".join(chain))
    assert not missing, missing


def _enums(obj: Any) -> dict[str, type]:
    return {n: v for n, v in vars(obj).items() if isinstance(v, type) and
            issubclass(v, int) and hasattr(v, "__members__")}


def test_fake_tensorrt_names_parameters_and_enums_are_the_real_ones(real_trt):
    fake = FakeTensorRT("10.3.0")
    names = public(fake) | public(FakeTensorRT)
    assert not fake.FAKE_ONLY & set(dir(real_trt)), "a recorder shadows a TensorRT name"
    assert sorted(names - fake.FAKE_ONLY - set(dir(real_trt))) == []
    enums = _enums(fake)
    assert {"NetworkDefinitionCreationFlag", "BuilderFlag", "MemoryPoolType", "TensorIOMode",
            "DataType"} <= set(enums)
    for name, enum in enums.items():
        real = getattr(real_trt, name).__members__
        assert {k: int(v) for k, v in enum.__members__.items()} == {
            k: int(real[k]) for k in enum.__members__}, name
    for sev in ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"):
        assert int(getattr(fake.Logger, sev)) == int(getattr(real_trt.Logger, sev))
    for func in ("init_libnvinfer_plugins", "nptype"):
        assert_same_parameters(getattr(fake, func), getattr(real_trt, func), func)
    for factory, real in ((fake.Builder, real_trt.Builder), (fake.OnnxParser,
                          real_trt.OnnxParser), (fake.Runtime, real_trt.Runtime),
                          (fake.Logger, real_trt.Logger)):
        assert_same_parameters(factory, real.__init__, real.__name__)


@pytest.mark.parametrize("fake_name, real_name", [
    ("_Builder", "Builder"), ("_Config", "IBuilderConfig"), ("_TimingCache", "ITimingCache"),
    ("_Profile", "IOptimizationProfile"), ("_Parser", "OnnxParser"),
    ("_ParserError", "ParserError"), ("_Network", "INetworkDefinition"),
    ("_Tensor", "ITensor"), ("_Runtime", "Runtime"), ("_Engine", "ICudaEngine"),
    ("_Context", "IExecutionContext")])
def test_fake_tensorrt_classes_have_the_real_methods(real_trt, fake_name, real_name):
    fake_cls, real_cls = getattr(tf, fake_name), getattr(real_trt, real_name)
    names = public(fake_cls) - {"__init__"}
    if fake_name == "_Tensor":
        names = {"name", "shape"}  # set in __init__
    assert names and sorted(n for n in names if not hasattr(real_cls, n)) == []
    for name in names:
        attr = getattr(fake_cls, name, None)
        if inspect.isfunction(attr):
            assert_same_parameters(attr, getattr(real_cls, name), f"{real_name}.{name}")


def test_fake_cudart_names_parameters_and_enums_are_the_real_ones(real_cudart):
    fake = FakeCudart()
    names = public(fake) | public(FakeCudart)
    assert not fake.FAKE_ONLY & set(dir(real_cudart)), "a recorder shadows a CUDA name"
    assert sorted(names - fake.FAKE_ONLY - set(dir(real_cudart))) == []
    for name in sorted(n for n in names if n.startswith("cuda")):
        attr = getattr(FakeCudart, name, None)
        if inspect.isfunction(attr):
            assert_same_parameters(attr, getattr(real_cudart, name), name)
    for name in ("cudaError_t", "cudaMemcpyKind"):
        real = getattr(real_cudart, name).__members__
        assert {k: int(v) for k, v in getattr(fake, name).__members__.items()} == {
            k: int(real[k]) for k in getattr(fake, name).__members__}, name
    props = real_cudart.cudaDeviceProp()
    assert sorted(n for n in vars(fake.props) if not hasattr(props, n)) == []


def test_calibrator_and_progress_monitor_subclass_the_real_interfaces(real_trt, tmp_path):
    said: list[str] = []
    monitor = tb.progress_monitor(real_trt, said.append)
    cudart = FakeCudart()
    calibrator = tb.entropy_calibrator(real_trt, cudart, iter([np.zeros((1, 3, 8, 8))]),
                                       (1, 3, 8, 8), tmp_path / "c.calib", said.append)
    try:
        for obj, base in ((monitor, real_trt.IProgressMonitor),
                          (calibrator, real_trt.IInt8EntropyCalibrator2)):
            assert isinstance(obj, base)
            mine = public(type(obj)) - {"__init__"}
            assert mine and sorted(n for n in mine if not hasattr(base, n)) == []
            for name in mine:
                assert_same_parameters(getattr(type(obj), name), getattr(base, name),
                                       f"{base.__name__}.{name}")
        monitor.phase_start("Building engine", None, 3)  # through pybind's trampoline class
        assert said and "Building engine (3 steps)" in said[-1]
        assert calibrator.get_batch_size() == 1 and calibrator.get_batch(["input"])
    finally:
        cudart.cudaFree(calibrator.device)


# The fakes behave where the Jetson defects lived -------------------------------------------

def test_fake_dynamic_dims_read_minus_one_until_the_shape_is_set(tmp_path):
    from runtime_fakes import tiny_onnx

    onnx = pytest.importorskip("onnx", reason="editing a model needs onnx")
    model = tiny_onnx(tmp_path / "d.onnx")
    m = onnx.load(str(model))
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    onnx.save(m, str(model))
    trt = FakeTensorRT()
    engine = tf._Engine(trt, model, {"input": [[1, 3, 32, 64], [1, 3, 64, 64],
                                               [1, 3, 64, 64]]})
    assert engine.get_tensor_shape("input") == (1, 3, -1, 64)
    context = engine.create_execution_context()
    assert not context.execute_async_v3(0)  # shapes not all specified
    assert not context.set_input_shape("input", (1, 3, 128, 64))  # outside the profile
    assert context.set_input_shape("input", (1, 3, 64, 64))
    assert context.get_tensor_shape("scores")[0] == 1 and -1 not in \
        context.get_tensor_shape("boxes")


def test_fake_set_timing_cache_refuses_a_foreign_cache():
    here, there = FakeTensorRT(gpu="Orin"), FakeTensorRT(gpu="Xavier")
    foreign = there.Builder(None).create_builder_config().create_timing_cache(b"").serialize()
    config = here.Builder(None).create_builder_config()
    cache = config.create_timing_cache(foreign)
    assert cache is not None and config.set_timing_cache(cache, ignore_mismatch=False) is False
    assert config.get_timing_cache() is None
    assert config.set_timing_cache(cache, ignore_mismatch=True) is True
    assert config.create_timing_cache(b"junk") is None
    older = FakeTensorRT("10.0.1").Builder(None).create_builder_config()
    assert config.create_timing_cache(older.create_timing_cache(b"").serialize()) is None


def test_fake_cudart_runtime_newer_than_driver_returns_error_35():
    cudart = FakeCudart(driver=12020, runtime=12090)
    assert cudart.cudaDriverGetVersion() == (0, 12020)
    assert cudart.cudaRuntimeGetVersion() == (0, 12090)
    for result in (cudart.cudaGetDeviceCount(), cudart.cudaSetDevice(0), cudart.cudaMalloc(8),
                   cudart.cudaStreamCreate()):
        assert int(result[0]) == 35
    assert int(FakeCudart(driver=12060, runtime=12020).cudaGetDeviceCount()[0]) == 0
