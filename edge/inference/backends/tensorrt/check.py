"""The doctor's checks of the TensorRT backend: TensorRT (libnvinfer, its Python bindings),
the CUDA runtime of cuda-python against the driver, and cuda-python for a configured engine.

Registered through the backend's spec (``SPEC.doctor_checks``, ``SPEC.model_check``); they
touch the machine only through the doctor's :class:`~edgeface.system.doctor.Probe`.
"""

from __future__ import annotations

from typing import Any, Optional

from edgeface.inference.backends.tensorrt import SUFFIXES
from edgeface.system.doctor import Finding, Probe
from edgeface.system.doctor_stack import VENV_FIX, l4t_of
from edgeface.system.jetpack import INSUFFICIENT_DRIVER, cuda_python_pin, driver_runtime
from edgeface.system.onnxruntime_floor import version_tuple
from edgeface.system.platform import tensorrt_from_libs


def check_tensorrt(p: Probe) -> list[Finding]:
    """TensorRT (libnvinfer, its Python bindings) and the CUDA runtime of cuda-python."""
    libs = tensorrt_from_libs(p.root)
    jetson = p.board() == "jetson"
    if not jetson and libs is None and p.version_of("tensorrt") is None:
        return [Finding("tensorrt", "skip", "not a Jetson, no TensorRT installed"),
                check_cuda(p, False)]
    trt, err = p.load("tensorrt")
    py = getattr(trt, "__version__", None) if trt is not None else None
    where = f" ({p.origin(getattr(trt, '__file__', None))})" if py else ""
    cuda = p.version_of("cuda-python")
    details = {"libnvinfer": libs, "python": py, "python_error": err, "cuda_python": cuda}
    summary = (f"libnvinfer {libs or 'not found'}, Python bindings "
               f"{py or 'not importable'}{where}, cuda-python {cuda or 'not installed'}")
    if jetson and libs and trt is None:
        fix = ("sudo apt install python3-libnvinfer" if p.python.system_site_packages()
               or not p.python.venv else VENV_FIX.format(what="TensorRT's Python bindings"))
        return [Finding("tensorrt", "info", summary, fix + " (only if you need TensorRT from "
                        "Python; ONNX Runtime's TensorRT provider does not)", details),
                check_cuda(p, jetson)]
    return [Finding("tensorrt", "ok" if (libs or py) else "info", summary, None, details),
            check_cuda(p, jetson)]


def load_cudart(p: Probe) -> tuple[Any, Optional[str]]:
    """cuda-python's runtime module (``cuda.bindings.runtime`` from 12.6.1, else
    ``cuda.cudart``) through the probe, or (None, why)."""
    mod, err = p.load("cuda.bindings.runtime")
    if mod is None:
        old, _ = p.load("cuda.cudart")
        if old is not None:
            return old, None
    return mod, err


def cuda_python_fix(p: Probe, driver: Optional[str] = None) -> str:
    pin = cuda_python_pin(l4t_of(p)) or (f"cuda-python=={driver}.*" if driver else None)
    return (f"pip install '{pin}'" if pin else "pip install cuda-python of the driver's CUDA "
            "minor (cudaDriverGetVersion), never newer")


def check_cuda(p: Probe, jetson: bool) -> Finding:
    """The driver's CUDA, cuda-python's runtime and the GPUs it sees: a runtime newer than
    the driver (pip's newest cuda-python on JetPack) fails every TensorRT call with error
    35."""
    cudart, err = load_cudart(p)
    if cudart is None:
        if not jetson:
            return Finding("cuda", "skip", "not a Jetson, no cuda-python")
        return Finding("cuda", "info", f"cuda-python not importable ({err}): only TensorRT "
                       ".engine files need it", cuda_python_fix(p))
    driver, runtime = driver_runtime(cudart)
    try:
        code, count = cudart.cudaGetDeviceCount()
        code, count = int(code), int(count)
    except Exception as exc:  # no libcuda.so.1: cuda-python raises RuntimeError
        code, count = -1, 0
        err = str(exc)
    details = {"driver": driver, "runtime": runtime, "devices": count, "error": code}
    summary = (f"driver CUDA {driver or 'not found'}, cuda-python runtime {runtime or '?'}, "
               f"{count} GPU{'s' * (count != 1)}")
    newer = bool(driver and runtime and version_tuple(runtime) > version_tuple(driver))
    if newer or code == INSUFFICIENT_DRIVER:
        return Finding("cuda", "warn", summary + ": the runtime is newer than the driver, so "
                       "every engine build and .engine open fails (cudaErrorInsufficientDriver)",
                       cuda_python_fix(p, driver), details)
    if driver is None:
        why = f"no NVIDIA driver: {err}" if err else "no NVIDIA driver"
        return Finding("cuda", "warn" if jetson else "info", f"{summary} ({why})", None,
                       details)
    if count == 0 and jetson:
        return Finding("cuda", "warn", summary + f" (error {code})", "add the user to the "
                       "'video' group; a service needs `edgeface service install --gpu`",
                       details)
    return Finding("cuda", "ok", summary, None, details)


def check_engine_cuda(p: Probe, model: Optional[str]) -> list[Finding]:
    """A configured TensorRT engine needs cuda-python: a warning when it is missing (none
    when the model is not an engine)."""
    if not model or not model.lower().endswith(SUFFIXES):
        return []
    cudart, err = load_cudart(p)
    if cudart is not None:
        return []
    return [Finding("cuda", "warn", f"{model} is a TensorRT engine and cuda-python is not "
                    f"importable ({err})", cuda_python_fix(p))]
