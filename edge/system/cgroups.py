"""Is the memory cgroup controller enabled, so that systemd's ``MemoryMax=`` is enforced?

Raspberry Pi kernels ship it disabled (since 6.12 the DTB bootargs say
``cgroup_disable=memory``); ``cgroup_enable=memory`` later on the command line (from
``cmdline.txt``) turns it back on, the last of the two winning. ``cgroup_memory=1`` is not
an option. On 6.12+ kernels without cgroup v1 support ``memory`` is missing from
``/proc/cgroups`` even when enabled, so the cgroup v2 ``cgroup.controllers`` file is asked
first and ``/proc/cgroups`` only when there is none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgeface.system.sysfs import read_text


@dataclass(frozen=True)
class MemoryController:
    enabled: Optional[bool]  # None: this machine does not say
    evidence: str  # where the answer came from
    fix: Optional[str] = None  # one line, when it is not enabled


def cmdline_memory_disabled(cmdline: str) -> Optional[bool]:
    """True/False when the command line disables/enables the memory controller (the last
    of ``cgroup_disable=memory`` / ``cgroup_enable=memory`` wins), None when it says neither."""
    state = None
    for arg in cmdline.split():
        key, _, value = arg.partition("=")
        if "memory" in value.split(","):
            if key == "cgroup_disable":
                state = True
            elif key == "cgroup_enable":
                state = False
    return state


def memory_controller(root: str | Path = "/") -> MemoryController:
    root = Path(root)
    cmdline = read_text(root / "proc/cmdline") or ""
    disabled = cmdline_memory_disabled(cmdline)
    controllers = read_text(root / "sys/fs/cgroup/cgroup.controllers")
    if controllers is not None:
        enabled: Optional[bool] = "memory" in controllers.split()
        evidence = "/sys/fs/cgroup/cgroup.controllers (cgroup v2)"
    else:
        enabled, evidence = _proc_cgroups(read_text(root / "proc/cgroups") or "")
    if enabled is None and disabled is not None:
        enabled, evidence = not disabled, "/proc/cmdline"
    fix = None
    if enabled is False:
        target = next((f"/{p}" for p in ("boot/firmware/cmdline.txt", "boot/cmdline.txt")
                       if (root / p).is_file()), None)
        fix = (f"append ' cgroup_enable=memory' to the single line in {target} and reboot"
               if target else "add cgroup_enable=memory to the kernel command line and reboot")
        if disabled:
            evidence += ", cgroup_disable=memory on the kernel command line"
    return MemoryController(enabled, evidence, fix)


def _proc_cgroups(text: str) -> tuple[Optional[bool], str]:
    """``/proc/cgroups`` rows ``name hierarchy num_cgroups enabled`` -> memory's enabled."""
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[0] == "memory":
            return cols[3] == "1", "/proc/cgroups (cgroup v1)"
    return None, "neither cgroup.controllers nor /proc/cgroups lists memory"

