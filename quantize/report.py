"""The quantization report: :class:`Int8Report` (the ``.json`` beside the model and the
summary ``edgeface quantize`` prints), :class:`AccuracyBudgetExceeded` (a rejection carrying
its report) and where reports and rejected models are written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgeface.common.files import atomic_write
from edgeface.errors import EXIT_FAILURE
from edgeface.quantize.config import QuantizationError
from edgeface.quantize.graph import summarize_float_nodes


@dataclass
class Int8Report:
    """Everything ``edgeface quantize --int8`` measured (``to_json`` for the .json file)."""

    fp32: dict[str, Any]  # path, sha256, size_bytes
    int8: dict[str, Any]
    config: dict[str, Any]
    calibration: dict[str, Any]
    excluded: dict[str, Any]  # requested / auto blocks, nodes
    float_nodes: list[dict[str, str]]
    accuracy: dict[str, Any] | None = None  # fp32/int8 AP, drops, budget, passed
    latency: dict[str, Any] | None = None
    search: list[dict[str, Any]] = field(default_factory=list)
    accepted: bool = True
    seconds: float = 0.0
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def size_ratio(self) -> float:
        return self.int8["size_bytes"] / self.fp32["size_bytes"]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["size_ratio"] = round(self.size_ratio, 4)
        d["float_summary"] = summarize_float_nodes(self.float_nodes)
        return d

    def summary(self) -> str:
        """Human-readable report (stdout)."""
        kb = 1024
        lines = [
            f"{'INT8 model' if self.accepted else 'REJECTED INT8 model'}: {self.int8['path']}",
            f"  quantization: {self.config['description']}",
            f"  calibration: {self.calibration['images']} images from "
            f"{self.calibration['source']}"
            + (f" ({len(self.calibration['skipped'])} unreadable, skipped)"
               if self.calibration["skipped"] else ""),
            f"  size: FP32 {self.fp32['size_bytes'] / kb:.0f} KiB -> INT8 "
            f"{self.int8['size_bytes'] / kb:.0f} KiB ({self.size_ratio:.1%})",
        ]
        acc = self.accuracy
        if acc:
            lines.append(f"  AP on {acc['dataset']} ({acc['images']} images), FP32 -> INT8 "
                         f"(drop in points, budget {acc['max_ap_drop']:g}):")
            for s in acc["fp32"]:
                lines.append(f"    {s:<7} {_pct(acc['fp32'][s])} -> {_pct(acc['int8'][s])}  "
                             f"({acc['drop_points'].get(s, float('nan')):+.2f})")
        else:
            lines.append("  AP: not checked (--no-eval)")
        lat = self.latency
        if lat:
            f, q = lat["median_ms"]["fp32"], lat["median_ms"]["int8"]
            lines.append(f"  latency (median of {lat['runs']}, {lat['threads']} thread"
                         f"{'s' if lat['threads'] > 1 else ''}, alternating): FP32 {f:.1f} ms, "
                         f"INT8 {q:.1f} ms, ratio {lat['ratio']['int8']:.2f}")
        ex = self.excluded
        scores = ex.get("score_path", [])
        if ex["blocks"]:
            lines.append(f"  kept in float by request/search: {', '.join(ex['blocks'])}"
                         f" ({len(ex['nodes']) - len(scores)} nodes)")
        if scores:
            lines.append(f"  kept in float for the face scores: {len(scores)} nodes "
                         "(ClassHead convolutions to the scores' Concat)")
        lines.append(f"  nodes in float: {len(self.float_nodes)}: "
                     f"{summarize_float_nodes(self.float_nodes)}")
        lines.append(f"  sha256: FP32 {self.fp32['sha256'][:16]}..., INT8 "
                     f"{self.int8['sha256'][:16]}...")
        return "\n".join(lines)


class AccuracyBudgetExceeded(QuantizationError):
    """The INT8 model loses more AP than allowed; it was not written. Defined beside the
    report it carries, so that config imports nothing from report (that import closed the
    cycle config -> report -> graph -> compaction -> config)."""

    def __init__(self, message: str, report: Int8Report | None = None):
        super().__init__(message, EXIT_FAILURE)
        self.report = report


def _pct(v: float) -> str:
    return "  n/a " if v is None or np.isnan(v) else f"{v * 100:6.2f}"


def report_path(model_path: str | os.PathLike) -> Path:
    """``model.int8.onnx`` -> ``model.int8.json``."""
    return Path(model_path).with_suffix(".json")


def rejected_path(model_path: str | os.PathLike) -> Path:
    """``model.int8.onnx`` -> ``model.int8.rejected.onnx``."""
    p = Path(model_path)
    return p.with_name(p.stem + ".rejected.onnx")


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Write a report document atomically (numpy scalars and paths as JSON)."""
    atomic_write(path, json.dumps(doc, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)
