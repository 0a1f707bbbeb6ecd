"""The sink registry: each kind of output registers its settings and constructor in its own
module; ``edgeface run`` builds whichever are configured, in registration order."""

from __future__ import annotations

from typing import Any, Mapping

from edgeface.common.registry import Registry
from edgeface.runtime.options import Option
from edgeface.runtime.sinks.base import Sink, SinkContext, SinkKind

#: Every sink kind, in the order sinks are built; each registers itself in its own module.
SINKS: Registry[SinkKind] = Registry("sink kind")

#: With no output configured, detections go to stdout as JSON lines.
DEFAULT_OUTPUT = ("json", "-")


def register_sink(kind: SinkKind) -> None:
    SINKS.register(kind, replace=True)


def sink_kinds() -> dict[str, SinkKind]:
    return dict(SINKS.items())


def sink_options() -> list[Option]:
    """Every output setting (config keys under ``outputs:``), in registration order."""
    return [o for k in SINKS.values() for o in k.options]


def with_default_output(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """``outputs`` with JSON lines on stdout when no output is turned on."""
    out = dict(outputs)
    if not any(k.enabled(out) for k in SINKS.values()):
        out[DEFAULT_OUTPUT[0]] = DEFAULT_OUTPUT[1]
    return out


def build_sinks(outputs: Mapping[str, Any], context: SinkContext) -> list[Sink]:
    """Build every configured sink; if one fails, those already built are closed."""
    sinks: list[Sink] = []
    try:
        for kind in SINKS.values():
            if kind.enabled(outputs):
                sinks.append(kind.build(outputs, context))
    except BaseException:
        for s in sinks:
            try:
                s.close()
            except Exception:  # the first error is the one to report
                pass
        raise
    return sinks
