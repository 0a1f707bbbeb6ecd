"""Hostile inputs for the robustness tests: images whose headers declare more pixels than
any device can hold, and a real memory cgroup to run a command in.

The bombs are tiny files: only the header (and, for the "real" PNG bomb, zlib-compressed
zero rows) is written, never the decoded pixels.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

CGROUP_V1 = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb(path: Path, width: int, height: int, real_rows: bool = False) -> Path:
    """A PNG declaring ``width`` x ``height`` RGB pixels. ``real_rows``: with a complete,
    valid IDAT of zero rows (decodes to width*height*3 bytes; ~1 KB of file per 1 MB),
    streamed through zlib so that it never exists uncompressed here."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    if real_rows:
        z = zlib.compressobj(9)
        row = b"\0" * (1 + 3 * width)
        idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    else:
        idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
                     + _chunk(b"IEND", b""))
    return path


def jpeg_bomb(path: Path, width: int, height: int) -> Path:
    """A JPEG header (SOI, an APP0 and a baseline SOF0) declaring ``width`` x ``height``."""
    app0 = b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\0\x02\x11\x01\x03\x11\x01"
    path.write_bytes(b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0
                     + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9")
    return path


def bmp_bomb(path: Path, width: int, height: int) -> Path:
    """A BMP (BITMAPINFOHEADER, 24 bit) declaring ``width`` x ``height`` without its rows."""
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + header)
    return path


def memory_cgroup_available() -> Optional[str]:
    """None when a memory cgroup can be created here, else why not."""
    if os.geteuid() != 0:
        return "creating a memory cgroup needs root"
    if (CGROUP_V1 / "memory.limit_in_bytes").exists() and os.access(CGROUP_V1, os.W_OK):
        return None
    controllers = CGROUP_V2 / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split() \
            and os.access(CGROUP_V2, os.W_OK):
        return None
    return "no writable memory cgroup controller (cgroup v1 memory or v2 with memory)"


@contextmanager
def memory_cgroup(limit_bytes: int) -> Iterator[dict]:
    """A fresh memory cgroup limited to ``limit_bytes`` (no swap); yields a dict with
    ``procs`` (the file a process writes its pid to) and, after the block, ``oom_kills``
    and ``peak_bytes``. The cgroup is removed at the end."""
    name = f"edgeface-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    v1 = (CGROUP_V1 / "memory.limit_in_bytes").exists()
    path = (CGROUP_V1 if v1 else CGROUP_V2) / name
    path.mkdir()
    info: dict = {"path": path, "procs": path / "cgroup.procs"}
    try:
        if v1:
            (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            swap = path / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limit_bytes))
        else:
            (path / "memory.max").write_text(str(limit_bytes))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
        yield info
        if v1:
            oom = dict(line.split() for line in
                       (path / "memory.oom_control").read_text().splitlines())
            info["oom_kills"] = int(oom.get("oom_kill", "0"))
            info["peak_bytes"] = int((path / "memory.max_usage_in_bytes").read_text())
        else:
            events = dict(line.split() for line in
                          (path / "memory.events").read_text().splitlines())
            info["oom_kills"] = int(events.get("oom_kill", "0"))
            peak = path / "memory.peak"
            info["peak_bytes"] = int(peak.read_text()) if peak.exists() else None
    finally:
        for _ in range(50):  # the last process may take a moment to leave
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def run_in_cgroup(cgroup: dict, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``argv`` inside ``cgroup`` (the child moves itself in before exec)."""
    procs = cgroup["procs"]
    return subprocess.run(
        ["/bin/sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh", *argv], **kwargs)
