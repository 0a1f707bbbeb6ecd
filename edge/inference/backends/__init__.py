"""Inference backends and the one registry that chooses them.

Every command that runs a model goes through :func:`open_backend`. A backend is one folder
(``backends/<name>/``, its :class:`BackendSpec` in the folder's ``__init__``) plus one
``BACKENDS.register(...)`` line in :mod:`edgeface.inference.backends.registry`.
"""

from edgeface.inference.backends.base import InferenceBackend, RawOutputs, default_threads
from edgeface.inference.backends.registry import (
    BACKENDS,
    PROVIDERS,
    backend_for,
    backend_names,
    open_backend,
)
from edgeface.inference.backends.spec import BackendSpec

__all__ = ["BACKENDS", "PROVIDERS", "BackendSpec", "InferenceBackend", "RawOutputs",
           "backend_for", "backend_names", "default_threads", "open_backend"]
