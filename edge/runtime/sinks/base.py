"""The sink interface: where processed frames go, and how a kind of sink declares itself.

A sink receives one :class:`~edgeface.frames.FrameResult` per processed frame
from the processing loop, so ``write`` must be cheap; anything expensive that nobody asked
for (JPEG encoding, drawing) is done lazily by whoever consumes it, or in the sink's own
thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol

from edgeface.frames import FrameResult
from edgeface.runtime.options import Option
from edgeface.runtime.settings import DetectionSettings, LimitSettings


class Sink(Protocol):
    def write(self, result: FrameResult) -> None:  # pragma: no cover
        ...

    def flush(self) -> None:  # pragma: no cover
        ...

    def close(self) -> None:  # pragma: no cover
        ...

    def describe(self) -> str:  # pragma: no cover
        """Where the output goes, for the startup line (``json out.jsonl``)."""
        ...


@dataclass(frozen=True)
class SinkContext:
    """What a sink may need from the run when it is built."""

    source_fps: Optional[float] = None  # the source's nominal frame rate (video files)
    metrics: Any = None  # edgeface.runtime.metrics.Metrics, for the HTTP server
    source_name: str = ""
    #: The run's checked detection settings and limits (for the image API).
    detection: DetectionSettings = DetectionSettings()
    limits: LimitSettings = LimitSettings()
    #: The camera's detector, lent between frames (edgeface.runtime.lend.DetectorLender),
    #: for the HTTP server's POST /detect.
    lender: Any = None


@dataclass(frozen=True)
class SinkKind:
    """One kind of output. ``options`` are its settings under ``outputs:`` in the config;
    the first is the one that turns it on (``json``, ``video``, ``http``). ``build(values,
    context)`` receives the merged ``outputs`` values."""

    name: str
    options: tuple[Option, ...]
    build: Callable[[Mapping[str, Any], SinkContext], Sink]

    @property
    def key(self) -> str:
        return self.options[0].key

    def enabled(self, outputs: Mapping[str, Any]) -> bool:
        return bool(outputs.get(self.key))
