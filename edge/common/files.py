"""File digests and atomic writes: the one implementation every command uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable, Collection, Union

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
                              inputs: dict[str, PathLike | None], *,
                              folder_files: Collection[str] = ()) -> None:
    """Raise ConfigError (exit 2) when an output names an input: ``--video`` equal to
    ``--source`` once overwrote the input video. Keys name the flags in the message.

    Paths are compared resolved (symlinks, ``..``) and, for files that exist, by device and
    inode: a hard link resolves to its own path, and one overwrote a 46 MB input with
    210 KB. A folder input counts the files under it with an extension in
    ``folder_files`` (a folder source's images), scanned only for an output that exists and
    is a hard link or lies inside that folder."""
    from edgeface.errors import ConfigError

    given: dict[object, str] = {}
    folders: list[tuple[str, str]] = []
    for flag, p in inputs.items():
        if p is None or str(p) == "-":
            continue
        given[os.path.realpath(p)] = flag
        ident = _identity(p)
        if ident is not None:
            given[ident] = flag
        if folder_files and os.path.isdir(p):
            folders.append((os.path.realpath(p), flag))
    for out_flag, out in outputs.items():
        if out is None or str(out) == "-":
            continue
        st = _stat(out)
        ident = None if st is None else (st.st_dev, st.st_ino)
        flag = given.get(os.path.realpath(out)) or (given.get(ident) if ident else None)
        if flag is None and st is not None:
            flag = _in_folder(out, st, folders, folder_files)
        if flag is not None:
            raise ConfigError(f"{out_flag} {out} is the same file as {flag}: "
                              "refusing to overwrite an input")


def _stat(p: PathLike) -> os.stat_result | None:
    try:
        return os.stat(p)
    except (OSError, ValueError):  # missing, unreadable, or a name with a NUL
        return None


def _identity(p: PathLike) -> tuple[int, int] | None:
    st = _stat(p)
    return None if st is None else (st.st_dev, st.st_ino)


def _in_folder(out: PathLike, st: os.stat_result, folders: list[tuple[str, str]],
               extensions: Collection[str]) -> str | None:
    """The flag of a folder input holding an image file that is ``out`` (same device and
    inode): the images are what a folder source reads, a JSON file beside them is not."""
    import stat as stat_

    if not stat_.S_ISREG(st.st_mode):
        return None
    real = os.path.realpath(out)
    for folder, flag in folders:
        inside = real.startswith(folder.rstrip(os.sep) + os.sep)
        if st.st_nlink < 2 and not inside:
            continue  # one name only, and it is elsewhere: no file in the folder is it
        for root, _dirs, files in os.walk(folder):
            for name in files:
                if os.path.splitext(name)[1].lower() not in extensions:
                    continue
                other = _stat(os.path.join(root, name))
                if other is not None and (other.st_dev, other.st_ino) == (st.st_dev,
                                                                           st.st_ino):
                    return f"{flag} ({os.path.join(root, name)})"
    return None


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
