"""What a detection model is: input geometry, normalisation and anchor layout.

Exported ONNX files carry this in their metadata (keys prefixed ``edgeface.``), so the
runtime needs nothing but the .onnx file; an engine that cannot carry metadata (TensorRT)
has the same keys in a sidecar file beside it (:func:`read_sidecar`).
"""

from __future__ import annotations

import json
import math
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
    """Everything pre/post-processing needs to know about a model. ``family`` names the
    output contract and decode (:mod:`edgeface.inference.families`); exports from before
    the key existed are FeatherFace's."""

    arch: str = "unknown"
    family: str = "featherface"
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
    def from_metadata(cls, meta: Mapping[str, str], base: ModelInfo | None = None
                      ) -> ModelInfo:
        """Inverse of :meth:`to_metadata`; unknown ``edgeface.*`` keys land in ``extra``,
        and keys the metadata lacks keep ``base``'s values (a family's defaults).

        Raises :class:`~edgeface.errors.ModelError` for a value that is not small, valid
        JSON; :meth:`check` then judges what the values mean."""
        from edgeface.errors import ModelError

        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, str] = {}
        for key, value in meta.items():
            if not key.startswith(META_PREFIX):
                continue
            name = key[len(META_PREFIX):]
            if name not in known:
                extra[name] = value
                continue
            try:
                if len(value) > _MAX_META_CHARS:
                    raise ValueError(f"{len(value)} characters")
                kwargs[name] = _tupleize(json.loads(value))
            except (ValueError, TypeError, RecursionError) as exc:
                raise ModelError(f"model metadata {key} is not a valid value ({exc})"[:300]
                                 ) from None
        if base is not None:
            return replace(base, **kwargs, extra={**base.extra, **extra})
        return cls(**kwargs, extra=extra)

    def anchors(self) -> int:
        """Prior boxes for this input size: what the outputs' second dimension must be."""
        w, h = self.input_size
        return sum(math.ceil(h / s) * math.ceil(w / s) * len(sizes)
                   for sizes, s in zip(self.min_sizes, self.steps))

    def check(self) -> None:
        """Raise :class:`~edgeface.errors.ModelError` (exit 3) naming the first value that
        would give wrong boxes or a crash (zero steps, a one-value variance...)."""
        from edgeface.errors import ModelError

        problem = self._problem()
        if problem:
            raise ModelError(f"model metadata: {problem}")

    def _problem(self) -> str | None:
        def nums(v: Any, n: int | None = None) -> bool:
            return (isinstance(v, tuple) and (n is None or len(v) == n) and len(v) > 0
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                            and math.isfinite(x) for x in v))

        if not isinstance(self.family, str) or not self.family:
            return f"family {self.family!r} must be a family name"
        size = self.input_size
        if not nums(size, 2) or not all(isinstance(x, int) and 16 <= x <= 8192 for x in size):
            return f"input_size {size!r} must be two integers in 16..8192"
        if self.input_layout != "NCHW":
            return f"input_layout {self.input_layout!r} is not supported (NCHW only)"
        if self.color_order != "BGR":
            return f"color_order {self.color_order!r} is not supported (BGR only)"
        if not nums(self.mean, 3) or not all(0 <= m <= 255 for m in self.mean):
            return f"mean {self.mean!r} must be three values in 0..255"
        if not nums(self.variance, 2) or not all(0 < v <= 10 for v in self.variance):
            return f"variance {self.variance!r} must be two positive values"
        if not nums(self.steps) or not all(isinstance(s, int) and 1 <= s <= min(size)
                                           for s in self.steps):
            return f"steps {self.steps!r} must be integers in 1..{min(size)}"
        if not isinstance(self.min_sizes, tuple) or len(self.min_sizes) != len(self.steps):
            return (f"min_sizes {self.min_sizes!r} must give one list of sizes per step "
                    f"({len(self.steps)})")
        if not all(nums(ms) and all(0 < m <= 8192 for m in ms) for ms in self.min_sizes):
            return f"min_sizes {self.min_sizes!r} must be lists of positive sizes"
        return None


#: Metadata values are a few numbers each; anything longer is not an edgeface export.
_MAX_META_CHARS = 4096


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
