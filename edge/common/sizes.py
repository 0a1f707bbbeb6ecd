"""Human sizes (``512M``) and image sizes (``416x416``), parsed the same way everywhere."""

from __future__ import annotations

import math
import re
from typing import Any, Optional

from edgeface.errors import ConfigError

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)
_SIZE_HELP = "expected a number with an optional unit K/M/G (e.g. 512M)"


def parse_size(text: str | int | float | None) -> int | None:
    """``"512M"`` -> bytes. Units are binary (K=1024, like systemd's MemoryMax=); ``B``,
    ``MB`` and ``MiB`` are all accepted. ``0``, ``none``, ``off`` or None mean no limit."""
    if text is None:
        return None
    if isinstance(text, bool):
        raise ConfigError(f"invalid size {text!r}: {_SIZE_HELP}")
    if isinstance(text, (int, float)):
        if not math.isfinite(text) or text < 0:
            raise ConfigError(f"invalid size {text!r}: {_SIZE_HELP}")
        return int(text) or None
    if text.strip().lower() in {"none", "off", "no", "0", "unlimited", "infinity"}:
        return None
    m = _SIZE_RE.match(text)
    if not m:
        raise ConfigError(f"invalid size {text!r}: {_SIZE_HELP}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()]) or None


def format_size(n: int | float) -> str:
    """Bytes -> ``"123.4 MB"`` (MiB, as limits are expressed)."""
    return f"{n / (1 << 20):.1f} MB"


def short_size(n: int) -> str:
    """Bytes -> the shortest exact spelling :func:`parse_size` reads back (``1K``, ``512M``)."""
    for unit in ("T", "G", "M", "K"):
        if n and n % _UNITS[unit] == 0:
            return f"{n // _UNITS[unit]}{unit}"
    return str(n)


def parse_wxh(value: Any, what: str = "size") -> Optional[tuple[int, int]]:
    """``416``, ``"416x320"``, ``[416, 320]`` -> (width, height); None stays None."""
    if value is None:
        return None
    bad = ConfigError(f"invalid {what} {value!r}: expected WIDTHxHEIGHT, e.g. 416x416")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int):
        w = h = value
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        w, h = value
    elif isinstance(value, str):
        parts = value.lower().replace(" ", "").split("x")
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise bad
        w, h = map(int, parts)
    else:
        raise bad
    if not (isinstance(w, int) and isinstance(h, int)) or isinstance(w, bool) or w < 1 or h < 1:
        raise ConfigError(f"invalid {what} {value!r}: width and height must be positive integers")
    return int(w), int(h)
