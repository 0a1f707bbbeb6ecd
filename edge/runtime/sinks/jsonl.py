"""JSON lines: one record per processed frame, to stdout or a rotated file."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Optional, TextIO, Union

from edgeface.common.sizes import short_size
from edgeface.errors import EdgefaceError
from edgeface.frames import FrameResult
from edgeface.runtime.options import Option, memory, number
from edgeface.runtime.settings import JSON
from edgeface.runtime.sinks.base import SinkContext, SinkKind
from edgeface.runtime.sinks.registry import register_sink


class JsonLinesSink:
    """One JSON object per frame, to stdout (``-``) or a file, flushed line by line so a
    consumer (or the journal) sees every frame as soon as it is done and a stop never
    leaves half a line. A file is appended to, so a restarted service loses nothing; one
    that an earlier run left ending mid-line (disk full) is continued on a new line.

    A file that would grow past ``max_bytes`` is rotated between lines: ``out.jsonl`` becomes
    ``out.jsonl.1`` (``.1`` becomes ``.2``, ...), ``keep`` old files are kept, so at most
    ``(keep + 1) * max_bytes`` of disk is used on a device that runs for months. A file
    moved or deleted by someone else (logrotate without ``copytruncate``) is noticed within
    a second and reopened under its name.
    """

    CHECK_MOVED_S = 1.0

    def __init__(self, target: Union[str, os.PathLike, TextIO] = "-", flush_each: bool = True,
                 max_bytes: Optional[int] = None, keep: int = 3, max_text: str = "",
                 truncate: bool = False):
        self.flush_each = flush_each
        self.max_bytes = max_bytes or None
        self._max_text = max_text or str(max_bytes)
        self.keep = max(1, keep)
        self.path: Optional[Path] = None
        self.rotations = 0
        if max_bytes is not None and max_bytes < 0:
            raise EdgefaceError(f"invalid JSON lines size limit {max_bytes}")
        if hasattr(target, "write"):
            self._f, self._own, self.name = target, False, getattr(target, "name", "stream")
        elif str(target) == "-":
            self._f, self._own, self.name = sys.stdout, False, "stdout"
        else:
            self.path = Path(target)
            # Named before opening: _open's repair write can fail (disk full) and _fail
            # names the file in its one line.
            self._own, self.name = True, str(self.path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EdgefaceError(f"cannot open {self.path} for writing: cannot create "
                                    f"{self.path.parent}: {exc.strerror or exc}") from None
            self._open("w" if truncate else "a")
        self.lines = 0

    def _open(self, mode: str = "a") -> None:
        assert self.path is not None
        try:
            self._f = open(self.path, mode, encoding="utf-8")
        except OSError as exc:
            raise EdgefaceError(f"cannot open {self.path} for writing: "
                                f"{exc.strerror or exc}") from None
        st = os.fstat(self._f.fileno())
        self._size, self._inode = st.st_size, (st.st_dev, st.st_ino)
        self._next_check = time.monotonic() + self.CHECK_MOVED_S
        if self._size and not _ends_with_newline(self.path):
            # An earlier run stopped mid-line (disk full, power cut): start on a new line
            # rather than glue our first record onto the fragment.
            try:
                self._f.write("\n")
                self._f.flush()
            except OSError as exc:
                try:
                    self._f.close()  # flushes the "\n" again, fails again, and closes
                except OSError:
                    pass
                self._fail(exc)
            self._size += 1

    def write(self, result: FrameResult) -> None:
        if result.only_events:
            return
        line = json.dumps(result.to_record(), separators=(",", ":")) + "\n"
        try:
            if self.path is not None:
                self._before_write(len(line))
            self._f.write(line)
            if self.flush_each:
                self._f.flush()
        except OSError as exc:
            self._fail(exc)
        self.lines += 1

    def _before_write(self, n: int) -> None:
        """Rotate if this line would pass the size limit; reopen if the file was moved."""
        if self.max_bytes and self._size > 0 and self._size + n > self.max_bytes:
            self._rotate()
        elif time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.CHECK_MOVED_S
            try:
                st = os.stat(self.path)
                moved = (st.st_dev, st.st_ino) != self._inode
            except FileNotFoundError:
                moved = True
            if moved:
                self._reopen()
        self._size += n  # characters: bytes for the ASCII json.dumps writes

    def _rotate(self) -> None:
        self._f.flush()
        name = str(self.path)
        for i in range(self.keep - 1, 0, -1):
            if os.path.exists(f"{name}.{i}"):
                os.replace(f"{name}.{i}", f"{name}.{i + 1}")
        os.replace(name, f"{name}.1")  # the open file moves with its name: nothing is lost
        self.rotations += 1
        self._reopen()

    def _reopen(self) -> None:
        old = self._f
        try:
            self._open()
        finally:
            old.close()

    def _fail(self, exc: OSError) -> None:
        if isinstance(exc, BrokenPipeError) and self._f is sys.stdout:
            # The reader went away (e.g. `| head`): silence the interpreter's final flush.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        raise EdgefaceError(f"cannot write JSON lines to {self.name}: "
                            f"{exc.strerror or exc}") from None

    def flush(self) -> None:
        if self._f.closed:  # a reopen after rotation failed; that error was raised then
            return
        try:
            self._f.flush()
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        self.flush()
        if self._own:
            self._f.close()

    def describe(self) -> str:
        if self.path is None:
            return f"json {self.name}"
        rotation = (f" (json rotated at {self._max_text}, {self.keep} kept)"
                    if self.max_bytes else "")
        return f"json {self.path}{rotation}"


def _ends_with_newline(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
    except OSError:
        return True  # unreadable (write-only) or empty: nothing to repair


def _build(values: Mapping[str, Any], context: SinkContext) -> JsonLinesSink:
    max_bytes = values.get("json_max_size")  # bytes: the option's check parsed the size
    return JsonLinesSink(values["json"], keep=values.get("json_keep") or 3,
                         max_bytes=max_bytes, max_text=short_size(max_bytes) if max_bytes else "")


register_sink(SinkKind("json", (
    JSON,  # declared with the vocabulary: `detect` and `doctor` spell it the same
    # json_max_size: rotate the JSON-lines file past this size (null: never).
    Option("json_max_size", "--json-max-size", memory(1 << 10), metavar="SIZE",
           help="Rotate the JSON-lines file before it passes this size (e.g. 50M): "
                "out.jsonl -> out.jsonl.1 -> ... [default: never]."),
    Option("json_keep", "--json-keep", number(1, 1000, integer=True), 3, metavar="N",
           help="Rotated JSON-lines files to keep."),
), _build))
