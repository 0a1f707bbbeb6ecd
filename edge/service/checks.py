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


def memory_cgroup_problem(root: str | Path = "/") -> str | None:
    """Why MemoryMax= would not be enforced here (Raspberry Pi kernels disable the memory
    controller on the command line), or None (see :mod:`edgeface.system.cgroups`)."""
    from edgeface.system.cgroups import memory_controller

    state = memory_controller(root)
    if state.enabled is not False:
        return None
    return (f"warning: the memory cgroup controller is disabled ({state.evidence}), so "
            f"MemoryMax=512M is not enforced: {state.fix} (the runtime's own memory limit "
            "applies meanwhile)")


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

