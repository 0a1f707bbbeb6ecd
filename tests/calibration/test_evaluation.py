"""The WIDER FACE protocol: hand-made cases with known AP, a plain loop reference, and the
ground truth fed back through the whole detector pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.calibration.evaluation import (
    box_iou,
    evaluate_detector,
    evaluate_predictions,
    match_image,
    normalize_scores,
    voc_ap,
)
from edgeface.inference.model_info import ModelInfo
from edgeface.inference.priors import prior_boxes


class GT:
    def __init__(self, boxes, easy=None, medium=None, hard=None):
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        allidx = np.arange(len(self.boxes))
        self.keep = {s: np.asarray(allidx if v is None else v, dtype=np.int64)
                     for s, v in (("easy", easy), ("medium", medium), ("hard", hard))}


def P(*rows):
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


FACE_A = [10, 10, 20, 20]
FACE_B = [100, 50, 30, 40]
FAR = [300, 300, 25, 25]


# ---------------------------------------------------------------- known values

def test_perfect_predictions_give_ap_1():
    gt = {"e/a": GT([FACE_A, FACE_B]), "e/b": GT([FAR])}
    preds = {"e/a": P(FACE_A + [0.9], FACE_B + [0.8]), "e/b": P(FAR + [0.7])}
    r = evaluate_predictions(preds, gt)
    assert r.ap == pytest.approx({"easy": 1.0, "medium": 1.0, "hard": 1.0})
    assert r.num_faces == {"easy": 3, "medium": 3, "hard": 3}
    assert r.num_images == 2


def test_no_predictions_give_ap_0():
    gt = {"e/a": GT([FACE_A, FACE_B])}
    r = evaluate_predictions({"e/a": np.zeros((0, 5))}, gt)
    assert r.ap == {"easy": 0.0, "medium": 0.0, "hard": 0.0}
    assert r.num_faces["hard"] == 2


def test_half_recall():
    gt = {"e/a": GT([FACE_A, FACE_B])}
    r = evaluate_predictions({"e/a": P(FACE_A + [0.9], FACE_A + [0.5])}, gt)
    # precision 1 up to recall 0.5 (the duplicate only adds a proposal at lower score)
    assert r.ap["easy"] == pytest.approx(0.5)


def test_false_positive_on_ignored_face_does_not_hurt_but_elsewhere_does():
    # FACE_B is a face outside the easy keep list: a detection on it counts neither way.
    gt = {"e/a": GT([FACE_A, FACE_B], easy=[0])}
    on_ignored = evaluate_predictions({"e/a": P(FACE_B + [0.95], FACE_A + [0.9])}, gt)
    assert on_ignored.ap["easy"] == pytest.approx(1.0)
    assert on_ignored.num_faces["easy"] == 1
    # The same detection where there is no face: scored first, it is a false positive.
    elsewhere = evaluate_predictions({"e/a": P(FAR + [0.95], FACE_A + [0.9])}, gt)
    assert elsewhere.ap["easy"] == pytest.approx(0.5)


def test_only_images_that_were_run_count():
    gt = {"e/a": GT([FACE_A]), "e/b": GT([FACE_B, FAR])}
    r = evaluate_predictions({"e/a": P(FACE_A + [0.9])}, gt)
    assert r.ap["hard"] == pytest.approx(1.0)
    assert r.num_faces == {"easy": 1, "medium": 1, "hard": 1} and r.num_images == 1


def test_predictions_for_unknown_image_are_an_error():
    with pytest.raises(KeyError, match="e/zzz"):
        evaluate_predictions({"e/zzz": P(FACE_A + [0.9])}, {"e/a": GT([FACE_A])})


def test_iou_uses_plus_one_convention_and_threshold_is_inclusive():
    a = np.array([[0.0, 0, 1, 1]])
    assert box_iou(a, np.array([[1.0, 1, 2, 2]]))[0, 0] == pytest.approx(1 / 7)
    # IoU exactly 0.5 (+1 areas: 2x4=8 and 2x2=4 overlap 4 -> 4/8) matches.
    gt = np.array([[0.0, 0, 1, 3]])  # x, y, w, h -> x2 = 1, y2 = 3: 2x4 pixels
    pred = np.array([[0.0, 0, 1, 1, 1.0]])
    counted, recalls = match_image(pred, gt, np.array([True]))
    assert recalls.tolist() == [True] and counted.tolist() == [True]


def test_voc_ap_envelope():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)
    # a precision dip is filled by the envelope
    assert voc_ap(np.array([0.25, 0.5, 1.0]), np.array([0.5, 1.0, 0.5])) == pytest.approx(0.75)


def test_scores_are_normalised_over_the_whole_run():
    n = normalize_scores({"a": P(FACE_A + [0.2]), "b": P(FACE_A + [0.6], FACE_B + [0.4])})
    assert n["a"][:, 4].tolist() == [0.0] and n["b"][:, 4].tolist() == pytest.approx([1.0, 0.5])
    same = normalize_scores({"a": P(FACE_A + [0.7]), "b": np.zeros((0, 5))})
    assert same["a"][0, 4] == 1.0 and same["b"].shape == (0, 5)


# ---------------------------------------------------------------- loop reference

def _reference(preds, gts, setting, thresh_num=1000):
    """The protocol written as plain loops, one prediction at a time."""
    allsc = [s for p in preds.values() for s in p[:, 4]]
    lo, hi = min(min(allsc), 1.0), max(max(allsc), 0.0)
    curve = np.zeros((thresh_num, 2))
    count_face = 0
    for key, p in preds.items():
        g = gts[key]
        keep = set(g.keep[setting].tolist())
        count_face += len(keep)
        p = p[np.argsort(-p[:, 4], kind="stable")].copy()
        p[:, 4] = (p[:, 4] - lo) / (hi - lo)
        status = [0] * len(g.boxes)  # 0 unseen, 1 recalled, -1 ignored
        counted, recalled_so_far = [], []
        for row in p:
            px1, py1, px2, py2 = row[0], row[1], row[0] + row[2], row[1] + row[3]
            best, best_j = -1.0, -1
            for j, (x, y, w, h) in enumerate(g.boxes):
                iw = min(px2, x + w) - max(px1, x) + 1
                ih = min(py2, y + h) - max(py1, y) + 1
                iou = 0.0
                if iw > 0 and ih > 0:
                    union = (px2 - px1 + 1) * (py2 - py1 + 1) + (w + 1) * (h + 1) - iw * ih
                    iou = iw * ih / union
                if iou > best:
                    best, best_j = iou, j
            ok = True
            if best >= 0.5:
                if best_j not in keep:
                    status[best_j] = -1
                    ok = False
                elif status[best_j] == 0:
                    status[best_j] = 1
            counted.append(ok)
            recalled_so_far.append(sum(s == 1 for s in status))
        for t in range(thresh_num):
            thr = 1 - (t + 1) / thresh_num
            above = [i for i in range(len(p)) if p[i, 4] >= thr]
            if above:
                last = above[-1]
                curve[t, 0] += sum(counted[: last + 1])
                curve[t, 1] += recalled_so_far[last]
    prec = np.divide(curve[:, 1], curve[:, 0], out=np.zeros(thresh_num), where=curve[:, 0] > 0)
    return voc_ap(curve[:, 1] / count_face, prec)


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_protocol_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    gts, preds = {}, {}
    for i in range(6):
        n = int(rng.integers(1, 12))
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(4, 60, (n, 2))
        boxes = np.round(np.hstack([xy, wh]))
        hard = np.sort(rng.choice(n, size=max(1, n - 1), replace=False))
        medium = hard[: max(1, len(hard) * 2 // 3)]
        easy = medium[: len(medium) // 2]
        gts[f"e/{i}"] = GT(boxes, easy, medium, hard)
        # detections: jittered faces (some twice, some missed) plus clutter
        pick = rng.choice(n, size=int(rng.integers(0, n + 3)), replace=True)
        det = boxes[pick] + rng.normal(0, 3, (len(pick), 4))
        clutter = np.hstack([rng.uniform(0, 400, (3, 2)), rng.uniform(4, 60, (3, 2))])
        det = np.vstack([det, clutter])
        sc = np.round(rng.uniform(0.02, 1, len(det)), 2)  # rounded: ties happen
        preds[f"e/{i}"] = np.column_stack([det, sc])
    r = evaluate_predictions(preds, gts)
    for s in ("easy", "medium", "hard"):
        assert r.ap[s] == pytest.approx(_reference(preds, gts, s), abs=1e-12), s


# ---------------------------------------------------------------- shared eval split

def test_ground_truth_as_predictions_on_eval_split(widerface_416):
    pytest.importorskip("scipy", reason="needs scipy: pip install '.[eval]'")
    from edgeface.calibration.widerface import load_widerface

    ds = load_widerface(widerface_416, "eval")
    rng = np.random.default_rng(0)
    preds = {im.key: np.column_stack([im.boxes, rng.uniform(0.3, 1, len(im.boxes))])
             for im in ds.images}
    r = evaluate_predictions(preds, ds.ground_truth)
    assert r.num_faces == {"easy": 229, "medium": 573, "hard": 1542}
    assert all(v >= 0.999 for v in r.ap.values()), r.ap


class GroundTruthBackend:
    """Raw network outputs that decode to each image's ground truth, in stored pixels."""

    name = "fake-gt"

    def __init__(self, dataset, size=(416, 416)):
        self.info = ModelInfo(arch="fake", input_size=size)
        self.priors = prior_boxes(*size, self.info.min_sizes, self.info.steps)
        self.queue = list(dataset.images)
        self.rng = np.random.default_rng(1)

    def infer(self, blob):
        im = self.queue.pop(0)
        h, w = blob.shape[2:]
        assert (w, h) == self.info.input_size
        # ground truth (original px) -> stored image px -> normalised network coordinates
        ow, oh = im.original_size
        b = im.boxes[(im.boxes[:, 2] > 0) & (im.boxes[:, 3] > 0)]
        cx = (b[:, 0] + b[:, 2] / 2) / ow
        cy = (b[:, 1] + b[:, 3] / 2) / oh
        bw, bh = b[:, 2] / ow, b[:, 3] / oh
        a = self.rng.choice(len(self.priors), size=len(b), replace=False)
        pr = self.priors[a].astype(np.float64)
        v0, v1 = self.info.variance
        loc = np.zeros((len(self.priors), 4), np.float32)
        loc[a] = np.column_stack([(cx - pr[:, 0]) / (v0 * pr[:, 2]),
                                  (cy - pr[:, 1]) / (v0 * pr[:, 3]),
                                  np.log(bw / pr[:, 2]) / v1, np.log(bh / pr[:, 3]) / v1])
        scores = np.zeros(len(self.priors), np.float32)
        scores[a] = self.rng.uniform(0.3, 1.0, len(b))
        return loc, scores, np.zeros((len(self.priors), 10), np.float32)


def test_ground_truth_through_the_detector_and_size_mapping(widerface_416):
    """Stored 416x416 images, boxes mapped back with image_sizes.txt: AP stays ~1."""
    pytest.importorskip("scipy", reason="needs scipy: pip install '.[eval]'")
    from edgeface.calibration.widerface import load_widerface

    ds = load_widerface(widerface_416, "eval")
    assert ds.resized
    r = evaluate_detector(GroundTruthBackend(ds), ds, progress=False)
    assert r.num_images == 100 and not r.skipped
    assert r.settings["conf_threshold"] == 0.02 and r.settings["keep_top_k"] == 750
    # Not 1: two annotations in the split overlap at IoU 0.53 and NMS (0.4) keeps one of them.
    assert all(v >= 0.995 for v in r.ap.values()), r.ap
    # predictions are in original pixels: the largest box lies beyond the 416 stored size
    allp = np.vstack(list(r.predictions.values()))
    assert (allp[:, 0] + allp[:, 2]).max() > 600
