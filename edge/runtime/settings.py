"""The detection and limit settings every command spells the same way: their declarations
(one :class:`~edgeface.runtime.options.Option` each, the flag, the config key, the default
and the one check) and the typed, frozen objects their checked values become.

``run`` (and its config file), ``detect``, ``serve``, ``eval``, ``bench`` and ``quantize``
declare these flags from here through one click adapter (:mod:`edgeface.cli.options`), so
a flag cannot drift between commands; ``tests/cli/test_vocabulary.py`` holds that.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

from edgeface.inference.backends import default_threads
from edgeface.inference.backends.registry import PROVIDERS
from edgeface.inference.families import family_names
from edgeface.runtime.options import Option, boolean, choice, memory, number, string, wxh

#: Faces kept per frame or image after NMS. One default for run, detect and serve: the
#: WIDER FACE protocol's keep-750 (eval), so an image gives the same faces in `detect` as
#: in the AP eval scores. It costs nothing on an ordinary frame (only faces above the
#: threshold are kept); `run` used to cut at 100, which a crowd at 416x416 can exceed.
MAX_DETECTIONS = 750


def check_threads(key: str, v: Any) -> int:
    """Inference threads: 1 .. 4x the cores (more only adds contention and one arena each)."""
    return number(1, default_threads() * 4, integer=True)(key, v)


def check_threads_list(key: str, v: Any) -> tuple[int, ...]:
    """``1,2,4``: several thread counts (bench), each checked as ``--threads``."""
    items = v.split(",") if isinstance(v, str) else list(v)
    out = sorted({check_threads(key, i.strip() if isinstance(i, str) else i)
                  for i in items if not isinstance(i, str) or i.strip()})
    if not out:
        return check_threads(key, v)  # the check's own message for an empty value
    return tuple(out)


MODEL = Option("model", "--model", string, metavar="MODEL", path=True, short="-m",
               help="Model from `edgeface export` or `edgeface quantize` (.onnx FP32 or INT8).")
SIZE = Option("size", "--size", wxh(32, 4096), metavar="WxH",
              help="Network input size, N or WxH [default: the model's; 416x416 for a "
                   "checkpoint].")
CONFIDENCE = Option("confidence_threshold", "--confidence-threshold", number(0, 1), 0.5,
                    metavar="0..1", help="Minimum face probability.")
NMS = Option("nms_threshold", "--nms-threshold", number(0, 1, lo_open=True), 0.4,
             metavar="0..1", help="NMS IoU threshold.")
MAX_DETECTIONS_OPTION = Option(
    "max_detections", "--max-detections", number(1, 10000, integer=True), MAX_DETECTIONS,
    metavar="N", help="Most faces reported per frame or image.")
THREADS = Option("threads", "--threads", check_threads, metavar="N",
                 help="Inference threads [default: the cores available; at most 4x the "
                      "cores].")
PROVIDER = Option("provider", "--provider", choice(*PROVIDERS), "auto",
                  metavar="|".join(PROVIDERS),
                  help="What runs the model: auto (ONNX Runtime's CPU for .onnx, TensorRT "
                       "for a .engine), cpu, cuda, or tensorrt (TensorRT: ONNX Runtime's "
                       "TensorRT provider for .onnx, TensorRT itself for a .engine).")
# ONNX Runtime's CPU arena: measured smaller and steadier in the full runtime than
# glibc malloc under its many threads (benchmarks/runtime_memory.py).
ARENA = Option("arena", "--arena", boolean, True, cli="bool",
               help="ONNX Runtime CPU memory arena.")

FAMILY = Option("family", "--family", choice(*family_names()), metavar="|".join(family_names()),
                help="Model family of an ONNX file made elsewhere, without edgeface metadata "
                     "[default: the one the model names].")

#: The detector's settings, in the order the commands list them.
DETECTION = (MODEL, SIZE, CONFIDENCE, NMS, MAX_DETECTIONS_OPTION, THREADS, PROVIDER, FAMILY,
             ARENA)

MEMORY_LIMIT = Option("memory_limit", "--memory-limit", memory(1 << 20), "512M",
                      metavar="SIZE",
                      help="Exit with code 5 when resident memory exceeds this (e.g. 512M; "
                           "0: off).")
MAX_IMAGE_PIXELS = Option(
    "max_image_pixels", "--max-image-pixels", number(1, 10**10, integer=True), metavar="N",
    help="Largest image or frame accepted, in pixels; a larger one is refused before it is "
         "decoded (by the API: 413) [default: memory limit / 16 bytes, 33.5M at 512M; "
         "100M without a limit; the API at most 100M].")

#: Resource limits.
LIMITS = (MEMORY_LIMIT, MAX_IMAGE_PIXELS)


# Outputs that other commands share with `run`'s: declared here, with no sink imported, so
# that `detect --help` and `serve --help` load no sink (and no OpenCV).
#: One meaning in every command (run, detect, doctor): JSON to this file, or to stdout for
#: '-' or a bare --json.
JSON = Option("json", "--json", string, metavar="PATH|-", path=True, cli="optional",
              flag_value="-",
              help="JSON lines, one per frame, to a file (appended) or '-' (or a bare "
                   "--json) for stdout [default: stdout when no other output is given].")
HTTP = Option("http", "--http", string, metavar="[HOST:]PORT",
              help="Serve the page (/), /stream.mjpg, /snapshot.jpg, /detections, /events, "
                   "/status, /healthz, /metrics and POST /detect (host defaults to "
                   "127.0.0.1; beyond loopback EDGEFACE_API_TOKEN is required).")
#: POST /detect requests per second per client address (token bucket twice as deep), and
#: for all clients together; past either: 429 + Retry-After. One V1 inference at 416x416 on
#: one core takes ~27 ms on x86-64 (measured) and an estimated 100-150 ms on a Pi 4 core,
#: plus decoding: 10 requests/s of one image is about what one idle Pi core serves
#: (`serve`; inside `run` the camera's share, `--http-api-share`, bounds it further).
HTTP_API_RATE = Option(
    "http_api_rate", "--http-api-rate", number(0.01, 10000), 5.0, metavar="N",
    help="POST /detect requests per second per client address (twice that in a burst); more "
         "get 429.")
HTTP_API_TOTAL_RATE = Option(
    "http_api_total_rate", "--http-api-total-rate", number(0.01, 10000), 10.0,
    metavar="N", help="POST /detect requests per second from all clients together.")
#: run's outputs that detect, doctor and serve spell the same.
SHARED_OUTPUTS = (JSON, HTTP, HTTP_API_RATE, HTTP_API_TOTAL_RATE)


def _pick(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names and v is not None}


@dataclass(frozen=True)
class DetectionSettings:
    """The checked detection values: which model, how it runs and what it reports."""

    model: Optional[str] = None
    size: Optional[tuple[int, int]] = None
    confidence_threshold: float = CONFIDENCE.default
    nms_threshold: float = NMS.default
    max_detections: int = MAX_DETECTIONS
    threads: Optional[int] = None
    provider: str = PROVIDER.default
    family: Optional[str] = None  # a foreign ONNX file's; an edgeface export names its own
    arena: bool = ARENA.default

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> DetectionSettings:
        """From checked values by key (unset or None keys keep the defaults)."""
        picked = _pick(cls, values)
        if "model" in picked:
            picked["model"] = str(picked["model"])
        return cls(**picked)

    def postprocess(self) -> Any:
        """The :class:`~edgeface.inference.postprocess.PostprocessConfig` for these."""
        from edgeface.inference.postprocess import PostprocessConfig

        return PostprocessConfig(conf_threshold=self.confidence_threshold,
                                 nms_threshold=self.nms_threshold,
                                 keep_top_k=self.max_detections)


@dataclass(frozen=True)
class LimitSettings:
    """``memory_limit`` in bytes (None: none), ``max_image_pixels`` when given."""

    memory_limit: Optional[int] = None
    max_image_pixels: Optional[int] = None

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> LimitSettings:
        return cls(**_pick(cls, values))


@dataclass(frozen=True)
class LoopSettings:
    """How :class:`~edgeface.runtime.loop.Runtime` runs: ``memory_limit`` in bytes (exit 5
    above it; None: none), ``status_interval`` seconds between status lines (0: none),
    ``read_timeout`` seconds one source read waits, ``record_latencies``: keep every
    frame's stage latencies (benchmarks), else only the last few thousand."""

    memory_limit: Optional[int] = None
    status_interval: float = 10.0
    read_timeout: float = 0.25
    record_latencies: bool = False
