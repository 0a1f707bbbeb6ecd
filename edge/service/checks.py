"""Checks of this machine and of the install: the model loads, the service user can reach
edgeface, the memory cgroup is enabled, systemd runs, we are (not) root, groups exist.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Sequence

from edgeface.errors import EXIT_USAGE, EdgefaceError, ModelError


def check_model(path: Path) -> None:
    """Fail now, not at 3 a.m. on the device: the model must load in ONNX Runtime."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    from edgeface.inference.backends import open_backend

    open_backend(path, threads=1)


def unreadable_for_others(path: Path) -> Path | None:
    """The first directory above ``path`` that a user who is neither owner nor group
    member cannot traverse (no o+x), or None."""
    for parent in [*reversed(path.parents)]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            return parent
        if not mode & stat.S_IXOTH:
            return parent
    return None


_HOME_PREFIXES = ("/home/", "/root/", "/run/user/")


def protect_home_for(paths: Sequence[str]) -> str:
    """``read-only`` when edgeface's own files live under a home directory, else ``yes``."""
    return "read-only" if any(str(p).startswith(_HOME_PREFIXES) for p in paths) else "yes"


def install_locations() -> list[str]:
    """Where this edgeface lives: the interpreter, the environment and the package."""
    return [sys.executable, sys.prefix, str(Path(__file__).resolve().parent)]


def access_problems(paths: Sequence[str]) -> list[str]:
    """Reasons the unprivileged service user could not run edgeface from ``paths``."""
    problems = []
    for p in paths:
        if str(p).startswith(("/tmp/", "/var/tmp/")):
            problems.append(f"{p} is under a temporary directory, which the service does not "
                            "see (PrivateTmp=yes)")
            continue
        blocked = unreadable_for_others(Path(p))
        if blocked is not None:
            problems.append(f"{blocked} (above {p}) cannot be entered by other users")
    return problems


def memory_cgroup_problem(proc_cmdline: str = "/proc/cmdline",
                          controllers: str = "/sys/fs/cgroup/cgroup.controllers") -> str | None:
    """Why MemoryMax= would not be enforced here (Raspberry Pi firmware disables the memory
    controller on the kernel command line), or None."""
    try:
        enabled = "memory" in Path(controllers).read_text().split()
    except OSError:
        enabled = None  # cgroup v1 or unreadable: judge by the command line alone
    if enabled:
        return None
    try:
        args = Path(proc_cmdline).read_text().split()
    except OSError:
        return None
    disabled = False
    for arg in args:  # the last of cgroup_disable/cgroup_enable=memory wins
        if arg == "cgroup_disable=memory":
            disabled = True
        elif arg == "cgroup_enable=memory":
            disabled = False
    if not disabled:
        return None
    return ("warning: the kernel command line disables the memory cgroup "
            "(cgroup_disable=memory), so MemoryMax=512M is not enforced; append "
            "'cgroup_enable=memory cgroup_memory=1' to /boot/firmware/cmdline.txt and reboot "
            "(the runtime's own memory limit applies meanwhile)")


def systemd_booted() -> bool:
    """True when systemd is the running init system (sd_booted(3))."""
    return Path("/run/systemd/system").is_dir()


def group_exists(name: str) -> bool:
    """True when this system has a group ``name``."""
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def group_names() -> set[str]:
    """The names of the groups this process is in."""
    import grp

    names = set()
    for gid in os.getgroups():
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def require_live_system(user_mode: bool) -> None:
    """A live install needs systemd running and, for a system service, root."""
    if not systemd_booted():
        raise EdgefaceError("systemd is not running on this machine (no /run/systemd/system): "
                            "use --root DIR to install into an image, or --dry-run",
                            EXIT_USAGE)
    if not user_mode and os.geteuid() != 0:
        raise EdgefaceError("a system service needs root: run it with sudo (or use --user for "
                            "a user service, --dry-run to see the plan)", EXIT_USAGE)
    if user_mode and os.geteuid() == 0:
        raise EdgefaceError("--user manages your own user service: run it without sudo, as "
                            "the user whose session should run edgeface", EXIT_USAGE)

