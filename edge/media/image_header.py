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
#: Huffman-coded DCT frames (baseline, extended, progressive): every 8x8 block costs at
#: least one bit of entropy-coded data (a Huffman code is never shorter). Arithmetic and
#: lossless frames have no such floor.
_HUFFMAN_DCT = {0xC0, 0xC1, 0xC2}
#: Scans a progressive JPEG may have. libjpeg's progressive script writes 10 (6 for gray)
#: and optimising encoders a few more; libjpeg decodes a repeated scan at ~0.7 ms per
#: scan at 12 Mpx, so 23,000 of them in 1 MB took 16 s. 100 scans cost ~70 ms there.
MAX_JPEG_SCANS = 100


def _jpeg(data: bytes) -> tuple[int, int]:
    """Walk the marker segments to the first SOF. Skipping each segment by its length
    also skips EXIF thumbnails (whole JPEGs inside APP1), whose SOF is not the image's. A
    second SOF before the first scan is refused (libjpeg refuses it too)."""
    info = _jpeg_walk(data, full=False)
    return info[0], info[1]


def check_jpeg_data(data: bytes) -> None:
    """The work and data behind a JPEG's header, after its size passed the pixel budget, in
    one marker walk: one frame, at most :data:`MAX_JPEG_SCANS` scans, every segment whole,
    scans that reach an end-of-image marker, and at least one bit of entropy-coded data per
    8x8 block for Huffman frames (a 4 KB file claiming 4000x3000 decodes to gray filler with
    a warning, not an error). OpenCV 4.5.5 and 4.6.0 decode a JPEG cut anywhere into an
    image grey below the cut (libjpeg only warns), 4.11 and 5.x refuse it: every cut is
    refused here, so every build refuses it. Bytes after the end-of-image marker (a phone's
    trailer) are not looked at. Raises HeaderError."""
    if sniff_format(data) != "jpeg":
        return
    try:
        _jpeg_walk(data, full=True)
    except (struct.error, IndexError):
        raise HeaderError("not a decodable image (JPEG truncated or corrupt)") from None


# In entropy-coded data a marker is 0xFF then neither 0x00 (stuffing), RSTn nor 0xFF (fill;
# the last 0xFF of a run matches). 11 ms over 14 MB of 12 Mpx JPEG; a lookahead took 250.
_MARKER = re.compile(b"\xff[^\x00\xd0-\xd7\xff]")


class _Corrupt(Exception):
    """A walk that cannot go on: the header reader says 0x0, the full check says why."""


def _jpeg_walk(data: bytes, full: bool) -> tuple[int, int]:
    try:
        return _walk(data, full)
    except _Corrupt as exc:
        if not full:
            return 0, 0
        raise HeaderError(f"not a decodable image (JPEG {exc})") from None


def _walk(data: bytes, full: bool) -> tuple[int, int]:
    """Segments are skipped by their length (EXIF thumbnails, whole JPEGs inside APP1, are
    not the image); a scan's entropy-coded data is skipped to its next marker. ``full``
    walks to the end-of-image marker; else the walk stops at the first scan."""
    i, n = 2, len(data)
    width = height = 0
    sof: int | None = None
    blocks = scans = coded = 0
    while True:
        if i + 2 > n:
            raise _Corrupt("truncated: no end-of-image marker")
        if data[i] != 0xFF:
            raise _Corrupt(f"corrupt: no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        if marker == 0xD9:  # end of image
            break
        if marker == 0xDA and sof is None:
            raise _Corrupt("corrupt: scan data before any frame header")
        if marker == 0xDA and not full:
            return width, height
        if i + 4 > n:
            raise _Corrupt("truncated in a marker")
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if length < 2:
            raise _Corrupt(f"corrupt: a segment of length {length}")
        if full and i + 2 + length > n:
            raise _Corrupt("truncated in a marker segment")
        if marker in _SOF:
            if sof is not None:
                raise HeaderError("not a decodable image (JPEG with several frame headers)")
            sof = marker
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            if full:
                blocks = _jpeg_blocks(data[i + 9:i + 2 + length], width, height)
        i += 2 + length
        if marker == 0xDA:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise HeaderError(f"not a decodable image (progressive JPEG with more than "
                                  f"{MAX_JPEG_SCANS} scans: refused before decoding)")
            m = _MARKER.search(data, i)
            if m is None:
                raise _Corrupt("truncated in its image data: no end-of-image marker")
            coded += m.start() - i
            i = m.start()
    if not full:
        return width, height
    if sof is None or scans == 0:
        raise HeaderError("not a decodable image (JPEG without image data)")
    if sof in _HUFFMAN_DCT and coded * 8 < blocks:
        raise HeaderError(f"not a decodable image (JPEG truncated: {width}x{height} needs at "
                          f"least {-(-blocks // 8)} bytes of image data, it has {coded})")
    return width, height


def _jpeg_blocks(components: bytes, width: int, height: int) -> int:
    """8x8 blocks in a frame: per component, its share of the pixels (sampling factors)."""
    count = components[0]
    factors = [(components[2 + 3 * k] >> 4, components[2 + 3 * k] & 15) for k in range(count)]
    hmax = max((h for h, _ in factors), default=1) or 1
    vmax = max((v for _, v in factors), default=1) or 1
    return sum(_ceil(_ceil(width * h, hmax), 8) * _ceil(_ceil(height * v, vmax), 8)
               for h, v in factors)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


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
    """Width (tag 256) and height (257) of the only image file directory. A tag given twice
    (this reader once took the last, libtiff takes the first: a 426 KB file passed as
    100x100 and decoded as 20000x20000) or a second directory is refused as ambiguous."""
    end = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", data[4:8])
    (count,) = struct.unpack(end + "H", data[ifd:ifd + 2])
    if count > 4096:
        raise HeaderError(f"not a decodable image (TIFF directory of {count} entries)")
    size: dict[int, int] = {}
    seen: set[int] = set()
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag, typ, n = struct.unpack(end + "HHI", data[at:at + 8])
        if tag in seen:
            raise HeaderError(f"not a decodable image (TIFF tag {tag} given twice)")
        seen.add(tag)
        if tag in (256, 257):
            if typ not in (3, 4) or n != 1:
                raise HeaderError("not a decodable image (TIFF size tag of a bad type)")
            size[tag] = (struct.unpack(end + "H", data[at + 8:at + 10])[0] if typ == 3
                         else struct.unpack(end + "I", data[at + 8:at + 12])[0])
    at = ifd + 2 + 12 * count
    (next_ifd,) = struct.unpack(end + "I", data[at:at + 4])
    if next_ifd:
        raise HeaderError("not a decodable image (TIFF with several images)")
    return size.get(256, 0), size.get(257, 0)


_READERS = {"png": _png, "jpeg": _jpeg, "bmp": _bmp, "webp": _webp, "tiff": _tiff}
