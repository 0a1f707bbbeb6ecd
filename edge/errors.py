"""Errors the user can act on, each with a documented process exit code."""

from __future__ import annotations

# Exit codes (documented in docs/exit-codes.md, relied upon by systemd's Restart= logic).
EXIT_OK = 0
EXIT_FAILURE = 1  # generic runtime failure, or some inputs failed (e.g. `detect` on a bad image)
EXIT_USAGE = 2  # bad command line or configuration (click uses 2 as well)
EXIT_BAD_MODEL = 3  # model file missing, not ONNX, or wrong input layout
EXIT_SOURCE = 4  # frame source cannot be opened / stream unreachable
EXIT_MEMORY = 5  # the runtime's own memory limit would be exceeded


class EdgefaceError(Exception):
    """An error with a one-line, actionable message and a process exit code."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ModelError(EdgefaceError):
    exit_code = EXIT_BAD_MODEL


class SourceError(EdgefaceError):
    exit_code = EXIT_SOURCE


class ConfigError(EdgefaceError):
    exit_code = EXIT_USAGE


class MemoryLimitExceeded(EdgefaceError):
    exit_code = EXIT_MEMORY


class MissingDependency(EdgefaceError):
    """An optional dependency is not installed; the message says how to get it."""

    exit_code = EXIT_USAGE


def require(module: str, extra: str, hint: str = "") -> object:
    """Import an optional dependency or raise MissingDependency naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{module} is not installed ({exc}); install it with: pip install 'edgeface[{extra}]'"
        if hint:
            msg += f" ({hint})"
        raise MissingDependency(msg) from None
