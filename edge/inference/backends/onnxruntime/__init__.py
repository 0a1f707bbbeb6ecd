"""The ONNX Runtime backend: edgeface ONNX exports (FP32 or INT8) on the CPU, CUDA or
TensorRT execution providers (``runtime.py``). Importing this package imports neither
``runtime.py`` nor ONNX Runtime: only :data:`SPEC`.
"""

from edgeface.inference.backends.spec import BackendSpec

SPEC = BackendSpec(
    "onnxruntime", (".onnx", ".ort"), ("cpu", "cuda", "tensorrt"),
    "edgeface.inference.backends.onnxruntime.runtime:OnnxRuntimeBackend",
    "install ONNX Runtime: pip install 'edgeface[cpu]' (on a Jetson, JetPack's "
    "onnxruntime-gpu wheel instead)",
    options=("threads", "arena", "fp16", "cache_dir", "family"),
    gpu_providers=("cuda", "tensorrt"),
    builds_on_open=("tensorrt",),  # the TensorRT provider builds its engine in the session
    doctor_checks=(("onnxruntime", "edgeface.system.doctor_stack:check_onnxruntime"),
                   ("deformconv", "edgeface.system.doctor_stack:check_deformconv")),
)
