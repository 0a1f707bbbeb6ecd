"""The TensorRT backend: runs, builds, plans and checks TensorRT engines (one folder)."""
