"""Settings of the runtime and of each source and sink: one :class:`Option` declares a
setting's config key, its command-line flag, its default and the check every value passes,
whether it comes from a flag or from the config file.

Sources and sinks declare their own options in their modules; ``edgeface run`` builds its
flags and ``--config`` its keys and checks from those declarations (:mod:`.config`).
"""

from __future__ import annotations

import math
import os
import reprlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

from edgeface.common.sizes import format_size, parse_size, parse_wxh
from edgeface.errors import ConfigError

Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Option:
    """One setting. ``check(key, value)`` returns the normalised value or raises
    :class:`ConfigError`; it runs on flag and config values alike."""

    key: str
    flag: str
    check: Check
    default: Any = None
    help: str = ""
    metavar: Optional[str] = None
    #: Command-line parsing: "switch" (--picamera), "optional" (--csi [N]: bare means
    #: ``flag_value``), "bool" (--loop/--no-loop), "tristate" (--live/--no-live, unset =
    #: auto), "value" (a string checked by ``check``).
    cli: str = "value"
    flag_value: Any = None
    #: Path values are relative to the config file's folder.
    path: bool = False
    #: A one-letter spelling beside ``flag`` (``-m`` for ``--model``).
    short: Optional[str] = None


# --------------------------------------------------------------------------- checks

def number(lo: float | None = None, hi: float | None = None, *, integer: bool = False,
           lo_open: bool = False) -> Check:
    """A finite number in [lo, hi] (``lo_open``: (lo, hi]); strings from flags are parsed."""

    def check(key: str, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = int(v) if integer else float(v)
            except ValueError:
                pass
        ok_types = (int,) if integer else (int, float)
        what = "an integer" if integer else "a number"
        if isinstance(v, bool) or not isinstance(v, ok_types):
            raise ConfigError(f"{key}: expected {what}, got {_short(v)}")
        if not math.isfinite(v):
            raise ConfigError(f"{key}: expected a finite number, got {v!r}")
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi):
            rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}]"
            raise ConfigError(f"{key}: {v!r} is outside {rng}")
        return v

    return check


def boolean(key: str, v: Any) -> bool:
    if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "on", "off"):
        return v.lower() in ("true", "yes", "on")
    if not isinstance(v, bool):
        raise ConfigError(f"{key}: expected true or false, got {_short(v)}")
    return v


def string(key: str, v: Any) -> str:
    if not isinstance(v, (str, int)) or isinstance(v, bool):
        raise ConfigError(f"{key}: expected a string, got {_short(v)}")
    v = str(v)
    if not v or "\0" in v or len(v) > 4096:
        raise ConfigError(f"{key}: expected a non-empty string without NUL bytes, of at most "
                          "4096 characters")
    return v


def choice(*values: str) -> Check:
    def check(key: str, v: Any) -> str:
        if not isinstance(v, str) or v.lower() not in values:
            raise ConfigError(f"{key}: expected one of {', '.join(values)}, got {_short(v)}")
        return v.lower()

    return check


def wxh(lo: int = 1, hi: int = 16384) -> Check:
    """``416x416`` (or N) with each side in [lo, hi]."""

    def check(key: str, v: Any) -> tuple[int, int]:
        size = parse_wxh(v, key)
        if not all(lo <= s <= hi for s in size):
            raise ConfigError(f"{key}: {size[0]}x{size[1]} is outside {lo}..{hi} per side")
        return size

    return check


def memory(lo: int = 1, hi: int = 1 << 40) -> Check:
    """A size like ``512M`` (``0``/``off``: none) -> bytes in [lo, hi], or None for none.
    Sizes are parsed here once: everything after the check holds an int."""

    def check(key: str, v: Any) -> Optional[int]:
        try:
            n = parse_size(v)
        except ConfigError as exc:  # name the flag or key: one line says which value
            raise ConfigError(f"{key}: {exc}") from None
        if n is not None and not lo <= n <= hi:
            raise ConfigError(f"{key}: {_short(v)} is outside {format_size(lo)}.."
                              f"{format_size(hi)}")
        return n

    return check


def tristate(key: str, v: Any) -> Any:
    return None if v in (None, "auto") else boolean(key, v)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def _short(v: Any) -> str:
    """A value for an error line, bounded in length and in the work it takes (a YAML
    value can be a deeply shared structure whose full repr would be exponential)."""
    return _REPR.repr(v)


def resolve_path(value: str, base: Optional[os.PathLike]) -> str:
    """``value`` relative to ``base`` (the config file's folder), ``~`` expanded."""
    from pathlib import Path

    p = Path(value).expanduser()
    if base is not None and not p.is_absolute():
        p = Path(base) / p
    return str(p)
