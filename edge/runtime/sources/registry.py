"""The source registry: each kind of source (camera, picamera, csi, stream, folder, file)
registers its selecting flag, its own settings and how to open it, in its own module.

``edgeface run`` offers the flags of every registered kind, ``--source`` classifies a path
or URL into a kind, and :func:`open_source` opens it behind a :class:`ThreadedSource`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from edgeface.common.registry import Registry
from edgeface.errors import ConfigError, SourceError
from edgeface.media.images import DEFAULT_MAX_PIXELS
from edgeface.runtime.options import Option, boolean, number, string, tristate, wxh
from edgeface.runtime.sources.base import Prepare, Reader
from edgeface.runtime.sources.threaded import ThreadedSource

Spec = Union[str, int, os.PathLike]


@dataclass(frozen=True)
class CaptureSettings:
    """What a kind may be asked for when it is opened."""

    size: Optional[tuple[int, int]] = None  # (width, height) requested from a camera
    fps: Optional[float] = None
    max_pixels: int = DEFAULT_MAX_PIXELS  # the most pixels a frame may have (see media.images)
    #: The detector's input size, for sources that can deliver a scaled copy (picamera2).
    analysis_size: Optional[tuple[int, int]] = None
    options: Mapping[str, Any] = field(default_factory=dict)  # kind-specific settings


@dataclass(frozen=True)
class SourceKind:
    """One kind of source.

    ``make_reader(target, settings)`` returns the blocking reader and the source's display
    name; it raises :class:`SourceError` when the target cannot be opened. ``selector`` is
    the flag/config key choosing this kind with its target (``--camera 0``); kinds reached
    through ``--source`` instead say what they accept with ``matches(text)``, which returns
    the normalised target or None.
    """

    name: str
    live: bool
    make_reader: Callable[[Any, CaptureSettings], tuple[Reader, str]]
    selector: Optional[Option] = None
    matches: Optional[Callable[[str], Any]] = None
    options: tuple[Option, ...] = ()
    #: Target for a selector whose value is a switch (``--picamera`` -> camera 0).
    target_of: Callable[[Any], Any] = lambda value: value
    #: Order in which ``--source`` tries the kinds (lowest first): device names before
    #: URLs before paths, so that ``0`` is a camera even if a file ``0`` exists.
    rank: int = 50
    #: Its frames need the GPU's device nodes (a Jetson CSI camera's NVMM buffers).
    needs_gpu: bool = False


#: Every source kind; each registers itself in its own module.
SOURCES: Registry[SourceKind] = Registry("source kind")

#: ``--source PATH|DIR|URL``: classified into a registered kind by :func:`classify`.
SOURCE_OPTION = Option("source", "--source", string, metavar="PATH|DIR|URL",
                       help="Video file, folder of images (in order) or rtsp/http stream; also "
                            "a camera as N, /dev/videoN, picamera[:N] or csi[:N].")

#: Settings every source understands.
CAPTURE_OPTIONS = (
    Option("live", "--live", tristate, cli="tristate",
           help="Keep only the newest frame (default: on for cameras and streams; --live on a "
                "file plays it in real time)."),
    Option("loop", "--loop", boolean, False, cli="bool",
           help="Restart a file or folder at its end."),
    Option("capture_size", "--capture-size", wxh(16, 8192), metavar="WxH",
           help="Resolution to request from a camera."),
    Option("capture_fps", "--capture-fps", number(0, 1000, lo_open=True), metavar="FPS",
           help="Frame rate to request from a camera (or to play a --live file at)."),
)


def device_number(text: str, name: str) -> Optional[int]:
    """``name`` or ``name:N`` -> N (0 when absent); None when ``text`` is something else."""
    low = text.lower()
    if low == name:
        return 0
    if low.startswith(name + ":"):
        rest = text[len(name) + 1:]
        if not rest.isdigit():
            raise SourceError(f"invalid source {text!r}: expected {name} or {name}:N")
        return int(rest)
    return None


def register_source(kind: SourceKind) -> None:
    SOURCES.register(kind, replace=True)


def source_kinds() -> dict[str, SourceKind]:
    return dict(SOURCES.items())


def selector_options() -> list[Option]:
    """The flags that choose a source: ``--source`` and each kind's own (``--camera``...)."""
    kinds = sorted(SOURCES.values(), key=lambda k: k.rank)
    return [SOURCE_OPTION, *(k.selector for k in kinds if k.selector is not None)]


def source_options() -> list[Option]:
    """Every source setting: selectors, the shared capture settings, kind-specific ones."""
    kinds = sorted(SOURCES.values(), key=lambda k: k.rank)
    return [*selector_options(), *CAPTURE_OPTIONS, *(o for k in kinds for o in k.options)]


def selectors_given(values: Mapping[str, Any]) -> list[str]:
    """The selector keys that are set (``camera: 0`` is set; ``picamera: false`` is not)."""
    return [o.key for o in selector_options()
            if values.get(o.key) is not None and values.get(o.key) is not False]


def classify(spec: Spec) -> tuple[str, Any]:
    """The kind of a ``--source`` value: ``0`` camera, ``picamera[:N]``, ``csi[:N]``, URL,
    folder or file. Returns (kind, normalised target)."""
    if isinstance(spec, bool):
        raise SourceError(f"invalid source {spec!r}")
    text = str(spec) if isinstance(spec, int) else os.fspath(spec).strip()
    if text.lower().startswith("file://"):
        text = text[len("file://"):]
    for kind in sorted(SOURCES.values(), key=lambda k: k.rank):
        if kind.matches is not None:
            target = kind.matches(text)
            if target is not None:
                return kind.name, target
    raise SourceError(f"no such file or directory: {Path(text).expanduser()}")


def selected(values: Mapping[str, Any]) -> tuple[str, Any]:
    """(kind, target) chosen by merged run options; exactly one selector must be set."""
    given = selectors_given(values)
    if not given:
        flags = [o.flag + (f" {o.metavar}" if o.metavar else "") for o in selector_options()]
        raise ConfigError(f"no source: pass one of {', '.join(flags[1:])} or {flags[0]} (or "
                          "set it in the config)")
    if len(given) > 1:
        raise ConfigError(f"more than one source given ({', '.join(given)}); choose one")
    key = given[0]
    if key == SOURCE_OPTION.key:
        return "auto", values[key]
    kind = next(k for k in SOURCES.values() if k.selector is not None and k.selector.key == key)
    return kind.name, kind.target_of(values[key])


def open_source(
    spec: Spec,
    *,
    kind: str = "auto",
    live: Optional[bool] = None,
    loop: bool = False,
    capture: CaptureSettings = CaptureSettings(),
    reconnect: Optional[bool] = None,
    prefetch: int = 2,
    backoff: tuple[float, float] = (0.5, 10.0),
    prepare: Optional[Prepare] = None,
) -> ThreadedSource:
    """Open a frame source (``kind="auto"``: see :func:`classify`).

    ``live`` defaults to True for cameras and streams, False for files and folders.
    ``reconnect`` (reopen with backoff when the source fails) defaults to True for live
    kinds. ``loop`` restarts a file or folder at its end. ``capture``
    (:class:`CaptureSettings`): the size and frame rate requested from cameras, the most
    pixels a frame, image or stream may have (over it: refused, an image before it is
    decoded), the detector's input size (a source that can scale in hardware delivers the
    detector a small copy of each frame) and the kind-specific settings by config key.
    ``prepare`` (the detector's preprocessing) runs on every image in the capture thread.
    Raises
    :class:`SourceError` (exit 4) if the source cannot be opened, :class:`MissingDependency`
    if it needs software that is not installed.
    """
    if kind == "auto":
        kind, target = classify(spec)
    elif kind in SOURCES:
        target = int(spec) if isinstance(spec, str) and spec.isdigit() else spec
    else:
        raise SourceError(f"unknown source kind {kind!r} (valid: auto, {', '.join(SOURCES)})")
    entry = SOURCES.get(kind)
    live = entry.live if live is None else live
    reconnect = entry.live if reconnect is None else reconnect
    reader, name = entry.make_reader(target, capture)
    pace = None
    if live and not entry.live:
        # A file played as a live source is paced like a camera delivering it.
        fps_of = getattr(reader, "fps", None)
        pace = capture.fps or (fps_of() if callable(fps_of) else 0) or 30.0
        reader.close()
    return ThreadedSource(reader, name, live=live, reconnect=reconnect, loop=loop,
                          pace_fps=pace, prefetch=prefetch, backoff=backoff, prepare=prepare,
                          max_pixels=capture.max_pixels)
