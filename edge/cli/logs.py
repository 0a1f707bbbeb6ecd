"""Where the CLI's messages go: a terminal, a file, or the systemd journal.

Under systemd, stderr is a stream into journald, which reads an ``<N>`` sd-daemon priority
prefix at the start of every line (sd-daemon(3)) and adds its own timestamp. Without the
prefix every line lands at "info" with the timestamp twice. When stderr is the journal
(``$JOURNAL_STREAM`` names the device and inode of fd 2, systemd.exec(5)), every line gets
its priority and log records lose the timestamp.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from typing import Optional, TextIO

# sd-daemon priorities (syslog levels)
ERR, WARNING, NOTICE, INFO, DEBUG = 3, 4, 5, 6, 7
_LEVELS = {logging.CRITICAL: 2, logging.ERROR: ERR, logging.WARNING: WARNING,
           logging.INFO: INFO, logging.DEBUG: DEBUG}


def stderr_is_journal(environ: Optional[dict] = None, fd: int = 2) -> bool:
    """Whether ``fd`` is the stream systemd connected to the journal."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def priority_of(levelno: int) -> int:
    for level in sorted(_LEVELS, reverse=True):
        if levelno >= level:
            return _LEVELS[level]
    return DEBUG


class JournalStream(io.TextIOBase):
    """A text stream that starts every line with an ``<N>`` priority: ``default`` unless the
    line already has one (log records and error lines bring theirs)."""

    def __init__(self, raw: TextIO, default: int = INFO):
        self.raw = raw
        self.default = default
        self._at_line_start = True

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # a text stream, as click probes (write(b""))
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        out = []
        for part in text.splitlines(keepends=True):
            if self._at_line_start and not _has_priority(part):
                out.append(f"<{self.default}>")
            out.append(part)
            self._at_line_start = part.endswith("\n")
        self.raw.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self.raw.flush()

    def fileno(self) -> int:
        return self.raw.fileno()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.raw, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return getattr(self.raw, "errors", None) or "strict"


def _has_priority(line: str) -> bool:
    return len(line) >= 3 and line[0] == "<" and line[1].isdigit() and line[2] == ">"


class JournalFormatter(logging.Formatter):
    """``<4>edgeface.runtime.sources: message``: the journal adds time and unit."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        p = priority_of(record.levelno)
        return "\n".join(f"<{p}>{line}" for line in text.splitlines())


def setup_logging(verbose: int, journal: Optional[bool] = None) -> bool:
    """Configure logging (``-v`` info, ``-vv`` debug); returns whether the journal is used.

    With the journal, ``sys.stderr`` is wrapped so that every other line written there
    (status lines at info, ``edgeface: error:`` lines at err) carries a priority too.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    journal = stderr_is_journal() if journal is None else journal
    root = logging.getLogger()
    if journal:
        if not isinstance(sys.stderr, JournalStream):
            sys.stderr = JournalStream(sys.stderr)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter())
        root.handlers[:] = [handler]
        root.setLevel(level)
    else:
        logging.basicConfig(level=level,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return journal


def error_line(message: str) -> str:
    """The one line every failure ends with (err priority in the journal)."""
    prefix = f"<{ERR}>" if isinstance(sys.stderr, JournalStream) else ""
    return f"{prefix}edgeface: error: {message}"
