"""Calibration data for INT8 quantization: which images calibrate, and how they reach ONNX
Runtime's calibrator.

- :func:`open_image_set`: the calibration images of a WIDERFace-style folder or any folder;
- :func:`select_evenly`: a subset spread over a list sorted by event;
- :func:`check_disjoint`: calibration and evaluation never share an image;
- :class:`CalibrationSet`: network inputs made by the runtime's own preprocessing;
- :func:`calibration_reader_class`: the adapter to ORT's ``CalibrationDataReader``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from edgeface.calibration.image_folder import DatasetError, ImageFolder, ImageReader, iter_blobs
from edgeface.calibration.widerface import resolve_split
from edgeface.errors import ConfigError, require
from edgeface.inference.model_info import INPUT_NAME
from edgeface.media.images import IMAGE_EXTENSIONS


def _norm_key(key: str) -> str:
    p = key.replace("\\", "/")
    stem, ext = os.path.splitext(p)
    return stem if ext.lower() in IMAGE_EXTENSIONS else p


def open_image_set(root: str | os.PathLike, split: str | None = None,
                   on_skip: Callable[[str], None] | None = None) -> ImageFolder:
    """The images of ``root``: a WIDERFace-style folder (``images/`` + optional ``splits/``)
    or any folder of images.

    ``split``: a name under ``root/splits/`` or a list file; None means ``splits/calib.txt``
    when it exists, else every image under ``root`` (or ``root/images``). Keys are paths
    relative to the image folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"calibration folder not found: {root}")
    images = root / "images" if (root / "images").is_dir() else root
    if split is None and (root / "splits" / "calib.txt").is_file():
        split = "calib"
    list_file = resolve_split(root, split) if split not in (None, "all") else None
    reader = ImageFolder(images, list_file, on_skip=on_skip)
    reader.split = None if list_file is None else (split if Path(split).stem == split else
                                                   str(list_file))
    return reader


def select_evenly(n_total: int, n: int | None) -> np.ndarray:
    """Indices of ``n`` items spread evenly over ``n_total`` (all when n is None or larger);
    lists are sorted by event, so the first ``n`` would all come from one or two events."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))


def check_disjoint(calib_entries: Iterable[Any], eval_entries: Iterable[Any]) -> None:
    """Fail if any calibration image is also an evaluation image (same key without extension,
    same file name, or same file)."""
    calib = list(calib_entries)
    ev = list(eval_entries)
    keys = {_norm_key(e.key) for e in ev}
    names = {Path(_norm_key(e.key)).name for e in ev}
    paths = {os.path.realpath(e.path) for e in ev}
    overlap = [e.key for e in calib
               if _norm_key(e.key) in keys or Path(_norm_key(e.key)).name in names
               or os.path.realpath(e.path) in paths]
    if overlap:
        raise ConfigError(f"{len(overlap)} calibration images are also evaluation images (first:"
                          f" {overlap[0]}); calibrate and evaluate on disjoint splits")


class CalibrationSet:
    """Network inputs for calibration, made by the runtime's own preprocessing.

    Wraps an image reader (:func:`open_image_set`, a WIDERFace split, ...); ``num_images``
    picks that many spread evenly over it. Unreadable images are counted in ``skipped``.
    """

    def __init__(self, reader: Any, size: tuple[int, int], mean: Sequence[float],
                 num_images: int | None = None):
        idx = select_evenly(len(reader.entries), num_images)
        self.reader = ImageReader([reader.entries[i] for i in idx], on_skip=lambda m: None)
        self.size = tuple(size)
        self.mean = tuple(mean)

    @property
    def entries(self) -> list:
        return self.reader.entries

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return self.reader.skipped

    def __len__(self) -> int:
        return len(self.reader)

    def blobs(self) -> Iterator[np.ndarray]:
        yield from iter_blobs(self.reader, self.size, self.mean)


class _ListReader:
    """A ``CalibrationDataReader`` over a list of blobs, ticking a progress bar."""

    def __init__(self, blobs: Sequence[np.ndarray], tick: Callable[[], None] | None = None):
        self._it = iter(blobs)
        self._tick = tick

    def get_next(self) -> dict[str, np.ndarray] | None:
        blob = next(self._it, None)
        if blob is None:
            return None
        if self._tick:
            self._tick()
        return {INPUT_NAME: blob}

    def __iter__(self):  # CalibrationDataReader protocol
        return iter(self.get_next, None)


def calibration_reader_class() -> type:
    """_ListReader registered as ORT's abstract CalibrationDataReader: ``cls(blobs, tick)``."""
    q = require("onnxruntime.quantization", "quantize",
                "INT8 quantization uses ONNX Runtime's quantization tools")

    class Reader(_ListReader, q.CalibrationDataReader):
        pass

    return Reader

