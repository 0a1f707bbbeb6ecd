"""Where an install puts things: on-device paths (system or user) and ``reroot`` below --root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from edgeface.service.units import SERVICE


def reroot(root: Path | None, path: str | os.PathLike) -> Path:
    """``path`` (absolute, on the device) as seen from here: below ``root`` if given."""
    p = Path(path)
    return root / p.relative_to(p.anchor) if root is not None else p


@dataclass
class Layout:
    """On-device paths of everything an install writes."""

    user_mode: bool
    unit: str
    config: str
    env: str
    models_dir: str
    output_dir: str
    sysusers: str | None = None
    tmpfiles: str | None = None

    @classmethod
    def system(cls, output_dir: str | None = None) -> Layout:
        return cls(user_mode=False, unit=f"/etc/systemd/system/{SERVICE}",
                   config="/etc/edgeface/config.yaml", env="/etc/edgeface/edgeface.env",
                   models_dir="/var/lib/edgeface/models",
                   output_dir=output_dir or "/var/lib/edgeface/detections",
                   sysusers="/etc/sysusers.d/edgeface.conf",
                   tmpfiles="/etc/tmpfiles.d/edgeface.conf")

    @classmethod
    def user(cls, output_dir: str | None = None,
             environ: Mapping[str, str] | None = None) -> Layout:
        env = os.environ if environ is None else environ
        home = Path(env.get("HOME") or Path.home())
        config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        data_home = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
        return cls(user_mode=True, unit=str(config_home / "systemd" / "user" / SERVICE),
                   config=str(config_home / "edgeface" / "config.yaml"),
                   env=str(config_home / "edgeface" / "edgeface.env"),
                   models_dir=str(data_home / "edgeface" / "models"),
                   output_dir=output_dir or str(data_home / "edgeface" / "detections"))

