"""Network outputs -> face detections: decode, threshold, NMS, top-k, map back.

A frame has a few dozen candidates over the threshold, so the cost is the count of numpy
calls (~1 us each warm, several right after an inference), not their size: candidates are
decoded in one buffer and NMS is one IoU matrix per block, with the float32 operations of
:func:`decode` and :func:`nms` element by element, so the detections keep their bits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edgeface.frames import Detections


@dataclass(frozen=True)
class PostprocessConfig:
    """Detection settings. Defaults suit a live camera; evaluation uses :data:`EVAL_SETTINGS`."""

    conf_threshold: float = 0.5
    nms_threshold: float = 0.4
    top_k: int = 5000  # candidates kept before NMS, by score
    keep_top_k: int = 750  # detections kept after NMS

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf_threshold <= 1.0:
            raise ValueError(f"confidence threshold must be in [0, 1], got {self.conf_threshold}")
        if not 0.0 < self.nms_threshold <= 1.0:
            raise ValueError(f"NMS threshold must be in (0, 1], got {self.nms_threshold}")
        if self.top_k < 1 or self.keep_top_k < 1:
            raise ValueError("top_k and keep_top_k must be positive")


# Common practice for WIDERFace evaluation (RetinaFace's test_widerface settings).
EVAL_SETTINGS = PostprocessConfig(conf_threshold=0.02, nms_threshold=0.4, top_k=5000,
                                  keep_top_k=750)


def decode(
    loc: np.ndarray, landm: np.ndarray, priors: np.ndarray, variance: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Decode box and landmark regressions against priors (normalised coordinates).

    ``loc`` [N, 4], ``landm`` [N, 10], ``priors`` [N, 4] (cx, cy, w, h) ->
    boxes [N, 4] (x1, y1, x2, y2) and landmarks [N, 5, 2].
    """
    v0, v1 = variance
    centers = priors[:, :2] + loc[:, :2] * v0 * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * v1)
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
    lm = priors[:, None, :2] + landm.reshape(-1, 5, 2) * v0 * priors[:, None, 2:]
    return boxes, lm


# The fast path is numpy calls on a few dozen candidates: ~0.5-1.5 us each whatever the
# size, so its cost is their count. Constants are float32 0-d or column arrays made once:
# a Python number costs each call its conversion (0.85 us a multiply, 0.45 with float32).
_ZERO, _ONE = np.array(0, np.float32), np.array(1, np.float32)
# x1, y1, x2, y2 = centre -+ size / 2: size * -0.5 is -(size / 2) exactly (halving is exact
# in either form, negation always), and c + -h is c - h in IEEE 754.
_HALF_SIGNS = np.array([[-0.5], [-0.5], [0.5], [0.5]], np.float32)
_NEG_LOW = np.array([[-1], [-1], [1], [1]], np.float32)
for _shared in (_ZERO, _ONE, _HALF_SIGNS, _NEG_LOW):
    _shared.setflags(write=False)


def _f32_number(v: object) -> np.ndarray | None:
    """``v`` as a float32 0-d array where NumPy computes ``float32_array OP v`` in float32:
    a Python int or float in float32's range (NumPy 1.x takes float64 beyond it; a numpy
    float64, or a 0-d array, is float64 arithmetic under NumPy 2). None otherwise."""
    if type(v) in (int, float) and -1e38 < v < 1e38:  # type: ignore[operator]
        f = np.array(v, np.float32)
        f.setflags(write=False)  # cached and shared
        return f
    return None


@functools.lru_cache(maxsize=64, typed=True)
def _weak_f32(v: object) -> object:
    """:func:`_f32_number` of ``v``, else ``v`` itself."""
    f = _f32_number(v)
    return v if f is None else f


@functools.lru_cache(maxsize=16, typed=True)
def _variance_rows(v0: object, v1: object) -> np.ndarray | None:
    """The column that multiplies :func:`_decode_scaled`'s 4 size and 14 point rows by v1
    and v0, or None where float32 arithmetic is not what NumPy does with them."""
    f0, f1 = _f32_number(v0), _f32_number(v1)
    if f0 is None or f1 is None:
        return None
    rows = np.array([[f1]] * 4 + [[f0]] * 14, np.float32)
    rows.setflags(write=False)
    return rows


def _cached(fn, *args):  # type: ignore[no-untyped-def]
    """``fn(*args)`` through its cache, or around it for an unhashable argument."""
    try:
        return fn(*args)
    except TypeError:
        return fn.__wrapped__(*args)


@functools.lru_cache(maxsize=16, typed=True)
def _pixel_scale(w: int, h: int, sx: float, sy: float) -> np.ndarray:
    """[2, 1] float32 (x, y) factors from normalised coordinates to image pixels (the
    frame size is the same frame after frame: 1.7 us a frame made afresh, cold)."""
    px = np.array([w * sx, h * sy], dtype=np.float32)[:, None]
    px.setflags(write=False)
    return px


# _decode_scaled's rows, as columns of [loc, landm, priors].
_ROWS = np.array([2, 3, 2, 3, 0, 1, 0, 1, *range(4, 14), 0, 1, 2, 3, *range(14, 18)])
_ROWS.setflags(write=False)


def _decode_scaled(loc: np.ndarray, landm: np.ndarray, priors: np.ndarray, cand: np.ndarray,
                   variance: tuple[float, float], px: np.ndarray) -> np.ndarray:
    """:func:`decode` of anchors ``cand`` scaled to image pixels by ``px`` [2, 1]: a
    C-contiguous float32 ``[14, N]``, rows x1, y1, x2, y2, then the landmarks' x and y.

    Coordinates as rows keep every pass on contiguous memory (numpy runs an [N, 2] column
    view 2 elements per inner loop: 1.5 us a call where [2, N] takes 0.5, N = 27). Box
    centres and landmarks share the arithmetic (prior + regression * v0 * prior size), and
    the sizes' exp lands beside them, so 7 calls do what :func:`decode` and the scaling did
    in 24. Every element sees the float32 operations of :func:`decode` in the same order
    (b + a for a + b, b * a for a * b: commutative in IEEE 754), so the bits are the same.
    Other dtypes and variances take :func:`decode` itself.
    """
    vrows = _cached(_variance_rows, *variance)
    loc, landm, priors = loc.take(cand, 0), landm.take(cand, 0), priors.take(cand, 0)
    if vrows is None or not loc.dtype == landm.dtype == priors.dtype == np.float32:
        boxes, lms = decode(loc, landm, priors, variance)
        boxes = (boxes.reshape(-1, 2, 2) * px[:, 0]).reshape(-1, 4).astype(np.float32)
        lms = (lms * px[:, 0]).reshape(-1, 10).astype(np.float32)
        return np.concatenate([boxes, lms], axis=1).T.copy()
    # Rows: 0-3 size regressions (w, h twice), 4-17 centre regressions (twice) and
    # landmarks, 18-21 room for exp (filled with anything), 22-25 the priors.
    rows = np.concatenate((loc, landm, priors), axis=1).T.take(_ROWS, 0)
    n = rows.shape[1]
    rows[:18] *= vrows
    np.exp(rows[:4], out=rows[18:22])  # contiguous to contiguous, as decode's exp runs
    scaled = rows[4:22].reshape(9, 2, n)  # the points' regressions and the exps
    scaled *= rows[24:26]  # * prior size
    points = rows[4:18].reshape(7, 2, n)
    points += rows[22:24]  # + centre
    rows[18:22] *= _HALF_SIGNS
    rows[4:8] += rows[18:22]
    points *= px
    return rows[4:18]


def _iou_ok(q_a: np.ndarray, q_b: np.ndarray, area_a: np.ndarray | None,
            area_b: np.ndarray | None, threshold: object) -> np.ndarray:
    """``[len(a), len(b)]``: IoU(a_i, b_j) <= ``threshold``, computed as :func:`nms`'s
    loop does with a_i as the kept box. Boxes come as float32 rows (-x1, -y1, x2, y2)
    [4, N]: one broadcast minimum gives the intersections, min(x2) + -max(x1) being
    min(x2) - max(x1) (a zero's sign may differ, and vanishes in the + 1). Areas None:
    a and b are the same boxes, and the areas' factors are the + 1 widths' diagonal."""
    m = np.minimum(q_a[:, :, None], q_b[:, None])
    wh = m[2:] + m[:2]
    wh += _ONE
    if area_a is None:
        diag = wh.reshape(2, -1)[:, ::wh.shape[1] + 1]
        area_a = area_b = diag[0] * diag[1]
    np.maximum(_ZERO, wh, out=wh)
    inter = wh[0] * wh[1]
    union = area_a[:, None] + area_b
    union -= inter
    inter /= union
    return inter <= threshold


def _greedy(ok: np.ndarray, limit: int) -> list[int]:
    """Greedy NMS within one square block in score order, ``ok[i, j]``: box ``i`` lets box
    ``j`` live. Each row of bytes becomes one Python int (candidate j at bit 8 j), so each
    kept box costs 4 int operations, not a numpy pass (~10 us), and no packbits call (10 us
    right after an inference has evicted numpy's code from the caches)."""
    n = len(ok)
    rows = ok.tobytes()
    free = int.from_bytes(b"\x01" * n, "little")  # not suppressed yet, after the last kept
    kept: list[int] = []
    i = 0
    while True:
        kept.append(i)
        if len(kept) == limit:
            return kept
        free &= int.from_bytes(rows[i * n:(i + 1) * n], "little") & -(1 << 8 * i + 8)
        if not free:
            return kept
        i = ((free & -free).bit_length() - 1) >> 3


#: Candidates whose IoUs one block computes at once: 256 x 256 pairs (1 MB of minima) at
#: the most, and one block for every frame of the shared set at conf 0.5 (160 at the most).
NMS_BLOCK = 256


def _nms_sorted(corners: np.ndarray, threshold: float, limit: int) -> list[int]:
    """Greedy NMS of float32 boxes already in descending score order, given as coordinate
    rows (x1, y1, x2, y2) [4, N]: the kept positions, ascending.

    The best ``NMS_BLOCK`` candidates left are settled among themselves at once (the IoU
    matrix, then :func:`_greedy`); the block's kept boxes then remove what they overlap
    among the rest. That keeps what one box at a time keeps, since a candidate lives iff no
    kept box before it overlaps it: ~12 numpy calls a block instead of ~20 a kept box."""
    n = corners.shape[1]
    if n <= 1:
        return list(range(min(n, limit)))
    q = corners * _NEG_LOW
    threshold = _cached(_weak_f32, threshold)
    if n <= NMS_BLOCK:  # every frame at conf 0.5: no index arrays at all
        return _greedy(_iou_ok(q, q, None, None, threshold), limit)
    wh = corners[2:] - corners[:2]
    wh += _ONE
    areas = wh[0] * wh[1]
    keep: list[int] = []
    rest = np.arange(n)
    while rest.size and len(keep) < limit:
        blk, rest = rest[:NMS_BLOCK], rest[NMS_BLOCK:]
        kept = blk.take(_greedy(_iou_ok(q.take(blk, 1), q.take(blk, 1), None, None,
                                        threshold), limit - len(keep)))
        keep += kept.tolist()
        if rest.size and len(keep) < limit:
            ok = _iou_ok(q.take(kept, 1), q.take(rest, 1), areas.take(kept),
                         areas.take(rest), threshold)
            rest = rest[ok.all(axis=0)]
    return keep


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, limit: int) -> np.ndarray:
    """Greedy NMS; returns indices of kept boxes in descending score order (at most ``limit``).

    Boxes use the RetinaFace "+1" pixel area convention, as the reference implementation does.
    One box at a time, for any dtype; :func:`postprocess` keeps the same boxes with
    :func:`_nms_sorted`.
    """
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and len(keep) < limit:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    loc: np.ndarray,
    scores: np.ndarray,
    landm: np.ndarray,
    priors: np.ndarray,
    input_size: tuple[int, int],
    scale: tuple[float, float],
    variance: tuple[float, float],
    config: PostprocessConfig,
) -> Detections:
    """Raw outputs for one image (``[A,4]``, ``[A]``, ``[A,10]``) -> :class:`Detections`.

    ``input_size`` is the network's (width, height); ``scale`` maps network pixels to the
    original image (from :func:`edgeface.preprocess.preprocess`).

    Candidates are put in score order before decoding, so that NMS and the output read
    them in place; ``take`` gathers rows at a third of fancy indexing's cost (0.3 us).
    """
    cand = (scores > config.conf_threshold).nonzero()[0]
    if cand.size == 0:
        return Detections.empty()
    if cand.size > config.top_k:
        cand = cand[np.argpartition(-scores[cand], config.top_k - 1)[: config.top_k]]
    sc = scores.take(cand)
    if sc.dtype != np.float32:
        sc = sc.astype(np.float32)
    if cand.size > 1:
        order = (-sc).argsort(kind="stable")
        cand, sc = cand.take(order), sc.take(order)
    w, h = input_size
    pts = _decode_scaled(loc, landm, priors, cand, variance, _cached(_pixel_scale, w, h, *scale))
    keep = _nms_sorted(pts[:4], config.nms_threshold, config.keep_top_k)
    if len(keep) < cand.size:
        pts, sc = pts.take(keep, 1), sc.take(keep)
    return Detections(pts[:4].T.copy(), sc, pts[4:].T.copy().reshape(-1, 5, 2))
