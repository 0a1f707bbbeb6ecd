"""Several cameras on one device: what installing one camera (``edgeface@NAME.service``) must
know about the others. They share the template unit, so its GPU nodes and start timeout must
suit every camera; and each serves HTTP on a port of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from edgeface.errors import ConfigError
from edgeface.service.layout import Layout, check_name, reroot


def other_configs(layout: Layout, root: Path | None) -> dict[str, dict[str, Any]]:
    """The installed configs beside this one, by name (``config`` for edgeface.service's),
    parsed; an unreadable one is skipped (the runtime reports it when its unit starts)."""
    found: dict[str, dict[str, Any]] = {}
    config_dir = reroot(root, Path(layout.config).parent)
    own = Path(layout.config).name
    for path in sorted(config_dir.glob("*.yaml")) if config_dir.is_dir() else []:
        if path.name == own:
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            found[path.stem] = data
    return found


def camera_configs(configs: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Of :func:`other_configs`, the cameras' configs (not edgeface.service's)."""
    out = {}
    for name, data in configs.items():
        try:
            out[check_name(name)] = data
        except ConfigError:  # a file edgeface did not name: not a camera
            continue
    return out


def http_port(value: Any) -> int | None:
    """The port of an ``outputs.http`` value ([HOST:]PORT), or None (no server, unparsable)."""
    if value is None or isinstance(value, bool):
        return None
    port = str(value).rpartition(":")[2]
    return int(port) if port.isdigit() else None


def _http_of(data: Mapping[str, Any]) -> Any:
    outputs = data.get("outputs")
    return outputs.get("http") if isinstance(outputs, dict) else None


def http_users(port: int | None, configs: Mapping[str, dict[str, Any]]) -> list[str]:
    """The configs (names) that serve HTTP on ``port``."""
    return [] if port is None else sorted(
        name for name, data in configs.items() if http_port(_http_of(data)) == port)


def free_http(value: Any, configs: Mapping[str, dict[str, Any]]) -> str | None:
    """``value`` ([HOST:]PORT) moved to the first port from it that no other config serves on;
    None when it is free already (or no server)."""
    port = http_port(value)
    if port is None or not http_users(port, configs):
        return None
    taken = {http_port(_http_of(data)) for data in configs.values()}
    while port in taken:
        port += 1
    host, sep, _ = str(value).rpartition(":")
    return f"{host}{sep}{port}"
