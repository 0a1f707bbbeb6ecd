"""``POST /detect``: faces in uploaded images, one JSON record per image, the record that
``edgeface detect --json`` and ``edgeface run`` write (``FrameResult.to_record()``).

A request is a raw image body (any Content-Type) or ``multipart/form-data`` with up to
``max_images`` parts. On the event-loop thread, in this order and before anything is
decoded: the token (401, :mod:`.auth`), the rate limits (429, :mod:`.ratelimit`) and the
declared body size (411/413); then the body is read (408 when too slow, 503 when the bodies
arriving at once pass their bytes' bound), a place in the worker's queue taken (503,
:mod:`.worker`: a slow upload never holds one), the body split (400 for bad multipart),
each image's format is sniffed from its
bytes (JPEG/PNG/BMP, else 415 whatever the Content-Type says) and its declared size checked
against the pixel budget (413). Decoding and detection run in the worker thread (400 for an
image that does not decode, e.g. truncated). Every error is ``{"error", "detail", "status"}``.
"""

from __future__ import annotations

import functools
import math
import time
from collections import Counter
from dataclasses import replace
from typing import Optional

import numpy as np

from edgeface.frames import Frame, FrameResult
from edgeface.http import limits as L
from edgeface.http.multipart import MultipartError, is_multipart, parse_multipart
from edgeface.http.ratelimit import RateLimiter
from edgeface.http.router import ByteBudget, HttpError, Request, Response, json_response
from edgeface.http.worker import ApiWorker
from edgeface.inference.detector import FaceDetector
from edgeface.media.image_header import (
    HeaderError,
    check_jpeg_data,
    read_header,
    sniff_format,
)
from edgeface.media.images import ImageReadError, decode_image, pixel_budget
from edgeface.runtime.lend import LoanRefused
from edgeface.runtime.settings import DetectionSettings, LimitSettings

#: What the API decodes; anything else is 415, whatever the client says it is.
FORMATS = ("jpeg", "png", "bmp")
_LABEL_MAX = 255


class DetectApi:
    """The endpoint, its worker and its limits. ``background``: the worker runs at
    ``SCHED_IDLE`` (inside ``run``, next to a camera, where ``detector`` is the camera's own,
    lent between frames: :class:`~edgeface.runtime.lend.DetectorLender`)."""

    def __init__(self, detector: FaceDetector, *, background: bool,
                 limits: Optional[L.ApiLimits] = None):
        lim = limits if limits is not None else L.ApiLimits()
        self.detector = detector
        self.max_pixels, self.max_images = lim.max_pixels, lim.max_images
        self.max_body_bytes = lim.max_body_bytes
        self.worker = ApiWorker(background=background, max_requests=lim.queue_requests,
                                max_bytes=lim.queue_bytes, queue_timeout=lim.queue_timeout).start()
        self.uploads = ByteBudget(lim.upload_bytes)
        self.limiter = RateLimiter(lim.client_rate, lim.client_burst, lim.global_rate,
                                   lim.global_burst, L.API_CLIENTS_TRACKED, time.monotonic())
        self.responses: Counter[int] = Counter()
        self.images = 0

    # -- the handler (event-loop thread) -------------------------------------------------
    async def detect(self, req: Request) -> Response:
        try:
            response = await self._detect(req)
        except HttpError as exc:
            self.responses[exc.status] += 1
            raise
        self.responses[response.status] += 1
        return response

    async def _detect(self, req: Request) -> Response:
        try:
            wait = self.limiter.check(req.peer[0] if req.peer else "", time.monotonic())
            if wait is not None:
                raise HttpError(429, "too many requests",
                                {"Retry-After": str(max(1, math.ceil(wait)))},
                                detail=f"over the rate limit: try again in {wait:.1f} s")
            size = req.content_length(self.max_body_bytes)
            if size == 0:
                raise HttpError(400, "empty body",
                                detail="send one image, or multipart/form-data with images")
        except HttpError:
            # Refused before the body was read: take a small one off the wire so that the
            # client reads this answer (not a reset) and may reuse the connection.
            await req.discard_body(self.max_body_bytes)
            raise
        body = await req.body(self.max_body_bytes, self.uploads)
        self.worker.admit(size)  # only now: a body still arriving holds no place
        try:
            images = self.images_of(req.headers.get("content-type", ""), body)
            del body
            records = await self.worker.run(functools.partial(self._run, images))
            del images
            return json_response(200, {"results": records})
        finally:
            self.worker.release(size)

    def images_of(self, content_type: str, body: bytes) -> list[tuple[str, bytes]]:
        """(label, bytes) per image, every one checked by content and declared size."""
        if is_multipart(content_type):
            try:
                parts = parse_multipart(content_type, body, self.max_images)
            except MultipartError as exc:
                raise HttpError(400, "bad multipart body", detail=str(exc)) from None
            images = [(_label(p.filename or p.name, i), p.data) for i, p in enumerate(parts)]
        else:
            images = [("body", body)]
        for label, data in images:
            self.check(label, data)
        return images

    def check(self, label: str, data: bytes) -> None:
        """415 for a format the API does not take, 400 for a header that does not say the
        size, 413 for a size over the pixel budget: all without decoding."""
        fmt = sniff_format(data)
        if fmt not in FORMATS:
            what = f"{fmt.upper()} is not accepted" if fmt else "not a JPEG, PNG or BMP image"
            raise HttpError(415, "unsupported image format",
                            detail=f"{label}: {what}; send JPEG, PNG or BMP")
        try:
            header = read_header(data)
        except HeaderError as exc:
            raise HttpError(400, "bad image", detail=f"{label}: {exc}") from None
        if header.pixels > self.max_pixels:
            raise HttpError(413, "image too large",
                            detail=f"{label}: {header.width}x{header.height} is over the "
                                   f"limit of {self.max_pixels} pixels (refused without "
                                   "decoding)", max_pixels=self.max_pixels)
        try:  # too many scans, or less data than the size needs: 400 before the queue
            check_jpeg_data(data)
        except HeaderError as exc:
            raise HttpError(400, "bad image", detail=f"{label}: {exc}") from None

    # -- the job (worker thread) --------------------------------------------------------
    def _run(self, images: list[tuple[str, bytes]]) -> list[dict]:
        records = []
        for i, (label, data) in enumerate(images):
            ts = time.time()
            t0 = time.perf_counter()  # decoding counts in the latency: it can dominate
            try:
                image = decode_image(data, self.max_pixels, label)
            except ImageReadError as exc:
                raise HttpError(400, "bad image", detail=str(exc)) from None
            prepared = self.detector.prepare(image)
            preprocess_s = time.perf_counter() - t0
            h, w = image.shape[:2]
            del image  # the decoded image (36 MB for 12 Mpx) goes before inference needs its own
            try:
                dets, timing = self.detector.detect_prepared(prepared, preprocess_s)
            except LoanRefused as exc:
                raise HttpError(503, "busy", {"Retry-After": str(self.worker.retry_after())},
                                detail=str(exc)) from None
            del prepared
            records.append(FrameResult(Frame(i, ts, _shape_only(h, w), label=label), dets,
                                       timing).to_record())
        self.images += len(images)
        return records

    # -- the rest ----------------------------------------------------------------------
    #: The keys of :meth:`stats` that are gauges (the rest are counters).
    STATS_GAUGES = ("queued", "admitted", "uploading_bytes")

    def stats(self) -> dict[str, float]:
        """For /metrics (``edgeface_api_*``) and /status."""
        out = dict(self.worker.stats())
        out["images"] = self.images
        out["uploading_bytes"] = self.uploads.used
        out["rate_limited"] = self.limiter.limited_client + self.limiter.limited_global
        for status in (200, 400, 401, 408, 411, 413, 415, 429, 503):
            out[f"responses_{status}"] = self.responses.get(status, 0)
        return out

    def close(self) -> None:
        self.worker.close()


def _shape_only(height: int, width: int) -> np.ndarray:
    """A stand-in for a decoded image in a record (which only reads its shape): no memory."""
    return np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (height, width, 3))


def _label(name: Optional[str], index: int) -> str:
    """A part's name for its record: printable, at most 255 characters."""
    text = "".join(c for c in (name or "") if c.isprintable())[:_LABEL_MAX]
    return text or f"part{index + 1}"


def api_max_pixels(memory_limit: Optional[int], explicit: Optional[int]) -> int:
    """An explicit ``--max-image-pixels``, else the smaller of :data:`API_MAX_PIXELS` and
    the memory limit's pixel budget."""
    if explicit:
        return int(explicit)
    return min(L.API_MAX_PIXELS, pixel_budget(memory_limit))


def open_api(detection: DetectionSettings, limits: Optional[LimitSettings] = None, *,
             background: bool, detector: Optional[FaceDetector] = None,
             api: Optional[L.ApiLimits] = None) -> DetectApi:
    """A :class:`DetectApi` on ``detector``, else on a detector of its own for
    ``detection``; ``api``'s limits (defaults: the constants), its largest image following
    ``limits`` (the run's memory limit and pixel cap)."""
    limits = limits or LimitSettings()
    max_pixels = api_max_pixels(limits.memory_limit, limits.max_image_pixels)
    if detector is None:
        detector = _open_detector(detection)
    api = replace(api if api is not None else L.ApiLimits(), max_pixels=max_pixels)
    return DetectApi(detector, background=background, limits=api)


def _open_detector(s: DetectionSettings) -> FaceDetector:
    from edgeface.inference.detector import Detector

    return Detector.open(s.model, s.postprocess(), provider=s.provider, threads=s.threads,
                         input_size=s.size, arena=s.arena, family=s.family)
