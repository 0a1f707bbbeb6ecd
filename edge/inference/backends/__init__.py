"""Inference backends and the one registry that chooses them.

Every command that runs a model goes through :func:`open_backend`; a new backend is one
module plus one :func:`register_backend` entry in :mod:`edgeface.inference.backends.registry`.
"""

from edgeface.inference.backends.base import InferenceBackend, RawOutputs, default_threads
from edgeface.inference.backends.registry import (
    PROVIDERS,
    BackendEntry,
    backend_for,
    backend_names,
    open_backend,
    register_backend,
)

__all__ = ["PROVIDERS", "BackendEntry", "InferenceBackend", "RawOutputs", "backend_for",
           "backend_names", "default_threads", "open_backend", "register_backend"]
