"""A stand-in for cuda-python's CUDA runtime module (``cuda.bindings.runtime``) on a machine
without a GPU. It is NOT CUDA.

Calls return ``(err, *values)`` as cuda-python's do, with cuda-python's parameter names and
cudaError_t values (tests/inference/test_tensorrt_contract.py holds it to the real module);
device and pinned memory are real numpy buffers whose addresses are the "pointers", so copies
between them are real copies. ``FakeCudart(driver=12020, runtime=12090)`` poses as a
cuda-python whose static runtime is newer than the driver (JetPack 6.0 with cuda-python
12.9): every call but the two version queries fails with cudaErrorInsufficientDriver (35), as
on a Jetson.
"""

from __future__ import annotations

import ctypes
import enum
import time
import types
from typing import Any

import numpy as np


class _Enum(enum.IntEnum):
    pass


class FakeCudart(types.ModuleType):
    """cuda-python's ``cuda.bindings.runtime``, with numpy buffers as memory."""

    #: Test bookkeeping, not cuda-python API (the contract test checks none is a real name).
    FAKE_ONLY = frozenset({"devices", "props", "memory", "kinds", "copies", "streams",
                           "events", "driver", "runtime", "FAKE_ONLY"})

    def __init__(self, devices: int = 1, name: bytes = b"Orin", cc: tuple[int, int] = (8, 7),
                 sms: int = 8, driver: int = 12060, runtime: int = 12060):
        super().__init__("cuda.bindings.runtime")
        self.cudaError_t = _Enum("cudaError_t", {"cudaSuccess": 0,
                                                 "cudaErrorInsufficientDriver": 35,
                                                 "cudaErrorNoDevice": 100})
        self.cudaMemcpyKind = _Enum("cudaMemcpyKind", {"cudaMemcpyHostToDevice": 1,
                                                       "cudaMemcpyDeviceToHost": 2})
        self.devices = devices
        self.driver, self.runtime = driver, runtime
        self.props = types.SimpleNamespace(name=name, major=cc[0], minor=cc[1],
                                           multiProcessorCount=sms, totalGlobalMem=7 << 30)
        self.memory: dict[int, np.ndarray] = {}
        self.kinds: dict[int, str] = {}
        self.copies: list[tuple[str, int]] = []
        self.streams = 0
        self.events: dict[int, float] = {}

    def _status(self) -> Any:
        """cudaSuccess, or error 35 when this runtime is newer than the driver."""
        if self.runtime > self.driver:
            return self.cudaError_t.cudaErrorInsufficientDriver
        return self.cudaError_t.cudaSuccess

    def cudaDriverGetVersion(self) -> tuple:
        return (self.cudaError_t.cudaSuccess, self.driver)

    def cudaRuntimeGetVersion(self) -> tuple:
        return (self.cudaError_t.cudaSuccess, self.runtime)

    def cudaGetDeviceCount(self) -> tuple:
        if self._status():
            return (self._status(), 0)
        if not self.devices:
            return (self.cudaError_t.cudaErrorNoDevice, 0)
        return (self._status(), self.devices)

    def cudaGetDeviceProperties(self, device: int) -> tuple:
        return (self._status(), self.props)

    def cudaSetDevice(self, device: int) -> tuple:
        return (self._status(),)

    def _alloc(self, n: int, kind: str) -> tuple:
        if self._status():
            return (self._status(), 0)
        buf = np.zeros(n, np.uint8)
        self.memory[buf.ctypes.data] = buf
        self.kinds[buf.ctypes.data] = kind
        return (self._status(), buf.ctypes.data)

    def cudaMalloc(self, size: int) -> tuple:
        return self._alloc(size, "device")

    def cudaMallocHost(self, size: int) -> tuple:
        return self._alloc(size, "pinned")

    def cudaFree(self, devPtr: int) -> tuple:  # cuda-python names it devPtr
        assert self.kinds.pop(devPtr) == "device"
        del self.memory[devPtr]
        return (self._status(),)

    def cudaFreeHost(self, ptr: int) -> tuple:
        assert self.kinds.pop(ptr) == "pinned"
        del self.memory[ptr]
        return (self._status(),)

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple:
        return self.cudaMemcpy(dst, src, count, kind)

    def cudaMemcpy(self, dst: int, src: int, count: int, kind: Any) -> tuple:
        want = "device" if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice else None
        assert want is None or self.kinds.get(int(dst)) == want, "H2D into non-device memory"
        ctypes.memmove(int(dst), int(src), count)
        self.copies.append((kind.name, count))
        return (self._status(),)

    def cudaStreamCreate(self) -> tuple:
        self.streams += 1
        return (self._status(), 1000 + self.streams)

    def cudaStreamSynchronize(self, stream: Any) -> tuple:
        return (self._status(),)

    def cudaStreamDestroy(self, stream: Any) -> tuple:
        self.streams -= 1
        return (self._status(),)

    def cudaEventCreate(self) -> tuple:
        ev = max(self.events, default=0) + 1
        self.events[ev] = 0.0
        return (self._status(), ev)

    def cudaEventRecord(self, event: int, stream: Any) -> tuple:
        self.events[event] = time.perf_counter()
        return (self._status(),)

    def cudaEventElapsedTime(self, start: int, end: int) -> tuple:
        return (self._status(), (self.events[end] - self.events[start]) * 1000.0)

    def cudaEventDestroy(self, event: int) -> tuple:
        self.events.pop(event, None)
        return (self._status(),)
