"""Preprocessing resizes through BGRA (OpenCV's exact bilinear kernel is vectorised for 4
channels, not 3) and subtracts the mean with OpenCV on split planes; the values must be, bit
for bit, those of the plain 3-channel resize and numpy's float32 subtraction, on every OpenCV
a target installs (this runs in the Pi, Trixie, apt-OpenCV and JetPack-floor checks too)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeface.inference.preprocess import preprocess

MEAN = (104.0, 117.0, 123.0)


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
