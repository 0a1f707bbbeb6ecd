"""Known FeatherFace checkpoints, and a verified download cache for them.

Every entry carries the SHA-256 of the exact bytes the project was developed against; a file
is only ever used (or renamed into the cache) after its digest matched. Sources, in order:
``--mirror`` / ``$EDGEFACE_MODEL_MIRROR`` (a local directory or an http(s) base URL holding
the files under their registry file names), else the entry's upstream URL.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator
from urllib.parse import quote, urlparse

from edgeface.common.files import sha256_file
from edgeface.errors import EdgefaceError, ModelError

MIRROR_ENV = "EDGEFACE_MODEL_MIRROR"
CACHE_ENV = "EDGEFACE_CACHE_DIR"
UPSTREAM_REPO = "https://github.com/fokouarnaud/FeatherFace"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Checkpoint:
    """One known checkpoint: what it is, its exact bytes, and where it comes from."""

    name: str
    filename: str
    sha256: str
    size: int  # bytes
    kind: str  # "detector" or "backbone"
    arch: str | None  # edgeface architecture name for detectors
    params: int | None  # trainable parameters (BatchNorm statistics excluded)
    source: str  # upstream provenance, human-readable
    url: str | None  # direct download; None: only from a mirror
    license: str = "MIT"
    description: str = ""


def _github_raw(commit: str, path: str) -> str:
    # github.com/<repo>/raw/<commit>/<path> serves plain and Git-LFS files alike (redirect).
    return f"{UPSTREAM_REPO}/raw/{commit}/{path}"


_V1_COMMIT = "17aa64df020d74294ded842aa67dbfbf51d7e521"
_ECA_COMMIT = "078fbd71361023f29d67f1080c7fdcbb64e8af91"

REGISTRY: dict[str, Checkpoint] = {c.name: c for c in (
    Checkpoint(
        name="featherface-v1",
        filename="featherface_v1_mobilenet0.25_Final.pth",
        sha256="3271e30763c069c9dcad6368ae048c53b6be2acf60179240e6b147e6359ef80d",
        size=2119705, kind="detector", arch="v1", params=489015,
        source=f"fokouarnaud/FeatherFace@{_V1_COMMIT[:7]}:weights/mobilenet0.25_Final.pth",
        url=_github_raw(_V1_COMMIT, "weights/mobilenet0.25_Final.pth"),
        description="FeatherFace V1 (MobileNetV1-0.25, BiFPN, DCN SSH); WIDERFace val AP "
                    "0.926/0.902/0.772 (authors).",
    ),
    Checkpoint(
        name="featherface-eca-cbam",
        filename="featherface_eca_cbam_final.pth",
        sha256="81cdeffd35c13e2123d63080c9bd16a9eebe6f8e0579994ad6322b6393a10666",
        size=2114214, kind="detector", arch="eca_cbam", params=476345,
        source=f"fokouarnaud/FeatherFace@{_ECA_COMMIT[:7]}:"
               "weights/eca_cbam/featherface_eca_cbam_final.pth",
        url=_github_raw(_ECA_COMMIT, "weights/eca_cbam/featherface_eca_cbam_final.pth"),
        description="FeatherFace ECA-CBAM sequential variant; no published AP.",
    ),
    Checkpoint(
        name="mobilenetv1-0.25-imagenet",
        filename="mobilenetV1X0.25_pretrain.tar",
        sha256="75c37f8d438b7c6aed2e6b310fd0540c40dabf0dd820770bd7082668dfd7c1c1",
        size=3827150, kind="backbone", arch=None, params=470072,
        # Upstream links a Google Drive file (no stable direct URL): a mirror is required.
        source="fokouarnaud/FeatherFace README (Google Drive id "
               "1oZRSG0ZegbVkVwUd8wUIQx8W7yfZ_ki1)",
        url=None,
        description="ImageNet-pretrained MobileNetV1-0.25 backbone, for training only.",
    ),
)}


class ChecksumMismatch(ModelError):
    """Downloaded or cached bytes differ from the registry digest."""


def get(name: str) -> Checkpoint:
    """The registry entry called ``name``, or a ModelError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}") from None


def default_cache_dir() -> Path:
    """``$EDGEFACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgeface/models``, else ~/.cache/..."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeface" / "models"


def is_valid(path: Path, ckpt: Checkpoint) -> bool:
    """True when ``path`` is a regular file with exactly the checkpoint's bytes."""
    return path.is_file() and path.stat().st_size == ckpt.size and sha256_file(path) == ckpt.sha256


def cached(ckpt: Checkpoint, cache_dir: Path | None = None) -> Path | None:
    """The verified cached file for ``ckpt``, or None."""
    path = Path(cache_dir or default_cache_dir()) / ckpt.filename
    return path if is_valid(path, ckpt) else None


def source_for(ckpt: Checkpoint, mirror: str | None = None) -> str:
    """Where ``ckpt`` would be fetched from: mirror file/URL, else the upstream URL."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    if mirror:
        if mirror.startswith(("http://", "https://")):
            return mirror.rstrip("/") + "/" + quote(ckpt.filename)
        local = Path(urlparse(mirror).path if mirror.startswith("file://") else mirror)
        return str(local.expanduser() / ckpt.filename)
    if ckpt.url is None:
        raise EdgefaceError(
            f"{ckpt.name}: no direct upstream download ({ckpt.source}); mirror required: put "
            f"{ckpt.filename} in a directory or web server and pass --mirror DIR|URL "
            f"(or set {MIRROR_ENV})")
    return ckpt.url


def _open_source(src: str, timeout: float) -> tuple[BinaryIO, int | None]:
    """A readable byte stream for a URL or local path, and its length when known."""
    if src.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        req = urllib.request.Request(src, headers={"User-Agent": "edgeface-models"})
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) only
        except urllib.error.HTTPError as exc:
            raise EdgefaceError(f"download failed: {src}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EdgefaceError(f"download failed: {src}: {reason}") from None
        length = resp.headers.get("Content-Length")
        return resp, int(length) if length and length.isdigit() else None
    path = Path(src)
    if not path.is_file():
        raise EdgefaceError(f"not found on mirror: {path}")
    return open(path, "rb"), path.stat().st_size


def _chunks(stream: BinaryIO, limit: int, src: str) -> Iterator[bytes]:
    """Read at most ``limit`` bytes; more means the wrong file (or an endless stream)."""
    total = 0
    while True:
        try:
            block = stream.read(_CHUNK)
        except OSError as exc:  # timeouts and resets mid-transfer
            raise EdgefaceError(f"download failed: {src}: {exc}") from None
        if not block:
            return
        total += len(block)
        if total > limit:
            raise ChecksumMismatch(f"{src} is larger than the expected {limit} bytes: "
                                   "wrong file, refusing it")
        yield block


def pull(name: str, cache_dir: str | os.PathLike | None = None, mirror: str | None = None,
         *, progress: bool = True, timeout: float = 30.0,
         log: Callable[[str], None] | None = None) -> Path:
    """Download checkpoint ``name`` into the cache, verified; return its path.

    An already cached file with the right digest is returned without any transfer. Bytes go
    to a ``.part`` file next to the target, are hashed on the way, and only a file with the
    registry's size and SHA-256 is renamed into place (atomically). Anything else removes
    the partial file and raises (ChecksumMismatch for wrong bytes).
    """
    ckpt = get(name)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / ckpt.filename
    if target.exists():
        if is_valid(target, ckpt):
            if log:
                log(f"{ckpt.name}: cached and verified: {target}")
            return target
        if log:
            log(f"{ckpt.name}: cached file {target} does not match sha256; fetching again")
    src = source_for(ckpt, mirror)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgefaceError(f"cannot create cache directory {cache}: {exc.strerror}") from None
    stream, length = _open_source(src, timeout)
    try:
        fd, part_name = tempfile.mkstemp(prefix=ckpt.filename + ".", suffix=".part", dir=cache)
    except OSError as exc:
        stream.close()
        raise EdgefaceError(f"cannot write to the model cache {cache}: {exc.strerror}") from None
    part = Path(part_name)
    try:
        from tqdm import tqdm

        h = hashlib.sha256()
        with stream, os.fdopen(fd, "wb") as out, tqdm(
                total=length or ckpt.size, unit="B", unit_scale=True, unit_divisor=1024,
                desc=ckpt.filename, disable=not progress, leave=False) as bar:
            for block in _chunks(stream, ckpt.size, src):
                out.write(block)
                h.update(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())  # survive a power cut right after the rename
        os.chmod(part, 0o644)  # mkstemp creates 0600; a model cache is not a secret
        digest, size = h.hexdigest(), part.stat().st_size
        if size != ckpt.size or digest != ckpt.sha256:
            raise ChecksumMismatch(
                f"{ckpt.name}: checksum mismatch for {src}: got sha256 {digest} ({size} bytes), "
                f"expected {ckpt.sha256} ({ckpt.size} bytes); partial file removed")
        os.replace(part, target)
    except OSError as exc:  # disk full, cache on a read-only medium...
        part.unlink(missing_ok=True)
        raise EdgefaceError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if log:
        log(f"{ckpt.name}: downloaded and verified: {target}")
    return target


@dataclass(frozen=True)
class VerifyResult:
    name: str
    path: Path
    status: str  # "ok", "missing", "mismatch"


def verify_dir(directory: str | os.PathLike) -> list[VerifyResult]:
    """Check every registry file under ``directory`` (by file name) against its digest."""
    directory = Path(directory)
    out = []
    for ckpt in REGISTRY.values():
        path = directory / ckpt.filename
        status = "missing" if not path.exists() else ("ok" if is_valid(path, ckpt) else "mismatch")
        out.append(VerifyResult(ckpt.name, path, status))
    return out

