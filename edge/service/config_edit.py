"""The service config: YAML scalar edits that keep comments, ``--set`` values, validation.

The installed config is edited in place (``--model``, ``--set``) and checked as the runtime
will check it, with file outputs confined to the service's only writable directory.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from edgeface.errors import ConfigError

_OUTPUT_FILE_KEYS = ("json", "video", "crops")


def _yaml_scalar(value: Any) -> str:
    """A one-line YAML value (JSON is a subset of YAML's flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


_VALUE_RE = re.compile(r"""^(?P<val>(?:"[^"]*"|'[^']*'|[^#'"])*?)(?P<comment>\s+#.*)?$""")


def _replace_value(line: str, key_end: int, value: Any) -> str:
    m = _VALUE_RE.match(line[key_end:])
    comment = m.group("comment") if m and m.group("comment") else ""
    return f"{line[:key_end]} {_yaml_scalar(value)}{comment}"


def set_config_value(text: str, key: str, value: Any) -> str:
    """Set ``key`` (``model`` or ``outputs.json``) in block-style YAML, keeping comments.

    The edited text is parsed back and checked; anything this simple editor cannot do is
    done by re-serialising the document (comments are then lost, the values are not).
    """
    lines = text.splitlines()
    parts = key.split(".")
    try:
        if len(parts) == 1:
            lines = _set_top(lines, parts[0], value)
        elif len(parts) == 2:
            lines = _set_nested(lines, parts[0], parts[1], value)
        else:
            raise ValueError(key)
        out = "\n".join(lines) + "\n"
        if _get(yaml.safe_load(out) or {}, parts) == value:
            return out
    except (ValueError, yaml.YAMLError):
        pass
    data = yaml.safe_load(text) or {}
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _get(data: Any, parts: Sequence[str]) -> Any:
    for p in parts:
        if not isinstance(data, dict) or p not in data:
            return object()  # never equal to a value
        data = data[p]
    return data


def _set_top(lines: list[str], key: str, value: Any) -> list[str]:
    pat = re.compile(rf"^{re.escape(key)}\s*:")
    for i, line in enumerate(lines):
        m = pat.match(line)
        if m:
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if line[m.end():].strip() in ("", "|", ">") and nxt[:1] in (" ", "\t", "-"):
                raise ValueError("block value")  # a mapping or list below: re-serialise
            lines = list(lines)
            lines[i] = _replace_value(line, m.end(), value)
            return lines
    return [*lines, f"{key}: {_yaml_scalar(value)}"]


def _set_nested(lines: list[str], parent: str, key: str, value: Any) -> list[str]:
    top = re.compile(rf"^{re.escape(parent)}\s*:\s*(#.*)?$")
    child = re.compile(rf"^(\s+){re.escape(key)}\s*:")
    for i, line in enumerate(lines):
        if not top.match(line):
            continue
        indent = "  "
        j = i + 1
        # The block: blank or indented lines up to the next line starting in column 0.
        while j < len(lines) and (not lines[j].strip() or lines[j][:1] in (" ", "\t")):
            m = child.match(lines[j])
            if m:
                lines = list(lines)
                lines[j] = _replace_value(lines[j], m.end(), value)
                return lines
            if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                indent = lines[j][:len(lines[j]) - len(lines[j].lstrip())]
            j += 1
        return [*lines[:i + 1], f"{indent}{key}: {_yaml_scalar(value)}", *lines[i + 1:]]
    return [*lines, f"{parent}:", f"  {key}: {_yaml_scalar(value)}"]


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (VALUE in YAML: ``true``, ``0``, ``null``) -> a dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: {raw!r} is not a YAML value") from None
    return out


def edit_config(text: str, values: Mapping[str, Any], output_dir: str | None) -> str:
    """Apply ``values`` (dotted keys) to a config text and validate the result.

    Setting one source key (camera, picamera, csi, source) clears the others. Relative
    file outputs of the template are placed in ``output_dir``, where the service may write.
    """
    from edgeface.runtime.sources import selectors_given

    values = dict(values)
    given = selectors_given(values)
    if given:
        data = yaml.safe_load(text) or {}
        for k in selectors_given(data):
            if k not in values:
                values[k] = False if k == "picamera" else None
    for key, value in values.items():
        text = set_config_value(text, key, value)
    if output_dir:
        outputs = (yaml.safe_load(text) or {}).get("outputs") or {}
        for k in _OUTPUT_FILE_KEYS:
            v = outputs.get(k) if isinstance(outputs, dict) else None
            if isinstance(v, str) and v != "-" and not os.path.isabs(os.path.expanduser(v)):
                text = set_config_value(text, f"outputs.{k}", str(Path(output_dir) / v))
    return text


def check_config(text: str, *, output_dir: str | None, where: str) -> dict[str, Any]:
    """Validate a config text as the runtime will; file outputs must be writable."""
    import edgeface.http.sink  # noqa: F401  registers outputs.http, which templates set
    from edgeface.runtime.config import validate

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    try:
        opts = validate(data, base=Path(where).parent)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if output_dir:
        for k in _OUTPUT_FILE_KEYS:
            v = (opts.get("outputs") or {}).get(k)
            if v and v != "-" and not _inside(Path(v), Path(output_dir)):
                raise ConfigError(
                    f"{where}: outputs.{k} = {v} is outside the service's only writable "
                    f"directory {output_dir}; use a path inside it (or --output-dir)")
    return opts


def _inside(path: Path, directory: Path) -> bool:
    try:
        Path(os.path.normpath(path)).relative_to(os.path.normpath(directory))
        return True
    except ValueError:
        return False

