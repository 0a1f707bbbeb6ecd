"""The TensorRT backend, all of it in this folder: serialized engines run on the GPU.

- ``runtime.py``: :class:`~.runtime.TensorRTBackend`, which runs an engine (``.engine`` /
  ``.plan``) with buffers bound once;
- ``cuda.py``: the CUDA runtime through cuda-python (pinned host and device buffers);
- ``cache.py``: the engine's sidecar (what it was built from and for) and the staleness check;
- ``plan.py`` / ``build.py``: ``edgeface quantize --tensorrt``'s build plan and the build;
- ``qdq.py``: TensorRT's Q/DQ rules (the INT8 model ``quantize --target tensorrt`` makes);
- ``check.py``: the doctor's TensorRT and CUDA checks.

Importing this package imports none of them (nor TensorRT): only :data:`SPEC`.
"""

from edgeface.inference.backends.spec import BackendSpec

SUFFIXES = (".engine", ".plan")
_HERE = "edgeface.inference.backends.tensorrt"

SPEC = BackendSpec(
    "tensorrt", SUFFIXES, ("tensorrt",), f"{_HERE}.runtime:TensorRTBackend",
    "a TensorRT engine needs TensorRT's Python bindings (on a Jetson: sudo apt install "
    "python3-libnvinfer) and cuda-python of JetPack's CUDA minor (JetPack 6.1/6.2: pip install "
    "'cuda-python==12.6.*', 6.0: '12.2.*')",
    options=("device", "root"),
    gpu_providers=("tensorrt",),
    device_bound=True,
    doctor_checks=(("tensorrt", f"{_HERE}.check:check_tensorrt"),),
    model_check=f"{_HERE}.check:check_engine_cuda",
    engine_builder=f"{_HERE}.build:build_engine",
)
