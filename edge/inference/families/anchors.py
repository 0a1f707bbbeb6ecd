"""The RetinaFace-style anchor family: an output contract, prior boxes and variance decode.

FeatherFace and RetinaFace-MobileNet0.25 share the decode (SSD priors, two variances) and
differ in what their graphs output: FeatherFace exports the face probability ``scores``
[1, A]; RetinaFace's ONNX gives the two-class softmax ``conf`` [1, A, 2]. The family says
which, so a backend returns the graph's outputs as they are and the family reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgeface.errors import ModelError
from edgeface.frames import Detections
from edgeface.inference.model_info import INPUT_NAME, ModelInfo
from edgeface.inference.postprocess import PostprocessConfig, postprocess
from edgeface.inference.priors import prior_boxes


@dataclass(frozen=True)
class Output:
    """One graph output: its name and the dimensions after ``[1, A]``."""

    name: str
    tail: tuple[int, ...]


@dataclass(frozen=True)
class AnchorFamily:
    """A detector family decoded against RetinaFace prior boxes.

    ``info``: the family's defaults (mean, input size, min sizes, steps, variances), which an
    export's metadata overrides key by key. ``outputs``: box regressions, face scores and
    landmark regressions, in graph order. ``score_column``: the face column of a
    ``[A, classes]`` score output (None: scores are ``[A]`` already). ``clip``: clamp priors
    to the image.
    """

    name: str
    label: str
    info: ModelInfo
    outputs: tuple[Output, Output, Output]
    score_column: int | None = None
    clip: bool = False
    input_name: str = INPUT_NAME

    def check_io(self, inputs: Sequence[str], outputs: Sequence[tuple[str, Sequence]],
                 info: ModelInfo) -> None:
        """Raise :class:`ModelError` naming the first way the graph's inputs and outputs
        (name, shape with ``int`` or symbolic dims) or ``info`` break this family's
        contract: names first, then the metadata's values, then the shapes."""
        names = [n for n, _ in outputs]
        want = [o.name for o in self.outputs]
        if list(inputs) != [self.input_name] or names != want:
            raise ModelError(
                f"inputs {list(inputs)}, outputs {names} are not the {self.name} family's "
                f"('{self.input_name}' -> {want})")
        info.check()  # before anchors(): a zero step would divide by zero
        anchors = info.anchors()
        for out, (name, shape) in zip(self.outputs, outputs):
            shape = list(shape)
            if len(shape) != 2 + len(out.tail) or any(
                    isinstance(d, int) and d != t for d, t in zip(shape[2:], out.tail)):
                raise ModelError(f"output {name!r} has shape {shape}; expected "
                                 f"[1, A{''.join(f', {t}' for t in out.tail)}]")
            if isinstance(shape[1], int) and shape[1] != anchors:
                raise ModelError(f"output {name!r} has {shape[1]} anchors, but the "
                                 f"metadata's min_sizes and steps give {anchors} at "
                                 f"{info.input_size[0]}x{info.input_size[1]}")

    def decoder(self, info: ModelInfo) -> AnchorDecoder:
        return AnchorDecoder(self, info)


class AnchorDecoder:
    """Raw outputs of one image -> :class:`Detections`, for one family and input size."""

    def __init__(self, family: AnchorFamily, info: ModelInfo):
        self.family = family
        self.info = info
        w, h = info.input_size
        self.priors = prior_boxes(w, h, tuple(map(tuple, info.min_sizes)), tuple(info.steps),
                                  family.clip)

    def split(self, raw: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(box regressions [A, 4], face scores [A], landmark regressions [A, 10]) from the
        backend's outputs (batch dimension dropped), checked against the priors: a dynamic
        graph's shapes are known only now."""
        if len(raw) != 3:
            raise ModelError(f"the model gave {len(raw)} outputs; the {self.family.name} "
                             "family has 3")
        loc, scores, landm = raw
        col = self.family.score_column
        if col is not None and scores.ndim == 2 and scores.shape[1] > col:
            scores = scores[:, col]
        a = len(self.priors)
        if not (loc.shape == (a, 4) and scores.shape == (a,) and landm.shape == (a, 10)):
            raise ModelError(f"the model's outputs {loc.shape}, {raw[1].shape}, {landm.shape} "
                             f"do not match its {a} priors ({self.family.name} family; "
                             "metadata min_sizes and steps)")
        return loc, scores, landm

    def __call__(self, raw: Sequence[np.ndarray], scale: tuple[float, float],
                 config: PostprocessConfig) -> Detections:
        loc, scores, landm = self.split(raw)
        return postprocess(loc, scores, landm, self.priors, self.info.input_size, scale,
                           self.info.variance, config)
