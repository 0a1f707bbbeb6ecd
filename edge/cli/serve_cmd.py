"""`edgeface serve`: the image API without a camera (``POST /detect``, the page, ``/status``,
``/healthz``, ``/metrics``, ``/openapi.json``); never imports torch."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from edgeface.cli.options import option
from edgeface.http import limits as L
from edgeface.runtime.settings import (
    DETECTION,
    HTTP,
    HTTP_API_RATE,
    HTTP_API_TOTAL_RATE,
    MAX_IMAGE_PIXELS,
    DetectionSettings,
    LimitSettings,
)

DEFAULT_BIND = "127.0.0.1:8080"


def _with_detection(f: Any) -> Any:
    for opt in reversed(DETECTION):
        f = option(opt, required=opt.key == "model")(f)
    return f


@click.command("serve")
@option(HTTP, help=f"Where to listen [default: {DEFAULT_BIND}]; beyond loopback "
                            "EDGEFACE_API_TOKEN is required.")
@_with_detection
@option(MAX_IMAGE_PIXELS)
@option(HTTP_API_RATE)
@option(HTTP_API_TOTAL_RATE)
def serve(http: str | None, http_api_rate: float, http_api_total_rate: float,
          max_image_pixels: int | None, **values: Any) -> None:
    """Serve POST /detect (faces in uploaded images) without a camera.

    One image as the body, or up to 8 as multipart/form-data; the answer is one JSON record
    per image, the record `edgeface detect --json` writes. Also serves the page (/),
    /status, /healthz, /metrics and /openapi.json. SIGINT or SIGTERM stops it (exit 0).

    Exit codes: 0 stopped by a signal, 2 bad flags (or listening beyond loopback without
    EDGEFACE_API_TOKEN), 3 bad model.
    """
    from edgeface.http.api import open_api
    from edgeface.http.auth import TokenAuth, check_bind
    from edgeface.http.latest import LatestSink
    from edgeface.http.server import StatusServer, parse_bind
    from edgeface.runtime.loop import limit_opencv_threads, quiet_opencv_logging
    from edgeface.runtime.metrics import Metrics
    from edgeface.runtime.notify import Notifier

    detection = DetectionSettings.from_values(values)
    model = Path(detection.model)
    rate, total_rate = http_api_rate, http_api_total_rate
    host, port = parse_bind(http or DEFAULT_BIND)
    auth = TokenAuth.from_env()
    check_bind(host, auth)  # before the model is loaded: a refusal is quick and one line
    limit_opencv_threads()
    quiet_opencv_logging()
    # No memory limit of its own: the largest image is the API's cap (or the flag).
    api = open_api(detection, LimitSettings(max_image_pixels=max_image_pixels),
                   background=False, api=L.ApiLimits.rates(rate, total_rate))
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
