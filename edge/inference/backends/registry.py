"""The backend registry: which engine runs a model file, on which provider.

:func:`open_backend` picks the backend from the file's suffix (``.onnx`` -> ONNX Runtime,
``.engine`` -> TensorRT, ``.pth`` -> PyTorch on the host) and checks that it can run on the
requested provider. Backends are imported only when chosen, so the registry costs nothing
and a device without torch or TensorRT never imports them.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeface.errors import ConfigError, MissingDependency, ModelError
from edgeface.inference.backends.base import InferenceBackend

#: The one ``--provider`` vocabulary of every command. ``auto``: the backend's own default
#: (CPU for ONNX, the GPU for a TensorRT engine).
PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class BackendEntry:
    """One backend: the files it opens, where it runs and how to construct it."""

    name: str
    suffixes: tuple[str, ...]  # lower-case file suffixes it opens
    providers: tuple[str, ...]  # providers it serves; the first is its choice for "auto"
    factory: str  # "module:attribute", imported when the backend is chosen
    install: str  # what to install when the module cannot be imported

    def load(self) -> Any:
        module, _, attr = self.factory.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise MissingDependency(f"the {self.name} backend cannot be loaded ({exc}); "
                                    f"{self.install}") from None


_BACKENDS: dict[str, BackendEntry] = {}


def register_backend(entry: BackendEntry) -> None:
    """Add (or replace) a backend; later entries win for a shared suffix."""
    _BACKENDS[entry.name] = entry


def backend_names() -> list[str]:
    return list(_BACKENDS)


def backend_for(model: str | os.PathLike, provider: str = "auto") -> BackendEntry:
    """The backend for a model file and provider (ONNX Runtime for unknown suffixes, so
    that it can say what is wrong with the file)."""
    provider = (provider or "auto").lower()
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r} (valid: {', '.join(PROVIDERS)})")
    suffix = Path(model).suffix.lower()
    entry = next((e for e in reversed(_BACKENDS.values()) if suffix in e.suffixes),
                 _BACKENDS["onnxruntime"])
    if provider != "auto" and provider not in entry.providers:
        raise ConfigError(f"{Path(model).name}: a {suffix or 'suffix-less'} model runs on the "
                          f"{entry.name} backend, which supports --provider "
                          f"{'|'.join(entry.providers)}, not {provider}")
    return entry


def open_backend(model: str | os.PathLike, *, provider: str = "auto",
                 threads: int | None = None, input_size: tuple[int, int] | None = None,
                 **options: Any) -> InferenceBackend:
    """Open ``model`` with the backend its type calls for.

    ``provider``: one of :data:`PROVIDERS`; ``threads``: CPU threads (None: the cores this
    process may use); ``input_size``: (width, height) for models with a dynamic input;
    ``options``: backend-specific (e.g. ``arena`` for ONNX Runtime, ``arch`` for PyTorch).
    Raises :class:`~edgeface.errors.ModelError` (exit 3) for a missing or unusable model.
    """
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}" if not path.exists()
                         else f"model is not a regular file: {path}")
    entry = backend_for(path, provider)
    chosen = entry.providers[0] if provider in (None, "", "auto") else provider.lower()
    return entry.load()(path, provider=chosen, threads=threads, input_size=input_size,
                        **options)


register_backend(BackendEntry(
    "onnxruntime", (".onnx", ".ort"), ("cpu", "cuda", "tensorrt"),
    "edgeface.inference.backends.onnxruntime.runtime:OnnxRuntimeBackend",
    "install ONNX Runtime: pip install 'edgeface[cpu]' (on a Jetson, JetPack's "
    "onnxruntime-gpu wheel instead)"))
register_backend(BackendEntry(
    "pytorch", (".pth", ".pt", ".tar"), ("cpu",),
    "edgeface.models.torch_backend:TorchBackend",
    "evaluating a PyTorch checkpoint needs torch: pip install 'edgeface[export]'"))
register_backend(BackendEntry(
    "tensorrt", (".engine", ".plan"), ("tensorrt",),
    "edgeface.inference.backends.tensorrt.runtime:TensorRTBackend",
    "a TensorRT engine needs TensorRT's Python bindings (on a Jetson: sudo apt install "
    "python3-libnvinfer) and cuda-python of JetPack's CUDA minor (JetPack 6.1/6.2: pip install "
    "'cuda-python==12.6.*', 6.0: '12.2.*')"))
