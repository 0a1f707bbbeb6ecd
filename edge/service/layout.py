"""Where an install puts things: on-device paths (system or user, ``edgeface.service`` or one
camera's ``edgeface@NAME.service``), camera names, ``reroot`` below --root, and the
tmpfiles.d entry that creates a layout's directories (here, not in :mod:`.units`, which this
module reads its unit names from: the two imported each other)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

from edgeface.errors import ConfigError
from edgeface.service.units import (
    INSTANCE,
    SERVICE,
    SERVICE_USER,
    TEMPLATE_UNIT,
    instance_service,
)

# A camera's name becomes part of a unit name, file names and a syslog identifier: short,
# and nothing that systemd would escape (%I turns '-' into '/'; %i keeps it).
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# Names whose files are edgeface.service's own or shared by every camera.
_RESERVED = {"config": "/etc/edgeface/config.yaml is edgeface.service's config",
             "edgeface": "/etc/edgeface/edgeface.env is the env file every camera shares"}


def check_name(name: str) -> str:
    """A camera name, or a ConfigError that says what a name may be."""
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"invalid camera name {name!r}: 1 to 32 of a-z, 0-9, '_' and '-', "
                          "starting with a letter or digit (e.g. door, cam1)")
    if name in _RESERVED:
        raise ConfigError(f"camera name {name!r} is reserved: {_RESERVED[name]}")
    return name


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
    service: str = SERVICE  # what systemctl enables, starts and shows
    name: str | None = None  # a camera: an instance of the template unit
    camera_env: str | None = None  # that camera's own env file, read after ``env``

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

    @classmethod
    def camera(cls, name: str, *, user_mode: bool = False,
               environ: Mapping[str, str] | None = None) -> Layout:
        """One camera, ``edgeface@NAME.service``: the template unit, the shared env file and
        models, its own config, env file, output directory and tmpfiles.d entry. With
        ``name`` :data:`~edgeface.service.units.INSTANCE`: the paths as the unit names them."""
        if name != INSTANCE:
            check_name(name)
        base = cls.user(environ=environ) if user_mode else cls.system()
        etc = Path(base.config).parent
        return replace(
            base, unit=str(Path(base.unit).parent / TEMPLATE_UNIT),
            config=str(etc / f"{name}.yaml"), output_dir=str(Path(base.output_dir) / name),
            tmpfiles=base.tmpfiles and str(Path(base.tmpfiles).parent / f"edgeface@{name}.conf"),
            service=instance_service(name), name=name, camera_env=str(etc / f"{name}.env"))


def enabled_cameras(layout: Layout, root: Path | None = None) -> list[str]:
    """The cameras whose instance is enabled: links ``*.wants/edgeface@NAME.service`` beside
    the unit files (what ``systemctl enable`` makes, offline with --root too)."""
    units = reroot(root, Path(layout.unit).parent)
    found = {p.name[len("edgeface@"):-len(".service")]
             for p in units.glob("*.wants/edgeface@*.service")}
    return sorted(n for n in found if _NAME_RE.fullmatch(n))


def render_tmpfiles(layout: Layout, user: str = SERVICE_USER) -> str:
    """Directories, and the config's group: tmpfiles.d applies them at install and boot.

    A camera's file repeats the shared lines (models, env file) word for word: identical lines
    in several files are merged silently, and each file alone sets up everything its unit
    needs (the parents of its output directory are created 0755 root)."""
    name = f" --name {layout.name}" if layout.name else ""
    return (f"# Written by `edgeface service install{name}`: files of {layout.service}.\n"
            "# Models are read-only to the service; the output directory is its own; the\n"
            "# config and env file (stream credentials) are readable by root and its group.\n"
            f"d {layout.models_dir} 0755 root root -\n"
            f"d {layout.output_dir} 0750 {user} {user} -\n"
            f"z {layout.config} 0640 root {user} -\n"
            f"z {layout.env} 0640 root {user} -\n"
            + (f"z {layout.camera_env} 0640 root {user} -\n" if layout.camera_env else ""))
