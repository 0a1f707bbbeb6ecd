"""The ONNX Runtime backend: ONNX models on CPU, CUDA or TensorRT execution providers."""
