"""The process's own memory: current and peak RSS, checked against a limit."""

from __future__ import annotations

import os
import sys

from edgeface.common.sizes import format_size
from edgeface.errors import MemoryLimitExceeded

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process now (one read of /proc/self/statm on Linux)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:  # pragma: no cover - non-Linux fallback: the peak is the best we have
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (VmHWM, or getrusage where /proc is absent)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    import resource  # pragma: no cover

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover
    return peak if sys.platform == "darwin" else peak * 1024  # pragma: no cover


class MemoryGuard:
    """Checks RSS against a limit; :meth:`check` raises before the kernel has to OOM-kill us.

    The check runs between frames, after the outputs of the previous frame were written, so
    exiting on it never leaves a half-written line or video frame behind.
    """

    def __init__(self, limit_bytes: int | None):
        self.limit = limit_bytes
        self.peak = 0

    def check(self) -> int:
        rss = rss_bytes()
        if rss > self.peak:
            self.peak = rss
        if self.limit is not None and rss > self.limit:
            raise MemoryLimitExceeded(
                f"resident memory {format_size(rss)} exceeds the limit of "
                f"{format_size(self.limit)} (--memory-limit); exiting so that the service "
                "manager restarts a fresh process")
        return rss
