"""The CUDA runtime calls the TensorRT paths make, through NVIDIA's cuda-python bindings.

Why cuda-python and not pycuda: NVIDIA's own TensorRT Python samples use it from TensorRT 8.6
on (``samples/python/common_runtime.py`` in TensorRT 10.3: ``cudart.cudaMalloc``,
``cudaMallocHost``, ``cudaMemcpyAsync``, ``cudaStreamCreate``...); it ships Linux arm64
wheels, while pycuda is a source distribution compiled on the device against the CUDA
headers and ``nvcc`` (a cuda-toolkit install, minutes of build on a Nano).

Its wheels carry a static CUDA runtime of their own minor version, and on a Jetson that
runtime must not be newer than the driver L4T installs (JetPack 6.0: CUDA 12.2, 6.1/6.2:
12.6): a newer one fails every call with ``cudaErrorInsufficientDriver`` (35), and the
``>=12.2,<13`` pin once installed 12.9.x. So the pin follows the JetPack minor
(:func:`edgeface.system.jetpack.cuda_python_pin`; the extras ``jetson60`` / ``jetson61``),
and error 35 is reported as the driver/runtime mismatch it is, with both versions
(:func:`mismatch_message`).

Every call returns ``(err, *values)``; :func:`call` checks ``err`` and unpacks. Since
cuda-python 12.6.1 the module is ``cuda.bindings.runtime`` (``cuda.cudart`` still works, with
a DeprecationWarning); both are tried.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from edgeface.errors import EXIT_USAGE, EdgefaceError, MissingDependency
from edgeface.system.jetpack import (
    INSUFFICIENT_DRIVER,
    cuda_python_pin,
    driver_runtime,
    jetson_extra,
)


class CudaError(EdgefaceError):
    """A CUDA runtime call failed; ``error`` is the cudaError_t value (an int)."""

    def __init__(self, message: str, error: int | None = None, exit_code: int | None = None):
        super().__init__(message, exit_code)
        self.error = error


def cuda_python_hint(root: str | os.PathLike = "/") -> str:
    """How to install cuda-python on this device (its L4T release picks the minor)."""
    from edgeface.inference.backends.tensorrt.cache import jetson_release

    l4t, jetpack = jetson_release(root)
    pin = cuda_python_pin(l4t)
    if pin:
        extra = jetson_extra(l4t)
        return (f"install NVIDIA's CUDA Python bindings of this JetPack's CUDA: pip install "
                f"'{pin}' (L4T {l4t}, JetPack {jetpack}; or the project's [{extra}] extra)")
    return ("install NVIDIA's CUDA Python bindings of the driver's CUDA minor, never newer: "
            "pip install 'cuda-python==12.6.*' (JetPack 6.1/6.2) or 'cuda-python==12.2.*' "
            "(JetPack 6.0)")


def load_cudart(root: str | os.PathLike = "/") -> Any:
    """The CUDA runtime module of cuda-python; MissingDependency (exit 2) without it, and a
    one-line error (exit 2) where it cannot load the driver."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6.1
    except ImportError:
        try:
            from cuda import cudart  # older releases, as in TensorRT 8.6-10.x samples
        except ImportError as exc:
            raise MissingDependency(f"the CUDA runtime bindings are not importable ({exc}); "
                                    f"{cuda_python_hint(root)}") from None
    try:  # cuda-python raises (not returns) when libcuda.so.1 cannot be loaded
        cudart.cudaDriverGetVersion()
    except RuntimeError as exc:
        raise EdgefaceError(f"no NVIDIA driver here ({exc}): TensorRT engines run on a Jetson "
                            "or a machine with an NVIDIA GPU and its driver", EXIT_USAGE) from None
    return cudart


def mismatch_message(cudart: Any, root: str | os.PathLike = "/") -> str:
    """Error 35 in words: which runtime, which driver, and the pin that matches."""
    driver, runtime = driver_runtime(cudart)
    from edgeface.inference.backends.tensorrt.cache import jetson_release

    l4t, jetpack = jetson_release(root)
    where = f" (L4T {l4t}, JetPack {jetpack})" if l4t else ""
    pin = cuda_python_pin(l4t) or (f"cuda-python=={driver}.*" if driver else None)
    fix = f"pip install '{pin}'" if pin else cuda_python_hint(root)
    return (f"the CUDA driver is older than cuda-python's CUDA runtime: runtime "
            f"{runtime or '?'}, driver {driver or '?'}{where} (cudaErrorInsufficientDriver); "
            f"{fix}")


def call(cudart: Any, result: Any, what: str) -> Any:
    """Check a cuda-python result tuple; return its value (None, one value or a tuple)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        if int(err) == INSUFFICIENT_DRIVER:
            raise CudaError(f"CUDA {what} failed: {mismatch_message(cudart)}", int(err),
                            EXIT_USAGE)
        raise CudaError(f"CUDA {what} failed: {getattr(err, 'name', err)}", int(err))
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_properties(cudart: Any, device: int = 0) -> dict[str, Any]:
    """Name, compute capability, multiprocessors and memory of GPU ``device``; a clear
    error (exit 2) when there is no GPU."""
    try:
        count = call(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    except CudaError as exc:
        if exc.error == INSUFFICIENT_DRIVER:  # not a permissions problem: say what it is
            raise
        count, why = 0, str(exc)
    else:
        why = f"{count} CUDA devices"
    if not count or device >= count:
        raise EdgefaceError(
            f"no CUDA GPU {device} is visible ({why}): TensorRT engines run on an NVIDIA GPU "
            "(a Jetson: is this user in the 'video' group, and the service allowed the GPU "
            "nodes? `edgeface service install --gpu`)", EXIT_USAGE)
    p = call(cudart, cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = p.name.decode(errors="replace") if isinstance(p.name, bytes) else str(p.name)
    return {"gpu_name": name.rstrip("\x00").strip(), "compute_capability": f"{p.major}.{p.minor}",
            "sm_count": int(p.multiProcessorCount),
            "gpu_memory_mb": int(p.totalGlobalMem) // (1 << 20)}


class PinnedArray:
    """A page-locked host array (fast, asynchronous copies) and its device twin."""

    def __init__(self, cudart: Any, shape: tuple[int, ...], dtype: Any):
        self.cudart = cudart
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.host_ptr = call(cudart, cudart.cudaMallocHost(self.nbytes), "cudaMallocHost")
        self.device_ptr = None
        try:
            self.device_ptr = call(cudart, cudart.cudaMalloc(self.nbytes), "cudaMalloc")
        except CudaError:
            cudart.cudaFreeHost(self.host_ptr)
            raise
        # The pattern of TensorRT 10.3's samples/python/common_runtime.py (HostDeviceMem).
        ptr = ctypes.cast(int(self.host_ptr), ctypes.POINTER(np.ctypeslib.as_ctypes_type(
            self.dtype)))
        self.host = np.ctypeslib.as_array(ptr, (int(np.prod(shape)),)).reshape(shape)

    def upload(self, stream: Any) -> None:
        call(self.cudart, self.cudart.cudaMemcpyAsync(
            self.device_ptr, self.host_ptr, self.nbytes,
            self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync H2D")

    def download(self, stream: Any) -> None:
        call(self.cudart, self.cudart.cudaMemcpyAsync(
            self.host_ptr, self.device_ptr, self.nbytes,
            self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync D2H")

    def free(self) -> None:
        if self.device_ptr is not None:
            self.cudart.cudaFree(self.device_ptr)
            self.device_ptr = None
        if self.host_ptr is not None:
            self.host = None
            self.cudart.cudaFreeHost(self.host_ptr)
            self.host_ptr = None
