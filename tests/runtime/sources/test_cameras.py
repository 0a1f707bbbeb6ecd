"""Camera sources without cameras: a fake cv2.VideoCapture for V4L2 (the MJPG request) and
a fake picamera2 following picamera2's documented API (the ISP-scaled lores stream).

Neither fake is the real hardware: on a device, `edgeface doctor` lists the cameras and
`edgeface run --camera 0` / `--picamera` exercises them (docs/install.md, "On a Raspberry Pi").
"""

from __future__ import annotations

import logging
import sys
import types

import cv2
import numpy as np
import pytest

from edgeface.inference.detector import Detector
from edgeface.runtime.sources import CaptureSettings, open_source
from edgeface.runtime.sources.camera import camera_format, fourcc_text
from edgeface.runtime.sources.picamera import lores_size, yuv420_to_bgr

FOURCC = {name: cv2.VideoWriter_fourcc(*name) for name in ("MJPG", "YUYV", "H264")}


class FakeVideoCaptureNoCamera:
    """Stands in for cv2.VideoCapture on a V4L2 camera that offers ``formats``: records every
    set() in order; a format it does not offer falls back to its first, as V4L2 drivers do."""

    instances: list = []

    def __init__(self, target, api=None, params=None, *, formats=("YUYV", "MJPG")):
        self.formats = formats
        self.sets: list[tuple[int, float]] = []
        self.props = {cv2.CAP_PROP_FOURCC: float(FOURCC[formats[0]]),
                      cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0,
                      cv2.CAP_PROP_FPS: 30.0}
        FakeVideoCaptureNoCamera.instances.append(self)

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.sets.append((prop, value))
        if prop == cv2.CAP_PROP_FOURCC:
            name = fourcc_text(value)
            value = FOURCC[name] if name in self.formats else FOURCC[self.formats[0]]
        self.props[prop] = float(value)
        return True

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def read(self):
        w, h = int(self.props[cv2.CAP_PROP_FRAME_WIDTH]), int(self.props[cv2.CAP_PROP_FRAME_HEIGHT])
        return True, np.zeros((h, w, 3), np.uint8)

    def release(self):
        pass


@pytest.fixture
def fake_v4l2(monkeypatch):
    FakeVideoCaptureNoCamera.instances = []

    def install(formats):
        monkeypatch.setattr(cv2, "VideoCapture",
                            lambda *a, **k: FakeVideoCaptureNoCamera(*a, formats=formats))
    return install


def test_camera_is_asked_for_mjpg_before_its_size_and_rate(fake_v4l2, caplog):
    fake_v4l2(("YUYV", "MJPG"))
    caplog.set_level(logging.INFO)
    src = open_source(0, kind="camera", capture=CaptureSettings((1280, 720), 30))
    try:
        cap = FakeVideoCaptureNoCamera.instances[-1]
        props = [p for p, _ in cap.sets]
        assert props.index(cv2.CAP_PROP_FOURCC) < props.index(cv2.CAP_PROP_FRAME_WIDTH)
        assert fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)) == "MJPG"
        assert src.read(timeout=5).image.shape == (720, 1280, 3)
    finally:
        src.close()
    assert "MJPG 1280x720 at 30 fps" in caplog.text


def test_a_camera_without_mjpg_keeps_working_and_says_what_it_delivers(fake_v4l2, caplog):
    fake_v4l2(("YUYV",))
    caplog.set_level(logging.INFO)
    src = open_source(0, kind="camera")
    try:
        assert src.read(timeout=5) is not None
    finally:
        src.close()
    assert "asked for MJPG, the camera delivers YUYV" in caplog.text


def test_explicit_format_is_requested_and_a_refusal_is_a_warning(fake_v4l2, caplog):
    fake_v4l2(("MJPG",))
    src = open_source(0, kind="camera",
                      capture=CaptureSettings(options={"camera_format": "YUYV"}))
    src.close()
    cap = FakeVideoCaptureNoCamera.instances[-1]
    assert cap.sets[0] == (cv2.CAP_PROP_FOURCC, FOURCC["YUYV"])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("asked for YUYV, the camera delivers MJPG" in r.getMessage() for r in warnings)


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("mjpg", "MJPG"),
                                             ("YUYV", "YUYV")])
def test_camera_format_values(value, expected):
    assert camera_format("--camera-format", value) == expected


@pytest.mark.parametrize("value", ["MJPEG", "", "ab\x00c", "é123"])
def test_camera_format_rejects(value):
    with pytest.raises(Exception, match="four-character code"):
        camera_format("--camera-format", value)


# --------------------------------------------------------------------------- picamera2

def i420_frame(bgr: np.ndarray, stride: int) -> np.ndarray:
    """A BGR image as picamera2 delivers a YUV420 lores buffer: (h*3/2, stride), padded."""
    h, w = bgr.shape[:2]
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # (h*3/2, w), planes Y, U, V
    y, u, v = yuv[:h], yuv[h:h + h // 4].reshape(h // 2, w // 2), \
        yuv[h + h // 4:].reshape(h // 2, w // 2)
    out = np.zeros((h * 3 // 2, stride), np.uint8)
    out[:h, :w] = y
    chroma = np.zeros((h // 2, stride // 2), np.uint8)
    for plane, top in ((u, h), (v, h + h // 4)):
        chroma[:, :w // 2] = plane
        out[top:top + h // 4] = chroma.reshape(h // 4, stride)
    return out


class FakePicamera2NoCamera:
    """Stands in for picamera2.Picamera2 (its documented API: create_video_configuration,
    configure, start, capture_arrays, capture_array, stop, close), delivering a synthetic
    scene: a bright square whose position is known, in main (RGB888 = BGR bytes) and in the
    ISP-scaled lores stream (YUV420 with padded rows)."""

    last = None

    def __init__(self, camera_num=0):
        self.camera_num = camera_num
        self.config = None
        self.started = False
        FakePicamera2NoCamera.last = self

    @staticmethod
    def global_camera_info():
        return [{"Model": "imx708", "Num": 0}]

    def create_video_configuration(self, main=None, lores=None, controls=None,
                                   buffer_count=6, **kwargs):
        return {"main": dict(main or {}), "lores": dict(lores) if lores else None,
                "controls": dict(controls or {}), "buffer_count": buffer_count}

    def configure(self, config):
        assert config["main"]["format"] == "RGB888"
        if config["lores"]:
            lw, lh = config["lores"]["size"]
            mw, mh = config["main"]["size"]
            assert config["lores"]["format"] == "YUV420" and lw <= mw and lh <= mh
            assert lw % 2 == 0 and lh % 2 == 0
        self.config = config

    def start(self):
        self.started = True

    def _scene(self, size):
        w, h = size
        img = np.full((h, w, 3), (40, 60, 80), np.uint8)
        img[h // 4:h // 2, w // 2:3 * w // 4] = (250, 250, 250)
        return img

    def capture_array(self, name="main"):
        return self._scene(self.config[name]["size"])

    def capture_arrays(self, names):
        out = []
        for name in names:
            img = self._scene(self.config[name]["size"])
            out.append(img if name == "main" else i420_frame(img, stride=img.shape[1] + 64))
        return out, {"SensorTimestamp": 0}

    def stop(self):
        self.started = False

    def close(self):
        pass


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2NoCamera
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return FakePicamera2NoCamera


def test_yuv420_lores_conversion_keeps_colours_and_crops_the_padding():
    bgr = np.zeros((64, 96, 3), np.uint8)
    bgr[:, :48] = (255, 0, 0)  # blue left, red right: swapped chroma planes would show
    bgr[:, 48:] = (0, 0, 255)
    out = yuv420_to_bgr(i420_frame(bgr, stride=128), (96, 64))
    assert out.shape == (64, 96, 3)
    assert np.abs(out.astype(int) - bgr).max() <= 8


def test_lores_size_is_even_and_within_main():
    assert lores_size((416, 416), (1280, 720)) == (416, 416)
    assert lores_size((417, 300), (320, 240)) == (320, 240)
    assert lores_size((415, 415), (1280, 720)) == (414, 414)


def test_picamera_detects_on_lores_and_reports_main_pixels(fake_picamera2):
    """The detector gets the lores stream at its input size; boxes come back in main's
    pixels; the frame kept for outputs is main."""
    seen = []

    def prepare(image, frame_size=None):
        seen.append((image.shape, frame_size))
        return Detector.prepare(FakeDetectorInfo(), image, frame_size)

    src = open_source("picamera", prepare=prepare,
                      capture=CaptureSettings((1280, 720), analysis_size=(416, 416)))
    try:
        frame = src.read(timeout=5)
    finally:
        src.close()
    cfg = fake_picamera2.last.config
    assert cfg["lores"] == {"size": (416, 416), "format": "YUV420"}
    assert cfg["main"]["size"] == (1280, 720)
    assert frame.image.shape == (720, 1280, 3)
    assert seen[0] == ((416, 416, 3), (1280, 720))
    blob, scale = frame.prepared
    assert blob.shape == (1, 3, 416, 416)
    assert scale == pytest.approx((1280 / 416, 720 / 416))


def test_picamera_without_an_analysis_size_captures_main_only(fake_picamera2):
    src = open_source("picamera", capture=CaptureSettings((640, 480)))
    try:
        assert src.read(timeout=5).image.shape == (480, 640, 3)
    finally:
        src.close()
    assert fake_picamera2.last.config["lores"] is None


class FakeDetectorInfo:
    """The two attributes Detector.prepare reads, without a model."""

    class info:
        input_size = (416, 416)
        mean = (104.0, 117.0, 123.0)
