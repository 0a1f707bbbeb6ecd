"""`edgeface serve`: the image API without a camera (``POST /detect``, the page, ``/status``,
``/healthz``, ``/metrics``, ``/openapi.json``); never imports torch."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from edgeface.cli.options import (
    confidence_option,
    nms_option,
    provider_option,
    size_option,
    threads_option,
)
from edgeface.http import limits as L


@click.command("serve")
@click.option("-m", "--model", required=True, type=click.Path(path_type=Path),
              help="Model from `edgeface export` or `edgeface quantize` (.onnx).")
@click.option("--http", "bind", default="127.0.0.1:8080", show_default=True,
              metavar="[HOST:]PORT",
              help="Where to listen; beyond loopback EDGEFACE_API_TOKEN is required.")
@confidence_option(0.5)
@nms_option(0.4)
@click.option("--max-detections", type=click.IntRange(1, 10000), default=None, metavar="N",
              help="Most faces reported per image [default: as `edgeface detect`, 750].")
@threads_option()
@provider_option()
@size_option("Network input size [default: from the model].")
@click.option("--max-image-pixels", type=click.IntRange(1, 10**10), default=None, metavar="N",
              help=f"Largest image accepted, in pixels (declared size, checked before "
                   f"decoding; over it: 413) [default: {L.API_MAX_PIXELS}].")
@click.option("--http-api-rate", "rate", type=click.FloatRange(0.01, 10000),
              default=L.API_CLIENT_RATE, show_default=True, metavar="N",
              help="Requests per second per client address (twice that in a burst); more "
                   "get 429. Spelled as in `edgeface run`.")
@click.option("--http-api-total-rate", "total_rate", type=click.FloatRange(0.01, 10000),
              default=L.API_GLOBAL_RATE, show_default=True, metavar="N",
              help="Requests per second from all clients together.")
def serve(model: Path, bind: str, rate: float, total_rate: float, **options: Any) -> None:
    """Serve POST /detect (faces in uploaded images) without a camera.

    One image as the body, or up to 8 as multipart/form-data; the answer is one JSON record
    per image, the record `edgeface detect --json` writes. Also serves the page (/),
    /status, /healthz, /metrics and /openapi.json. SIGINT or SIGTERM stops it (exit 0).

    Exit codes: 0 stopped by a signal, 2 bad flags (or listening beyond loopback without
    EDGEFACE_API_TOKEN), 3 bad model.
    """
    from edgeface.common.sizes import parse_wxh
    from edgeface.http.api import open_api
    from edgeface.http.auth import TokenAuth, check_bind
    from edgeface.http.latest import LatestSink
    from edgeface.http.server import StatusServer, parse_bind
    from edgeface.runtime.loop import limit_opencv_threads, quiet_opencv_logging
    from edgeface.runtime.metrics import Metrics
    from edgeface.runtime.notify import Notifier

    host, port = parse_bind(bind)
    auth = TokenAuth.from_env()
    check_bind(host, auth)  # before the model is loaded: a refusal is quick and one line
    limit_opencv_threads()
    quiet_opencv_logging()
    if options["size"] is not None:
        options["size"] = parse_wxh(options["size"], "--size")
    api = open_api({"model": model, **options}, background=False, threads=options["threads"],
                   limits=L.ApiLimits.rates(rate, total_rate))
    try:
        server = StatusServer(LatestSink(), Metrics(), host, port, api=api, auth=auth,
                              camera=False).start()
    except BaseException:
        api.close()
        raise
    backend = api.detector.backend
    w, h = backend.info.input_size
    threads = f", {backend.threads} threads" if backend.threads else ""  # none: a GPU engine
    click.echo(f"edgeface: serving POST /detect on {server.url}/ with {model.name} "
               f"({backend.info.arch}, {w}x{h}{threads}"
               f"{', token required' if auth.required else ''})", err=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    notifier = Notifier.from_env()
    notifier.ready(f"serving {server.url}")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        notifier.stopping()
        server.close()
        api.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("edgeface: stopped", err=True)
