"""One small registry type for every plugin table: backends, sources, sinks, commands, doctor
checks and bench peers.

A :class:`Registry` maps a name to an entry, in registration order. An unknown name fails
with one line naming the known ones (a :class:`~edgeface.errors.ConfigError`, exit 2), a
second entry under a taken name fails unless it says ``replace=True``, and
:meth:`Registry.scoped` adds an entry for the length of a ``with`` block (tests register a
fake kind this way and leave the table as they found it).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Generic, Iterator, Optional, TypeVar

from edgeface.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (``what``: the word used in messages, e.g. ``"backend"``)."""

    def __init__(self, what: str, name_of: Optional[Callable[[T], str]] = None):
        self.what = what
        self._name_of = name_of or (lambda entry: entry.name)
        self._entries: dict[str, T] = {}

    def register(self, entry: T, name: Optional[str] = None, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name`` (default: its ``name``); returns the entry, so that
        it also serves as a decorator's body."""
        key = name if name is not None else self._name_of(entry)
        if not key or not isinstance(key, str):
            raise ValueError(f"a {self.what} needs a non-empty name, got {key!r}")
        if key in self._entries and not replace and self._entries[key] is not entry:
            raise ValueError(f"{self.what} {key!r} is registered already")
        self._entries[key] = entry
        return entry

    def unregister(self, name: str) -> T:
        return self._entries.pop(name)

    @contextmanager
    def scoped(self, entry: T, name: Optional[str] = None) -> Iterator[T]:
        """Register ``entry`` for a ``with`` block; on exit the table is as it was before
        (an entry it replaced comes back, in its place)."""
        key = name if name is not None else self._name_of(entry)
        before = dict(self._entries)
        self.register(entry, key, replace=True)
        try:
            yield entry
        finally:
            self._entries.clear()
            self._entries.update(before)

    def get(self, name: str) -> T:
        """The entry called ``name``; a ConfigError naming the known ones if there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.what} {name!r} (known: "
                              f"{', '.join(self._entries) or 'none'})") from None

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def values(self) -> list[T]:
        return list(self._entries.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.names()})"
