"""Image readers for evaluation and calibration: a generic folder of images, the base class
every reader shares (unreadable files are reported and counted, never dropped silently), and
:func:`iter_blobs`, which turns any reader into network inputs with the runtime's own
preprocessing."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from edgeface.errors import ConfigError
from edgeface.inference.model_info import DEFAULT_MEAN_BGR
from edgeface.inference.preprocess import preprocess
from edgeface.media.images import IMAGE_EXTENSIONS, ImageReadError, read_image


class DatasetError(ConfigError):
    """A data set directory, ground-truth file or split list is missing or malformed."""


@dataclass
class Sample:
    """One image as stored, with what is needed to map detections back to the original."""

    key: str  # identifies the image within its data set (WIDERFace: "<event>/<name>")
    path: Path
    image: np.ndarray  # BGR uint8, as stored on disk
    scale: tuple[float, float]  # stored pixels -> original (annotated) pixels, (sx, sy)
    meta: Any = None  # reader-specific record (e.g. a WiderFaceImage), or None


class Entry(NamedTuple):
    """An image a reader will load: key, file, original (W, H) when stored resized, record."""

    key: str
    path: Path
    original_size: tuple[int, int] | None = None
    meta: Any = None


def warn(message: str) -> None:
    """Print a warning on stderr without breaking a running progress bar."""
    from tqdm import tqdm

    tqdm.write(f"edgeface: warning: {message}", file=sys.stderr)


class ImageReader:
    """Iterable of :class:`Sample` over a fixed list of entries.

    A missing or corrupt image is reported through ``on_skip`` (default: a warning on stderr
    naming the file), recorded in :attr:`skipped` and, when the iteration ends, summarised with
    a count. A silently dropped image would raise AP, so callers should check ``skipped``.
    """

    def __init__(self, entries: Sequence[Entry], on_skip: Callable[[str], None] | None = None):
        self.entries = list(entries)
        self.on_skip = on_skip or warn
        self.skipped: list[tuple[str, str]] = []  # (key, reason) of the last iteration

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Sample]:
        self.skipped = []
        for entry in self.entries:
            try:
                image = read_image(entry.path)
            except ImageReadError as exc:
                self.skipped.append((entry.key, str(exc)))
                self.on_skip(f"skipping {exc}")
                continue
            yield Sample(entry.key, entry.path, image, _scale(entry, image), entry.meta)
        if self.skipped:
            self.on_skip(f"skipped {len(self.skipped)} of {len(self.entries)} images "
                         "(unreadable, listed above)")


def _scale(entry: Entry, image: np.ndarray) -> tuple[float, float]:
    if entry.original_size is None:
        return 1.0, 1.0
    w, h = entry.original_size
    return w / image.shape[1], h / image.shape[0]


class ImageFolder(ImageReader):
    """Every image file under ``root`` (recursively, sorted), or those named in ``list_file``
    (one path relative to ``root`` per line; ``#`` starts a comment). Keys are the relative
    paths. Listed files that are missing are reported when read, like corrupt ones."""

    def __init__(self, root: str | os.PathLike, list_file: str | os.PathLike | None = None,
                 on_skip: Callable[[str], None] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"image folder not found: {self.root}")
        if list_file is not None:
            names = read_list(list_file)
        else:
            names = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not names:
            raise DatasetError(f"no images in {self.root}"
                               + (f" listed in {list_file}" if list_file else ""))
        super().__init__([Entry(n, self.root / n) for n in names], on_skip)


def read_list(path: str | os.PathLike) -> list[str]:
    """Non-empty, non-comment lines of a list file (first whitespace-separated field)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"list file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read list file {p}: {exc}") from None
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line.split()[0])
    return out


def iter_blobs(
    reader: ImageReader,
    size: tuple[int, int],
    mean: tuple[float, float, float] = DEFAULT_MEAN_BGR,
) -> Iterator[np.ndarray]:
    """Network inputs ``[1, 3, H, W]`` float32 for each readable image of ``reader``, made by
    :func:`edgeface.preprocess.preprocess`, the same function inference uses."""
    for sample in reader:
        yield preprocess(sample.image, size, mean)[0]
