"""Host-side model conversion: PyTorch -> ONNX export, INT8 quantization, TensorRT engines."""
