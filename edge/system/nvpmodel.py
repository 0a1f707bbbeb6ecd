"""The Jetson power mode (nvpmodel): which mode id and name the board runs in.

A Jetson's speed depends on it as much as on the model (an Orin Nano at 7W runs its CPU and
GPU at a fraction of 15W/25W clocks), so it is recorded with every benchmark result.

Sources, cheapest first: ``/var/lib/nvpmodel/status`` (``pmode:0000 fmode:quiet``, written
by nvpmodel when it sets a mode) with the names from ``/etc/nvpmodel.conf``
(``< POWER_MODEL ID=0 NAME=15W >``); else ``nvpmodel -q`` (``NV Power Mode: 15W`` then the
id), with a timeout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from edgeface.system.commands import Runner, run_quiet
from edgeface.system.sysfs import read_text

_STATUS_RE = re.compile(r"pmode:\s*(\d+)")
_MODEL_RE = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", re.IGNORECASE)
_QUERY_RE = re.compile(r"NV Power Mode:\s*(\S.*?)\s*$", re.MULTILINE)


def parse_status(text: str) -> Optional[int]:
    """``pmode:0002 fmode:quiet`` -> 2."""
    m = _STATUS_RE.search(text)
    return int(m.group(1)) if m else None


def parse_conf(text: str) -> dict[int, str]:
    """``/etc/nvpmodel.conf`` -> {mode id: name}."""
    return {int(i): name for i, name in _MODEL_RE.findall(text)}


def parse_query(text: str) -> dict[str, Any]:
    """``nvpmodel -q`` output -> {"id", "name"} (either may be None)."""
    name = _QUERY_RE.search(text)
    ids = [line.strip() for line in text.splitlines() if line.strip().isdigit()]
    return {"id": int(ids[-1]) if ids else None, "name": name.group(1) if name else None}


def power_mode(root: str | Path = "/", run: Runner = run_quiet,
               query: Optional[bool] = None) -> Optional[dict[str, Any]]:
    """{"id", "name", "source"} of the current power mode, or None when not a Jetson.

    ``query``: whether ``nvpmodel -q`` may run when the files do not say everything
    (default: only for the live root "/", never for a fixture tree).
    """
    root = Path(root)
    if query is None:
        query = root.resolve() == Path("/")
    mode_id = parse_status(read_text(root / "var/lib/nvpmodel/status") or "")
    names = parse_conf(read_text(root / "etc/nvpmodel.conf") or "")
    if mode_id is not None and mode_id in names:
        return {"id": mode_id, "name": names[mode_id], "source": "status"}
    if query:
        out = run(["nvpmodel", "-q"], 3.0)
        if out:
            parsed = parse_query(out)
            if parsed["name"] or parsed["id"] is not None:
                return {**parsed, "source": "nvpmodel -q"}
    if mode_id is not None:
        return {"id": mode_id, "name": names.get(mode_id), "source": "status"}
    return None

