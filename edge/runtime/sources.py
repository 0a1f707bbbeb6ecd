"""Frame sources: USB/V4L2 cameras, the Raspberry Pi camera, Jetson CSI cameras, video files,
folders of images and network streams, behind one small interface.

Every source captures in its own thread:

* a **live** source (camera, stream) keeps only the newest frame, so the detector never works
  on a stale one; frames replaced before they were read are counted in ``dropped``. When the
  device or stream disappears it is reopened with exponential backoff (and logged).
* a **file** source (video file, image folder) is read in order, every frame, with a small
  prefetch queue so that decoding overlaps inference; it ends cleanly at the end of the file.

While a frame is already waiting for the detector, the capture thread decodes the next one
in the background (``SCHED_IDLE``, see :mod:`edgeface.thread_priority`), so that it fills idle
cores instead of taking one from inference; when the detector waits, it runs normally.

``live`` can be overridden: ``live=True`` on a file plays it back in real time at its frame
rate, like a camera would deliver it (useful to rehearse a deployment without a camera).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Union

import numpy as np

from edgeface.errors import MissingDependency, SourceError
from edgeface.media.frame import Frame
from edgeface.media.images import IMAGE_EXTENSIONS, ImageReadError, read_image
from edgeface.runtime.capture_priority import BackgroundSwitch

log = logging.getLogger(__name__)

KINDS = ("auto", "camera", "picamera", "csi", "file", "folder", "stream")
_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_LIVE_KINDS = {"camera", "picamera", "csi", "stream"}


class SourceTimeout(TimeoutError):
    """No frame arrived within the ``read`` timeout; the source is still alive."""


class FrameSource(Protocol):
    """What the runtime needs from a source of frames."""

    name: str
    live: bool
    dropped: int  # frames captured but replaced by a newer one before they were read

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:  # pragma: no cover
        """The next frame (live: the newest), or None when the source has ended.

        Raises :class:`SourceTimeout` if ``timeout`` seconds pass without a frame.
        """
        ...

    def close(self) -> None:  # pragma: no cover
        ...


class CorruptFrame(Exception):
    """A frame that could not be decoded; the source skips it and counts it."""


class Reader(Protocol):
    """Blocking access to a device, file or stream, used from the capture thread only."""

    def open(self) -> None:  # pragma: no cover - raise SourceError when it cannot
        ...

    def read(self) -> Optional[np.ndarray]:  # pragma: no cover
        """An image; None at the end of the stream or when the device failed."""
        ...

    def close(self) -> None:  # pragma: no cover
        ...


def as_bgr(image: object) -> Optional[np.ndarray]:
    """Normalise a captured image to BGR uint8 HxWx3; None if it is not a usable image."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        return None
    import cv2

    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return None


class ThreadedSource:
    """Runs a :class:`Reader` in a capture thread; see the module docstring for the modes."""

    def __init__(
        self,
        reader: Reader,
        name: str,
        *,
        live: bool,
        reconnect: bool = False,
        loop: bool = False,
        pace_fps: Optional[float] = None,
        prefetch: int = 2,
        backoff: tuple[float, float] = (0.5, 10.0),
        background_when_ahead: bool = True,
    ):
        self.reader = reader
        self.name = name
        self.live = live
        self.reconnect = reconnect
        self.loop = loop
        self.pace_fps = pace_fps
        self.prefetch = max(1, prefetch)
        self.backoff = backoff
        #: Optional per-image work done in the capture thread (e.g. the detector's
        #: preprocessing), so that it overlaps inference of the previous frame.
        self.prepare: Optional[Callable[[np.ndarray], Any]] = None
        self.dropped = 0
        self.corrupt = 0
        self.reconnects = 0
        self.frames_captured = 0
        self._cond = threading.Condition()
        self._latest: Optional[Frame] = None
        self._queue: deque[Frame] = deque()
        self._ended = False
        self._error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._priority = BackgroundSwitch(background_when_ahead)
        reader.open()  # fails here, synchronously, with a SourceError naming the source
        self._thread = threading.Thread(target=self._capture, name=f"capture {name}",
                                        daemon=True)
        self._thread.start()

    @property
    def fps(self) -> Optional[float]:
        """The nominal frame rate, where the source knows it."""
        if self.pace_fps:
            return self.pace_fps
        fps = self.reader.fps() if isinstance(self.reader, CvCaptureReader) else 0.0
        return fps if fps and 0 < fps < 1000 else None

    # -- consumer side -------------------------------------------------------------------
    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self.live:
                    if self._latest is not None:
                        frame, self._latest = self._latest, None
                        return frame
                elif self._queue:
                    frame = self._queue.popleft()
                    self._cond.notify_all()  # room for the producer
                    return frame
                self._priority.set(False)  # the detector waits: no more background decoding
                if self._ended:
                    if self._error is not None:
                        raise SourceError(f"{self.name}: capture failed: {self._error}")
                    return None
                if deadline is None:
                    self._cond.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise SourceTimeout(f"no frame from {self.name} within {timeout} s")
                    self._cond.wait(remaining)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self.reader.close()

    def __enter__(self) -> ThreadedSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- capture thread ------------------------------------------------------------------
    def _capture(self) -> None:
        index = 0
        since_open = 0  # good frames since the last (re)open: a loop over nothing must end
        next_due = time.monotonic()
        self._priority.attach()
        try:
            while not self._stop.is_set():
                with self._cond:
                    self._priority.set(self._latest is not None if self.live
                                       else bool(self._queue))
                try:
                    raw = self.reader.read()
                    stamp, mono = time.time(), time.monotonic()
                except CorruptFrame as exc:
                    self._count_corrupt(str(exc))
                    index += 1
                    continue
                if raw is None:
                    if self.loop and since_open > 0:
                        self.reader.close()
                        self.reader.open()
                        since_open = 0
                        continue
                    if self.reconnect:
                        self._reopen()
                        since_open = 0
                        continue
                    break
                image = as_bgr(raw)
                if image is None:
                    shape = getattr(raw, "shape", None)
                    self._count_corrupt(f"frame {index} is not an image (shape {shape}, "
                                        f"dtype {getattr(raw, 'dtype', None)})")
                    index += 1
                    continue
                since_open += 1
                prepared, prepare_s = None, 0.0
                if self.prepare is not None:
                    t0 = time.perf_counter()
                    try:
                        prepared = self.prepare(image)
                    except ValueError as exc:
                        self._count_corrupt(f"frame {index}: {exc}")
                        index += 1
                        continue
                    prepare_s = time.perf_counter() - t0
                if self.pace_fps:
                    next_due = max(next_due + 1.0 / self.pace_fps, time.monotonic() - 1.0)
                    if self._stop.wait(max(0.0, next_due - time.monotonic())):
                        break
                    stamp, mono = time.time(), time.monotonic()  # "captured" now, on cue
                label = getattr(self.reader, "current_label", None)
                self._publish(Frame(index, stamp, image, mono, label, prepared, prepare_s))
                index += 1
        except BaseException as exc:  # surfaced to the consumer by read()
            log.error("%s: capture thread failed: %s", self.name, exc)
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _publish(self, frame: Frame) -> None:
        with self._cond:
            self.frames_captured += 1
            if self.live:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = frame
            else:
                while len(self._queue) >= self.prefetch and not self._stop.is_set():
                    self._cond.wait(0.5)
                self._queue.append(frame)
            self._cond.notify_all()

    def _count_corrupt(self, why: str) -> None:
        self.corrupt += 1
        # One line per corrupt frame would flood the journal on a broken camera.
        if self.corrupt <= 10 or self.corrupt % 1000 == 0:
            log.warning("%s: skipping corrupt frame: %s (%d so far)", self.name, why,
                        self.corrupt)

    def _reopen(self) -> None:
        self.reconnects += 1
        log.warning("%s: source lost; reopening (reconnect #%d)", self.name, self.reconnects)
        self.reader.close()
        delay, max_delay = self.backoff
        attempt = 0
        while not self._stop.wait(delay):
            attempt += 1
            try:
                self.reader.open()
            except SourceError as exc:
                delay = min(delay * 2, max_delay)
                log.warning("%s: reopen attempt %d failed (%s); next try in %.1f s",
                            self.name, attempt, exc, delay)
                continue
            log.warning("%s: reopened after %d attempt(s)", self.name, attempt)
            return


# -- readers -----------------------------------------------------------------------------
class CvCaptureReader:
    """cv2.VideoCapture: V4L2 cameras, video files, network streams, GStreamer pipelines."""

    def __init__(self, target: Union[str, int], api: int, describe: str,
                 params: tuple[int, ...] = (), props: Optional[dict[int, float]] = None,
                 hint: str = "", params_optional: bool = False):
        self.target = target
        self.api = api
        self.describe = describe
        self.params = list(params)
        self.props = props or {}
        self.hint = hint
        self.params_optional = params_optional
        self._cap = None

    def open(self) -> None:
        import cv2

        if self._cap is not None:  # already open (validated when the source was created)
            return
        cap = cv2.VideoCapture(self.target, self.api, self.params)
        if not cap.isOpened() and self.params and self.params_optional:
            # A backend that does not know a parameter refuses to open: try without.
            cap.release()
            cap = cv2.VideoCapture(self.target, self.api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.describe}" + (f": {self.hint}"
                                                               if self.hint else ""))
        for prop, value in self.props.items():
            cap.set(prop, value)
        self._cap = cap

    def read(self) -> Optional[np.ndarray]:
        if self._cap is None:
            return None
        ok, image = self._cap.read()
        return image if ok else None

    def fps(self) -> float:
        import cv2

        return float(self._cap.get(cv2.CAP_PROP_FPS)) if self._cap is not None else 0.0

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderReader:
    """The image files of a folder (recursively, sorted by path) as a frame sequence."""

    def __init__(self, files: list[Path]):
        self.files = files
        self._i = 0
        self.current_label: Optional[str] = None

    def open(self) -> None:
        self._i = 0

    def read(self) -> Optional[np.ndarray]:
        if self._i >= len(self.files):
            return None
        path = self.files[self._i]
        self._i += 1
        self.current_label = str(path)
        try:
            return read_image(path)
        except ImageReadError as exc:
            raise CorruptFrame(str(exc)) from None

    def close(self) -> None:
        pass


PICAMERA_HINT = ("on Raspberry Pi OS install it with `sudo apt install python3-picamera2` and "
                 "create the virtual environment with `python3 -m venv --system-site-packages` "
                 "so that it can see the system package (it is not installable with pip)")


class PiCameraReader:
    """The Raspberry Pi camera through picamera2 (libcamera), imported only when used."""

    def __init__(self, index: int = 0, size: Optional[tuple[int, int]] = None,
                 fps: Optional[float] = None):
        self.index = index
        self.size = size or (1280, 720)
        self.fps = fps
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise MissingDependency(f"--picamera needs picamera2, which is not importable "
                                    f"({exc}); {PICAMERA_HINT}") from None
        try:
            cam = Picamera2(self.index)
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            # "RGB888" in libcamera's naming is B, G, R byte order: exactly what OpenCV wants.
            cfg = cam.create_video_configuration(
                main={"size": tuple(self.size), "format": "RGB888"}, controls=controls,
                buffer_count=2)
            cam.configure(cfg)
            cam.start()
        except Exception as exc:
            raise SourceError(f"cannot open Raspberry Pi camera {self.index}: {exc}") from None
        self._cam = cam

    def read(self) -> Optional[np.ndarray]:
        if self._cam is None:
            return None
        try:
            return self._cam.capture_array("main")
        except Exception as exc:
            log.warning("picamera2 capture failed: %s", exc)
            return None

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            except Exception:  # closing a camera that already failed
                pass
            self._cam = None


def csi_pipeline(sensor: int = 0, size: tuple[int, int] = (1280, 720), fps: float = 30) -> str:
    """GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc) delivering BGR frames.

    ``appsink drop=true max-buffers=1`` keeps GStreamer itself from queueing stale frames.
    """
    w, h = size
    return (f"nvarguscamerasrc sensor-id={sensor} ! "
            f"video/x-raw(memory:NVMM), width={w}, height={h}, framerate={round(fps)}/1, "
            f"format=NV12 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! "
            f"video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false")


def opencv_has_gstreamer() -> bool:
    import cv2

    m = re.search(r"GStreamer:\s*(\w+)", cv2.getBuildInformation())
    return bool(m) and m.group(1).upper() == "YES"


def redact_url(url: str) -> str:
    """Hide credentials in ``rtsp://user:pass@host/...`` before they reach a log."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", url)


# -- opening -----------------------------------------------------------------------------
def classify(spec: Union[str, int, os.PathLike]) -> tuple[str, Union[str, int]]:
    """Guess the kind of a source spec: ``0`` camera, ``picamera[:N]``, ``csi[:N]``, URL,
    folder or file. Returns (kind, normalised spec)."""
    if isinstance(spec, bool):
        raise SourceError(f"invalid source {spec!r}")
    if isinstance(spec, int):
        return "camera", spec
    s = os.fspath(spec).strip()
    if s.isdigit():
        return "camera", int(s)
    if s.startswith("/dev/video"):
        return "camera", s
    low = s.lower()
    for kind in ("picamera", "csi"):
        if low == kind or low.startswith(kind + ":"):
            rest = s[len(kind) + 1:]
            if rest and not rest.isdigit():
                raise SourceError(f"invalid source {s!r}: expected {kind} or {kind}:N")
            return kind, int(rest or 0)
    if low.startswith("file://"):
        s = s[len("file://"):]
    elif _URL_RE.match(s):
        return "stream", s
    p = Path(s).expanduser()
    if p.is_dir():
        return "folder", str(p)
    if p.exists():
        return "file", str(p)
    raise SourceError(f"no such file or directory: {p}")


def open_source(
    spec: Union[str, int, os.PathLike],
    *,
    kind: str = "auto",
    live: Optional[bool] = None,
    loop: bool = False,
    capture_size: Optional[tuple[int, int]] = None,
    capture_fps: Optional[float] = None,
    reconnect: Optional[bool] = None,
    prefetch: int = 2,
    backoff: tuple[float, float] = (0.5, 10.0),
) -> ThreadedSource:
    """Open a frame source (see :func:`classify` for what ``spec`` may be).

    ``live`` defaults to True for cameras and streams, False for files and folders.
    ``reconnect`` (reopen with backoff when the source fails) defaults to True for live
    kinds. ``loop`` restarts a file or folder at its end. ``capture_size`` (width, height)
    and ``capture_fps`` are requested from cameras. Raises :class:`SourceError` (exit 4) if
    the source cannot be opened, :class:`MissingDependency` if it needs software that is
    not installed.
    """
    if kind not in KINDS:
        raise SourceError(f"unknown source kind {kind!r} (valid: {', '.join(KINDS)})")
    if kind == "auto":
        kind, target = classify(spec)
    elif kind in ("camera", "picamera", "csi"):
        target = int(spec) if str(spec).isdigit() else spec
    else:
        target = os.fspath(spec)
    is_live_kind = kind in _LIVE_KINDS
    live = is_live_kind if live is None else live
    reconnect = is_live_kind if reconnect is None else reconnect
    reader, name = _make_reader(kind, target, capture_size, capture_fps)
    pace = None
    if live and kind in ("file", "folder"):
        # A file played as a live source is paced like a camera delivering it.
        pace = capture_fps or (reader.fps() if isinstance(reader, CvCaptureReader) else 0) or 30.0
        reader.close()
    return ThreadedSource(reader, name, live=live, reconnect=reconnect, loop=loop,
                          pace_fps=pace, prefetch=prefetch, backoff=backoff)


def _make_reader(kind: str, target, size, fps) -> tuple[Reader, str]:
    import cv2

    if kind == "camera":
        props = {cv2.CAP_PROP_BUFFERSIZE: 1}
        if size:
            props[cv2.CAP_PROP_FRAME_WIDTH], props[cv2.CAP_PROP_FRAME_HEIGHT] = size
        if fps:
            props[cv2.CAP_PROP_FPS] = fps
        dev = f"/dev/video{target}" if isinstance(target, int) else str(target)
        hint = (f"{dev} does not exist (list cameras with `v4l2-ctl --list-devices`)"
                if not os.path.exists(dev) else
                f"{dev} exists but could not be opened (in use by another process, or no "
                "permission: add the user to the 'video' group)")
        api = cv2.CAP_V4L2 if os.name == "posix" and os.path.exists("/dev") else cv2.CAP_ANY
        return CvCaptureReader(target, api, f"camera {dev}", props=props, hint=hint), \
            f"camera {dev}"
    if kind == "picamera":
        return PiCameraReader(int(target), size, fps), f"picamera {target}"
    if kind == "csi":
        if not opencv_has_gstreamer():
            raise MissingDependency(
                "--csi needs OpenCV built with GStreamer, and this one is not "
                "(cv2.getBuildInformation() shows GStreamer: NO); on a Jetson use JetPack's "
                "OpenCV (`sudo apt install python3-opencv`), create the virtual environment "
                "with `python3 -m venv --system-site-packages` and `pip uninstall "
                "opencv-python-headless` inside it")
        pipe = csi_pipeline(int(target), size or (1280, 720), fps or 30)
        return CvCaptureReader(pipe, cv2.CAP_GSTREAMER, f"CSI camera {target}",
                               hint="is the camera connected and nvargus-daemon running?"), \
            f"csi {target}"
    if kind == "stream":
        name = redact_url(str(target))
        params = (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10000)
        return CvCaptureReader(str(target), cv2.CAP_FFMPEG, f"stream {name}", params=params,
                               hint="unreachable, wrong URL, or a protocol this OpenCV "
                                    "build cannot read"), name
    if kind == "folder":
        p = Path(target)
        if not p.is_dir():
            raise SourceError(f"not a folder: {p}")
        files = sorted(f for f in p.rglob("*") if f.is_file()
                       and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise SourceError(f"no images in folder {p} (looked for "
                              f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
        return ImageFolderReader(files), str(p)
    # file: a still image is a one-frame sequence; anything else goes to the video decoder
    p = Path(target)
    if not p.is_file():
        raise SourceError(f"no such file: {p}")
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFolderReader([p]), str(p)
    # One decoder thread, the capture thread itself: decoding already overlaps inference,
    # and FFmpeg's own threads (normal priority) would take cores from inference
    # (benchmarks/pipeline_overhead.py: 0.3 ms more CPU per 480p frame, and contention).
    reader = CvCaptureReader(str(p), cv2.CAP_ANY, f"video file {p}",
                             params=(cv2.CAP_PROP_N_THREADS, 1), params_optional=True,
                             hint="not a video OpenCV can decode (corrupt file or "
                                  "unsupported codec)")
    reader.open()  # validate now: a bad file is a SourceError before anything starts
    return reader, str(p)
