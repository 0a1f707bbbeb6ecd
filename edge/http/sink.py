"""The HTTP output: keeps the newest result and recent face events for the device's HTTP
server, runs it, and with a model, the image API (``POST /detect``) beside the camera."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from edgeface.frames import FrameResult
from edgeface.http import limits as L
from edgeface.http.latest import LatestSink
from edgeface.runtime.lend import DEFAULT_SHARE, DetectorLender
from edgeface.runtime.options import Option, boolean, number
from edgeface.runtime.settings import (
    HTTP,
    HTTP_API_RATE,
    HTTP_API_TOTAL_RATE,
    DetectionSettings,
    LimitSettings,
)
from edgeface.runtime.sinks.base import SinkContext, SinkKind
from edgeface.runtime.sinks.registry import register_sink


class HttpSink:
    """Hands each result to the server's :class:`LatestSink` and its events to the page's
    feed; closing stops the server and the API's worker.

    ``lender``: the camera's detector, lent between frames for ``POST /detect`` (its
    images are decoded at ``SCHED_IDLE``, their inference takes at most ``share`` of the
    loop's time: :mod:`edgeface.runtime.lend`); ``limits``: the run's, for the API's
    largest image. No lender, or ``api`` False: no ``POST /detect``.
    """

    def __init__(self, bind: str, metrics: Any, *, limits: Optional[LimitSettings] = None,
                 lender: Optional[DetectorLender] = None, api: bool = True,
                 share: float = DEFAULT_SHARE, client_rate: float = L.API_CLIENT_RATE,
                 total_rate: float = L.API_GLOBAL_RATE, device: str = ""):
        # Here, not at the top: `run` imports this module to register the output, and the
        # API imports the detector (OpenCV), which `run --help` on a base install lacks.
        from edgeface.http.api import open_api
        from edgeface.http.auth import TokenAuth, check_bind
        from edgeface.http.feed import EventFeed
        from edgeface.http.server import StatusServer, parse_bind

        host, port = parse_bind(bind)
        auth = TokenAuth.from_env()
        check_bind(host, auth)
        self.latest = LatestSink()
        self.api = None
        if api and lender is not None:
            lender.share = share
            # The lender's detector answers: the API needs only the run's limits.
            self.api = open_api(DetectionSettings(), limits or LimitSettings(),
                                background=True, detector=lender,
                                api=L.ApiLimits.rates(client_rate, total_rate))
            metrics.add_stats("api_lent", lender.stats, ("waiting", "share"))
        self.feed = EventFeed(device=device)
        try:
            self.server = StatusServer(self.latest, metrics, host, port, api=self.api,
                                       feed=self.feed, auth=auth).start()
        except BaseException:
            self._close_parts()
            raise

    def write(self, result: FrameResult) -> None:
        if result.events:
            self.feed.add(result)
        if not result.only_events:
            self.latest.write(result)

    def flush(self) -> None:
        pass

    def _close_parts(self) -> None:
        if self.api is not None:
            self.api.close()
        self.feed.close()

    def close(self) -> None:
        self.latest.close()  # wakes streaming clients so that they return
        self.server.close()  # ends the requests waiting for the API first
        self._close_parts()

    def describe(self) -> str:
        api = " (+ POST /detect)" if self.api is not None else ""
        return f"http {self.server.url}/{api}"


def _build(values: Mapping[str, Any], context: SinkContext) -> HttpSink:
    return HttpSink(values["http"], context.metrics, limits=context.limits,
                    lender=context.lender, api=values.get("http_api", True) is not False,
                    share=values.get("http_api_share") or DEFAULT_SHARE,
                    client_rate=values.get("http_api_rate") or L.API_CLIENT_RATE,
                    total_rate=values.get("http_api_total_rate") or L.API_GLOBAL_RATE,
                    device=context.source_name)


register_sink(SinkKind("http", (
    HTTP,  # declared with the vocabulary: `serve` spells them the same
    Option("http_api", "--http-api", boolean, True, cli="bool",
           help="POST /detect beside the camera (images decoded at idle priority, their "
                "inference run by the camera loop between frames)."),
    Option("http_api_share", "--http-api-share", number(0.01, 1.0), DEFAULT_SHARE,
           metavar="F",
           help="Most of the camera loop's time that POST /detect inference may take "
                "(a camera running flat out kept 0.92 of its frame rate at 0.05, measured)."),
    HTTP_API_RATE,
    HTTP_API_TOTAL_RATE,
), _build))
