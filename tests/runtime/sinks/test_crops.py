"""Face crops: one JPEG per ended track, named by time and track id, written atomically, the
oldest deleted past a count or a size budget."""

from __future__ import annotations

import errno
import os
import re
import time

import cv2
import numpy as np
import pytest
from event_fakes import T0, event, lifecycle, make_track, wait_until, with_events

from edgeface.errors import EdgefaceError
from edgeface.runtime.sinks import crops as crops_mod
from edgeface.runtime.sinks.crops import CropsSink, crop_name


def ends(*ids):
    return [with_events([event("end", make_track(i))], i) for i in ids]


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_one_jpeg_per_ended_track_named_by_time_and_id(tmp_path):
    sink = CropsSink(tmp_path / "faces")
    for r in lifecycle(42):  # start and update save nothing
        sink.write(r)
    sink.close()
    # The best view was at T0 + 1.25 (UTC).
    assert names(tmp_path / "faces") == ["20231114T221321.250Z-track42.jpg"]
    img = cv2.imread(str(tmp_path / "faces" / "20231114T221321.250Z-track42.jpg"))
    assert img.shape == (111, 80, 3)  # the box, 30% more a side, cut at the image's edge
    assert sink.saved == 1 and sink.stats()["files"] == 1
    assert sink.describe() == f"crops {tmp_path / 'faces'}/ (newest 1000 kept, no size limit)"


def test_name_order_is_time_order():
    assert crop_name(T0, 3) == "20231114T221320.000Z-track3.jpg"
    assert crop_name(T0 + 0.9996, 3) == "20231114T221321.000Z-track3.jpg"  # rounds up a second
    stamps = [T0 + d for d in (0, 0.001, 0.5, 59.999, 3600, 86400 * 40)]
    assert [crop_name(t, 1) for t in stamps] == sorted(crop_name(t, 1) for t in stamps)


def test_keeps_the_newest_n(tmp_path):
    sink = CropsSink(tmp_path, keep=3)
    for i in range(7):
        t = make_track(i)
        t.best_ts = T0 + i
        sink.write(with_events([event("end", t)], i))
    sink.close()
    assert [re.sub(r".*-track", "", n) for n in names(tmp_path)] == ["4.jpg", "5.jpg", "6.jpg"]
    assert sink.deleted == 4


def test_size_budget_counts_the_files_of_an_earlier_run(tmp_path):
    old = [f"20200101T00000{i}.000Z-track{i}.jpg" for i in range(3)]
    for n in old:
        (tmp_path / n).write_bytes(b"x" * 30_000)
    (tmp_path / "notes.txt").write_text("not ours: never deleted")
    (tmp_path / f".{old[0]}.abc123.part").write_bytes(b"half")  # an interrupted write
    sink = CropsSink(tmp_path, max_bytes=64 << 10)
    # 90 KB of old crops against a 64 KB budget: the oldest went at start.
    assert names(tmp_path) == sorted([*old[1:], "notes.txt"])
    t = make_track(9, box=(0, 0, 160, 120))
    t.best_ts = T0
    sink.write(with_events([event("end", t)]))
    sink.close()
    left = names(tmp_path)
    assert "notes.txt" in left and any(n.endswith("track9.jpg") for n in left)
    used = sum((tmp_path / n).stat().st_size for n in left if n.endswith(".jpg"))
    assert used <= 64 << 10 and sink.stats()["bytes"] == used


def test_writes_are_atomic_and_a_failure_is_counted(tmp_path, monkeypatch):
    calls = []
    real = crops_mod.atomic_write

    def spy(path, data, *a, **kw):
        calls.append(path)
        return real(path, data, *a, **kw)

    monkeypatch.setattr(crops_mod, "atomic_write", spy)
    sink = CropsSink(tmp_path)
    sink.write(ends(1)[0])
    sink.flush()
    assert [p.name for p in calls] == names(tmp_path)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    sink.write(ends(2)[0])
    sink.close()
    # The disk stays full even once the older crop made room: the failed crop left nothing
    # behind, not even its temporary file.
    assert names(tmp_path) == [] and sink.write_errors == 1 and sink.saved == 1
    assert sink.full_disk == 1 and sink.deleted == 1


class FakeFullDisk:
    """Stands in for a small filesystem: ``atomic_write`` fails with ENOSPC when the folder's
    files and the new data would pass ``capacity`` bytes (the rest of the disk being full of
    other things)."""

    def __init__(self, folder, capacity: int, real):
        self.folder, self.capacity, self.real, self.refused = folder, capacity, real, 0

    def __call__(self, path, data, *a, **kw):
        used = sum(p.stat().st_size for p in self.folder.iterdir())
        if used + len(data) > self.capacity:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(path, data, *a, **kw)


def test_a_full_disk_is_recovered_by_deleting_the_oldest_crops(tmp_path, monkeypatch, caplog):
    import logging

    crop_size = len(crops_mod.encode_jpeg(crops_mod.best_view(make_track(0))))
    disk = FakeFullDisk(tmp_path, 10 * crop_size, crops_mod.atomic_write)
    monkeypatch.setattr(crops_mod, "atomic_write", disk)
    sink = CropsSink(tmp_path, keep=1000)  # no limit of its own would bite
    with caplog.at_level(logging.WARNING, logger="edgeface.runtime.sinks.crops"):
        for i in range(40):
            t = make_track(i)
            t.best_ts = T0 + i
            sink.write(with_events([event("end", t)], i))
            sink.flush()
        sink.close()
    left = names(tmp_path)
    # Every crop was saved, the newest are there, the disk never overflowed: before, each
    # crop past the 10th failed forever.
    assert sink.saved == 40 and sink.write_errors == 0 and disk.refused == sink.full_disk > 0
    assert left[-1].endswith("-track39.jpg") and 5 <= len(left) <= 10
    assert sink.deleted == 40 - len(left) and sink.stats()["files"] == len(left)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "the disk is full" in warned[0], warned


def test_queue_is_bounded_and_write_never_waits(tmp_path, monkeypatch):
    import threading

    gate = threading.Event()
    real = crops_mod.encode_jpeg
    monkeypatch.setattr(crops_mod, "encode_jpeg", lambda img: (gate.wait(5), real(img))[1])
    sink = CropsSink(tmp_path, queue_size=4)
    first, *rest = ends(*range(10))
    sink.write(first)
    assert wait_until(lambda: sink.stats()["queued"] == 0)  # in the worker's hands
    t = time.perf_counter()
    for r in rest:
        sink.write(r)
    assert time.perf_counter() - t < 0.05  # nine writes, none waiting for the disk
    assert sink.dropped == 5  # one in hand, four queued
    gate.set()
    sink.close()
    assert sink.saved == 5 and len(names(tmp_path)) == 5


def test_tracks_without_a_view_are_skipped(tmp_path):
    sink = CropsSink(tmp_path)
    sink.write(with_events([event("end", make_track(1, with_image=False))]))
    sink.close()
    assert names(tmp_path) == [] and sink.skipped == 1


def test_an_unusable_folder_is_an_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(EdgefaceError, match="cannot use .* for face crops"):
        CropsSink(tmp_path / "file" / "faces")


def test_crops_are_copies_not_views(tmp_path):
    """The queued crop must not change when the source reuses its frame buffer."""
    from edgeface.runtime.sinks.face_events import best_view

    t = make_track(1)
    crop = best_view(t)
    t.best_image[:] = 0
    assert crop.any() and not np.shares_memory(crop, t.best_image)


def test_crops_max_size_0_is_refused_and_off_is_explicit(tmp_path):
    from edgeface.errors import ConfigError
    from edgeface.runtime.config import validate
    from edgeface.runtime.sinks.crops import CropsSink

    with pytest.raises(ConfigError, match="0 would mean no size limit"):
        validate({"outputs": {"crops": str(tmp_path), "crops_max_size": 0}})
    validate({"outputs": {"crops": str(tmp_path), "crops_max_size": "off"}})
    sink = CropsSink(tmp_path / "c", max_bytes=None)
    assert "no size limit" in sink.describe()
    sink.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_crops_dir_is_found_at_start(tmp_path):
    from edgeface.errors import EdgefaceError
    from edgeface.runtime.sinks.crops import CropsSink

    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    with pytest.raises(EdgefaceError, match="cannot use .* for face crops"):
        CropsSink(d)


def test_a_crops_path_that_is_a_file_is_found_at_start(tmp_path):
    from edgeface.errors import EdgefaceError
    from edgeface.runtime.sinks.crops import CropsSink

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(EdgefaceError, match="for face crops"):
        CropsSink(f / "sub")


def test_a_folder_that_refuses_files_is_found_at_start():
    """/proc/self exists and lists, but takes no new file (even for root)."""
    from edgeface.runtime.sinks.crops import CropsSink

    with pytest.raises(EdgefaceError, match="cannot use /proc/self for face crops"):
        CropsSink("/proc/self")
