"""Reading still images safely: regular files only, the declared size checked against a
pixel budget before anything is decoded, and errors that name the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from edgeface.media.image_header import HeaderError, check_jpeg_data, read_header

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

#: Bytes of memory one decoded pixel can cost at peak: 3 for the BGR image, up to 6 for
#: the decoder's own buffers (a progressive JPEG keeps 2-byte coefficients per component),
#: 3 for the annotated copy of --video/--http, 1.5 for the video encoder's YUV frame, and a
#: margin. The budget derived from a memory limit is limit / this.
BYTES_PER_PIXEL = 16
#: Without a memory limit: 100 Mpx, the largest camera sensors sold today.
DEFAULT_MAX_PIXELS = 100_000_000
#: A still image is never larger than its uncompressed pixels (BMP) plus metadata.
_FILE_BYTES_PER_PIXEL = 4
_FILE_SLACK = 16 << 20


class ImageReadError(ValueError):
    """An image file is missing, unreadable, not an image or over the pixel budget."""


def pixel_budget(memory_limit: Optional[int], explicit: Optional[int] = None) -> int:
    """The most pixels one image may declare: ``explicit`` if given, else derived from the
    memory limit (:data:`BYTES_PER_PIXEL`), else :data:`DEFAULT_MAX_PIXELS`."""
    if explicit:
        return int(explicit)
    if memory_limit:
        return max(1_000_000, int(memory_limit) // BYTES_PER_PIXEL)
    return DEFAULT_MAX_PIXELS


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """Raise :class:`ImageReadError` when ``width`` x ``height`` is over the budget."""
    if width * height > max_pixels:
        raise ImageReadError(f"{what}: {width}x{height} ({width * height / 1e6:.0f} Mpx) is over "
                             f"the pixel budget of {max_pixels / 1e6:.0f} Mpx (set by the memory "
                             "limit or --max-image-pixels); refused without decoding")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 name: str = "image") -> np.ndarray:
    """Decode JPEG/PNG/BMP/WebP/TIFF bytes to BGR uint8, checking the declared size first."""
    import cv2

    try:
        header = read_header(data)
    except HeaderError as exc:
        raise ImageReadError(f"{name}: {exc}") from None
    check_pixels(header.width, header.height, max_pixels, name)
    try:
        check_jpeg_data(data)  # cut anywhere, or decode-time bombs under the pixel budget
    except HeaderError as exc:
        raise ImageReadError(f"{name}: {exc}") from None
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV's own size limits, unsupported variants
        raise ImageReadError(f"{name}: cannot be decoded ({str(exc).strip().splitlines()[-1]})"
                             ) from None
    if image is None:
        raise ImageReadError(f"{name}: not a decodable image (corrupt or unsupported format)")
    return image


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a BGR uint8 image or raise :class:`ImageReadError` with a one-line reason.

    Only regular files are read (a FIFO or device would block or never end), at most a size
    the pixel budget allows.
    """
    p = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat on the open file
        # then decides, so nothing can swap the file between the check and the read.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageReadError(f"{p}: no such file") from None
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageReadError(f"{p}: is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError(f"{p}: not a regular file")
        if st.st_size == 0:
            raise ImageReadError(f"{p}: empty file")
        limit = max_pixels * _FILE_BYTES_PER_PIXEL + _FILE_SLACK
        if st.st_size > limit:
            raise ImageReadError(f"{p}: {st.st_size / 2**20:.0f} MB is larger than any image "
                                 f"within the pixel budget of {max_pixels / 1e6:.0f} Mpx")
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise ImageReadError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, max_pixels, str(p))


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files as given; directories expanded (recursively, sorted) to their image files."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*")
                              if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            yield p
