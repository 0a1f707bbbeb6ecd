"""Preprocessing resizes and subtracts the mean in one compiled pass (_preprocess.c) where
the kernel is built, else through BGRA (OpenCV's exact bilinear kernel is vectorised for 4
channels, not 3) and OpenCV's subtraction on split planes. Either way the values must be, bit
for bit, those of the plain 3-channel cv2.resize(INTER_LINEAR_EXACT) and numpy's float32
subtraction, on every OpenCV a target installs (this runs in the Pi, Trixie, apt-OpenCV and
JetPack-floor checks too): every test here runs on both paths."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgeface.inference import preprocess as preprocess_module
from edgeface.inference.preprocess import preprocess

MEAN = (104.0, 117.0, 123.0)
FUSED_BUILT = preprocess_module._load_fused() is not None


@pytest.fixture(autouse=True, params=["fused", "opencv"])
def path(request, monkeypatch):
    """Each test once through the compiled kernel (skipped where it is not built) and once
    through OpenCV's path, the fallback."""
    if request.param == "fused":
        if not FUSED_BUILT:
            pytest.skip("edgeface.inference._preprocess is not built here")
        monkeypatch.setattr(preprocess_module, "_fused", preprocess_module._load_fused())
    else:
        monkeypatch.setattr(preprocess_module, "_fused", None)
    return request.param


def _reference(image: np.ndarray, size: tuple[int, int], mean=MEAN) -> np.ndarray:
    if image.shape[1::-1] != size:
        image = cv2.resize(np.ascontiguousarray(image), size,
                           interpolation=cv2.INTER_LINEAR_EXACT)
    return (image.astype(np.float32) - np.float32(mean)).transpose(2, 0, 1)[None]


def _assert_same_bits(blob: np.ndarray, reference: np.ndarray) -> None:
    """Bit for bit: array_equal would let -0.0 for 0.0 (and any NaN for another) through."""
    assert blob.dtype == np.float32 and blob.shape == reference.shape
    np.testing.assert_array_equal(blob.view(np.uint32), reference.view(np.uint32))


@pytest.mark.parametrize("shape", [(480, 640), (720, 1280), (301, 300), (100, 80), (417, 415)],
                         ids=lambda s: f"{s[1]}x{s[0]}")
def test_resize_through_bgra_gives_the_3_channel_values(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    image[: shape[0] // 3] = rng.integers(0, 256, 3, dtype=np.uint8)  # flat and busy areas
    blob, (sx, sy) = preprocess(image, (416, 416), MEAN)
    assert blob.dtype == np.float32 and blob.shape == (1, 3, 416, 416)
    np.testing.assert_array_equal(blob, _reference(image, (416, 416)))
    assert (sx, sy) == (shape[1] / 416, shape[0] / 416)


def test_a_strided_view_and_the_model_size_itself():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    flipped = image[:, ::-1]  # a view, not contiguous: what a mirrored camera frame is
    np.testing.assert_array_equal(preprocess(flipped, (416, 416), MEAN)[0],
                                  _reference(flipped, (416, 416)))
    same = image[:416, :416]
    np.testing.assert_array_equal(preprocess(same, (416, 416), MEAN)[0],
                                  _reference(same, (416, 416)))


# Means a model may carry (integer, fractional: Caffe's ImageNet BGR, 127.5), and ones past
# what OpenCV 5 keeps exact (it casts an integer-valued scalar to int16 for a uint8 source).
MEANS = [MEAN, (103.939, 116.779, 123.68), (127.5, 127.5, 127.5), (0.0, -0.0, 255.0),
         (-32767.0, 32767.0, 0.1), (32768.0, -1e7, 16777217.0), (float("nan"), 1e-30, 3e-8)]


@pytest.mark.parametrize("mean", MEANS, ids=str)
@pytest.mark.parametrize("shape", [(416, 416), (311, 417), (832, 832), (2, 3)],
                         ids=lambda s: f"{s[1]}x{s[0]}")
def test_bit_identical_to_numpy_for_any_mean_and_the_extreme_grey_levels(shape, mean):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    image[: shape[0] // 4] = 0
    image[-(shape[0] // 4):] = 255
    for size in [(416, 416), (417, 311)]:
        _assert_same_bits(preprocess(image, size, mean)[0], _reference(image, size, mean))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint16])
def test_an_image_that_is_not_uint8_keeps_numpys_casting(dtype):
    image = (np.random.default_rng(3).random((416, 416, 3)) * 255.7).astype(dtype)
    mean = (103.939, 116.779, 123.68)
    _assert_same_bits(preprocess(image, (416, 416), mean)[0], _reference(image, (416, 416), mean))


def test_real_photos_at_native_size_and_at_the_model_size(native_images):
    for path in native_images[:4]:
        image = cv2.imread(str(path))
        for size in [(416, 416), (640, 480)]:
            _assert_same_bits(preprocess(image, size, MEAN)[0], _reference(image, size))
        small = cv2.resize(image, (416, 416), interpolation=cv2.INTER_AREA)
        _assert_same_bits(preprocess(small, (416, 416), MEANS[1])[0],
                          _reference(small, (416, 416), MEANS[1]))


def test_threads_preprocessing_at_once_keep_their_own_buffers():
    """The resized image and its planes are reused per thread (page faults: 1,253 a frame
    when allocated afresh): threads resizing different frames at once each get their own
    values, those of one thread alone, and a thread's second size replaces its buffers."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
              for h, w in ((480, 640), (720, 1280), (416, 416), (311, 417))] * 4
    want = [preprocess(f, (416, 416))[0] for f in frames]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(lambda f: preprocess(f, (416, 416))[0], frames))
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
    small = preprocess(frames[0], (320, 240))[0]  # another model size on this thread
    assert small.shape == (1, 3, 240, 320)
    np.testing.assert_array_equal(preprocess(frames[0], (416, 416))[0], want[0])


def _random_image(rng, h: int, w: int) -> np.ndarray:
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[: h // 3] = rng.integers(0, 256, 3, dtype=np.uint8)  # a flat area, then noise
    image[-(h // 5):, : w // 2] = 255
    return image


# Camera frames, both-axis down- and upscales, odd sizes, exact 2x (where OpenCV switches to
# its INTER_AREA code), 1x1 and 1-pixel lines, tall and thin; (h, w) -> (tw, th).
SIZES = [((480, 640), (416, 416)), ((720, 1280), (416, 416)), ((1080, 1920), (416, 416)),
         ((832, 832), (416, 416)), ((1, 1), (416, 416)), ((416, 416), (1, 1)),
         ((1, 640), (416, 416)), ((480, 1), (416, 416)), ((3000, 7), (9, 5)),
         ((7, 3000), (640, 2)), ((239, 321), (640, 480)), ((100, 80), (417, 311)),
         ((301, 300), (300, 301)), ((2, 2), (3, 3)), ((2, 3), (1, 5)), ((480, 640), (416, 480)),
         ((480, 640), (640, 416)),
         # a model side of 256 or 512 from an odd source: source coordinates fall on exact
         # halves of a weight step, where OpenCV rounds half to even
         ((255, 3), (256, 512)), ((257, 1001), (512, 256)), ((5, 767), (256, 512))]


@pytest.mark.parametrize("shape,size", SIZES, ids=lambda v: "x".join(map(str, v)))
def test_sizes_up_down_odd_and_degenerate(shape, size):
    rng = np.random.default_rng(shape[0] * 31 + shape[1] + size[0] * 7 + size[1])
    image = _random_image(rng, *shape)
    for mean in (MEAN, (-0.5, 127.5, 1e-3)):
        blob, (sx, sy) = preprocess(image, size, mean)
        _assert_same_bits(blob, _reference(image, size, mean))
        assert (sx, sy) == (shape[1] / size[0], shape[0] / size[1])


def test_many_random_sizes_and_means():
    """Scale factors at random (the weights' rounding ties fall anywhere), both ways."""
    rng = np.random.default_rng(2024)
    for _ in range(60):
        h, w, th, tw = (int(v) for v in rng.integers(1, 700, 4))
        mean = tuple(float(v) for v in rng.normal(100.0, 80.0, 3))
        image = _random_image(rng, h, w)
        _assert_same_bits(preprocess(image, (tw, th), mean)[0],
                          _reference(image, (tw, th), mean))


def test_the_kernel_is_what_runs_where_it_is_built(path, monkeypatch):
    """A contiguous uint8 frame never reaches OpenCV on the fused path (so the tests above
    test the kernel); a non-uint8 or non-contiguous one falls back with the same values."""
    rng = np.random.default_rng(5)
    image = _random_image(rng, 480, 640)
    cropped = image[:, 1:]  # not contiguous: OpenCV's path on both
    want, want_cropped = _reference(image, (416, 416)), _reference(cropped, (416, 416))
    calls = []
    real_resize = cv2.resize  # (the module is cv2 itself: references are computed before)
    monkeypatch.setattr(preprocess_module.cv2, "resize",
                        lambda *a, **k: calls.append(1) or real_resize(*a, **k))
    _assert_same_bits(preprocess(image, (416, 416))[0], want)
    assert calls == ([] if path == "fused" else [1])
    _assert_same_bits(preprocess(cropped, (416, 416))[0], want_cropped)
    assert len(calls) == (1 if path == "fused" else 2)


@pytest.mark.skipif(not FUSED_BUILT, reason="edgeface.inference._preprocess is not built here")
def test_the_kernel_refuses_buffers_of_the_wrong_size():
    from edgeface.inference import _preprocess

    image = np.zeros((48, 64, 3), np.uint8)
    blob = np.empty((1, 3, 41, 41), np.float32)
    _preprocess.resize_subtract(image, blob, 48, 64, 41, 41, 1.0, 2.0, 3.0)
    assert (blob[0, 2] == -3.0).all()
    for args in [(image, blob, 48, 65, 41, 41), (image, blob, 48, 64, 41, 40),
                 (image, blob, 0, 64, 41, 41), (image, blob[:, :2], 48, 64, 41, 41)]:
        with pytest.raises(ValueError):
            _preprocess.resize_subtract(*args, 1.0, 2.0, 3.0)


def test_built_wherever_the_dcn_sampler_is(path):
    """Both extensions build with the same compiler and headers: a DCN sampler without this
    kernel means its build broke (it is optional, so pip only warned)."""
    if path == "opencv":
        pytest.skip("once is enough")
    off = os.environ.get(preprocess_module.DISABLE_ENV, "") not in ("", "0")
    if importlib.util.find_spec("edgeface.inference.dcn._sampler") is None or off:
        pytest.skip("the DCN sampler is not built here either, or the kernel is switched off")
    assert FUSED_BUILT


def test_the_switch_keeps_opencvs_path(path):
    if path == "opencv":
        pytest.skip("once is enough")
    code = ("from edgeface.inference import preprocess as p; print(p._fused is None); "
            "print(p.preprocess_path())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, preprocess_module.DISABLE_ENV: "1"}, check=True)
    said = f"opencv ({preprocess_module.DISABLE_ENV} is set)"
    assert out.stdout.split("\n")[:2] == ["True", said]


def test_preprocess_path_says_which_runs(path):
    """`edgeface doctor` and the bench record say it: the two paths cost 0.25 and 0.61 ms a
    640x480 frame."""
    want = "kernel (C extension)" if path == "fused" else "opencv (the compiled kernel"
    assert preprocess_module.preprocess_path().startswith(want)
