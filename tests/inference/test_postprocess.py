"""Detection core: priors, decode, NMS, postprocess (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.frames import Detections
from edgeface.inference.model_info import ModelInfo
from edgeface.inference.postprocess import PostprocessConfig, decode, nms, postprocess
from edgeface.inference.preprocess import preprocess
from edgeface.inference.priors import prior_boxes

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)


def test_prior_count_and_order():
    p = prior_boxes(416, 416, MIN_SIZES, STEPS)
    assert p.shape == ((52 * 52 + 26 * 26 + 13 * 13) * 2, 4)
    # First cell of stride 8: centre (4, 4) px, anchors 16 then 32.
    np.testing.assert_allclose(p[0], [4 / 416, 4 / 416, 16 / 416, 16 / 416])
    np.testing.assert_allclose(p[1], [4 / 416, 4 / 416, 32 / 416, 32 / 416])
    # Second cell moves along x (row-major over y, x).
    np.testing.assert_allclose(p[2, :2], [12 / 416, 4 / 416])
    # Last prior: last cell of stride 32, anchor 512.
    np.testing.assert_allclose(p[-1], [400 / 416, 400 / 416, 512 / 416, 512 / 416])
    assert not p.flags.writeable


def test_priors_non_square():
    p = prior_boxes(640, 480, MIN_SIZES, STEPS)
    assert p.shape[0] == (80 * 60 + 40 * 30 + 20 * 15) * 2
    np.testing.assert_allclose(p[0], [4 / 640, 4 / 480, 16 / 640, 16 / 480])


def test_decode_zero_regression_returns_priors():
    priors = np.array([[0.5, 0.5, 0.2, 0.1]], np.float32)
    boxes, lms = decode(np.zeros((1, 4), np.float32), np.zeros((1, 10), np.float32), priors,
                        (0.1, 0.2))
    np.testing.assert_allclose(boxes, [[0.4, 0.45, 0.6, 0.55]], rtol=1e-6)
    np.testing.assert_allclose(lms, np.full((1, 5, 2), 0.5), rtol=1e-6)


def test_decode_known_values():
    priors = np.array([[0.5, 0.5, 0.2, 0.2]], np.float32)
    loc = np.array([[1.0, -1.0, np.log(2) / 0.2, 0.0]], np.float32)
    landm = np.arange(10, dtype=np.float32)[None]
    boxes, lms = decode(loc, landm, priors, (0.1, 0.2))
    # centre moves by 0.1 * 0.2 = 0.02; width doubles to 0.4
    np.testing.assert_allclose(boxes, [[0.32, 0.38, 0.72, 0.58]], rtol=1e-5)
    np.testing.assert_allclose(lms[0, 1], [0.5 + 2 * 0.02, 0.5 + 3 * 0.02], rtol=1e-5)


def test_nms_suppresses_overlaps_and_keeps_order():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]],
                     np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.1], np.float32)
    keep = nms(boxes, scores, 0.4, 10)
    assert keep.tolist() == [1, 2]
    assert nms(boxes, scores, 0.4, 1).tolist() == [1]
    assert nms(boxes, scores, 1.0, 10).tolist() == [1, 0, 2, 3]


def test_postprocess_threshold_scaling_and_empty():
    info = ModelInfo()
    w, h = info.input_size
    priors = prior_boxes(w, h, MIN_SIZES, STEPS)
    a = priors.shape[0]
    loc = np.zeros((a, 4), np.float32)
    landm = np.zeros((a, 10), np.float32)
    scores = np.zeros(a, np.float32)
    assert len(postprocess(loc, scores, landm, priors, (w, h), (1, 1), (0.1, 0.2),
                           PostprocessConfig())) == 0
    scores[0] = 0.9  # 16 px anchor centred at (4, 4)
    dets = postprocess(loc, scores, landm, priors, (w, h), (2.0, 3.0), (0.1, 0.2),
                       PostprocessConfig())
    assert len(dets) == 1
    np.testing.assert_allclose(dets.boxes[0], [(4 - 8) * 2, (4 - 8) * 3, 12 * 2, 12 * 3],
                               atol=1e-4)
    np.testing.assert_allclose(dets.landmarks[0], np.tile([[8, 12]], (5, 1)), atol=1e-4)
    assert dets.to_list()[0]["score"] == pytest.approx(0.9)


def test_postprocess_top_k_limits_candidates():
    priors = prior_boxes(416, 416, MIN_SIZES, STEPS)
    a = priors.shape[0]
    rng = np.random.default_rng(0)
    scores = rng.random(a).astype(np.float32)
    cfg = PostprocessConfig(conf_threshold=0.0, nms_threshold=1.0, top_k=7, keep_top_k=5)
    dets = postprocess(np.zeros((a, 4), np.float32), scores, np.zeros((a, 10), np.float32),
                       priors, (416, 416), (1, 1), (0.1, 0.2), cfg)
    assert len(dets) == 5
    np.testing.assert_allclose(dets.scores, np.sort(scores)[::-1][:5])


@pytest.mark.parametrize("bad", [dict(conf_threshold=1.5), dict(nms_threshold=0),
                                 dict(top_k=0)])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        PostprocessConfig(**bad)


def test_preprocess_layout_mean_and_scale():
    img = np.zeros((100, 200, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 104, 117, 200
    blob, scale = preprocess(img, (416, 416))
    assert blob.shape == (1, 3, 416, 416) and blob.dtype == np.float32
    assert scale == (200 / 416, 100 / 416)
    np.testing.assert_allclose(blob[0, :, 5, 5], [0, 0, 77])
    with pytest.raises(ValueError):
        preprocess(np.zeros((10, 10), np.uint8), (416, 416))


def test_empty_detections():
    d = Detections.empty()
    assert len(d) == 0 and d.to_list() == []
