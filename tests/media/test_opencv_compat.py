"""OpenCV builds differ (4.5.4 on JetPack 6, 4.5.5.64 the pip floor, 4.6.0 in Debian 12,
4.11 on Raspberry Pi OS's `.[pi]`, 5.x the newest): the runtime takes what the installed
build has. The fakes below stand in for the builds that are not installed here."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from edgeface.media.image_header import HeaderError, check_jpeg_data, read_header
from edgeface.media.opencv_compat import capture_params, set_log_level_error


def fake_cv2_build(monkeypatch, **attrs) -> types.SimpleNamespace:
    """A cv2 module with only ``attrs``: an older or newer build than the installed one."""
    fake = types.ModuleType("cv2")
    for name, value in attrs.items():
        setattr(fake, name, value)
    monkeypatch.setitem(sys.modules, "cv2", fake)
    return fake


def test_log_level_on_a_5x_build_uses_utils_logging(monkeypatch):
    calls = []
    logging = types.SimpleNamespace(LOG_LEVEL_ERROR=2, setLogLevel=calls.append)
    fake_cv2_build(monkeypatch, utils=types.SimpleNamespace(logging=logging))
    assert set_log_level_error() and calls == [2]


def test_log_level_on_4x_wheels_without_utils_logging_uses_the_legacy_call(monkeypatch):
    calls = []
    # opencv-python-headless 4.5.5-4.11 and Debian's 4.6: cv2.utils without `logging`.
    fake_cv2_build(monkeypatch, utils=types.SimpleNamespace(), setLogLevel=calls.append)
    assert set_log_level_error() and calls == [2]


def test_log_level_without_either_api_is_left_alone(monkeypatch):
    fake_cv2_build(monkeypatch, utils=types.SimpleNamespace())
    assert set_log_level_error() is False


def test_log_level_on_the_installed_build_hides_warnings():
    cv2 = pytest.importorskip("cv2")
    assert set_log_level_error()
    getter = getattr(getattr(cv2.utils, "logging", None), "getLogLevel", None)
    if getter is not None:
        assert getter() == 2
    elif hasattr(cv2, "setLogLevel"):
        assert cv2.setLogLevel(2) == 2  # returns the level it replaces: ours


def test_capture_params_keep_only_what_the_build_names(monkeypatch):
    fake_cv2_build(monkeypatch, CAP_PROP_OPEN_TIMEOUT_MSEC=53)
    assert capture_params(("CAP_PROP_N_THREADS", 1), ("CAP_PROP_OPEN_TIMEOUT_MSEC", 9)) \
        == (53, 9)
    fake_cv2_build(monkeypatch, CAP_PROP_N_THREADS=70, CAP_PROP_OPEN_TIMEOUT_MSEC=53)
    assert capture_params(("CAP_PROP_N_THREADS", 1), ("CAP_PROP_OPEN_TIMEOUT_MSEC", 9)) \
        == (70, 1, 53, 9)


def _jpeg(**params) -> bytes:
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(0).integers(0, 255, (96, 128, 3)).astype(np.uint8)
    flags = [v for k, val in params.items() for v in (getattr(cv2, k), val)]
    ok, buf = cv2.imencode(".jpg", img, flags)
    assert ok
    return buf.tobytes()


def jpeg_complete(data: bytes) -> bool:
    try:
        read_header(data)
        check_jpeg_data(data)
    except HeaderError:
        return False
    return True


@pytest.mark.parametrize("params", [{}, {"IMWRITE_JPEG_PROGRESSIVE": 1},
                                    {"IMWRITE_JPEG_RST_INTERVAL": 2}])
def test_jpeg_complete_only_to_the_end_of_image(params):
    data = _jpeg(**params)
    assert jpeg_complete(data)
    assert jpeg_complete(data + b"a phone's trailer \xff\xd8")
    assert not any(jpeg_complete(data[:cut]) for cut in range(2, len(data) - 1, 7))
    assert not jpeg_complete(data[:-2])


def test_a_thumbnails_end_of_image_is_not_the_images():
    main = _jpeg()
    thumb = _jpeg(IMWRITE_JPEG_QUALITY=20)
    payload = b"Exif\x00\x00" + thumb  # a whole JPEG inside APP1, EOI included
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    data = main[:2] + app1 + main[2:]
    assert jpeg_complete(data)
    assert not jpeg_complete(data[:len(data) - 200])


def test_a_truncated_jpeg_is_refused_on_every_build():
    from edgeface.media.images import ImageReadError, decode_image

    data = _jpeg()
    assert decode_image(data).shape == (96, 128, 3)
    # OpenCV 4.5.5 / 4.6.0 decode this to an image, grey below the cut; 4.11+ refuse it.
    with pytest.raises(ImageReadError, match="JPEG truncated"):
        decode_image(data[: len(data) // 2])
