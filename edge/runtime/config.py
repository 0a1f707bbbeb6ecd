"""`edgeface run` settings: the flags, the ``--config FILE`` keys, their defaults and checks.

A YAML file takes the same keys as the command's flags (``--confidence-threshold`` is key
``confidence_threshold``); the outputs' settings go under ``outputs:``. The keys are
assembled from the run's own options (:data:`RUN_OPTIONS`), each source kind's and each
sink's (their registries), so a new source or sink brings its settings with it. Flags
given on the command line override the file. Unknown keys are errors that name the key and
list the valid ones; relative paths are relative to the file. The documented default is
``edge/service/templates/config.yaml``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from edgeface.errors import ConfigError
from edgeface.inference.backends import default_threads
from edgeface.inference.backends.registry import PROVIDERS
from edgeface.inference.families import family_names
from edgeface.runtime.motion import MOTION_OPTIONS
from edgeface.runtime.options import (
    Option,
    boolean,
    choice,
    memory,
    number,
    resolve_path,
    string,
    wxh,
)
from edgeface.runtime.sinks import sink_options
from edgeface.runtime.sources import selector_options, selectors_given, source_options
from edgeface.runtime.sources.stream import URL_RE
from edgeface.runtime.tracking import TRACK_OPTIONS

#: A config file larger than this is refused unread: the documented template is ~4 KB.
MAX_CONFIG_BYTES = 64 << 10


def _threads(key: str, v: Any) -> int:
    # More threads than 4x the cores only adds contention and memory (one arena each).
    return number(1, default_threads() * 4, integer=True)(key, v)


RUN_OPTIONS = (
    Option("model", "--model", string, metavar="MODEL", path=True,
           help="Model from `edgeface export` or `edgeface quantize` (.onnx FP32 or INT8)."),
    Option("size", "--size", wxh(32, 4096), metavar="WxH",
           help="Network input size [default: from the model, 416x416]."),
    Option("confidence_threshold", "--confidence-threshold", number(0, 1), 0.5, metavar="0..1",
           help="Minimum face probability."),
    Option("nms_threshold", "--nms-threshold", number(0, 1, lo_open=True), 0.4, metavar="0..1",
           help="NMS IoU threshold."),
    Option("max_detections", "--max-detections", number(1, 10000, integer=True), 100,
           metavar="N",
           help="Most faces reported per frame."),
    Option("threads", "--threads", _threads, metavar="N",
           help="Inference threads [default: the cores available; at most 4x the cores]."),
    Option("provider", "--provider", choice(*PROVIDERS), "auto", metavar="|".join(PROVIDERS),
           help="Where the model runs: auto (CPU for .onnx, the GPU for a TensorRT .engine), "
                "cpu, cuda or tensorrt."),
    Option("family", "--family", choice(*family_names()), metavar="|".join(family_names()),
           help="Model family of an ONNX file made elsewhere, without edgeface metadata "
                "[default: the one the model names]."),
    # ONNX Runtime's CPU arena: measured smaller and steadier in the full runtime than
    # glibc malloc under its many threads (benchmarks/runtime_memory.py).
    Option("arena", "--arena", boolean, True, cli="bool",
           help="ONNX Runtime CPU memory arena."),
    Option("memory_limit", "--memory-limit", memory(1 << 20), "512M", metavar="SIZE",
           help="Exit with code 5 when resident memory exceeds this (e.g. 512M; 0: off)."),
    Option("max_image_pixels", "--max-image-pixels", number(1, 10**10, integer=True),
           metavar="N", help="Largest image or frame accepted, in pixels; a larger one is "
                             "refused before it is decoded [default: memory limit / 16 bytes, "
                             "33.5M at 512M; 100M without a limit]."),
    Option("status_interval", "--status-interval", number(0, 86400), 10.0, metavar="SECONDS",
           help="Seconds between status lines on stderr (0: none)."),
    Option("max_frames", "--max-frames", number(1, 10**12, integer=True), metavar="N",
           help="Stop after this many frames."),
    Option("duration", "--duration", number(0, 10**8, lo_open=True), metavar="SECONDS",
           help="Stop after this many seconds."),
)

#: Renamed keys: old -> new (the old spelling works, with a line on stderr).
RENAMED_KEYS = {"input_size": "size"}


def top_options() -> list[Option]:
    """Every top-level key: the model, the source's, detection, motion gating, tracking."""
    return [RUN_OPTIONS[0], *source_options(), *RUN_OPTIONS[1:], *MOTION_OPTIONS,
            *TRACK_OPTIONS]


def options_by_key() -> dict[str, Option]:
    return {o.key: o for o in top_options()}


def output_options() -> dict[str, Option]:
    return {o.key: o for o in sink_options()}


def _defaults() -> dict[str, Any]:
    d: dict[str, Any] = {o.key: o.default for o in top_options()}
    d["outputs"] = {o.key: o.default for o in sink_options()}
    return d


# The one place defaults live: run's flags use them too.
DEFAULTS: dict[str, Any] = _defaults()
OUTPUT_KEYS = tuple(output_options())
SOURCE_KEYS = tuple(o.key for o in selector_options())


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a config file; returns only the keys it sets (nulls are unset).

    The file must be a regular file of at most :data:`MAX_CONFIG_BYTES`, so that loading
    takes bounded time and memory whatever it contains.
    """
    import yaml

    p = Path(path)
    try:
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        if not p.is_file():
            raise ConfigError(f"config file {p} is not a regular file")
        with open(p, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {p} is larger than {MAX_CONFIG_BYTES >> 10} KB")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {_cut(str(exc))}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}{where}: invalid YAML: {_cut(problem)}") from None
    except RecursionError:
        raise ConfigError(f"{p}: invalid YAML: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of keys to values at the top level")
    try:
        return validate(data, base=p.parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def validate(data: Mapping[str, Any], base: Optional[Path] = None) -> dict[str, Any]:
    """Check keys and values; resolve relative paths against ``base``."""
    top, outs_opts = options_by_key(), output_options()
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"invalid key {_cut(repr(key))}: keys are names")
        if key in RENAMED_KEYS:
            new = RENAMED_KEYS[key]
            print(f"edgeface: warning: config key {key!r} is deprecated, use {new!r}",
                  file=sys.stderr)
            key = new
        if key == "outputs":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError("config key 'outputs': expected a mapping with keys "
                                  f"{', '.join(OUTPUT_KEYS)}")
            out["outputs"] = _check_all(value, outs_opts, base, "outputs.")
            continue
        if key not in top:
            raise ConfigError(f"unknown key {_cut(repr(key))} (valid keys: "
                              f"{', '.join(sorted([*top, 'outputs']))})")
        out.update(_check_all({key: value}, top, base, ""))
    if len(selectors_given(out)) > 1:
        raise ConfigError(f"set only one of {', '.join(SOURCE_KEYS)}")
    return out


def _check_all(values: Mapping[str, Any], options: Mapping[str, Option],
               base: Optional[Path], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        opt = options.get(key) if isinstance(key, str) else None
        if opt is None:
            where = f" under {prefix.rstrip('.')}" if prefix else ""
            raise ConfigError(f"unknown key '{prefix}{_cut(str(key))}' (valid keys{where}: "
                              f"{', '.join(options)})")
        if value is None:
            continue
        what = f"config key '{prefix}{key}'"
        if _oversized(value):
            raise ConfigError(f"{what}: a value of more than {_MAX_ITEMS} items (an alias "
                              "bomb?)")
        try:
            value = opt.check(what, value)
        except ConfigError as exc:  # a check quotes the value: one readable line of it
            raise ConfigError(_cut(str(exc), 300)) from None
        if opt.path and value != "-":
            value = resolve_path(value, base)
        elif key == "source" and isinstance(value, str):
            value = _resolve_source(value, base)
        out[key] = value
    return out


def check_values(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Check merged run options (flags included) with the same checks as the config file:
    a flag value such as ``--duration nan`` fails here, naming the flag."""
    checked = dict(opts)
    for key, opt in options_by_key().items():
        if checked.get(key) is not None and checked.get(key) is not False:
            checked[key] = opt.check(opt.flag, checked[key])
    outs = dict(checked.get("outputs") or {})
    for key, opt in output_options().items():
        if outs.get(key) is not None:
            outs[key] = opt.check(opt.flag, outs[key])
    checked["outputs"] = outs
    return checked


def sources_given(values: Mapping[str, Any]) -> list[str]:
    """The source keys that are set (``camera: 0`` is set; ``picamera: false`` is not)."""
    return selectors_given(values)


def _resolve_source(value: str, base: Optional[Path]) -> str:
    low = value.lower()
    if (value.isdigit() or URL_RE.match(value) or low.startswith(("picamera", "csi"))
            or value.startswith("/dev/")):
        return value
    return resolve_path(value, base)


#: Items one config value may hold: no setting takes more than a few. Nine aliases nested
#: six deep expand 50 bytes of YAML to 4.8 million, whose repr in an error was 39 MB.
_MAX_ITEMS = 1000


def _oversized(value: Any) -> bool:
    """Whether ``value`` holds more than :data:`_MAX_ITEMS` items, counted without walking
    past that many (aliases make a small file a huge tree)."""
    stack, n = [value], 0
    while stack:
        v = stack.pop()
        n += 1
        if n > _MAX_ITEMS:
            return True
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set)):
            stack.extend(v)
    return False


def _cut(text: str, limit: int = 200) -> str:
    """One readable line: the first line of ``text``, at most ``limit`` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


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
