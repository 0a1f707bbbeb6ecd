"""WIDER FACE validation data in its official layout.

::

    ROOT/images/<event>/<name>.jpg
    ROOT/[ground_truth/]wider_face_val_bbx_gt.txt           boxes: x y w h + 6 attributes
    ROOT/[ground_truth/]wider_{easy,medium,hard}_val.mat    keep lists per setting
    ROOT/image_sizes.txt   (optional) "<event>/<name>.jpg W H": images stored resized
    ROOT/splits/<split>.txt (optional) one "<event>/<name>.jpg" per line

Images are keyed ``"<event>/<name>"`` (no extension), as the keep lists name them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from edgeface.calibration.image_folder import DatasetError, Entry, ImageReader, read_list, warn
from edgeface.errors import require
from edgeface.media.images import IMAGE_EXTENSIONS

SETTINGS = ("easy", "medium", "hard")
GT_TXT = "wider_face_val_bbx_gt.txt"
KEEP_MAT = "wider_{}_val.mat"
IMAGE_SIZES = "image_sizes.txt"
ALL = "all"  # split name meaning: every image under images/ that has ground truth
# Where the official archives (and this project's shared data) put the ground truth.
_GT_DIRS = (".", "ground_truth", "wider_face_split", "eval_tools/ground_truth")


@dataclass(frozen=True)
class WiderFaceImage:
    """Ground truth of one image, in original (annotated) pixels."""

    key: str  # "<event>/<name>"
    path: Path
    boxes: np.ndarray  # [N, 4] float64 x, y, w, h
    keep: Mapping[str, np.ndarray]  # setting -> 0-based indices of the boxes that count
    original_size: tuple[int, int] | None = None  # (W, H) when the stored image is resized

    @property
    def event(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class WiderFaceDataset(ImageReader):
    """The images of one split, iterable as :class:`~.image_folder.Sample` (``meta`` is the
    :class:`WiderFaceImage`; ``scale`` maps stored pixels to annotated ones)."""

    def __init__(self, root: Path, split: str, images: list[WiderFaceImage],
                 on_skip: Callable[[str], None] | None = None):
        self.root = root
        self.split = split
        self.images = images
        self.ground_truth = {im.key: im for im in images}
        self.resized = any(im.original_size for im in images)
        super().__init__([Entry(im.key, im.path, im.original_size, im) for im in images], on_skip)

    def num_faces(self, keys: Iterable[str] | None = None) -> dict[str, int]:
        """Faces that count in each setting, over ``keys`` (default: the whole split)."""
        ims = self.images if keys is None else [self.ground_truth[k] for k in keys]
        return {s: int(sum(len(im.keep[s]) for im in ims)) for s in SETTINGS}


def load_widerface(root: str | os.PathLike, split: str | None = ALL,
                   on_skip: Callable[[str], None] | None = None) -> WiderFaceDataset:
    """Read a WIDER FACE directory (see the module docstring).

    ``split`` is a name under ``ROOT/splits/`` ("eval" -> ``splits/eval.txt``), a path to a list
    file, or ``"all"``/None for every image under ``images/`` that has ground truth. Listed
    images missing on disk are reported when iterated (and counted in ``skipped``), not here.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"WIDERFace directory not found: {root}")
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise DatasetError(f"{root} has no images/ directory (expected images/<event>/<name>.jpg)")
    split_file = None if split in (None, ALL) else resolve_split(root, split)
    gt_path = _find(root, GT_TXT)
    keep_paths = {s: _find(root, KEEP_MAT.format(s)) for s in SETTINGS}
    boxes = parse_bbx_gt(gt_path)
    keep = {s: load_keep_list(p) for s, p in keep_paths.items()}

    if split_file is None:
        split_name = ALL
        names = sorted(p.relative_to(images_dir).as_posix() for p in images_dir.rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        no_gt = [n for n in names if _key(n) not in boxes]
        if no_gt:
            (on_skip or warn)(f"{len(no_gt)} images under {images_dir} have no ground truth "
                              f"and are not evaluated (e.g. {no_gt[0]})")
        names = [n for n in names if _key(n) in boxes]
    else:
        split_name = split_file.stem if split_file.parent == root / "splits" else str(split_file)
        names = read_list(split_file)
        unknown = [n for n in names if _key(n) not in boxes]
        if unknown:
            raise DatasetError(f"{split_file}: {len(unknown)} images are not in {gt_path.name} "
                               f"(first: {unknown[0]})")
        seen: set[str] = set()
        dupes = [n for n in names if _key(n) in seen or seen.add(_key(n))]
        if dupes:
            raise DatasetError(f"{split_file}: {dupes[0]} is listed more than once")
    if not names:
        raise DatasetError(f"no images with ground truth under {images_dir}")

    sizes = read_image_sizes(root / IMAGE_SIZES) if (root / IMAGE_SIZES).is_file() else None
    records = []
    for name in names:
        key = _key(name)
        kept = {}
        for s in SETTINGS:
            if key not in keep[s]:
                raise DatasetError(f"{key} is in {gt_path.name} but not in {KEEP_MAT.format(s)}")
            kept[s] = keep[s][key]
            if kept[s].size and kept[s].max() >= len(boxes[key]):
                raise DatasetError(f"{KEEP_MAT.format(s)} keeps box {kept[s].max() + 1} of {key},"
                                   f" which has {len(boxes[key])} boxes in {gt_path.name}")
        original = None
        if sizes is not None:
            if key not in sizes:
                raise DatasetError(f"{root / IMAGE_SIZES} has no entry for {name}; cannot map "
                                   "predictions back to original coordinates")
            original = sizes[key]
        path = images_dir / (name if Path(name).suffix else name + ".jpg")
        records.append(WiderFaceImage(key, path, boxes[key], kept, original))
    return WiderFaceDataset(root, split_name, records, on_skip)


def available_splits(root: str | os.PathLike) -> list[str]:
    d = Path(root) / "splits"
    return sorted(p.stem for p in d.glob("*.txt")) if d.is_dir() else []


def resolve_split(root: Path, split: str) -> Path:
    """``splits/<split>.txt`` under ``root``, or ``split`` itself if it is an existing file."""
    candidate = root / "splits" / f"{split}.txt"
    if candidate.is_file():
        return candidate
    if Path(split).is_file():
        return Path(split)
    avail = available_splits(root)
    hint = (f"available: {', '.join(avail)}" if avail else f"{root} has no splits/*.txt")
    raise DatasetError(f"split {split!r} not found ({hint}; or '{ALL}' for every image)")


def _key(name: str) -> str:
    p = name.replace("\\", "/")
    stem, ext = os.path.splitext(p)
    return stem if ext.lower() in IMAGE_EXTENSIONS else p


def _find(root: Path, filename: str) -> Path:
    for d in _GT_DIRS:
        p = root / d / filename
        if p.is_file():
            return p
    raise DatasetError(f"{filename} not found in {root} (looked in "
                       f"{', '.join(d if d != '.' else './' for d in _GT_DIRS)})")


def parse_bbx_gt(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``wider_face_val_bbx_gt.txt`` -> {key: [N, 4] float64 x, y, w, h}.

    An image with no face has a count of 0 followed by one all-zero dummy row (some copies
    write a count of 1 instead). It gets one all-zero box, as in the official ``.mat``:
    it is in no keep list, so it is ignored, yet detections on that image still count as false
    positives (the official evaluation skips images without any ground-truth box).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    out: dict[str, np.ndarray] = {}
    i, n = 0, len(lines)
    try:
        while i < n:
            name = lines[i].strip()
            i += 1
            if not name:
                continue
            count = int(lines[i])
            i += 1
            if count == 0:
                if i < n and len(lines[i].split()) >= 4 and not _is_name(lines[i]):
                    i += 1  # the dummy row
                out[_key(name)] = np.zeros((1, 4))
                continue
            vals = [lines[i + k].split()[:4] for k in range(count)]
            i += count
            out[_key(name)] = np.array(vals, dtype=np.float64).reshape(-1, 4)
    except (ValueError, IndexError):
        raise DatasetError(f"{path}: malformed near line {i + 1}") from None
    if not out:
        raise DatasetError(f"{path}: no images")
    return out


def _is_name(line: str) -> bool:
    return os.path.splitext(line.strip())[1].lower() in IMAGE_EXTENSIONS


def load_keep_list(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A ``wider_<setting>_val.mat`` -> {key: 0-based int64 indices of the boxes that count}."""
    sio = require("scipy.io", "eval", "reads the WIDERFace .mat keep lists")
    try:
        mat = sio.loadmat(str(path))
        events, files, gts = mat["event_list"], mat["file_list"], mat["gt_list"]
        out = {}
        for e in range(len(events)):
            event = str(events[e][0][0])
            for j, f in enumerate(files[e][0]):
                idx = np.asarray(gts[e][0][j][0], dtype=np.int64).ravel() - 1
                out[f"{event}/{str(f[0][0])}"] = idx
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DatasetError(f"{path}: not a WIDERFace keep list ({exc})") from None
    return out


def read_image_sizes(path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """``image_sizes.txt`` ("relative/path W H" per line, '#' comments) -> {key: (W, H)}."""
    out = {}
    for no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            name, w, h = line.split()
            out[_key(name)] = (int(w), int(h))
        except ValueError:
            raise DatasetError(f"{path}:{no}: expected 'relative/path W H', got {line!r}") from None
    return out


def write_predictions(predictions: Mapping[str, np.ndarray], out_dir: str | os.PathLike) -> Path:
    """Write ``<event>/<name>.txt`` files in the WIDERFace submission format: the image name,
    the count, then one ``x y w h score`` line per face (original pixels). Returns out_dir."""
    out = Path(out_dir)
    for key, arr in predictions.items():
        f = out / f"{key}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        lines = [key.rsplit("/", 1)[-1], str(len(arr))]
        lines += [f"{x:.2f} {y:.2f} {w:.2f} {h:.2f} {s:.6f}" for x, y, w, h, s in arr.tolist()]
        f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def read_predictions(pred_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Inverse of :func:`write_predictions`: {"<event>/<name>": [N, 5] x, y, w, h, score}."""
    root = Path(pred_dir)
    out = {}
    for f in sorted(root.glob("*/*.txt")):
        lines = f.read_text(encoding="utf-8").splitlines()
        try:
            count = int(lines[1])
            arr = np.array([ln.split()[:5] for ln in lines[2:2 + count]], dtype=np.float64)
        except (ValueError, IndexError):
            raise DatasetError(f"{f}: not a WIDERFace prediction file") from None
        out[f"{f.parent.name}/{f.stem}"] = arr.reshape(-1, 5)
    return out
