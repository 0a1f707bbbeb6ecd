"""edgeface: FeatherFace face detection from a PyTorch checkpoint to an edge service."""

__version__ = "0.3.0"
