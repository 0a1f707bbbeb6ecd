"""Where results go: JSON lines (:mod:`.jsonl`), an annotated video (:mod:`.video`), the
device's HTTP server (:mod:`.http`), and face events: MQTT with Home Assistant discovery
(:mod:`.mqtt`), face crops on disk (:mod:`.crops`), a webhook (:mod:`.webhook`). Each kind
registers its settings and constructor (:mod:`.registry`); importing this package registers
them all, in this order.
"""

from edgeface.runtime.sinks import jsonl, video, http, mqtt, crops, webhook  # noqa: F401, I001
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
