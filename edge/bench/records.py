"""What identifies a model in bench results: its record (file, digest, arch, precision)
and its label, made unique within a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeface.common.files import sha256_file


def model_record(path: Path, backend: Any) -> dict[str, Any]:
    """What identifies an edgeface ONNX model in results: file, digest, arch, precision."""
    info = backend.info
    extra = dict(info.extra)
    precision = (extra.get("precision") or extra.get("quantization") or "").strip('"').lower()
    source = "metadata"
    if not precision:
        stem = path.stem.lower()
        precision, source = ("int8", "file name") if ("int8" in stem or "qdq" in stem) \
            else ("fp32", "default")
    label = default_label(info.arch, precision, extra.get("dcn", "").strip('"'))
    provider = backend.providers[0] if backend.providers else "CPUExecutionProvider"
    if provider != "CPUExecutionProvider":
        label += f" ({provider.replace('ExecutionProvider', '')} EP)"
    return {
        "label": label,
        "kind": "edgeface", "file": path.name, "arch": info.arch, "precision": precision,
        "precision_source": source, "dcn": extra.get("dcn", "").strip('"') or None,
        "format": "tensorrt" if backend.name == "tensorrt" else path.suffix.lstrip(".").lower(),
        "size_bytes": path.stat().st_size, "sha256": sha256_file(path),
        "input_size": list(info.input_size), "providers": list(backend.providers),
        # which kernel ran DeformConv: "sampler" (the DCN fast path), "onnxruntime", or None
        "dcn_path": getattr(backend, "dcn_path", None),
        "threads_control": "none (GPU)" if backend.name == "tensorrt" else
        "onnxruntime intra-op",
    }


def default_label(arch: str, precision: str, dcn: str | None = None) -> str:
    """``v1``, ``fp32`` -> ``FeatherFace V1 FP32`` (+ the DCN variant when not the default)."""
    names = {"v1": "V1", "eca_cbam": "ECA-CBAM", "cbam": "CBAM",
             "eca_cbam_parallel": "ECA-CBAM parallel"}
    label = f"FeatherFace {names.get(arch, arch)} {precision.upper()}"
    if dcn and dcn != "onnx":
        label += f" ({dcn} DCN)"
    return label


def _dedupe_labels(records: list[dict[str, Any]]) -> None:
    """Make model labels unique within a run: the file name, then a counter, is appended."""
    for attempt in ("file", "index"):
        seen: dict[str, int] = {}
        for m in records:
            seen[m["label"]] = seen.get(m["label"], 0) + 1
        if all(n == 1 for n in seen.values()):
            return
        count: dict[str, int] = {}
        for m in records:
            if seen[m["label"]] > 1:
                count[m["label"]] = count.get(m["label"], 0) + 1
                if attempt == "file" and m.get("file"):
                    m["label"] = f"{m['label']} [{m['file']}]"
                elif attempt == "index":
                    m["label"] = f"{m['label']} #{count[m['label']]}"
