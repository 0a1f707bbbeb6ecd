"""The WIDER FACE evaluation protocol, reimplemented in numpy, and the loop that runs a
detector over a data set and scores it.

Protocol (as in the official WiderFace-Evaluation tool): scores min-max normalised over all
predictions of the run; per image, each prediction (in descending score order) is matched to
the ground-truth box of highest IoU ("+1" pixel convention, x2 = x + w); at IoU >= 0.5 it
recalls that face if the face is in the setting's keep list, and is dropped (neither true nor
false positive) if it is not; precision and recall at 1000 score thresholds, summed over
images; VOC AP with the precision envelope. Only the images that were run are scored.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:
    from edgeface.calibration.widerface import WiderFaceDataset
    from edgeface.inference.backends import InferenceBackend
    from edgeface.inference.detector import Detector
    from edgeface.inference.postprocess import PostprocessConfig

SETTINGS = ("easy", "medium", "hard")
IOU_THRESHOLD = 0.5
NUM_THRESHOLDS = 1000


class GroundTruth(Protocol):
    boxes: np.ndarray  # [M, 4] x, y, w, h
    keep: Mapping[str, np.ndarray]  # setting -> 0-based indices of boxes that count


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x1, y1, x2, y2 boxes ``a`` [N, 4] against ``b`` [M, 4] -> [N, M], with the
    official "+1" convention (a box from x1 to x2 is x2 - x1 + 1 pixels wide)."""
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area_a[:, None] + area_b[None, :] - inter)
    return np.nan_to_num(iou, nan=0.0)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    out = np.array(boxes[:, :4], dtype=np.float64)
    out[:, 2:] += out[:, :2]
    return out


def match_image(pred: np.ndarray, gt: np.ndarray, keep_mask: np.ndarray,
                iou_threshold: float = IOU_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one image's predictions ``[N, >=4]`` x, y, w, h (in descending score
    order) against ground truth ``[M, 4]`` x, y, w, h.

    Returns ``(counted, recalls)``, boolean ``[N]``: ``counted`` is False for a prediction whose
    best match (IoU >= threshold) is a face outside the keep list; ``recalls`` is True for the
    prediction that first recalls a kept face. The official loop, vectorised: a prediction's
    best match does not depend on earlier predictions, only whether it is the first.
    """
    n = pred.shape[0]
    counted = np.ones(n, dtype=bool)
    recalls = np.zeros(n, dtype=bool)
    if n == 0 or gt.shape[0] == 0:
        return counted, recalls
    iou = box_iou(xywh_to_xyxy(pred), xywh_to_xyxy(gt))
    best = iou.argmax(axis=1)
    hit = iou[np.arange(n), best] >= iou_threshold
    kept = keep_mask[best]
    counted[hit & ~kept] = False
    idx = np.flatnonzero(hit & kept)
    _, first = np.unique(best[idx], return_index=True)
    recalls[idx[first]] = True
    return counted, recalls


def normalize_scores(predictions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Min-max normalise the scores (column 4 of [N, 5]) over all predictions of the run.

    All-equal scores (the official code divides by zero there) become 1.0.
    """
    scores = [p[:, -1] for p in predictions.values() if len(p)]
    if not scores:
        return {k: np.array(p, dtype=np.float64) for k, p in predictions.items()}
    allv = np.concatenate(scores)
    lo, hi = min(float(allv.min()), 1.0), max(float(allv.max()), 0.0)  # official initial values
    out = {}
    for k, p in predictions.items():
        q = np.array(p, dtype=np.float64).reshape(-1, 5)
        if len(q):
            q[:, -1] = (q[:, -1] - lo) / (hi - lo) if hi > lo else 1.0
        out[k] = q
    return out


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (VOC style, all points)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def thresholds(num: int = NUM_THRESHOLDS) -> np.ndarray:
    """Score thresholds, descending: 1 - (t + 1) / num for t = 0 .. num - 1."""
    return 1 - (np.arange(num) + 1) / num


@dataclass
class ProtocolResult:
    ap: dict[str, float]
    num_images: int
    num_faces: dict[str, int]
    pr_curves: dict[str, np.ndarray]  # setting -> [num_thresholds, 2] (precision, recall)


def evaluate_predictions(
    predictions: Mapping[str, np.ndarray],
    ground_truth: Mapping[str, GroundTruth],
    settings: Sequence[str] = SETTINGS,
    iou_threshold: float = IOU_THRESHOLD,
    num_thresholds: int = NUM_THRESHOLDS,
) -> ProtocolResult:
    """Score ``predictions`` ({key: [N, 5] x, y, w, h, score in original pixels}; one entry per
    image that was run, empty arrays included) against ``ground_truth``. Faces of images not
    in ``predictions`` are not counted."""
    missing = [k for k in predictions if k not in ground_truth]
    if missing:
        raise KeyError(f"{len(missing)} predicted images have no ground truth (first: "
                       f"{missing[0]})")
    preds = normalize_scores(predictions)
    order = {k: np.argsort(-p[:, -1], kind="stable") for k, p in preds.items()}
    thr = thresholds(num_thresholds)
    ap, faces, curves = {}, {}, {}
    for s in settings:
        count_face = 0
        scores, counted, recalls = [], [], []
        for k, p in preds.items():
            gt = ground_truth[k]
            kept_idx = np.asarray(gt.keep[s], dtype=np.int64)
            count_face += len(kept_idx)
            boxes = np.asarray(gt.boxes, dtype=np.float64).reshape(-1, 4)
            if len(boxes) == 0 or len(p) == 0:
                continue  # as the official tool: nothing to match
            mask = np.zeros(len(boxes), dtype=bool)
            mask[kept_idx] = True
            ps = p[order[k]]
            c, r = match_image(ps, boxes, mask, iou_threshold)
            scores.append(ps[:, -1])
            counted.append(c)
            recalls.append(r)
        curves[s] = _pr_curve(scores, counted, recalls, count_face, thr)
        faces[s] = count_face
        ap[s] = voc_ap(curves[s][:, 1], curves[s][:, 0]) if count_face else float("nan")
    return ProtocolResult(ap, len(preds), faces, curves)


def _pr_curve(scores: list, counted: list, recalls: list, count_face: int,
              thr: np.ndarray) -> np.ndarray:
    """Per threshold: proposals counted and faces recalled by predictions scoring >= it,
    summed over images -> (precision, recall). Summing per-image prefix counts, as the
    official tool does, equals counting over all predictions at once."""
    curve = np.zeros((len(thr), 2))
    if not scores:
        return curve
    sc = np.concatenate(scores)
    order = np.argsort(-sc, kind="stable")
    sc = sc[order]
    n_prop = np.concatenate([[0], np.cumsum(np.concatenate(counted)[order])])
    n_rec = np.concatenate([[0], np.cumsum(np.concatenate(recalls)[order])])
    # number of predictions with score >= t, for each threshold t
    n = len(sc) - np.searchsorted(sc[::-1], thr, side="left")
    props, recs = n_prop[n], n_rec[n]
    with np.errstate(divide="ignore", invalid="ignore"):
        # No proposal at a threshold means no recall either: that point adds no area.
        curve[:, 0] = np.where(props > 0, recs / np.maximum(props, 1), 0.0)
    curve[:, 1] = recs / count_face if count_face else 0.0
    return curve


# --------------------------------------------------------------------------- detector loop

@dataclass
class EvalResult:
    """Accuracy of one detector on one data set (see :func:`evaluate_detector`)."""

    ap: dict[str, float]
    num_images: int  # images run and scored
    num_faces: dict[str, int]  # faces that count, per setting, over the images run
    settings: dict[str, Any]  # detection and protocol settings
    pr_curves: dict[str, np.ndarray]  # setting -> [1000, 2] (precision, recall)
    predictions: dict[str, np.ndarray]  # key -> [N, 5] x, y, w, h, raw score, original pixels
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    seconds: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)  # arch, backend, input size

    @property
    def num_predictions(self) -> int:
        return int(sum(len(p) for p in self.predictions.values()))

    def table(self) -> str:
        """Setting, AP and faces, one line each."""
        rows = [f"{'setting':<8} {'AP':>7} {'faces':>6}"]
        for s, v in self.ap.items():
            rows.append(f"{s:<8} {_fmt(v):>7} {self.num_faces[s]:>6}")
        return "\n".join(rows)

    def settings_line(self) -> str:
        st = self.settings
        return (f"detection: confidence {st['conf_threshold']}, NMS {st['nms_threshold']}, "
                f"top-k {st['top_k']}, keep {st['keep_top_k']}, input "
                f"{st['input_size'][0]}x{st['input_size'][1]}; protocol: IoU "
                f"{st['iou_threshold']}, {st['num_thresholds']} thresholds, min-max "
                f"normalised scores, VOC AP")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (no per-image predictions or curves)."""
        return {
            "ap": {s: (None if np.isnan(v) else round(v, 6)) for s, v in self.ap.items()},
            "num_images": self.num_images,
            "num_faces": self.num_faces,
            "num_predictions": self.num_predictions,
            "skipped": [{"image": k, "reason": r} for k, r in self.skipped],
            "settings": self.settings,
            "model": dict(self.model),
            "seconds": round(self.seconds, 3),
        }


def _fmt(v: float) -> str:
    return "n/a" if np.isnan(v) else f"{v:.4f}"


def evaluate_detector(
    model: Detector | InferenceBackend | str | os.PathLike,
    dataset: WiderFaceDataset,
    config: PostprocessConfig | None = None,
    progress: bool | None = True,
    desc: str = "eval",
) -> EvalResult:
    """Run ``model`` over every image of ``dataset`` and score it with the official protocol.

    ``model``: an :class:`edgeface.detector.Detector`, any ``InferenceBackend`` (ONNX Runtime,
    PyTorch, TensorRT) or a path to an ONNX file. Detection uses ``config`` (default
    :data:`edgeface.postprocess.EVAL_SETTINGS`: confidence 0.02, NMS 0.4, keep 750), whatever
    the detector was built with. ``dataset``: a :class:`~.widerface.WiderFaceDataset`.
    Unreadable images are reported, listed in ``result.skipped`` and not scored.
    ``progress``: a tqdm bar on stderr (None: only when stderr is a terminal).
    """
    from tqdm import tqdm

    from edgeface.inference.detector import Detector
    from edgeface.inference.postprocess import EVAL_SETTINGS

    config = config or EVAL_SETTINGS
    if isinstance(model, (str, os.PathLike)):
        detector = Detector.open(model, config)
    else:
        backend = model.backend if isinstance(model, Detector) else model
        detector = Detector(backend, config)
    t0 = time.perf_counter()
    predictions: dict[str, np.ndarray] = {}
    bar = tqdm(dataset, total=len(dataset), desc=desc, unit="img", leave=False,
               disable=None if progress is None else not progress, dynamic_ncols=True)
    for sample in bar:
        dets = detector.detect(sample.image)
        sx, sy = sample.scale
        b = dets.boxes.astype(np.float64) * np.array([sx, sy, sx, sy])
        predictions[sample.key] = np.column_stack(
            [b[:, :2], b[:, 2:] - b[:, :2], dets.scores.astype(np.float64)])
    bar.close()
    proto = evaluate_predictions(predictions, dataset.ground_truth)
    info = detector.info
    settings = {
        "conf_threshold": config.conf_threshold, "nms_threshold": config.nms_threshold,
        "top_k": config.top_k, "keep_top_k": config.keep_top_k,
        "input_size": list(info.input_size), "iou_threshold": IOU_THRESHOLD,
        "num_thresholds": NUM_THRESHOLDS, "score_normalisation": "min-max over the run",
    }
    model_desc = {"arch": info.arch, "backend": getattr(detector.backend, "name", "?"),
                  "input_size": list(info.input_size)}
    return EvalResult(proto.ap, proto.num_images, proto.num_faces, settings, proto.pr_curves,
                      predictions, list(dataset.skipped), time.perf_counter() - t0, model_desc)
