"""Running a device tool (``vcgencmd``, ``nvpmodel``, ``dpkg-query``) for one line of output.

Every call has a short timeout and never raises: a tool that is missing, hangs, or fails
gives None. A tool found missing once is not looked for again, so that a caller polling
every few seconds (thermals for /metrics) forks nothing on a machine without it.
"""

from __future__ import annotations

import subprocess
from typing import Callable, Optional, Sequence

#: ``run(argv, timeout) -> stdout or None``: what the system modules call, so tests inject one.
Runner = Callable[[Sequence[str], float], Optional[str]]

_MISSING: set[str] = set()


def run_quiet(argv: Sequence[str], timeout: float = 2.0) -> Optional[str]:
    """stdout of ``argv`` when it exits 0 within ``timeout`` seconds, else None."""
    if not argv or argv[0] in _MISSING:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, errors="replace")
    except FileNotFoundError:
        _MISSING.add(argv[0])
        return None
    except (OSError, subprocess.SubprocessError):  # no permission, timed out
        return None
    return done.stdout if done.returncode == 0 else None
