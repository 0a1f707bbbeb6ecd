"""Where results go: JSON lines (:mod:`.jsonl`), an annotated video (:mod:`.video`), and face
events: MQTT with Home Assistant discovery (:mod:`.mqtt`), face crops on disk (:mod:`.crops`),
a webhook (:mod:`.webhook`). Each kind registers its settings and constructor
(:mod:`.registry`); importing this package registers them all, in this order.

The device's HTTP server is an output too, but it lives a floor above the runtime
(:mod:`edgeface.http`, which uses the runtime's metrics and lender): importing
:mod:`edgeface.http.sink` registers it, and whoever assembles a run (``edgeface run``, the
doctor, the service's config check) imports it.
"""

from edgeface.runtime.sinks import jsonl, video, mqtt, crops, webhook  # noqa: F401, I001
from edgeface.runtime.sinks.base import Sink, SinkContext, SinkKind
from edgeface.runtime.sinks.jsonl import JsonLinesSink
from edgeface.runtime.sinks.registry import (
    SINKS,
    build_sinks,
    register_sink,
    sink_kinds,
    sink_options,
    with_default_output,
)
from edgeface.runtime.sinks.video import VideoSink, fourcc_for

__all__ = ["SINKS", "JsonLinesSink", "Sink", "SinkContext", "SinkKind", "VideoSink", "build_sinks",
           "fourcc_for", "register_sink", "sink_kinds", "sink_options", "with_default_output"]
