"""Jetson CSI cameras through a GStreamer ``nvarguscamerasrc`` pipeline (needs an OpenCV
built with GStreamer, i.e. JetPack's)."""

from __future__ import annotations

from typing import Any

from edgeface.errors import MissingDependency
from edgeface.runtime.options import Option, number
from edgeface.runtime.sources.capture import CvCaptureReader
from edgeface.runtime.sources.registry import (
    CaptureSettings,
    SourceKind,
    device_number,
    register_source,
)


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
    """Whether this OpenCV was built with GStreamer (the same reading as ``doctor``'s)."""
    import cv2

    from edgeface.system.doctor_stack import opencv_build

    return bool(opencv_build(cv2)["gstreamer"])


def _csi_reader(target: Any, settings: CaptureSettings) -> tuple[CvCaptureReader, str]:
    import cv2

    if not opencv_has_gstreamer():
        raise MissingDependency(
            "--csi needs OpenCV built with GStreamer, and this one is not "
            "(cv2.getBuildInformation() shows GStreamer: NO); on a Jetson use JetPack's "
            "OpenCV (`sudo apt install python3-opencv`), create the virtual environment "
            "with `python3 -m venv --system-site-packages` and `pip uninstall "
            "opencv-python-headless` inside it")
    pipe = csi_pipeline(int(target), settings.size or (1280, 720), settings.fps or 30)
    return CvCaptureReader(pipe, cv2.CAP_GSTREAMER, f"CSI camera {target}",
                           hint="is the camera connected and nvargus-daemon running?",
                           max_pixels=settings.max_pixels), \
        f"csi {target}"


register_source(SourceKind(
    "csi", live=True, make_reader=_csi_reader,
    matches=lambda text: device_number(text, "csi"),
    selector=Option("csi", "--csi", number(0, 15, integer=True), metavar="[SENSOR]",
                    cli="optional", flag_value=0,
                    help="Jetson CSI camera via GStreamer nvarguscamerasrc."), rank=30,
    needs_gpu=True))
