"""An image's format and declared size, read from its header without decoding it.

A 74-byte PNG can declare 50000x50000 pixels (7.5 GB once decoded); the size must be known
before the decoder allocates anything. Only the formats the runtime reads are recognised:
JPEG, PNG, BMP, WebP and TIFF (what ``IMAGE_EXTENSIONS`` lists); anything else is refused.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass


class HeaderError(ValueError):
    """Not a recognised image, or a header that does not say its size."""


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "jpeg", "png", "bmp", "webp", "tiff"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff_format(data: bytes) -> str | None:
    """The format from the first bytes (magic numbers), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def read_header(data: bytes) -> ImageHeader:
    """Format and declared size; raises :class:`HeaderError` when either is unknown."""
    fmt = sniff_format(data)
    if fmt is None:
        raise HeaderError("not a decodable image (not JPEG, PNG, BMP, WebP or TIFF)")
    try:
        width, height = _READERS[fmt](data)
    except (struct.error, IndexError):
        width = height = 0
    if width <= 0 or height <= 0:
        raise HeaderError(f"not a decodable image ({fmt.upper()} header truncated or corrupt)")
    return ImageHeader(fmt, width, height)


def _png(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        return 0, 0
    return struct.unpack(">II", data[16:24])


# Start-of-frame markers carry the size; DHT (C4), JPG (C8) and DAC (CC) share the range.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> tuple[int, int]:
    """Walk the marker segments to the first SOF. Skipping each segment by its length
    also skips EXIF thumbnails (whole JPEGs inside APP1), whose SOF is not the image's."""
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return 0, 0
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return 0, 0
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if length < 2:
            return 0, 0
        i += 2 + length
    return 0, 0


# In entropy-coded data 0xFF is followed by 0x00 (a stuffed byte) or RST0-7 (D0-D7); any
# other byte after 0xFF (0xFF fill included) starts the next marker.
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


def jpeg_complete(data: bytes) -> bool:
    """Whether a JPEG's scans reach its end-of-image marker. OpenCV 4.5.5 and 4.6.0 decode
    a truncated JPEG into an image grey below the cut (libjpeg only warns); 4.11 and 5.x
    refuse it. Checking here makes every build refuse it. Segments are skipped by length
    (EXIF thumbnails, whose own EOI is not the image's); entropy-coded data is skipped to
    its next marker; bytes after EOI (a phone's trailer) are not looked at."""
    i, n = 2, len(data)
    while i + 2 <= n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF or marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 1 if marker == 0xFF else 2
            continue
        if i + 4 > n:
            return False
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if length < 2:
            return False
        i += 2 + length
        if marker == 0xDA:  # start of scan: its entropy-coded data runs to the next marker
            found = _NEXT_MARKER.search(data, i)
            if found is None:
                return False
            i = found.start()
    return False


def _bmp(data: bytes) -> tuple[int, int]:
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:  # BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height)  # negative height: top-down rows


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the 3-byte start code
        if data[23:26] != b"\x9d\x01\x2a":
            return 0, 0
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2f, then 14-bit sizes minus one
        if data[20] != 0x2F:
            return 0, 0
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit canvas sizes minus one
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return 0, 0


def _tiff(data: bytes) -> tuple[int, int]:
    """Width (tag 256) and height (257) of the first image file directory."""
    end = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", data[4:8])
    (count,) = struct.unpack(end + "H", data[ifd:ifd + 2])
    size = {}
    for k in range(min(count, 4096)):
        at = ifd + 2 + 12 * k
        tag, typ = struct.unpack(end + "HH", data[at:at + 4])
        if tag in (256, 257):
            value = (struct.unpack(end + "H", data[at + 8:at + 10])[0] if typ == 3
                     else struct.unpack(end + "I", data[at + 8:at + 12])[0])
            size[tag] = value
    return size.get(256, 0), size.get(257, 0)


_READERS = {"png": _png, "jpeg": _jpeg, "bmp": _bmp, "webp": _webp, "tiff": _tiff}
