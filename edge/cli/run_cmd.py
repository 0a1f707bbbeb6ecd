"""`edgeface run`: the command the device runs all day (never imports torch)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from edgeface.errors import EXIT_FAILURE, ConfigError, EdgefaceError, SourceError
from edgeface.runtime.config import (
    DEFAULTS,
    DESTINATION_KEYS,
    PROVIDERS,
    load_config,
    merge,
    parse_wxh,
    sources_given,
)

_D = DEFAULTS


@click.command("run")
@click.option("-m", "--model", type=click.Path(path_type=Path), default=None,
              help="ONNX model from `edgeface export` or `edgeface quantize` (FP32 or INT8).")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="YAML file with the same keys as these flags; flags override it.")
@click.option("--camera", type=click.IntRange(0), default=None, metavar="N",
              help="USB/V4L2 camera /dev/videoN.")
@click.option("--picamera", is_flag=True, default=False,
              help="Raspberry Pi camera (picamera2).")
@click.option("--csi", type=click.IntRange(0), is_flag=False, flag_value=0, default=None,
              metavar="[SENSOR]", help="Jetson CSI camera via GStreamer nvarguscamerasrc.")
@click.option("--source", default=None, metavar="PATH|DIR|URL",
              help="Video file, folder of images (in order) or rtsp/http stream.")
@click.option("--live/--no-live", default=None,
              help="Keep only the newest frame (default: on for cameras and streams; "
                   "--live on a file plays it in real time).")
@click.option("--loop", is_flag=True, default=False, help="Restart a file or folder at its end.")
@click.option("--capture-size", default=None, metavar="WxH",
              help="Resolution to request from a camera.")
@click.option("--capture-fps", type=click.FloatRange(0, min_open=True), default=None,
              help="Frame rate to request from a camera (or to play a --live file at).")
@click.option("--input-size", default=None, metavar="WxH",
              help="Network input size [default: from the model, 416x416].")
@click.option("--confidence-threshold", "--conf", "confidence_threshold",
              type=click.FloatRange(0, 1), default=_D["confidence_threshold"],
              show_default=True, help="Minimum face probability.")
@click.option("--nms-threshold", "--nms", "nms_threshold",
              type=click.FloatRange(0, 1, min_open=True), default=_D["nms_threshold"],
              show_default=True, help="NMS IoU threshold.")
@click.option("--max-detections", type=click.IntRange(1), default=_D["max_detections"],
              show_default=True, help="Most faces reported per frame.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Inference threads [default: the cores available].")
@click.option("--provider", type=click.Choice(PROVIDERS, case_sensitive=False),
              default=_D["provider"], show_default=True,
              help="ONNX Runtime execution provider.")
@click.option("--arena/--no-arena", default=_D["arena"], show_default=True,
              help="ONNX Runtime CPU memory arena.")
@click.option("--memory-limit", default=_D["memory_limit"], show_default=True, metavar="SIZE",
              help="Exit with code 5 when resident memory exceeds this (e.g. 512M; 0: off).")
@click.option("--status-interval", type=click.FloatRange(0), default=_D["status_interval"],
              show_default=True, help="Seconds between status lines on stderr (0: none).")
@click.option("--max-frames", type=click.IntRange(1), default=None,
              help="Stop after this many frames.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop after this many seconds.")
@click.option("--json", "json", default=None, metavar="PATH|-",
              help="JSON lines, one per frame, to a file (appended) or '-' for stdout "
                   "[default: stdout when no other output is given].")
@click.option("--json-max-size", default=None, metavar="SIZE",
              help="Rotate the JSON-lines file before it passes this size (e.g. 50M): "
                   "out.jsonl -> out.jsonl.1 -> ... [default: never].")
@click.option("--json-keep", type=click.IntRange(1), default=_D["outputs"]["json_keep"],
              show_default=True, help="Rotated JSON-lines files to keep.")
@click.option("--video", default=None, metavar="PATH",
              help="Write annotated frames to this video (.mp4 or .avi).")
@click.option("--http", default=None, metavar="[HOST:]PORT",
              help="Serve /stream.mjpg, /detections, /healthz and /metrics "
                   "(host defaults to 127.0.0.1).")
@click.pass_context
def run(ctx: click.Context, config_path: Path | None, **flags: Any) -> None:
    """Run the face detector on a camera, video file, image folder or stream.

    Writes one JSON line per frame (timestamp, frame index, faces with box, score and five
    landmarks, latency) and a status line on stderr every --status-interval seconds. SIGINT
    or SIGTERM finishes the current frame, flushes the outputs and exits 0.

    Exit codes: 0 done, 1 runtime failure (or corrupt frames skipped in a file), 2 bad
    flags/config or missing dependency, 3 bad model, 4 source cannot be opened, 5 memory
    limit exceeded.
    """
    explicit = {name for name in flags
                if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE}
    file_values = load_config(config_path) if config_path is not None else {}
    opts = merge(file_values, flags, explicit)
    execute(opts)


def execute(opts: dict[str, Any]) -> None:
    """Run with merged options (see :data:`edgeface.config.DEFAULTS` for the keys)."""
    from edgeface.common.sizes import parse_size
    from edgeface.inference.backends import open_backend
    from edgeface.inference.detector import Detector
    from edgeface.inference.postprocess import PostprocessConfig
    from edgeface.runtime.http_server import StatusServer, parse_bind
    from edgeface.runtime.loop import Runtime, limit_opencv_threads, quiet_opencv_logging
    from edgeface.runtime.metrics import Metrics
    from edgeface.runtime.notify import Notifier
    from edgeface.runtime.sinks import JsonLinesSink, LatestSink, VideoSink
    from edgeface.runtime.sources import open_source

    if not opts["model"]:
        raise ConfigError("no model: pass --model FILE.onnx or set 'model' in the config")
    limit_opencv_threads()
    quiet_opencv_logging()
    spec, kind = _source_spec(opts)
    memory_limit = parse_size(opts["memory_limit"])
    input_size = parse_wxh(opts["input_size"], "--input-size")
    capture_size = parse_wxh(opts["capture_size"], "--capture-size")
    outputs = dict(opts["outputs"])
    if not any(outputs.get(k) for k in DESTINATION_KEYS):
        outputs["json"] = "-"
    json_max_bytes = parse_size(outputs["json_max_size"]) if outputs.get("json_max_size") else None

    backend = open_backend(opts["model"], provider=opts["provider"], threads=opts["threads"],
                                 input_size=input_size, arena=opts["arena"])
    config = PostprocessConfig(conf_threshold=opts["confidence_threshold"],
                               nms_threshold=opts["nms_threshold"],
                               keep_top_k=opts["max_detections"])
    detector = Detector(backend, config)

    source = open_source(spec, kind=kind, live=opts["live"], loop=opts["loop"],
                         capture_size=capture_size, capture_fps=opts["capture_fps"])
    metrics = Metrics()
    sinks: list = []
    server = None
    try:
        if outputs.get("json"):
            sinks.append(JsonLinesSink(outputs["json"], keep=outputs["json_keep"],
                                       max_bytes=json_max_bytes))
        if outputs.get("video"):
            sinks.append(VideoSink(outputs["video"], fps=source.fps))
        if outputs.get("http"):
            latest = LatestSink()
            sinks.append(latest)
            host, port = parse_bind(outputs["http"])
            server = StatusServer(latest, metrics, host, port).start()
    except BaseException:
        for s in sinks:
            s.close()
        source.close()
        raise

    notifier = Notifier.from_env()
    runtime = Runtime(source, detector, sinks, memory_limit=memory_limit,
                      status_interval=opts["status_interval"], notifier=notifier,
                      metrics=metrics, status_stream=sys.stderr)
    w, h = backend.info.input_size
    outs = ", ".join(f"{k} {outputs[k] if outputs[k] != '-' else 'stdout'}"
                     for k in DESTINATION_KEYS if outputs.get(k))
    if outputs.get("json") not in (None, "-") and outputs.get("json_max_size"):
        outs += f" (json rotated at {outputs['json_max_size']}, {outputs['json_keep']} kept)"
    click.echo(f"edgeface: {Path(opts['model']).name} ({backend.info.arch}, {w}x{h}, "
               f"{'/'.join(p.replace('ExecutionProvider', '') for p in backend.providers)}, "
               f"{backend.threads} threads) on {source.name} "
               f"({'live' if source.live else 'every frame'}) -> {outs}"
               + (f"; {server.url}/" if server else ""), err=True)

    previous = _install_signal_handlers(runtime)
    try:
        with runtime:
            stats = runtime.run(max_frames=opts["max_frames"], duration=opts["duration"])
    finally:
        _restore_signal_handlers(previous)
        notifier.stopping()
        if server is not None:
            server.close()
    click.echo(f"edgeface: done: {stats.summary_line()}", err=True)
    if stats.frames == 0 and not stats.stopped:
        raise SourceError(f"no frames could be read from {source.name}")
    if stats.corrupt and not source.live:
        raise EdgefaceError(f"{stats.corrupt} corrupt frame(s) in {source.name} were skipped",
                            EXIT_FAILURE)


def _source_spec(opts: dict[str, Any]) -> tuple[Any, str]:
    given = sources_given(opts)
    if not given:
        raise ConfigError("no source: pass one of --camera N, --picamera, --csi [SENSOR] or "
                          "--source PATH|DIR|URL (or set it in the config)")
    if len(given) > 1:
        raise ConfigError(f"more than one source given ({', '.join(given)}); choose one")
    key = given[0]
    if key == "camera":
        return int(opts["camera"]), "camera"
    if key == "picamera":
        return 0, "picamera"
    if key == "csi":
        return int(opts["csi"]), "csi"
    return opts["source"], "auto"


def _install_signal_handlers(runtime) -> dict:
    def handler(signum, frame) -> None:
        if runtime.stopping:  # a second signal: stop waiting for the loop
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        runtime.stop()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (e.g. called from a test thread)
            pass
    return previous


def _restore_signal_handlers(previous: dict) -> None:
    for sig, h in previous.items():
        signal.signal(sig, h)
