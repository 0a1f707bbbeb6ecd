"""The CUDA runtime calls the TensorRT paths make, through NVIDIA's cuda-python bindings.

Why cuda-python and not pycuda: NVIDIA's own TensorRT Python samples use it from TensorRT 8.6
on (``samples/python/common_runtime.py`` in TensorRT 10.3: ``cudart.cudaMalloc``,
``cudaMallocHost``, ``cudaMemcpyAsync``, ``cudaStreamCreate``...); it ships Linux arm64
wheels built against the static CUDA runtime, so a Jetson needs only the driver L4T already
has, while pycuda is a source distribution compiled on the device against the CUDA headers
and ``nvcc`` (a cuda-toolkit install, minutes of build on a Nano). Pin the bindings to the
device's CUDA major: JetPack 6 ``cuda-python>=12.2,<13``; JetPack 5 (CUDA 11.4)
``cuda-python>=11.4,<11.9`` (13.x needs driver 580+).

Every call returns ``(err, *values)``; :func:`call` checks ``err`` and unpacks. Since
cuda-python 12.6.1 the module is ``cuda.bindings.runtime`` (``cuda.cudart`` still works, with
a DeprecationWarning); both are tried.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from edgeface.errors import EXIT_USAGE, EdgefaceError, MissingDependency

CUDA_PYTHON_HINT = ("install NVIDIA's CUDA Python bindings: pip install 'cuda-python>=12.2,<13' "
                    "(JetPack 6; JetPack 5: 'cuda-python>=11.4,<11.9')")


class CudaError(EdgefaceError):
    """A CUDA runtime call failed."""


def load_cudart() -> Any:
    """The CUDA runtime module of cuda-python, or MissingDependency (exit 2)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6.1
    except ImportError:
        try:
            from cuda import cudart  # older releases, as in TensorRT 8.6-10.x samples
        except ImportError as exc:
            raise MissingDependency(f"the CUDA runtime bindings are not importable ({exc}); "
                                    f"{CUDA_PYTHON_HINT}") from None
    return cudart


def call(cudart: Any, result: Any, what: str) -> Any:
    """Check a cuda-python result tuple; return its value (None, one value or a tuple)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise CudaError(f"CUDA {what} failed: {getattr(err, 'name', err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_properties(cudart: Any, device: int = 0) -> dict[str, Any]:
    """Name, compute capability, multiprocessors and memory of GPU ``device``; a clear
    error (exit 2) when there is no GPU."""
    try:
        count = call(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    except CudaError as exc:
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
