"""The HTTP output: keeps the newest result for the device's HTTP server and runs it."""

from __future__ import annotations

from typing import Any, Mapping

from edgeface.inference.results import FrameResult
from edgeface.runtime.http.latest import LatestSink
from edgeface.runtime.options import Option, string
from edgeface.runtime.sinks.base import SinkContext, SinkKind
from edgeface.runtime.sinks.registry import register_sink


class HttpSink:
    """Hands each result to the server's :class:`LatestSink`; closing stops the server."""

    def __init__(self, bind: str, metrics: Any):
        from edgeface.runtime.http.server import StatusServer, parse_bind

        host, port = parse_bind(bind)
        self.latest = LatestSink()
        self.server = StatusServer(self.latest, metrics, host, port).start()

    def write(self, result: FrameResult) -> None:
        if not result.only_events:
            self.latest.write(result)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.latest.close()  # wakes streaming clients so that they return
        self.server.close()

    def describe(self) -> str:
        return f"http {self.server.url}/"


def _build(values: Mapping[str, Any], context: SinkContext) -> HttpSink:
    return HttpSink(values["http"], context.metrics)


register_sink(SinkKind("http", (
    Option("http", "--http", string, metavar="[HOST:]PORT",
           help="Serve /stream.mjpg, /snapshot.jpg, /detections, /healthz and /metrics "
                "(host defaults to 127.0.0.1)."),
), _build))
