"""Reading the small files of ``/proc``, ``/sys`` and ``/etc`` that may be absent.

Every system probe reads below an injectable root (a fixture tree in tests), and a missing or
unreadable file is an answer ("this board does not have it"), never an exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def read_text(path: Path) -> Optional[str]:
    """The file's text (undecodable bytes replaced), or None when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
