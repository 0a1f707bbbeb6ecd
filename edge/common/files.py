"""File digests and atomic writes: the one implementation every command uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable, Union

_BLOCK = 1 << 20

PathLike = Union[str, os.PathLike]


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib  # here: it maps OpenSSL's libcrypto, MBs a device runtime rarely needs

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: PathLike, content: Union[bytes, str, Callable[[BinaryIO], None]],
                 mode: int = 0o644, *, fsync: bool = True) -> Path:
    """Write ``path`` so that readers see the old file or the whole new one, never a part.

    ``content`` is bytes, text (UTF-8) or a callable that writes into the binary file. The
    data goes to a temporary file in the same directory (same filesystem, so the rename is
    atomic), is fsynced (a power cut right after the rename keeps the new bytes), gets
    ``mode`` and is renamed over ``path``. On any error the temporary file is removed and
    ``path`` is untouched.
    """
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if callable(content):
                content(out)
            else:
                out.write(content.encode("utf-8") if isinstance(content, str) else content)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_copy(src: PathLike, dst: PathLike, mode: int = 0o644) -> Path:
    """Copy ``src`` to ``dst`` atomically (see :func:`atomic_write`)."""

    import shutil

    def fill(out: BinaryIO) -> None:
        with open(src, "rb") as f:
            shutil.copyfileobj(f, out, _BLOCK)

    return atomic_write(dst, fill, mode)


def refuse_overwriting_inputs(outputs: dict[str, PathLike | None],
                              inputs: dict[str, PathLike | None]) -> None:
    """Raise ConfigError (exit 2) when an output path names an input: ``--video`` equal to
    ``--source`` once overwrote the input video. Keys name the flags in the message; paths
    are compared after resolving symlinks and ``..``."""
    from edgeface.errors import ConfigError

    def key(p: PathLike) -> str:
        return os.path.realpath(p)

    given = {key(v): k for k, v in inputs.items() if v is not None and str(v) != "-"}
    for out_flag, out in outputs.items():
        if out is not None and str(out) != "-" and key(out) in given:
            raise ConfigError(f"{out_flag} {out} is the same file as {given[key(out)]}: "
                              "refusing to overwrite an input")


def ensure_writable_dir(folder: PathLike, flag: str) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it, or raise
    EdgefaceError (exit 1) with one line: checked before hours of work, not after."""
    import tempfile

    from edgeface.errors import EdgefaceError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".edgeface-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EdgefaceError(f"{flag} {folder}: cannot write there "
                            f"({exc.strerror or exc})") from None
    return folder
