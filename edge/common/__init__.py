"""Small helpers every layer may use: file digests and atomic writes, human sizes, timing."""
