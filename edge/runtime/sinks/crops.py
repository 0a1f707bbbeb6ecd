"""Face crops: one JPEG of each face (its track's best view) when the track ends, in a
directory whose size stays bounded (the oldest crops are deleted)."""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from edgeface.common.files import atomic_write
from edgeface.common.sizes import format_size
from edgeface.errors import ConfigError, EdgefaceError
from edgeface.frames import FrameResult
from edgeface.runtime.options import Option, memory, number, string
from edgeface.runtime.sinks.background import Worker
from edgeface.runtime.sinks.base import SinkContext, SinkKind
from edgeface.runtime.sinks.face_events import best_view, encode_jpeg
from edgeface.runtime.sinks.registry import register_sink

log = logging.getLogger(__name__)

#: ``20240501T101502.123Z-track42.jpg``: UTC time of the best view, then the track id, so
#: that name order is time order.
NAME_RE = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-track\d+(-\d+)?\.jpg$")
#: On a full disk, the oldest crops are deleted until this many times the new crop's size is
#: free, then the write is tried again: room for the next few crops, so that a disk filled
#: by something else does not cost a failed write (and a deletion) per track.
FULL_DISK_ROOM = 4
_FULL = (errno.ENOSPC, errno.EDQUOT)
#: Temporary files of an interrupted atomic write (power cut), removed at start.
PARTIAL_RE = re.compile(r"^\.\d{8}T\d{6}\.\d{3}Z-track\d+(-\d+)?\.jpg\..*\.part$")


def crop_name(ts: float, track_id: int) -> str:
    secs, ms = divmod(int(round(ts * 1000)), 1000)
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(secs))}.{ms:03d}Z-track{track_id}.jpg"


class CropsSink:
    """Saves a crop of each ended track's best view as ``DIR/<time>-track<id>.jpg``.

    At most ``keep`` crops and ``max_bytes`` bytes are kept: past either, the oldest are
    deleted (crops already in the directory from an earlier run count too, so a restarted
    service never grows it). Each file is written atomically (a reader or a power cut sees
    a whole JPEG or none). Encoding and writing run in the sink's thread; ``write`` copies
    the face region into a queue of ``queue_size`` (more are dropped and counted).
    """

    def __init__(self, directory: Union[str, os.PathLike], keep: int = 1000,
                 max_bytes: Optional[int] = None, queue_size: int = 32):
        self.directory = Path(directory)
        self.keep = keep
        self.max_bytes = max_bytes or None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Proved writable now, not when the first track ends (as --annotate does).
            fd, probe = tempfile.mkstemp(prefix=".edgeface-write-test.", dir=self.directory)
            os.close(fd)
            os.unlink(probe)
            self._files = self._scan()
        except OSError as exc:
            raise EdgefaceError(f"cannot use {self.directory} for face crops: "
                                f"{exc.strerror or exc}") from None
        self._bytes = sum(self._files.values())
        self.saved = self.deleted = self.skipped = self.write_errors = self.full_disk = 0
        self._prune()
        self._worker = Worker("crops", self._save, queue_size)

    def _scan(self) -> OrderedDict[str, int]:
        found = []
        for entry in os.scandir(self.directory):
            if PARTIAL_RE.match(entry.name):
                Path(entry.path).unlink(missing_ok=True)
            elif NAME_RE.match(entry.name) and entry.is_file(follow_symlinks=False):
                found.append((entry.name, entry.stat().st_size))
        return OrderedDict(sorted(found))

    def write(self, result: FrameResult) -> None:
        for ev in result.events:
            if ev.type != "end":
                continue
            crop = best_view(ev.track)
            if crop is None:
                self.skipped += 1
                continue
            self._worker.put((ev.track.best_ts or ev.ts, ev.track.id, crop))

    def _save(self, item: tuple) -> None:
        ts, track_id, crop = item
        name = crop_name(ts, track_id)
        n = 1
        while name in self._files:  # same millisecond and id: a restarted tracker
            n += 1
            name = crop_name(ts, track_id).replace(".jpg", f"-{n}.jpg")
        data = encode_jpeg(crop)
        try:
            try:
                atomic_write(self.directory / name, data)
            except OSError as exc:
                if exc.errno not in _FULL or not self._make_room(FULL_DISK_ROOM * len(data)):
                    raise
                atomic_write(self.directory / name, data)  # once more, with the room made
        except OSError as exc:
            self.write_errors += 1
            if self.write_errors == 1 or self.write_errors % 100 == 0:
                log.warning("crops: cannot write %s (%d failures): %s", self.directory / name,
                            self.write_errors, exc.strerror or exc)
            return
        self._files[name] = len(data)
        self._bytes += len(data)
        self.saved += 1
        self._prune()

    def _make_room(self, nbytes: int) -> bool:
        """The disk is full: delete the oldest crops until ``nbytes`` are freed (or none is
        left); False when there was none to delete."""
        freed = count = 0
        while self._files and freed < nbytes:
            name, size = self._files.popitem(last=False)
            self._bytes -= size
            try:
                (self.directory / name).unlink()
            except FileNotFoundError:
                pass
            except OSError:
                continue  # cannot delete: it frees nothing
            freed += size
            count += 1
        self.deleted += count
        self.full_disk += 1
        if self.full_disk == 1 or self.full_disk % 100 == 0:
            log.warning("crops: the disk is full (%d times): deleted the %d oldest crops "
                        "(%s) to make room", self.full_disk, count, format_size(freed))
        return count > 0

    def _prune(self) -> None:
        while self._files and (len(self._files) > self.keep
                               or (self.max_bytes and self._bytes > self.max_bytes)):
            name, size = self._files.popitem(last=False)
            self._bytes -= size
            try:
                (self.directory / name).unlink()
            except FileNotFoundError:
                pass  # someone else removed it
            except OSError as exc:
                log.warning("crops: cannot delete %s: %s", name, exc.strerror or exc)
            self.deleted += 1

    @property
    def dropped(self) -> int:
        return self._worker.dropped

    #: The keys of :meth:`stats` that are gauges (the others are cumulative counters).
    STATS_GAUGES = ("files", "bytes", "queued")

    def stats(self) -> dict[str, float]:
        """Counters for /metrics (files and bytes are gauges)."""
        return {"saved": self.saved, "deleted": self.deleted, "dropped": self.dropped,
                "full_disk": self.full_disk,
                "skipped": self.skipped, "errors": self.write_errors + self._worker.errors,
                "files": len(self._files), "bytes": self._bytes, "queued": self._worker.pending}

    def flush(self) -> None:
        self._worker.drain(5.0)

    def close(self) -> None:
        self._worker.close(5.0)

    def describe(self) -> str:
        if self.max_bytes:
            return f"crops {self.directory}/ (newest {self.keep}, " \
                   f"{format_size(self.max_bytes)} kept)"
        return f"crops {self.directory}/ (newest {self.keep} kept, no size limit)"


def _crops_size(key: str, v: Any) -> Any:
    """``crops_max_size``: a size, or ``off`` for none; ``0`` silently meant no limit."""
    if str(v).strip() == "0":
        raise ConfigError(f"{key}: 0 would mean no size limit; write 'off' for that, or a "
                          "size such as 100M")
    return memory(64 << 10)(key, v)


def _build(values: Mapping[str, Any], context: SinkContext) -> CropsSink:
    return CropsSink(values["crops"], keep=values.get("crops_keep") or 1000,
                     max_bytes=values.get("crops_max_size"))  # bytes, from the check


register_sink(SinkKind("crops", (
    Option("crops", "--crops", string, metavar="DIR", path=True,
           help="Save a JPEG crop of each face when its track ends, in this directory."),
    Option("crops_keep", "--crops-keep", number(1, 10**7, integer=True), 1000, metavar="N",
           help="Face crops kept; the oldest beyond this are deleted."),
    Option("crops_max_size", "--crops-max-size", _crops_size, "100M", metavar="SIZE",
           help="Disk space the face crops may take (e.g. 100M, or 'off'); the oldest "
                "beyond it are deleted."),
), _build))
