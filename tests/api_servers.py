"""In-process servers with POST /detect for the API tests (one factory, where two test
modules each had their own): ``serve(token=None, camera=False, feed=None, detector=None,
body_grace=None, body_min_rate=None, **api_limits)`` -> a started StatusServer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from edgeface.http.api import DetectApi, open_api
from edgeface.http.auth import TokenAuth
from edgeface.http.latest import LatestSink
from edgeface.http.limits import ApiLimits, HttpLimits
from edgeface.http.server import StatusServer
from edgeface.runtime.metrics import Metrics
from edgeface.runtime.settings import DetectionSettings


class ApiServers:
    """Starts servers on loopback port 0 and closes every one (server, then API) at the end."""

    def __init__(self, model: Path):
        self.model = model
        self.made: list[tuple[Any, Any]] = []

    def __call__(self, token: Optional[str] = None, camera: bool = False, feed: Any = None,
                 detector: Any = None, body_grace: Optional[float] = None,
                 body_min_rate: Optional[float] = None, **limits: Any) -> StatusServer:
        if detector is None:
            api = open_api(DetectionSettings(model=str(self.model), threads=1),
                           background=False, api=ApiLimits(**limits))
        else:
            api = DetectApi(detector, background=False, limits=ApiLimits(**limits))
        body = {k: v for k, v in (("body_grace", body_grace),
                                  ("body_min_rate", body_min_rate)) if v is not None}
        server = StatusServer(LatestSink(), Metrics(), "127.0.0.1", 0, api=api, feed=feed,
                              auth=TokenAuth(token), camera=camera,
                              limits=HttpLimits(**body)).start()
        self.made.append((server, api))
        return server

    def close(self) -> None:
        for server, api in self.made:
            server.close()
            api.close()
