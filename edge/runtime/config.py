"""`edgeface run --config FILE`: a YAML file with the same keys as the command's flags.

Flag ``--confidence-threshold`` is key ``confidence_threshold``; the outputs (``--json``,
``--json-max-size``, ``--json-keep``, ``--video``, ``--http``) go under ``outputs:``. Flags
given on the command line override the file. Unknown keys are errors that name the key and
list the valid ones; relative paths are relative to the file. The documented default is
``edge/service/templates/config.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from edgeface.common.sizes import parse_size, parse_wxh
from edgeface.errors import ConfigError
from edgeface.inference.backends.registry import PROVIDERS

# The one place defaults live: run_cmd's flags use them too.
DEFAULTS: dict[str, Any] = {
    "model": None,
    "source": None,
    "camera": None,
    "picamera": False,
    "csi": None,
    "live": None,  # auto: cameras and streams are live, files and folders are not
    "loop": False,
    "capture_size": None,
    "capture_fps": None,
    "input_size": None,  # from the model's metadata (416x416 for the default export)
    "confidence_threshold": 0.5,
    "nms_threshold": 0.4,
    "max_detections": 100,
    "threads": None,  # the cores available
    "provider": "auto",
    # ONNX Runtime's CPU arena: measured smaller and steadier in the full runtime than
    # glibc malloc under its many threads (benchmarks/runtime_memory.py).
    "arena": True,
    "memory_limit": "512M",
    "status_interval": 10.0,
    "max_frames": None,
    "duration": None,
    # json_max_size: rotate the JSON-lines file past this size (null: never), keeping
    # json_keep old files.
    "outputs": {"json": None, "json_max_size": None, "json_keep": 3, "video": None,
                "http": None},
}
OUTPUT_KEYS = ("json", "json_max_size", "json_keep", "video", "http")
DESTINATION_KEYS = ("json", "video", "http")  # the outputs themselves; the rest tune them
SOURCE_KEYS = ("source", "camera", "picamera", "csi")


def _number(lo: float | None = None, hi: float | None = None, *, integer: bool = False,
            lo_open: bool = False) -> Callable[[str, Any], Any]:
    def check(key: str, v: Any) -> Any:
        ok_types = (int,) if integer else (int, float)
        if isinstance(v, bool) or not isinstance(v, ok_types):
            what = "an integer" if integer else "a number"
            raise ConfigError(f"config key '{key}': expected {what}, got {v!r}")
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi):
            rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}]"
            raise ConfigError(f"config key '{key}': {v!r} is outside {rng}")
        return v
    return check


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"config key '{key}': expected true or false, got {v!r}")
    return v


def _string(key: str, v: Any) -> str:
    if not isinstance(v, (str, int)) or isinstance(v, bool):
        raise ConfigError(f"config key '{key}': expected a string, got {v!r}")
    return str(v)


def _source(key: str, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ConfigError(f"config key '{key}': expected a path, URL or camera number, got {v!r}")
    return v


def _provider(key: str, v: Any) -> str:
    if not isinstance(v, str) or v.lower() not in PROVIDERS:
        raise ConfigError(f"config key '{key}': expected one of {', '.join(PROVIDERS)}, got {v!r}")
    return v.lower()


def _size(key: str, v: Any) -> Any:
    return parse_wxh(v, f"'{key}'")


def _memory(key: str, v: Any) -> Any:
    parse_size(v)  # validates; the raw value is kept for messages
    return v


def _live(key: str, v: Any) -> Any:
    return None if v in (None, "auto") else _bool(key, v)


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "model": _string,
    "source": _source,
    "camera": _number(0, integer=True),
    "picamera": _bool,
    "csi": _number(0, integer=True),
    "live": _live,
    "loop": _bool,
    "capture_size": _size,
    "capture_fps": _number(0, lo_open=True),
    "input_size": _size,
    "confidence_threshold": _number(0, 1),
    "nms_threshold": _number(0, 1, lo_open=True),
    "max_detections": _number(1, integer=True),
    "threads": _number(1, integer=True),
    "provider": _provider,
    "arena": _bool,
    "memory_limit": _memory,
    "status_interval": _number(0),
    "max_frames": _number(1, integer=True),
    "duration": _number(0, lo_open=True),
}
_OUTPUT_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "json": _string, "json_max_size": _memory, "json_keep": _number(1, integer=True),
    "video": _string, "http": _string,
}
_PATH_KEYS = ("model",)


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a config file; returns only the keys it sets (nulls are unset)."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of keys to values at the top level")
    try:
        return validate(data, base=p.parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def validate(data: Mapping[str, Any], base: Optional[Path] = None) -> dict[str, Any]:
    """Check keys and types; resolve relative paths against ``base``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "outputs":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError("config key 'outputs': expected a mapping with keys "
                                  f"{', '.join(OUTPUT_KEYS)}")
            outs = {}
            for okey, ov in value.items():
                if okey not in _OUTPUT_VALIDATORS:
                    raise ConfigError(f"unknown key 'outputs.{okey}' (valid keys under "
                                      f"outputs: {', '.join(OUTPUT_KEYS)})")
                if ov is None:
                    continue
                ov = _OUTPUT_VALIDATORS[okey](f"outputs.{okey}", ov)
                if okey in ("json", "video") and ov != "-":
                    ov = _resolve(ov, base)
                outs[okey] = ov
            out["outputs"] = outs
            continue
        if key not in _VALIDATORS:
            raise ConfigError(f"unknown key {key!r} (valid keys: "
                              f"{', '.join(sorted([*_VALIDATORS, 'outputs']))})")
        if value is None:
            continue
        value = _VALIDATORS[key](key, value)
        if key in _PATH_KEYS:
            value = _resolve(value, base)
        elif key == "source" and isinstance(value, str):
            value = _resolve_source(value, base)
        out[key] = value
    if len(sources_given(out)) > 1:
        raise ConfigError(f"set only one of {', '.join(SOURCE_KEYS)}")
    return out


def sources_given(values: Mapping[str, Any]) -> list[str]:
    """The source keys that are set (``camera: 0`` is set; ``picamera: false`` is not)."""
    return [k for k in SOURCE_KEYS if values.get(k) is not None and values.get(k) is not False]


def _resolve(value: str, base: Optional[Path]) -> str:
    p = Path(value).expanduser()
    if base is not None and not p.is_absolute():
        p = base / p
    return str(p)


def _resolve_source(value: str, base: Optional[Path]) -> str:
    from edgeface.runtime.sources import _URL_RE

    low = value.lower()
    if (value.isdigit() or _URL_RE.match(value) or low.startswith(("picamera", "csi"))
            or value.startswith("/dev/")):
        return value
    return _resolve(value, base)


def merge(file_values: Mapping[str, Any], flag_values: Mapping[str, Any],
          explicit: set[str]) -> dict[str, Any]:
    """Defaults < config file < flags given on the command line (``explicit``).

    Giving any source flag replaces the file's source, whichever key it used.
    """
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for k, v in file_values.items():
        if k == "outputs":
            merged["outputs"].update(v)
        else:
            merged[k] = v
    if explicit & set(SOURCE_KEYS):
        for k in SOURCE_KEYS:
            merged[k] = DEFAULTS[k]
    for k in explicit:
        if k in OUTPUT_KEYS:
            merged["outputs"][k] = flag_values[k]
        elif k in merged:
            merged[k] = flag_values[k]
    return merged
