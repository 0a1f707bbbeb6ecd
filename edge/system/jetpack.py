"""What a Jetson's L4T release decides for the packages pip installs there: the CUDA minor
of cuda-python and the Jetson community index of onnxruntime-gpu. Numpy-free, so that
``doctor`` can use it on a broken stack.

Facts (NVIDIA's JetPack 6 release notes): L4T 36.3 = JetPack 6.0, CUDA 12.2, TensorRT 8.6,
cuDNN 8.9; L4T 36.4 = JetPack 6.1/6.2, CUDA 12.6, TensorRT 10.3, cuDNN 9.3. cuda-python's
wheels carry a static CUDA runtime of their own minor, which on a Jetson must not be newer
than the driver's: a 12.9 runtime on the 12.2 driver fails every call with
``cudaErrorInsufficientDriver`` (35). The cu126 index's onnxruntime-gpu needs cuDNN 9 and
TensorRT 10, so JetPack 6.0 takes the cu122 index.
"""

from __future__ import annotations

from typing import Any

#: cudaError_t 35: "the installed NVIDIA CUDA driver is older than the CUDA runtime library".
INSUFFICIENT_DRIVER = 35
JETSON_INDEX = "https://pypi.jetson-ai-lab.io/jp6/{cu}"
#: L4T major.minor -> (cuda-python pin, the project's extra, onnxruntime-gpu index).
BY_L4T = {"36.2": ("12.2.*", "jetson60", "cu122"), "36.3": ("12.2.*", "jetson60", "cu122"),
          "36.4": ("12.6.*", "jetson61", "cu126")}
#: apt's numpy on JetPack 6 (Ubuntu 22.04) is 1.21.5; onnxruntime-gpu needs >= 1.21.6, and
#: numpy 2 breaks apt's python3-opencv (built against 1.x).
JETSON_NUMPY = "numpy>=1.21.6,<2"


def _l4t_key(l4t: str | None) -> str:
    return ".".join((l4t or "").split(".")[:2])


def cuda_python_pin(l4t: str | None) -> str | None:
    """``cuda-python==12.6.*`` for L4T 36.4 (JetPack 6.1/6.2), ``==12.2.*`` for 36.3 (6.0);
    None for another or no L4T release."""
    got = BY_L4T.get(_l4t_key(l4t))
    return f"cuda-python=={got[0]}" if got else None


def jetson_extra(l4t: str | None) -> str | None:
    """The setup.cfg extra (``jetson60`` / ``jetson61``) of this L4T release."""
    got = BY_L4T.get(_l4t_key(l4t))
    return got[1] if got else None


def ort_index(l4t: str | None) -> str:
    """The Jetson index of onnxruntime-gpu for this L4T (unknown: JetPack 6.1/6.2's)."""
    return JETSON_INDEX.format(cu=BY_L4T.get(_l4t_key(l4t), BY_L4T["36.4"])[2])


def cuda_version(v: int) -> str:
    """CUDA's version integer 12020 -> ``12.2``."""
    return f"{v // 1000}.{v % 1000 // 10}"


def driver_runtime(cudart: Any) -> tuple[str | None, str | None]:
    """(the driver's CUDA version, cuda-python's runtime version), e.g. ("12.2", "12.9");
    None for one that cannot be read (no driver: cuda-python raises when libcuda.so.1 is
    missing)."""
    out: list[str | None] = []
    for fn in ("cudaDriverGetVersion", "cudaRuntimeGetVersion"):
        try:
            err, v = getattr(cudart, fn)()
        except Exception:
            out.append(None)
            continue
        out.append(cuda_version(int(v)) if int(err) == 0 and int(v) > 0 else None)
    return out[0], out[1]
