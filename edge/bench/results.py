"""The bench result document: its schema, validation, file names and saving.

The schema is documented in benchmarks/README.md.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from edgeface.common.files import atomic_write
from edgeface.errors import ConfigError

SCHEMA_VERSION = 1
RESULT_KIND = "edgeface-bench"

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))

# A minimal structural schema (documented in benchmarks/README.md): dict = required keys,
# [spec] = list of, tuple of types = isinstance, set = allowed values.
_RESULT_SPEC: dict[str, Any] = {
    "model": {"label": str, "kind": {"edgeface", "peer"}, "size_bytes": (int, type(None)),
              "sha256": _OPT_STR, "precision": _OPT_STR},
    "threads": int,
    "runs": int,
    "latency_ms": {"p50": _OPT_NUM, "p90": _OPT_NUM, "p99": _OPT_NUM, "mean": _OPT_NUM},
    "throughput_fps": _OPT_NUM,
    "peak_rss_mb": _OPT_NUM,
}
_DOC_SPEC: dict[str, Any] = {
    "schema_version": int,
    "kind": {RESULT_KIND},
    "created": str,
    "mode": {"model", "pipeline"},
    "interrupted": bool,
    "platform": {"slug": str, "cpu_model": str, "cores": int, "machine": str, "isa": dict,
                 "os": str, "python": str, "onnxruntime": str, "board": _OPT_STR},
    "settings": {"runs": int, "warmup": int, "threads": [int]},
    "results": [_RESULT_SPEC],
    "ratios": [{"threads": int, "model": str, "baseline": str, "p50_ratio": _NUM}],
}


class ResultSchemaError(ConfigError):
    """A result file does not follow the documented schema."""


def _check(value: Any, spec: Any, where: str) -> None:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ResultSchemaError(f"{where or 'document'}: expected an object")
        for key, sub in spec.items():
            if key not in value:
                raise ResultSchemaError(f"{where + '.' if where else ''}{key}: missing")
            _check(value[key], sub, f"{where + '.' if where else ''}{key}")
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise ResultSchemaError(f"{where}: expected a list")
        for i, item in enumerate(value):
            _check(item, spec[0], f"{where}[{i}]")
    elif isinstance(spec, set):
        if value not in spec:
            raise ResultSchemaError(f"{where}: {value!r} is not one of {sorted(spec)}")
    else:
        types = spec if isinstance(spec, tuple) else (spec,)
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if isinstance(value, float) and not math.isfinite(value) and value is not None:
            ok = False
        if not ok:
            names = "/".join("null" if t is type(None) else t.__name__ for t in types)
            raise ResultSchemaError(f"{where}: expected {names}, got {type(value).__name__}")


def validate_result(doc: Any) -> None:
    """Raise :class:`ResultSchemaError` naming the first field that breaks the schema."""
    if not isinstance(doc, dict):
        raise ResultSchemaError("document: expected a JSON object")
    version = doc.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ResultSchemaError(f"schema_version {version} is newer than this edgeface "
                                f"understands ({SCHEMA_VERSION}); upgrade edgeface")
    _check(doc, _DOC_SPEC, "")


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one result file; errors name the file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ResultSchemaError(f"{p}: not valid JSON ({exc})") from None
    try:
        validate_result(doc)
    except ResultSchemaError as exc:
        raise ResultSchemaError(f"{p}: {exc}") from None
    return doc


def result_filename(doc: Mapping[str, Any]) -> str:
    """``<platform slug>_<YYYY-MM-DD>[_pipeline].json``."""
    day = doc["created"][:10]
    suffix = "_pipeline" if doc["mode"] == "pipeline" else ""
    return f"{doc['platform']['slug']}_{day}{suffix}.json"


def save_result(doc: Mapping[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``doc`` (validated) under ``out_dir``; never overwrites (``-2``, ``-3``...)."""
    validate_result(doc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = result_filename(doc)
    path = out / name
    n = 2
    while path.exists():
        path = out / name.replace(".json", f"-{n}.json")
        n += 1
    return atomic_write(path, json.dumps(doc, indent=1) + "\n")
