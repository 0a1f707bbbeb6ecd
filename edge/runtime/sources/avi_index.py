"""Which frames of an AVI have lost their chunk, read from the file's own index (idx1).

FFmpeg reads an AVI's chunks one after another; where a chunk header is damaged it scans
forward to the next one that looks whole and numbers it as if nothing had been lost (a
20 KB run of zeros in a 300-frame MJPEG file: 11 frames gone, the timestamps of the rest
11 frames early, no error). The index at the end of the file still says where every frame
was: a frame whose indexed place no longer holds its chunk header is lost, and reading must
jump over it (a seek goes by the index, so it lands right).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Optional

import numpy as np

#: Index entries checked to choose between offsets from the 'movi' list and from the file
#: start (both exist in the wild; FFmpeg checks the first entry the same way).
_BASE_PROBE = 16


def lost_frames(path: str | Path) -> Optional[list[tuple[int, int]]]:
    """Runs ``(first, end)`` of video frames whose chunk is not where the index says, or
    None when the file is not an AVI with a usable idx1 index (then nothing is known)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return _lost(m)
    except (OSError, ValueError, struct.error):
        return None


def _lost(m: mmap.mmap) -> Optional[list[tuple[int, int]]]:
    if len(m) < 12 or m[:4] != b"RIFF" or m[8:12] != b"AVI ":
        return None
    movi = idx1 = None
    i = 12
    while i + 8 <= len(m):  # the top-level chunks: hdrl, movi, idx1 (junk between)
        fourcc, size = m[i:i + 4], struct.unpack("<I", m[i + 4:i + 8])[0]
        if fourcc == b"LIST" and m[i + 8:i + 12] == b"movi":
            movi = i + 8
        elif fourcc == b"idx1":
            idx1 = (i + 8, min(size, len(m) - i - 8))
        i += 8 + size + (size & 1)
    if movi is None or idx1 is None or idx1[1] < 16:
        return None
    start, size = idx1
    entries = np.frombuffer(m, np.uint8, count=size - size % 16, offset=start).reshape(-1, 16)
    ids = entries[:, :4].copy().view("S4").ravel()
    video = np.char.endswith(ids, b"dc") | np.char.endswith(ids, b"db")
    if not video.any():
        return None
    stream = ids[video][0][:2]
    entries = entries[np.char.startswith(ids, stream) & video]
    offsets = entries[:, 8:12].copy().view("<u4").ravel().astype(np.int64)
    sizes = entries[:, 12:16].copy().view("<u4").ravel().astype(np.int64)
    data = np.frombuffer(m, np.uint8)
    best = None
    for base in (movi, 0):
        whole = _whole(data, base + offsets, sizes, entries[:, :4])
        score = int(whole[:_BASE_PROBE].sum())
        if best is None or score > best[0]:
            best = (score, whole)
    if best[0] == 0:
        return None  # neither base fits: an index that describes nothing here
    return _runs(~best[1])


def _whole(data: np.ndarray, pos: np.ndarray, sizes: np.ndarray,
           fourccs: np.ndarray) -> np.ndarray:
    """Per entry: its chunk header (fourcc, size) is at ``pos`` and its data fits the file."""
    inside = (pos >= 0) & (pos + 8 + sizes <= len(data))
    at = np.where(inside, pos, 0)[:, None] + np.arange(8)
    head = data[at]
    same = (head[:, :4] == fourccs).all(axis=1)
    same &= head[:, 4:8].copy().view("<u4").ravel() == sizes
    return inside & same


def _runs(bad: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], bad.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
