"""Preprocessing resizes through BGRA (OpenCV's exact bilinear kernel is vectorised for 4
channels, not 3); the values must be those of the plain 3-channel resize, on every OpenCV a
target installs (this runs in the Pi, Trixie, apt-OpenCV and JetPack-floor checks too)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeface.inference.preprocess import preprocess

MEAN = (104.0, 117.0, 123.0)


def _reference(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    resized = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_LINEAR_EXACT)
    return (resized.astype(np.float32) - np.float32(MEAN)).transpose(2, 0, 1)[None]


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
