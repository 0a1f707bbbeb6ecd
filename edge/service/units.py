"""The unit files: templates, their ``@NAME@`` placeholders and what fills them.

The unit templates live in ``systemd/`` (the copies in ``edge/service/templates/`` ship in the wheel
and must stay identical; a test checks). ``@NAME@`` placeholders are filled in here with the
interpreter edgeface is installed in, the on-device paths and the hardware-specific lines. The
same template renders ``edgeface.service`` and the per-camera template unit ``edgeface@.service``
(paths holding the instance specifier ``%i``), so that the two cannot drift apart. Also the
sysusers.d entry and the constants every install shares (memory, timeouts).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from edgeface.errors import ConfigError, EdgefaceError

SERVICE = "edgeface.service"
TEMPLATE_UNIT = "edgeface@.service"
SERVICE_USER = "edgeface"
CONFIG_TEMPLATE = "config.yaml"
SYSTEM_TEMPLATE = "edgeface.service"
USER_TEMPLATE = "edgeface-user.service"
ENV_TEMPLATE = "edgeface.env"
UNIT_TEMPLATES = (SYSTEM_TEMPLATE, USER_TEMPLATE, ENV_TEMPLATE)

# The service config's memory_limit stays below MemoryMax=512M, so that the runtime's clean
# exit 5 comes before the kernel's OOM kill (the cgroup also counts page tables, sockets...).
SERVICE_MEMORY_LIMIT = "480M"
MEMORY_MAX = "512M"

# Model load + first frame; CPU from a cold SD card on a Pi 3 takes well under a minute. Also
# a TensorRT engine's start: deserialising it takes seconds.
TIMEOUT_START_CPU = "120s"
# ONNX Runtime's TensorRT provider builds its engine on the first start (minutes on a Nano)
# when the install could not build it beforehand (an image made with --root).
TIMEOUT_START_TRT = "300s"
# The unit's CacheDirectory=edgeface: systemd creates it for the service user and passes it as
# $CACHE_DIRECTORY, where GPU engines are cached (edgeface.inference.backends.tensorrt.cache).
SYSTEM_CACHE_DIR = "/var/cache/edgeface"

# Jetson (L4T) GPU nodes, used when none can be listed on this machine (rendering for another
# board). Nodes a board lacks are skipped by systemd with a warning.
L4T_GPU_NODES = (
    "/dev/nvhost-ctrl", "/dev/nvhost-ctrl-gpu", "/dev/nvhost-prof-gpu", "/dev/nvhost-gpu",
    "/dev/nvhost-as-gpu", "/dev/nvhost-dbg-gpu", "/dev/nvhost-tsg-gpu", "/dev/nvhost-ctxsw-gpu",
    "/dev/nvhost-sched-gpu", "/dev/nvhost-vic", "/dev/nvmap",
)
_GPU_GLOBS = ("nvhost-*", "nvmap", "nvgpu/*/*", "nvidia*", "nvgpu-pci/*")

# A template unit's per-camera paths hold the specifier %i (the instance name). They are built
# with this stand-in, which no real path can contain (NUL), so that unit_value() still escapes
# every literal '%' (a home directory may hold one) and turns only the stand-in into %i.
INSTANCE = "\0"
DESCRIPTION = "edgeface face detection (FeatherFace)"


def template_text(name: str) -> str:
    """A template shipped in ``edgeface/service/templates`` (``edge/service/templates`` here)."""
    from importlib import resources

    try:
        folder = resources.files("edgeface.service") / "templates"
        return (folder / name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        raise EdgefaceError(f"template {name!r} is missing from the edgeface package "
                            "(a broken install? reinstall edgeface)") from None


def instance_service(name: str) -> str:
    """The unit of one camera: an instance of the template unit."""
    return f"edgeface@{name}.service"


def unit_value(path: str | os.PathLike) -> str:
    """A path as a unit-file value: absolute, no whitespace or quotes, ``%`` escaped; the
    :data:`INSTANCE` stand-in becomes ``%i``."""
    text = str(path)
    if not text.startswith("/"):
        raise ConfigError(f"path must be absolute in a systemd unit: {text}")
    if re.search(r"[\s\"'\\;$]", text):
        raise ConfigError(f"path not supported in a systemd unit (whitespace, quote, "
                          f"backslash, ';' or '$'): {text!r}")
    return text.replace("%", "%%").replace(INSTANCE, "%i")


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``@NAME@`` placeholders; a placeholder left unfilled is an error. One alone on
    its line and filled with nothing takes the line with it."""
    out = template
    for key, value in values.items():
        if not value:
            out = re.sub(rf"^@{key}@\n", "", out, flags=re.MULTILINE)
        out = out.replace(f"@{key}@", value)
    left = sorted(set(re.findall(r"@([A-Z_]+)@", out)))
    if left:
        raise EdgefaceError(f"unit template placeholders not filled: {', '.join(left)}")
    return out


def gpu_device_nodes(dev: str | os.PathLike = "/dev") -> list[str]:
    """The Jetson/NVIDIA GPU device nodes present under ``dev``."""
    dev = Path(dev)
    found: set[str] = set()
    for pattern in _GPU_GLOBS:
        for p in dev.glob(pattern):
            try:
                if stat.S_ISCHR(p.stat().st_mode):
                    found.add(str(Path("/dev") / p.relative_to(dev)))
            except OSError:
                continue
    return sorted(found)


def gpu_device_lines(nodes: Sequence[str] | None) -> str:
    """The DeviceAllow= block for the GPU (a comment when the CPU backend is used)."""
    if nodes is None:
        return "# CPU backend, no CSI camera: no GPU nodes (`service install --gpu` adds them)."
    nodes = list(nodes) or list(L4T_GPU_NODES)
    lines = ["# Jetson GPU (cuda/tensorrt providers, CSI camera buffers): nvhost, nvmap, nvgpu."]
    lines += [f"DeviceAllow={unit_value(n)} rw" for n in nodes]
    return "\n".join(lines)


@dataclass
class UnitSettings:
    """What varies between installs of the unit."""

    python: str
    config: str
    env_file: str
    output_dir: str
    user: str = SERVICE_USER
    protect_home: str = "yes"
    gpu_nodes: list[str] | None = None  # None: CPU backend
    timeout_start: str = TIMEOUT_START_CPU
    # The template unit edgeface@.service: paths above hold INSTANCE, and this camera's own
    # env file is read after the shared one.
    camera_env: str | None = None


def camera_env_lines(camera_env: str | None) -> str:
    """The template unit's second EnvironmentFile= (nothing for edgeface.service)."""
    if camera_env is None:
        return ""
    return ("# This camera's own settings and secrets (e.g. its MQTT password), read after the\n"
            "# shared file: a variable set in both takes this file's value.\n"
            f"EnvironmentFile=-{unit_value(camera_env)}")


def render_unit(settings: UnitSettings, *, user_mode: bool = False) -> str:
    """The unit file text for a system (default) or user service: ``edgeface.service``, or
    the template unit ``edgeface@.service`` when ``settings.camera_env`` is set."""
    s = settings
    template = s.camera_env is not None
    values = {
        "DESCRIPTION": DESCRIPTION + (", camera %i" if template else ""),
        "IDENTIFIER": "edgeface-%i" if template else "edgeface",
        "PYTHON": unit_value(s.python),
        "CONFIG": unit_value(s.config),
        "ENV_FILE": unit_value(s.env_file),
        "CAMERA_ENV": camera_env_lines(s.camera_env),
        "TIMEOUT_START": s.timeout_start,
    }
    if not user_mode:
        if not re.fullmatch(r"[a-z_][a-z0-9_-]*", s.user):
            raise ConfigError(f"invalid user name {s.user!r}")
        if s.protect_home not in ("yes", "read-only", "tmpfs"):
            raise ConfigError(f"invalid ProtectHome= value {s.protect_home!r}")
        values.update(OUTPUT_DIR=unit_value(s.output_dir), USER=s.user,
                      PROTECT_HOME=s.protect_home, GPU_DEVICES=gpu_device_lines(s.gpu_nodes))
    return fill(template_text(USER_TEMPLATE if user_mode else SYSTEM_TEMPLATE), values)


def render_camera_env(name: str, shared: str, *, user_mode: bool = False) -> str:
    """A camera's own env file: nothing set, so the shared file's values apply until one is."""
    systemctl = "systemctl --user" if user_mode else "systemctl"
    return (f"# Environment for edgeface@{name}.service only, read after {shared}: a variable\n"
            "# set here takes precedence over the shared one. `edgeface service install` writes\n"
            f"# this once and never overwrites it; after editing: {systemctl} restart "
            f"edgeface@{name}\n"
            "\n"
            "# This camera's secrets, e.g. when it publishes to another broker or account:\n"
            "#EDGEFACE_MQTT_PASSWORD=\n"
            "#EDGEFACE_WEBHOOK_TOKEN=\n"
            "# Extra `edgeface run` arguments for this camera (they replace the shared ones).\n"
            "#EDGEFACE_ARGS=\n")


def render_sysusers(user: str = SERVICE_USER, home: str = "/var/lib/edgeface") -> str:
    return ("# Written by `edgeface service install`: the unprivileged user of edgeface.service.\n"
            f'u {user} - "edgeface face detection" {home}\n')
