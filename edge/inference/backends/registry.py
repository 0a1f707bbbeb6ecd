"""The backend registry: which engine runs a model file, on which provider, with which options.

Each backend is one folder (``backends/<name>/``) whose ``__init__`` holds its
:class:`BackendSpec`, and one :data:`BACKENDS` line below. :func:`open_backend` picks the
backend from the file's suffix (``.onnx`` -> ONNX Runtime, ``.engine`` -> TensorRT, ``.pth``
-> PyTorch on the host), checks the provider, and hands the backend only the options its spec
accepts. Backends are imported only when chosen, so the registry costs nothing and a device
without torch or TensorRT never imports them. ``service install`` and ``doctor`` ask the specs
what a model needs (the GPU's device nodes, an engine built ahead, a check) instead of keeping
lists of their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeface.common.registry import Registry
from edgeface.errors import ConfigError, ModelError
from edgeface.inference.backends.base import InferenceBackend
from edgeface.inference.backends.onnxruntime import SPEC as ONNXRUNTIME
from edgeface.inference.backends.spec import BackendSpec, load_attr
from edgeface.inference.backends.tensorrt import SPEC as TENSORRT

#: The one ``--provider`` vocabulary of every command. ``auto``: the backend's own default
#: (CPU for ONNX, the GPU for a TensorRT engine).
PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")

PYTORCH = BackendSpec(
    "pytorch", (".pth", ".pt", ".tar"), ("cpu",),
    "edgeface.models.torch_backend:TorchBackend",
    "evaluating a PyTorch checkpoint needs torch: pip install 'edgeface[export]'",
    options=("threads", "arch"))

#: Every backend, one line each; for a suffix two share, the later one wins.
BACKENDS: Registry[BackendSpec] = Registry("backend")
BACKENDS.register(ONNXRUNTIME)
BACKENDS.register(PYTORCH)
BACKENDS.register(TENSORRT)


def backend_names() -> list[str]:
    """The registered backends, in registration order."""
    return BACKENDS.names()


def backend_for(model: str | os.PathLike, provider: str = "auto") -> BackendSpec:
    """The backend for a model file and provider (ONNX Runtime for unknown suffixes, so
    that it can say what is wrong with the file)."""
    provider = (provider or "auto").lower()
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r} (valid: {', '.join(PROVIDERS)})")
    suffix = Path(model).suffix.lower()
    spec = next((s for s in reversed(BACKENDS.values()) if suffix in s.suffixes),
                BACKENDS.get("onnxruntime"))
    if provider != "auto" and provider not in spec.providers:
        raise ConfigError(f"{Path(model).name}: a {suffix or 'suffix-less'} model runs on the "
                          f"{spec.name} backend, which supports --provider "
                          f"{'|'.join(spec.providers)}, not {provider}")
    return spec


def open_backend(model: str | os.PathLike, *, provider: str = "auto",
                 input_size: tuple[int, int] | None = None, **options: Any) -> InferenceBackend:
    """Open ``model`` with the backend its type calls for.

    ``provider``: one of :data:`PROVIDERS`; ``input_size``: (width, height) for models with
    a dynamic input; ``options``: those of the backend's spec (``threads``, CPU threads, None:
    the cores this process may use; ``arena`` for ONNX Runtime; ``arch`` for PyTorch...).
    Raises :class:`~edgeface.errors.ModelError` (exit 3) for a missing or unusable model.
    """
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}" if not path.exists()
                         else f"model is not a regular file: {path}")
    spec = backend_for(path, provider)
    return spec.load()(path, provider=spec.provider(provider), input_size=input_size,
                       **spec.accepted(options))


def doctor_checks() -> list[tuple[str, Any]]:
    """The machine checks every registered backend asks the doctor for, in registration
    order: ``(name, check(probe))``."""
    return [(name, load_attr(ref, f"the {spec.name} backend's {name} check"))
            for spec in BACKENDS.values() for name, ref in spec.doctor_checks]


def model_checks(model: str | os.PathLike | None) -> list[tuple[str, Any]]:
    """The doctor checks the backend of a configured ``model`` asks for (none without a
    model or a check): ``(name, check(probe))``, bound to the model."""
    if not model:
        return []
    spec = backend_for(model)
    if spec.model_check is None:
        return []
    check = load_attr(spec.model_check, f"the {spec.name} backend's model check")
    return [(spec.name, lambda p: check(p, str(model)))]
