"""What a backend is to the rest of edgeface: a :class:`BackendSpec`, kept in the
``__init__`` of the backend's folder and registered in :mod:`.registry` (one line).

Nothing here imports a backend: the spec names its constructor, checks and builder as
``"module:attribute"`` strings, imported only when used.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Callable

from edgeface.errors import ConfigError, MissingDependency

log = logging.getLogger(__name__)

#: Settings every command passes to whichever backend runs the model: a backend whose spec
#: does not take one (TensorRT: the GPU uses no CPU threads or arena) never receives it.
RUN_OPTIONS = ("threads", "arena")


def load_attr(ref: str, what: str, install: str = "") -> Any:
    """``"module:attribute"`` imported now; a MissingDependency with ``install`` when the
    module cannot be imported."""
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise MissingDependency(f"{what} cannot be loaded ({exc})"
                                + (f"; {install}" if install else "")) from None


@dataclass(frozen=True)
class BackendSpec:
    """One backend: the files it opens, where it runs, what it accepts and needs."""

    name: str
    suffixes: tuple[str, ...]  # lower-case file suffixes it opens
    providers: tuple[str, ...]  # providers it serves; the first is its choice for "auto"
    factory: str  # "module:Class", imported when the backend is chosen
    install: str  # what to install when the module cannot be imported
    #: keyword options of the constructor besides provider and input_size
    options: tuple[str, ...] = ()
    #: providers that need the GPU's device nodes (a service unit then gets them)
    gpu_providers: tuple[str, ...] = ()
    #: providers on which opening a model builds an engine first (minutes on a Jetson: a
    #: service install builds it ahead, or gives the first start time for it)
    builds_on_open: tuple[str, ...] = ()
    #: its model files are built for one device: installed with their sidecar and checked
    #: against the device that runs them
    device_bound: bool = False
    #: doctor checks of this machine for the backend: (check name, "module:function")
    doctor_checks: tuple[tuple[str, str], ...] = ()
    #: doctor check of a configured model of this backend: "module:function(probe, model)"
    model_check: str | None = None
    #: builds what a model needs before its first frame: "module:function"
    engine_builder: str | None = None

    def load(self) -> Callable[..., Any]:
        return load_attr(self.factory, f"the {self.name} backend", self.install)

    def provider(self, provider: str | None) -> str:
        """The provider ``provider`` ("auto"/None: the backend's first) stands for."""
        return self.providers[0] if provider in (None, "", "auto") else provider.lower()

    def needs_gpu(self, provider: str | None = "auto") -> bool:
        return self.provider(provider) in self.gpu_providers

    def builds_engine(self, provider: str | None = "auto") -> bool:
        """Whether opening a model on ``provider`` builds an engine first."""
        return self.provider(provider) in self.builds_on_open

    def accepted(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` this backend takes; the shared run settings it does not use are
        dropped, anything else it does not know is a ConfigError."""
        unknown = sorted(k for k in options if k not in self.options and k not in RUN_OPTIONS)
        if unknown:
            raise ConfigError(f"the {self.name} backend has no option "
                              f"{', '.join(map(repr, unknown))} (its options: "
                              f"{', '.join(self.options) or 'none'})")
        dropped = [k for k in options if k not in self.options and options[k] is not None]
        if dropped:
            log.debug("%s backend: %s not used", self.name, ", ".join(dropped))
        return {k: v for k, v in options.items() if k in self.options}
