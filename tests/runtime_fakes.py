"""Camera-less media and fake models for the runtime tests (sources, sinks, run, notify, http).

Videos are written with OpenCV's own VideoWriter (mp4v in .mp4 and MJPG in .avi are what the
pip wheels can encode); a tiny ONNX model with the edgeface interface lets subprocess tests
run `edgeface run` in well under a second per frame batch without exporting anything.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
import onnx_writer as ox

from edgeface.errors import SourceError
from edgeface.frames import Detections, Frame, FrameResult, Timing
from edgeface.inference.model_info import ModelInfo
from edgeface.inference.priors import prior_boxes

REPO = Path(__file__).resolve().parents[1]


def synthetic_frames(n: int, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    """``n`` distinct BGR frames (a moving bright square on a gradient)."""
    w, h = size
    base = np.tile(np.linspace(0, 120, w, dtype=np.uint8), (h, 1))
    frames = []
    for i in range(n):
        img = cv2.merge([base, base[::-1], np.full_like(base, (i * 37) % 256)])
        x = (i * 13) % max(1, w - 30)
        img[20:50, x:x + 30] = 255
        frames.append(np.ascontiguousarray(img))
    return frames


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 10.0,
                fourcc: Optional[str] = None) -> Path:
    fourcc = fourcc or ("MJPG" if path.suffix.lower() == ".avi" else "mp4v")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path} with {fourcc}"
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def decode_video(path: Path) -> list[np.ndarray]:
    """Every frame as OpenCV decodes it (what the runtime sees; the codecs are lossy)."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def make_result(i=0, n_faces=2, image=None):
    image = synthetic_frames(1)[0] if image is None else image
    boxes = np.array([[10 + i, 20, 50, 70], [60, 10, 90, 40]], np.float32)[:n_faces]
    scores = np.array([0.97, 0.61], np.float32)[:n_faces]
    lms = np.arange(n_faces * 10, dtype=np.float32).reshape(n_faces, 5, 2)
    return FrameResult(Frame(i, 1700000000.0 + i, image, 0.0), Detections(boxes, scores, lms),
                       Timing(0.001, 0.010, 0.0005))


class FakeReader:
    """A device delivering numbered frames; can fail after some and refuse reopening."""

    def __init__(self, fail_after=None, refuse_reopen=0, period=0.0, limit=None):
        self.produced = 0
        self.opens = 0
        self.fail_after = fail_after
        self.refuse_reopen = refuse_reopen
        self.period = period
        self.limit = limit
        self.failed = False

    def open(self):
        self.opens += 1
        if self.opens > 1 and self.refuse_reopen > 0:
            self.refuse_reopen -= 1
            raise SourceError("device busy")
        self.failed = False

    def read(self):
        if self.period:
            time.sleep(self.period)
        if self.failed or (self.limit is not None and self.produced >= self.limit):
            return None
        if self.fail_after is not None and self.produced == self.fail_after:
            self.failed = True
            self.fail_after = None
            return None
        img = np.full((8, 8, 3), self.produced % 256, np.uint8)
        self.produced += 1
        return img

    def close(self):
        pass


class FakeBackend:
    """An InferenceBackend whose one confident anchor depends on the frame's content."""

    name = "fake"

    def __init__(self, size: tuple[int, int] = (64, 64), delay: float = 0.0):
        self.info = ModelInfo(arch="fake").with_input_size(*size)
        w, h = size
        self.anchors = prior_boxes(w, h, tuple(map(tuple, self.info.min_sizes)),
                                   tuple(self.info.steps)).shape[0]
        self.delay = delay
        self.calls = 0

    def infer(self, blob: np.ndarray):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        a = self.anchors
        scores = np.zeros(a, np.float32)
        scores[int(abs(float(blob.mean())) * 7) % a] = 0.9
        return np.zeros((a, 4), np.float32), scores, np.zeros((a, 10), np.float32)


def tiny_graph(a: int, shape: list[int]) -> tuple[tuple[list, list], list, list]:
    """The tiny model's graph as data, for ``tiny_onnx`` and for the ``onnx.helper`` reference
    that tests/test_onnx_writer.py builds from it: ((inputs, outputs) as (name, dims), all
    float), initializers (name, type, dims, values) and nodes (op, inputs, outputs,
    attributes); ``a`` anchors, ``shape`` the input's."""
    io = ([("input", shape)],
          [("boxes", [1, a, 4]), ("scores", [1, a]), ("landmarks", [1, a, 10])])
    inits = [("starts", "INT64", [1], [0]), ("ends1", "INT64", [1], [1]),
             ("axes1", "INT64", [1], [1]), ("ends_a", "INT64", [1], [a]),
             ("scale", "FLOAT", [], [0.1]), ("bias", "FLOAT", [], [-5.0]),
             ("zeros4", "FLOAT", [1, a, 4], [0.0] * (a * 4)),
             ("zeros10", "FLOAT", [1, a, 10], [0.0] * (a * 10))]
    nodes = [("Slice", ["input", "starts", "ends1", "axes1"], ["c0"], {}),
             ("AveragePool", ["c0"], ["pooled"], {"kernel_shape": [4, 4], "strides": [4, 4]}),
             ("Flatten", ["pooled"], ["flat"], {"axis": 1}),
             ("Slice", ["flat", "starts", "ends_a", "axes1"], ["sl"], {}),
             ("Mul", ["sl", "scale"], ["scaled"], {}),
             ("Add", ["scaled", "bias"], ["logits"], {}),
             ("Sigmoid", ["logits"], ["scores"], {}),
             ("Identity", ["zeros4"], ["boxes"], {}),
             ("Identity", ["zeros10"], ["landmarks"], {})]
    return io, inits, nodes


def _with_deformconv(inits: list, nodes: list) -> tuple[list, list]:
    """The tiny graph behind a DeformConv(19) that passes the input through: 1x1 kernel,
    identity weights, zero offsets (a Conv with zero weights makes them, any input size).
    The op edgeface's default export has, and ONNX Runtime < 1.25 has no kernel for."""
    inits = inits + [("w_offset", "FLOAT", [2, 3, 1, 1], [0.0] * 6),
                     ("w_identity", "FLOAT", [3, 3, 1, 1], [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])]
    head = [("Conv", ["input", "w_offset"], ["offset"], {"kernel_shape": [1, 1]}),
            ("DeformConv", ["input", "w_identity", "offset"], ["deformed"],
             {"kernel_shape": [1, 1]})]
    op, i, o, attrs = nodes[0]
    return inits, head + [(op, ["deformed", *i[1:]], o, attrs), *nodes[1:]]


def tiny_onnx(path: Path, size: tuple[int, int] = (64, 64), layout: str = "NCHW",
              metadata: Optional[dict] = None, anchors: Optional[int] = None,
              deformconv: bool = False) -> Path:
    """A small ONNX file with the edgeface interface and metadata (no torch, no onnx needed).

    Scores are a sigmoid of 4x4 average-pooled pixels of the first channel (bright areas
    are "faces"), so detections depend on the frame. ``layout="NHWC"`` makes a model with
    the wrong input layout; ``metadata`` overrides ``edgeface.*`` entries (raw JSON strings)
    and ``anchors`` the outputs' anchor count, for hostile models. The protobuf is written
    by ``onnx_writer`` so this runs where
    only the device runtime is installed; tests/test_onnx_writer.py holds it equal to the
    model ``onnx.helper`` builds. ``deformconv``: the same detections through a DeformConv
    node (opset 19; see ``_with_deformconv``).
    """
    w, h = size
    info = ModelInfo(arch="tiny-test").with_input_size(w, h)
    a = prior_boxes(w, h, tuple(map(tuple, info.min_sizes)), tuple(info.steps)).shape[0]
    a = anchors or a
    assert (w // 4) * (h // 4) >= a
    shape = [1, 3, h, w] if layout == "NCHW" else [1, h, w, 3]
    io, inits, nodes = tiny_graph(a, shape)
    if deformconv:
        inits, nodes = _with_deformconv(inits, nodes)
    graph = ox.graph("tiny", [ox.node(op, i, o, **attrs) for op, i, o, attrs in nodes],
                     *([ox.value_info(n, ox.FLOAT, d) for n, d in side] for side in io),
                     [ox.tensor(n, getattr(ox, t), d, v) for n, t, d, v in inits])
    meta = info.to_metadata()
    if layout != "NCHW":
        meta["edgeface.input_layout"] = '"NHWC"'
    meta.update({f"edgeface.{k}": v for k, v in (metadata or {}).items()})
    Path(path).write_bytes(ox.model(graph, ir_version=9 if deformconv else 8,
                                    opset=19 if deformconv else 17, metadata=meta))
    return path


def edgeface_cmd(*args: str) -> list[str]:
    """Command line running `edgeface` with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-c", "import sys; from edgeface.cli import main; "
            "sys.exit(main(sys.argv[1:]))", *args]


def run_edgeface(*args: str, timeout: float = 60, env: Optional[dict] = None
                 ) -> subprocess.CompletedProcess:
    return subprocess.run(edgeface_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO)
