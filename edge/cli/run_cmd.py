"""`edgeface run`: the command the device runs all day (never imports torch).

Its flags come from the run's options and from every registered source and sink
(:mod:`edgeface.runtime.config`), so a new source or sink brings its flags with it.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any, Callable

import click

import edgeface.http.sink  # noqa: F401  registers the HTTP output (--http) before its flags
from edgeface.cli.options import CONFIG, option, renamed
from edgeface.errors import EXIT_FAILURE, ConfigError, EdgefaceError, SourceError
from edgeface.runtime.config import load_config, merge, output_options, top_options


def _with_run_options(f: Callable) -> Callable:
    # Unchecked here (raw): checked after merging with the config file, by the same check
    # as the file's values.
    for opt in reversed([*top_options(), *output_options().values()]):
        f = option(opt, raw=True)(f)
    return f


@click.command("run", **renamed({"--conf": "--confidence-threshold",
                                 "--nms": "--nms-threshold", "--input-size": "--size"}))
@option(CONFIG, help="YAML file with the same keys as these flags; flags override it.")
@_with_run_options
@click.pass_context
def run(ctx: click.Context, config: Path | None, **flags: Any) -> None:
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
    file_values = load_config(config) if config is not None else {}
    opts = merge(file_values, flags, explicit)
    opts["config_path"] = config
    execute(opts)


def execute(opts: dict[str, Any]) -> None:
    """Run with merged options (see :func:`edgeface.runtime.config.defaults` for the keys)."""
    from edgeface.common.files import refuse_overwriting_inputs
    from edgeface.inference.backends import open_backend
    from edgeface.inference.detector import Detector, family_options
    from edgeface.media.images import IMAGE_EXTENSIONS, pixel_budget
    from edgeface.runtime.config import check_values
    from edgeface.runtime.lend import DetectorLender
    from edgeface.runtime.loop import Runtime, limit_opencv_threads, quiet_opencv_logging
    from edgeface.runtime.metrics import Metrics
    from edgeface.runtime.motion import MotionGate
    from edgeface.runtime.notify import Notifier
    from edgeface.runtime.settings import DetectionSettings, LimitSettings, LoopSettings
    from edgeface.runtime.sinks import SinkContext, build_sinks, with_default_output
    from edgeface.runtime.sources import CaptureSettings, open_source, selected, source_kinds
    from edgeface.runtime.tracking import Tracker

    opts = check_values(opts)
    if not opts["model"]:
        raise ConfigError("no model: pass --model FILE.onnx or set 'model' in the config")
    limit_opencv_threads()
    quiet_opencv_logging()
    kind, target = selected(opts)
    refuse_overwriting_inputs(
        {o.flag: outputs_value for o in output_options().values() if o.path
         and (outputs_value := opts["outputs"].get(o.key))},
        {"--model": opts["model"], "--source": target if kind in ("auto", "file") else None,
         "--config": opts.get("config_path")}, folder_files=IMAGE_EXTENSIONS)
    detection = DetectionSettings.from_values(opts)
    limits = LimitSettings.from_values(opts)
    max_pixels = pixel_budget(limits.memory_limit, limits.max_image_pixels)
    outputs = with_default_output(opts["outputs"])

    backend = open_backend(detection.model, provider=detection.provider,
                           threads=detection.threads, input_size=detection.size,
                           arena=detection.arena,
                           **family_options(detection.model, detection.family))
    detector = Detector(backend, detection.postprocess())
    lender = DetectorLender(detector)  # for POST /detect, if the HTTP output serves it

    kind_options = {o.key: opts.get(o.key) for k in source_kinds().values() for o in k.options}
    capture = CaptureSettings(opts["capture_size"], opts["capture_fps"], max_pixels,
                              detector.input_size, kind_options)
    source = open_source(target, kind=kind, live=opts["live"], loop=opts["loop"],
                         capture=capture, prepare=detector.prepare)
    metrics = Metrics()
    try:
        sinks = build_sinks(outputs, SinkContext(source.fps, metrics, source.name, detection,
                                                 limits, lender=lender))
    except BaseException:
        source.close()
        raise

    gate, tracker = MotionGate.from_options(opts), Tracker.from_options(opts)
    _expose_stats(metrics, sinks, gate, tracker)
    notifier = Notifier.from_env()
    loop = LoopSettings(memory_limit=limits.memory_limit,
                        status_interval=opts["status_interval"])
    runtime = Runtime(source, detector, sinks, settings=loop, notifier=notifier,
                      metrics=metrics, status_stream=sys.stderr, gate=gate, tracker=tracker,
                      lender=lender)
    w, h = backend.info.input_size
    providers = "/".join(p.replace("ExecutionProvider", "") for p in backend.providers)
    # A GPU engine runs on no CPU threads (TensorRT's spec takes none): say nothing of them.
    threads = f", {backend.threads} threads" if backend.threads else ""
    click.echo(f"edgeface: {Path(opts['model']).name} ({backend.info.arch}, {w}x{h}, "
               f"{providers}{threads}) on {source.name} "
               f"({'live' if source.live else 'every frame'}) -> "
               f"{', '.join(s.describe() for s in sinks)}", err=True)

    previous = _install_signal_handlers(runtime)
    try:
        with runtime:
            stats = runtime.run(max_frames=opts["max_frames"], duration=opts["duration"])
    finally:
        _restore_signal_handlers(previous)
        notifier.stopping()
    click.echo(f"edgeface: done: {stats.summary_line()}", err=True)
    if stats.frames == 0 and not stats.stopped:
        raise SourceError(f"no frames could be read from {source.name}")
    if stats.corrupt and not source.live:
        raise EdgefaceError(f"{stats.corrupt} corrupt frame(s) in {source.name} were skipped",
                            EXIT_FAILURE)


def _expose_stats(metrics: Any, sinks: list, gate: Any, tracker: Any) -> None:
    """/metrics gets each component's counters: event sinks (MQTT, webhook, crops), the
    motion gate, the tracker, and the SoC's temperature and throttling."""
    from edgeface.system import thermal

    for sink in sinks:
        stats = getattr(sink, "stats", None)  # the event sinks count their own drops
        if callable(stats):
            metrics.add_stats(sink.describe().split()[0], stats,
                              getattr(sink, "STATS_GAUGES", ()))
    if gate is not None:
        metrics.add_stats("motion", gate.stats, ("last_area",))
    metrics.add_stats("tracks", lambda: {"active": len(tracker.active), "started":
                                         tracker.started, "ended": tracker.ended},
                      ("active",))
    metrics.add_stats("soc", lambda: thermal.read(command=False).metrics(),
                      ("temperature_celsius", "throttled_now", "throttled_since_boot",
                       "under_voltage_now"))


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

