"""What a detection model is: input geometry, normalisation and anchor layout.

Exported ONNX files carry this in their metadata (keys prefixed ``edgeface.``), so the
runtime needs nothing but the .onnx file; an engine that cannot carry metadata (TensorRT)
has the same keys in a sidecar file beside it (:func:`read_sidecar`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

META_PREFIX = "edgeface."

# RetinaFace-style heads used by the whole FeatherFace family.
DEFAULT_MIN_SIZES = ((16, 32), (64, 128), (256, 512))
DEFAULT_STEPS = (8, 16, 32)
DEFAULT_VARIANCE = (0.1, 0.2)
DEFAULT_MEAN_BGR = (104.0, 117.0, 123.0)
DEFAULT_INPUT_SIZE = (416, 416)  # (width, height)

# Output tensor names of every edgeface export, in this order.
OUTPUT_NAMES = ("boxes", "scores", "landmarks")
INPUT_NAME = "input"


@dataclass(frozen=True)
class ModelInfo:
    """Everything pre/post-processing needs to know about a model."""

    arch: str = "unknown"
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE  # (width, height)
    dynamic: bool = False
    input_layout: str = "NCHW"
    color_order: str = "BGR"
    mean: tuple[float, float, float] = DEFAULT_MEAN_BGR
    variance: tuple[float, float] = DEFAULT_VARIANCE
    min_sizes: tuple[tuple[int, ...], ...] = DEFAULT_MIN_SIZES
    steps: tuple[int, ...] = DEFAULT_STEPS
    extra: Mapping[str, str] = field(default_factory=dict)

    def with_input_size(self, width: int, height: int) -> ModelInfo:
        return replace(self, input_size=(int(width), int(height)))

    def to_metadata(self, **extra: Any) -> dict[str, str]:
        """Flat string->string map for ONNX ``metadata_props``."""
        d = asdict(self)
        d.pop("extra")
        out = {META_PREFIX + k: json.dumps(v) for k, v in d.items()}
        merged = {**self.extra, **{k: v if isinstance(v, str) else json.dumps(v)
                                    for k, v in extra.items()}}
        out.update({META_PREFIX + k: v for k, v in merged.items()})
        return out

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> ModelInfo:
        """Inverse of :meth:`to_metadata`; unknown ``edgeface.*`` keys land in ``extra``."""
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, str] = {}
        for key, value in meta.items():
            if not key.startswith(META_PREFIX):
                continue
            name = key[len(META_PREFIX):]
            if name in known:
                kwargs[name] = _tupleize(json.loads(value))
            else:
                extra[name] = value
        return cls(**kwargs, extra=extra)


def _tupleize(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_tupleize(x) for x in v)
    return v


#: A non-ONNX engine (a TensorRT plan) cannot carry metadata, so its ModelInfo and what it
#: was built from live in ``<engine>.json`` beside it; at most this many bytes are read.
SIDECAR_MAX_BYTES = 1 << 20


def sidecar_path(model: str | os.PathLike) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    return Path(str(model) + ".json")


def read_sidecar(model: str | os.PathLike) -> dict[str, Any]:
    """The sidecar document of a non-ONNX model; its ``metadata`` holds the same
    ``edgeface.*`` keys an ONNX export carries. Raises ModelError when it is missing or
    unreadable, naming the file."""
    from edgeface.errors import ModelError

    path = sidecar_path(model)
    try:
        with open(path, "rb") as f:
            raw = f.read(SIDECAR_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ModelError(f"{path} is missing: {Path(model).name} cannot be used without the "
                         "sidecar written beside it when it was built") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if len(raw) > SIDECAR_MAX_BYTES:
            raise ValueError("too large")
        doc = json.loads(raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
            raise ValueError("no 'metadata' object")
    except ValueError as exc:
        raise ModelError(f"{path} is not an edgeface sidecar ({exc})") from None
    return doc


def info_from_sidecar(model: str | os.PathLike) -> ModelInfo:
    """The :class:`ModelInfo` of a non-ONNX model, from its sidecar."""
    meta = read_sidecar(model)["metadata"]
    return ModelInfo.from_metadata({str(k): str(v) for k, v in meta.items()})
