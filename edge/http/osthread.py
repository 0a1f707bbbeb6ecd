"""Kernel-visible names for the HTTP server's threads, so that ``top -H`` and ``ps -L`` (and
the benchmarks, which account CPU per thread) tell them apart from inference."""

from __future__ import annotations

import threading


def name_os_thread(name: str) -> None:
    """Name the calling thread (Linux: at most 15 bytes; elsewhere nothing happens)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass
