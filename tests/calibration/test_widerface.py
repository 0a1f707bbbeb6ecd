"""WIDERFace and image-folder readers: layout, counts, size mapping, unreadable images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeface.calibration.image_folder import DatasetError, ImageFolder, iter_blobs
from edgeface.calibration.widerface import (
    load_widerface,
    parse_bbx_gt,
    read_predictions,
    write_predictions,
)
from edgeface.inference.preprocess import preprocess
from edgeface.media.images import read_image

# ---------------------------------------------------------------- a tiny synthetic layout


def _write_keep_mat(path: Path, keep: dict[str, dict[str, list[int]]]) -> None:
    """A .mat shaped like the official keep lists: event_list, file_list, gt_list cells."""
    import scipy.io as sio

    events = sorted(keep)
    ev = np.empty((len(events), 1), dtype=object)
    fl = np.empty((len(events), 1), dtype=object)
    gl = np.empty((len(events), 1), dtype=object)
    for e, event in enumerate(events):
        names = list(keep[event])
        ev[e, 0] = np.array([event])
        files = np.empty((len(names), 1), dtype=object)
        gts = np.empty((len(names), 1), dtype=object)
        for j, n in enumerate(names):
            files[j, 0] = np.array([n])
            gts[j, 0] = np.array(keep[event][n], dtype=np.uint8).reshape(-1, 1)
        fl[e, 0] = files
        gl[e, 0] = gts
    sio.savemat(str(path), {"event_list": ev, "file_list": fl, "gt_list": gl})


@pytest.fixture
def tiny(tmp_path) -> Path:
    """Three images (one corrupt), one face-less image in the GT, all three settings."""
    pytest.importorskip("scipy", reason="needs scipy: pip install '.[eval]'")
    root = tmp_path / "wf"
    img_dir = root / "images" / "0--Parade"
    img_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("0_a", "0_b"):
        cv2.imwrite(str(img_dir / f"{name}.jpg"), rng.integers(0, 255, (64, 80, 3), np.uint8))
    (img_dir / "0_bad.jpg").write_bytes(b"not a jpeg")
    gt = root / "ground_truth"
    gt.mkdir()
    (gt / "wider_face_val_bbx_gt.txt").write_text(
        "0--Parade/0_a.jpg\n2\n1 2 10 12 0 0 0 0 0 0 \n30 20 8 9 2 0 0 0 1 0 \n"
        "0--Parade/0_b.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n"
        "0--Parade/0_bad.jpg\n1\n5 5 10 10 0 0 0 0 0 0 \n"
        "0--Parade/0_missing.jpg\n1\n5 5 10 10 0 0 0 0 0 0 \n")
    keep = {"easy": [[1], [], [1], [1]], "medium": [[1], [], [1], [1]],
            "hard": [[1, 2], [], [1], [1]]}
    for s, lists in keep.items():
        _write_keep_mat(gt / f"wider_{s}_val.mat", {"0--Parade": dict(
            zip(["0_a", "0_b", "0_bad", "0_missing"], lists))})
    (root / "splits").mkdir()
    (root / "splits" / "good.txt").write_text("0--Parade/0_a.jpg\n0--Parade/0_b.jpg\n")
    (root / "splits" / "broken.txt").write_text(
        "# comment\n0--Parade/0_a.jpg\n0--Parade/0_bad.jpg\n0--Parade/0_missing.jpg\n")
    return root


def test_reads_official_layout(tiny):
    ds = load_widerface(tiny, "good")
    assert len(ds) == 2 and ds.split == "good" and not ds.resized
    a = ds.ground_truth["0--Parade/0_a"]
    assert a.event == "0--Parade" and a.name == "0_a"
    assert a.boxes.tolist() == [[1, 2, 10, 12], [30, 20, 8, 9]]
    assert a.keep["easy"].tolist() == [0] and a.keep["hard"].tolist() == [0, 1]
    # a face-less image keeps one all-zero box that is in no keep list, as the official .mat
    b = ds.ground_truth["0--Parade/0_b"]
    assert b.boxes.tolist() == [[0, 0, 0, 0]] and b.keep["hard"].size == 0
    assert ds.num_faces() == {"easy": 1, "medium": 1, "hard": 2}
    samples = list(ds)
    assert [s.key for s in samples] == ["0--Parade/0_a", "0--Parade/0_b"]
    assert samples[0].scale == (1.0, 1.0) and samples[0].image.shape == (64, 80, 3)
    assert samples[0].meta is a


def test_unreadable_images_are_reported_and_counted(tiny):
    messages = []
    ds = load_widerface(tiny, "broken", on_skip=messages.append)
    keys = [s.key for s in ds]
    assert keys == ["0--Parade/0_a"]
    assert [k for k, _ in ds.skipped] == ["0--Parade/0_bad", "0--Parade/0_missing"]
    assert "0_bad.jpg" in messages[0] and "0_missing.jpg" in messages[1]
    assert "skipped 2 of 3 images" in messages[-1]


def test_split_all_and_images_without_ground_truth(tiny):
    cv2.imwrite(str(tiny / "images" / "0--Parade" / "0_extra.jpg"), np.zeros((8, 8, 3)))
    messages = []
    ds = load_widerface(tiny, "all", on_skip=messages.append)
    assert sorted(ds.ground_truth) == ["0--Parade/0_a", "0--Parade/0_b", "0--Parade/0_bad"]
    assert "1 images" in messages[0] and "0_extra" in messages[0]


def test_image_sizes_map_back_to_original(tiny):
    (tiny / "image_sizes.txt").write_text(
        "# image W H\n0--Parade/0_a.jpg 160 128\n0--Parade/0_b.jpg 80 64\n")
    ds = load_widerface(tiny, "good")
    assert ds.resized
    assert [s.scale for s in ds] == [(2.0, 2.0), (1.0, 1.0)]
    (tiny / "image_sizes.txt").write_text("0--Parade/0_a.jpg 160 128\n")
    with pytest.raises(DatasetError, match="no entry for 0--Parade/0_b"):
        load_widerface(tiny, "good")


def test_clear_errors_for_bad_layouts(tiny, tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_widerface(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no images/ directory"):
        load_widerface(tiny / "ground_truth")
    with pytest.raises(DatasetError, match=r"split 'eval' not found \(available: broken, good"):
        load_widerface(tiny, "eval")
    (tiny / "splits" / "dup.txt").write_text("0--Parade/0_a.jpg\n0--Parade/0_a.jpg\n")
    with pytest.raises(DatasetError, match="more than once"):
        load_widerface(tiny, "dup")
    (tiny / "splits" / "alien.txt").write_text("9--X/nope.jpg\n")
    with pytest.raises(DatasetError, match="not in wider_face_val_bbx_gt.txt"):
        load_widerface(tiny, "alien")
    (tiny / "ground_truth" / "wider_hard_val.mat").unlink()
    with pytest.raises(DatasetError, match="wider_hard_val.mat not found"):
        load_widerface(tiny, "good")


def test_keep_index_beyond_boxes_is_an_error(tiny):
    _write_keep_mat(tiny / "ground_truth" / "wider_hard_val.mat", {"0--Parade": {
        "0_a": [1, 3], "0_b": [], "0_bad": [1], "0_missing": [1]}})
    with pytest.raises(DatasetError, match="keeps box 3 of 0--Parade/0_a"):
        load_widerface(tiny, "good")


def test_bbx_gt_count_zero_without_dummy_row(tmp_path):
    f = tmp_path / "gt.txt"
    f.write_text("e/a.jpg\n0\ne/b.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n")
    gt = parse_bbx_gt(f)
    assert gt["e/a"].tolist() == [[0, 0, 0, 0]] and gt["e/b"].tolist() == [[1, 2, 3, 4]]
    f.write_text("e/a.jpg\n3\n1 2 3 4\n")
    with pytest.raises(DatasetError, match="malformed"):
        parse_bbx_gt(f)


def test_prediction_files_round_trip(tmp_path):
    preds = {"0--Parade/0_a": np.array([[1.5, 2.25, 10.0, 12.0, 0.987654321]]),
             "1--Handshaking/1_b": np.zeros((0, 5))}
    write_predictions(preds, tmp_path)
    text = (tmp_path / "0--Parade" / "0_a.txt").read_text()
    assert text == "0_a\n1\n1.50 2.25 10.00 12.00 0.987654\n"
    assert (tmp_path / "1--Handshaking" / "1_b.txt").read_text() == "1_b\n0\n"
    back = read_predictions(tmp_path)
    assert back["0--Parade/0_a"] == pytest.approx(np.array([[1.5, 2.25, 10, 12, 0.987654]]))
    assert back["1--Handshaking/1_b"].shape == (0, 5)


# ---------------------------------------------------------------- the shared data


def test_shared_eval_and_calib_splits(widerface_416):
    pytest.importorskip("scipy", reason="needs scipy: pip install '.[eval]'")
    ev = load_widerface(widerface_416, "eval")
    cal = load_widerface(widerface_416, "calib")
    assert len(ev) == 100 and len(cal) == 50
    assert ev.num_faces() == {"easy": 229, "medium": 573, "hard": 1542}
    assert not set(ev.ground_truth) & set(cal.ground_truth)
    sizes = {}
    for line in (widerface_416 / "image_sizes.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, w, h = line.split()
            sizes[name[:-4]] = (int(w), int(h))
    first = next(iter(ev))
    assert first.image.shape == (416, 416, 3)
    w, h = sizes[first.key]
    assert first.scale == (w / 416, h / 416)


def test_shared_native_layout(native_images):
    pytest.importorskip("scipy", reason="needs scipy: pip install '.[eval]'")
    root = native_images[0].parents[2]
    ds = load_widerface(root, None)
    assert len(ds) == len(native_images) and not ds.resized
    assert all(s.scale == (1.0, 1.0) for s in ds)
    with pytest.raises(DatasetError, match="has no splits"):
        load_widerface(root, "eval")


# ---------------------------------------------------------------- generic folders, blobs


def test_image_folder_and_blobs(tmp_path):
    (tmp_path / "sub").mkdir()
    rng = np.random.default_rng(1)
    cv2.imwrite(str(tmp_path / "a.png"), rng.integers(0, 255, (30, 40, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "sub" / "b.jpg"), rng.integers(0, 255, (50, 20, 3), np.uint8))
    (tmp_path / "sub" / "c.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    messages = []
    folder = ImageFolder(tmp_path, on_skip=messages.append)
    assert len(folder) == 3
    blobs = list(iter_blobs(folder, (32, 32)))
    assert len(blobs) == 2 and folder.skipped[0][0] == "sub/c.jpg"
    assert "c.jpg" in messages[0] and "skipped 1 of 3" in messages[-1]
    expected, _ = preprocess(read_image(tmp_path / "sub" / "b.jpg"), (32, 32))
    assert blobs[1].shape == (1, 3, 32, 32) and np.array_equal(blobs[1], expected)
    (tmp_path / "list.txt").write_text("sub/b.jpg\n")
    assert [s.key for s in ImageFolder(tmp_path, tmp_path / "list.txt")] == ["sub/b.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images in"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(DatasetError, match="not found"):
        ImageFolder(tmp_path / "missing")
